# Shared by scripts/backup.sh and scripts/restore.sh (sourced, not run).
# Two ways to reach the database, chosen once per run (DB_MODE):
#   url      a libpq connection string (--database-url or COSTMON_DATABASE_URL), local client tools
#   compose  the compose stack: client tools run inside the database container via `docker compose exec`
# Secrets: a password in the connection string moves to PGPASSWORD (so it is not in `ps`) and every
# connection string we print goes through mask_dsn.
# shellcheck shell=bash disable=SC2034  # settings here are used by the scripts that source this

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MANIFEST_FORMAT="costmon-backup/1"
# Helper image for reading and writing Docker volumes; pinned (exact tag).
HELPER_IMAGE=${BACKUP_HELPER_IMAGE:-busybox:1.36.1}
DB_SERVICE=${COSTMON_DB_SERVICE:-timescaledb}
GRAFANA_SERVICE=${COSTMON_GRAFANA_SERVICE:-grafana}
PROMETHEUS_SERVICE=${COSTMON_PROMETHEUS_SERVICE:-prometheus}
LOKI_SERVICE=${COSTMON_LOKI_SERVICE:-loki}
COLLECTOR_SERVICE=${COSTMON_COLLECTOR_SERVICE:-collector}
GRAFANA_DATA_PATH=/var/lib/grafana
LOKI_DATA_PATH=/loki
PROMETHEUS_DATA_PATH=/prometheus

DB_MODE=
DB_URL=
MAINT_DB=${COSTMON_MAINTENANCE_DB:-postgres}
PG_BINDIR=${PG_BINDIR:-}
COMPOSE_CMD=()

info() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
# die [code] message: one line on stderr, then exit (the EXIT trap cleans up).
die() {
    local code=1
    if [[ $# -gt 1 && $1 =~ ^[0-9]+$ ]]; then code=$1; shift; fi
    printf '%s: error: %s\n' "$PROG" "$(mask_dsn "$*")" >&2
    exit "$code"
}

# Hide passwords in URL (user:secret@) and key=value (password=secret) forms.
mask_dsn() {
    sed -E -e 's#(://[^:/@[:space:]]+:)[^@[:space:]]*@#\1***@#g' \
           -e 's#([Pp][Aa][Ss][Ss][Ww][Oo][Rr][Dd][[:space:]]*=[[:space:]]*)[^[:space:]]+#\1***#g' <<<"$1"
}

# The line of a tool's stderr that says why it failed, masked ("X failed: <why>").
error_line() {
    [[ -s $1 ]] || return 1
    local line
    line=$(grep -m1 -E '(error|ERROR|FATAL|failed|No such|[Pp]ermission denied)' "$1" || grep -v -m1 '^[[:space:]]*$' "$1")
    mask_dsn "$line"
}

# URL percent-decoding; a backslash stays a backslash (printf %b would read escapes).
percent_decode() { local s=${1//\\/%5C}; printf '%b' "${s//%/\\x}"; }

# ---- connection -----------------------------------------------------------

# use_url URL: url mode; a password in URL moves to PGPASSWORD.
use_url() {
    local url=$1 re_url='^(postgres(ql)?://)([^@/?]*)@(.*)$' re_kv='(^|[[:space:]])[Pp][Aa][Ss][Ss][Ww][Oo][Rr][Dd][[:space:]]*=[[:space:]]*([^[:space:]'"'"']+)'
    DB_MODE=url
    if [[ $url =~ $re_url ]]; then
        local scheme=${BASH_REMATCH[1]} userinfo=${BASH_REMATCH[3]} rest=${BASH_REMATCH[4]}
        if [[ $userinfo == *:* ]]; then
            PGPASSWORD=$(percent_decode "${userinfo#*:}")
            export PGPASSWORD
            url="$scheme${userinfo%%:*}@$rest"
        fi
    elif [[ $url =~ $re_kv ]]; then
        PGPASSWORD=${BASH_REMATCH[2]}
        export PGPASSWORD
        url=${url/"${BASH_REMATCH[0]}"/${BASH_REMATCH[1]}}
    fi
    DB_URL=$url
    export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}
    find_pg_tools
}

use_compose() {
    DB_MODE=compose
    local default="docker compose"
    docker compose version >/dev/null 2>&1 || default=docker-compose  # v1 (Debian's 1.29)
    read -r -a COMPOSE_CMD <<<"${COMPOSE:-$default --project-directory $REPO_ROOT/compose -f $REPO_ROOT/compose/docker-compose.yml --env-file $REPO_ROOT/compose/.env}"
    command -v "${COMPOSE_CMD[0]}" >/dev/null || die "${COMPOSE_CMD[0]} not found: compose mode needs Docker (or pass --database-url)"
    compose ps -q "$DB_SERVICE" 2>/dev/null | grep -q . \
        || die "compose service '$DB_SERVICE' is not running (start the stack with make up, or pass --database-url)"
}

compose() { "${COMPOSE_CMD[@]}" "$@"; }

# The database named in a URL or key=value DSN (empty when it names none).
dsn_dbname() {
    local re_url='^postgres(ql)?://[^/?]*/([^?]*)' re_kv='(^|[[:space:]])dbname[[:space:]]*=[[:space:]]*([^[:space:]]+)'
    if [[ $1 =~ $re_url ]]; then percent_decode "${BASH_REMATCH[2]}"
    elif [[ $1 =~ $re_kv ]]; then printf '%s' "${BASH_REMATCH[2]}"
    fi
}

# The same DSN naming another database (a plain [A-Za-z0-9_] name).
dsn_with_dbname() {
    local dsn=$1 name=$2 re_url='^(postgres(ql)?://[^/?]*)(/[^?]*)?(\?.*)?$' re_kv='(^|[[:space:]])dbname[[:space:]]*=[[:space:]]*[^[:space:]]+'
    if [[ $dsn =~ $re_url ]]; then printf '%s/%s%s' "${BASH_REMATCH[1]}" "$name" "${BASH_REMATCH[4]}"
    elif [[ $dsn =~ $re_kv ]]; then printf '%s' "${dsn/"${BASH_REMATCH[0]}"/${BASH_REMATCH[1]}dbname=$name}"
    else printf '%s dbname=%s' "$dsn" "$name"
    fi
}

# Client tools: PG_BINDIR, else the newest /usr/lib/postgresql/*/bin (Debian), else PATH.
find_pg_tools() {
    if [[ -z $PG_BINDIR ]]; then
        PG_BINDIR=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 3 -path '*/bin/pg_dump' 2>/dev/null \
                    | sort -V | tail -n1 | xargs -r dirname)
    fi
    if [[ -z $PG_BINDIR ]] && command -v pg_dump >/dev/null; then
        PG_BINDIR=$(dirname "$(command -v pg_dump)")
    fi
    local tool
    for tool in pg_dump pg_restore psql; do
        [[ -x $PG_BINDIR/$tool ]] || die "$tool not found (install postgresql-client, or set PG_BINDIR)"
    done
}

# pg_tool [--db NAME] TOOL ARGS...: TOOL connected to the app database (or NAME).
pg_tool() {
    local db=
    if [[ $1 == --db ]]; then db=$2; shift 2; fi
    local tool=$1; shift
    if [[ $DB_MODE == url ]]; then
        local dsn=$DB_URL
        [[ -n $db ]] && dsn=$(dsn_with_dbname "$DB_URL" "$db")
        PGAPPNAME=costmon-$PROG "$PG_BINDIR/$tool" -d "$dsn" "$@"
    else
        # The official images trust local socket connections inside the container.
        # shellcheck disable=SC2016  # expanded by the container's sh
        compose exec -T -e PGAPPNAME="costmon-$PROG" -e COSTMON_DB="$db" "$DB_SERVICE" sh -c \
            'tool=$1; shift; exec "$tool" -U "$POSTGRES_USER" -d "${COSTMON_DB:-${POSTGRES_DB:-$POSTGRES_USER}}" "$@"' \
            sh "$tool" "$@"
    fi
}

# pg_local TOOL ARGS...: a client tool that needs no connection (pg_restore --list).
pg_local() {
    local tool=$1; shift
    if [[ $DB_MODE == url ]]; then "$PG_BINDIR/$tool" "$@"
    else compose exec -T "$DB_SERVICE" "$tool" "$@"
    fi
}

# psql_script [--db NAME] [psql -v args...] < script: quiet, unaligned, stop at the first error.
psql_script() {
    local db_args=()
    if [[ $1 == --db ]]; then db_args=(--db "$2"); shift 2; fi
    pg_tool "${db_args[@]}" psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

# Name of the app database (compose: the container's POSTGRES_DB).
app_dbname() {
    if [[ $DB_MODE == url ]]; then dsn_dbname "$DB_URL"
    else
        # shellcheck disable=SC2016  # expanded by the container's sh
        compose exec -T "$DB_SERVICE" sh -c 'printf %s "${POSTGRES_DB:-$POSTGRES_USER}"'
    fi
}

# ---- what the manifest says about a database -------------------------------

# Tables that hold the app's data: every ordinary table outside the system and
# TimescaleDB-internal schemas (chunks are counted through their hypertable),
# minus tables that belong to an extension. Generic: new tables are included.
APP_SCHEMA="n.nspname <> 'information_schema' AND n.nspname !~ '^(pg_|_timescaledb|timescaledb_)'"
APP_TABLES_SQL="
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND $APP_SCHEMA
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')"

# Prints one JSON object: database name, owner, encoding, the roles its objects
# refer to, row counts per table, and cost sums per provider, UTC day and
# currency from billing_line_items (exact decimals as strings), one entry a line.
# Run it inside the transaction whose snapshot pg_dump uses: both then describe
# the same data. $1 ends the final SELECT (default ";"; restore uses \gset).
stats_sql() {
    local end=${1:-;}
    cat <<SQL
SELECT to_regclass('public.billing_line_items') IS NOT NULL AS costmon_has_bli \gset
\set costmon_costs ''
\if :costmon_has_bli
SELECT coalesce(string_agg(json_build_object(
           'provider', provider, 'day', day, 'currency', billing_currency,
           'billed_cost', billed_cost::text, 'effective_cost', effective_cost::text,
           'line_items', line_items)::text, E',\n        ' ORDER BY provider, day, billing_currency), '')
       AS costmon_costs
FROM (SELECT provider, to_char(charge_period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
             billing_currency::text AS billing_currency, sum(billed_cost) AS billed_cost,
             sum(effective_cost) AS effective_cost, count(*) AS line_items
      FROM public.billing_line_items GROUP BY 1, 2, 3) s \gset
\endif
WITH tables AS ($APP_TABLES_SQL),
counts AS (
    SELECT nspname || '.' || relname AS name,
           (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', nspname, relname),
                                                false, true, '')))[1]::text::bigint AS n
    FROM tables),
roles AS (
    SELECT c.relowner AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE $APP_SCHEMA
    UNION SELECT (aclexplode(c.relacl)).grantee FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE $APP_SCHEMA
    UNION SELECT p.proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE $APP_SCHEMA
    UNION SELECT n.nspowner FROM pg_namespace n WHERE $APP_SCHEMA
    UNION SELECT (aclexplode(n.nspacl)).grantee FROM pg_namespace n WHERE $APP_SCHEMA
    UNION SELECT d.defaclrole FROM pg_default_acl d
    UNION SELECT (aclexplode(d.defaclacl)).grantee FROM pg_default_acl d
    UNION SELECT datdba FROM pg_database WHERE datname = current_database()),
db AS (SELECT datname, pg_get_userbyid(datdba) AS owner, pg_encoding_to_char(encoding) AS encoding
       FROM pg_database WHERE datname = current_database())
SELECT concat_ws(E'\n',
    '{',
    '    "name": ' || to_json(db.datname)::text || ',',
    '    "owner": ' || to_json(db.owner)::text || ',',
    '    "encoding": ' || to_json(db.encoding)::text || ',',
    '    "roles": ' || (SELECT coalesce(json_agg(r.rolname ORDER BY r.rolname), '[]')::text FROM pg_roles r
                        WHERE r.oid IN (SELECT oid FROM roles) AND r.rolname !~ '^pg_') || ',',
    '    "row_counts": {' || (SELECT coalesce(string_agg(E'\n        ' || to_json(name)::text || ': ' || n, ','
                                                         ORDER BY name), '') FROM counts) || E'\n    },',
    '    "costs": [' || CASE WHEN :'costmon_costs' = '' THEN '' ELSE E'\n        ' || :'costmon_costs' END
                     || E'\n    ]',
    '}') AS doc
FROM db $end
SQL
}

# psql lines that load manifest.json ($1) into the temp table costmon_doc(doc json).
manifest_sql() {
    printf '%s\n' "CREATE TEMP TABLE costmon_manifest (n serial, line text);" \
        "COPY costmon_manifest (line) FROM STDIN WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02');"
    cat "$1"
    [[ -z $(tail -c1 "$1") ]] || echo
    printf '%s\n' '\.' \
        "CREATE TEMP TABLE costmon_doc AS
         SELECT string_agg(coalesce(line, ''), E'\\n' ORDER BY n)::json AS doc FROM costmon_manifest;"
}

# ---- files ----------------------------------------------------------------

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1"; }

json_str() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$(tr -d '\000-\037' <<<"$s")"
}

# The value of a one-line "key": "value" in a manifest we wrote ("" for null).
manifest_value() {
    sed -n -E "s/^[[:space:]]*\"$2\": \"([^\"]*)\",?$/\1/p" "$1" | head -n1
}

# "name sha256" for each entry of the manifest's files list (one entry a line).
manifest_files() {
    sed -n -E 's/^[[:space:]]*\{"name": "([^"]+)", "kind": "[^"]*", "bytes": [0-9]+, "sha256": "([0-9a-f]{64})"\},?$/\1 \2/p' "$1"
}
