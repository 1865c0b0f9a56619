#!/usr/bin/env bash
# Restore a backup made by scripts/backup.sh.
#
# Order, so that a refusal or a failure leaves everything as it was:
#   1. verify every file's sha256 and the dump's table of contents (no database contact);
#   2. check the server can host it (TimescaleDB version) and the target is empty (else --force);
#   3. restore into a new staging database (TimescaleDB: timescaledb_pre_restore/post_restore);
#   4. compare its row counts and cost sums with the manifest: any difference stops here;
#   5. only then replace the target database with the staging one.
# Exit status: 0 restored and verified, 1 failed (target untouched), 2 usage, 3 refused,
# 4 backup corrupt or incomplete (nothing touched), 5 restored data differs from the manifest
# (target untouched).
set -Eeuo pipefail
umask 077
PROG=restore
# shellcheck source=scripts/lib/backup-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/backup-common.sh"

usage() {
    cat <<EOF
usage: scripts/restore.sh [--database-url URL | --compose] [--force] [options] BACKUP_DIR

  --database-url URL   restore into this database (it may not exist yet; default \$COSTMON_DATABASE_URL)
  --compose            restore into the compose stack (default when no URL is given)
  --force              replace a target database that has data (and a non-empty --grafana-dir)
  --grafana-dir DIR    url mode: also restore Grafana's data into DIR
  --no-grafana         compose mode: leave Grafana's data volume as it is
  --database NAME      restore into database NAME instead (a restore drill beside production)
  --maintenance-db DB  database to connect to for CREATE/DROP DATABASE (default postgres)
EOF
}

URL=${COSTMON_DATABASE_URL:-}
FORCE=no
FORCE_COMPOSE=no
GRAFANA=yes
GRAFANA_DIR=
BACKUP=
TARGET=
while [[ $# -gt 0 ]]; do
    case $1 in
        --database-url) [[ $# -ge 2 ]] || die 2 "--database-url needs a value"; URL=$2; shift 2 ;;
        --compose) FORCE_COMPOSE=yes; shift ;;
        --force) FORCE=yes; shift ;;
        --grafana-dir) [[ $# -ge 2 ]] || die 2 "--grafana-dir needs a value"; GRAFANA_DIR=$2; shift 2 ;;
        --no-grafana) GRAFANA=no; shift ;;
        --database) [[ $# -ge 2 ]] || die 2 "--database needs a value"; TARGET=$2; shift 2 ;;
        --maintenance-db) [[ $# -ge 2 ]] || die 2 "--maintenance-db needs a value"; MAINT_DB=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        -*) usage >&2; die 2 "unknown option: $1" ;;
        *) [[ -z $BACKUP ]] || die 2 "one backup directory only"; BACKUP=$1; shift ;;
    esac
done
[[ -n $BACKUP ]] || { usage >&2; die 2 "name the backup directory to restore"; }
[[ -d $BACKUP ]] || die 2 "$BACKUP is not a directory"
BACKUP=$(cd "$BACKUP" && pwd)
MANIFEST=$BACKUP/manifest.json

SCRATCH=$(mktemp -d)
STAGING=
STAGING_STATE=none   # none | created | swapping | renamed
STOPPED=()

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local rc=$?
    set +e
    if [[ $STAGING_STATE == created ]]; then
        psql_script --db "$MAINT_DB" -v staging="$STAGING" <<<'DROP DATABASE IF EXISTS :"staging" WITH (FORCE);' \
            >/dev/null 2>&1 || warn "could not drop the staging database $STAGING; drop it by hand"
    elif [[ $STAGING_STATE == swapping ]]; then
        printf '%s: the restored data is in database "%s"; rename it to "%s" by hand (ALTER DATABASE ... RENAME TO ...)\n' \
            "$PROG" "$STAGING" "$TARGET" >&2
    fi
    local svc
    for svc in "${STOPPED[@]}"; do
        compose start "$svc" >/dev/null 2>&1 || warn "could not start $svc again: docker compose start $svc"
    done
    rm -rf "$SCRATCH"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. the backup is whole and intact (before touching anything) ----------------------

[[ -f $MANIFEST && -f $BACKUP/SHA256SUMS ]] \
    || die 4 "$BACKUP has no manifest.json or SHA256SUMS: not a complete backup"
grep -q "\"format\": \"$MANIFEST_FORMAT\"" "$MANIFEST" \
    || die 4 "$MANIFEST is not a $MANIFEST_FORMAT manifest"
listed=$(sed -E 's/^[0-9a-f]{64} [ *]//' "$BACKUP/SHA256SUMS")
for path in "$BACKUP"/* "$BACKUP"/.[!.]*; do
    [[ -e $path ]] || continue
    name=$(basename "$path")
    [[ $name == SHA256SUMS ]] && continue
    grep -qxF -- "$name" <<<"$listed" || die 4 "$name is in the backup but not in SHA256SUMS"
done
if ! (cd "$BACKUP" && sha256sum --check --strict --quiet SHA256SUMS) >"$SCRATCH/sums" 2>&1; then
    bad=$(grep -E ': FAILED' "$SCRATCH/sums" | sed -E 's/: FAILED.*//' | paste -sd, - | sed 's/,/, /g')
    die 4 "checksum mismatch in $BACKUP: ${bad:-$(error_line "$SCRATCH/sums")}; nothing was restored"
fi
manifest_files "$MANIFEST" >"$SCRATCH/files"
grep -q '^database.dump ' "$SCRATCH/files" || die 4 "the manifest lists no database.dump"
while read -r name sum; do
    grep -qxF "$sum  $name" "$BACKUP/SHA256SUMS" || die 4 "manifest.json and SHA256SUMS disagree about $name"
done <"$SCRATCH/files"
info "verified sha256 of $(wc -l <"$BACKUP/SHA256SUMS") files in $BACKUP"

if [[ $FORCE_COMPOSE == no && -n $URL ]]; then use_url "$URL"; else use_compose; fi
unset URL COSTMON_DATABASE_URL
pg_local pg_restore --list <"$BACKUP/database.dump" >/dev/null 2>"$SCRATCH/toc" \
    || die 4 "database.dump is not a readable pg_dump archive: $(error_line "$SCRATCH/toc")"

# ---- 2. the server can host it; the target may be replaced -------------------------------

APP_DB=$(app_dbname)
TARGET=${TARGET:-$APP_DB}
[[ -n $TARGET ]] || die 2 "name the database to restore into (in the connection string, or --database)"
TSDB=$(manifest_value "$MANIFEST" timescaledb)
STAGING="costmon_restore_$$"

psql_script --db "$MAINT_DB" -v target="$TARGET" -v tsdb="$TSDB" >"$SCRATCH/server" 2>"$SCRATCH/server.err" <<'SQL' \
    || die "cannot reach the server: $(error_line "$SCRATCH/server.err")"
SELECT 'exists=' || EXISTS (SELECT 1 FROM pg_database WHERE datname = :'target');
SELECT 'tsdb_available=' || EXISTS (SELECT 1 FROM pg_available_extension_versions
                                    WHERE name = 'timescaledb' AND version = :'tsdb');
SELECT 'tsdb_versions=' || coalesce(string_agg(version, ' ' ORDER BY version), 'none')
FROM pg_available_extension_versions WHERE name = 'timescaledb';
SELECT 'tsdb_preloaded=' || (current_setting('shared_preload_libraries') ~ 'timescaledb');
SQL
server() { sed -n "s/^$1=//p" "$SCRATCH/server"; }

if [[ -n $TSDB ]]; then
    [[ $(server tsdb_available) == true ]] \
        || die 3 "the backup needs TimescaleDB $TSDB; this server offers: $(server tsdb_versions) (use the image timescale/timescaledb:$TSDB-pg<major>)"
    [[ $(server tsdb_preloaded) == true ]] \
        || die 3 "the backup needs TimescaleDB $TSDB but this server does not preload it (shared_preload_libraries)"
fi

if [[ $(server exists) == true ]]; then
    data_sql="WITH tables AS ($APP_TABLES_SQL)
SELECT coalesce(string_agg(nspname || '.' || relname, ', ' ORDER BY nspname, relname), '')
FROM tables
WHERE relname <> 'schema_migrations'
  AND query_to_xml(format('SELECT 1 AS x FROM %I.%I LIMIT 1', nspname, relname), false, true, '')::text <> '';"
    with_data=$(psql_script --db "$TARGET" <<<"$data_sql" 2>"$SCRATCH/target.err") \
        || die "cannot inspect database $TARGET: $(error_line "$SCRATCH/target.err")"
    if [[ -n $with_data && $FORCE != yes ]]; then
        die 3 "refusing: database $TARGET has data ($with_data); pass --force (make restore FORCE=1) to replace it"
    fi
    [[ -n $with_data ]] && info "--force: database $TARGET has data ($with_data) and will be replaced"
fi

HAS_GRAFANA=no
grep -q '^grafana-data.tar.gz ' "$SCRATCH/files" && HAS_GRAFANA=yes
if [[ $DB_MODE == url && -n $GRAFANA_DIR ]]; then
    [[ $HAS_GRAFANA == yes ]] || die 3 "--grafana-dir given but this backup has no grafana-data.tar.gz"
    if [[ -d $GRAFANA_DIR && -n $(ls -A "$GRAFANA_DIR") && $FORCE != yes ]]; then
        die 3 "refusing: $GRAFANA_DIR is not empty; pass --force to replace it"
    fi
fi

# ---- 3. restore into a staging database ------------------------------------------------------

if [[ $DB_MODE == compose && $TARGET == "$APP_DB" ]]; then
    # Nothing may write while the database is replaced.
    if [[ -n $(compose ps -q "$COLLECTOR_SERVICE" 2>/dev/null) ]]; then
        compose stop "$COLLECTOR_SERVICE" >/dev/null && STOPPED+=("$COLLECTOR_SERVICE")
        info "stopped $COLLECTOR_SERVICE for the restore"
    fi
fi

{
    manifest_sql "$MANIFEST"
    cat <<'SQL'
SELECT doc->'database'->>'owner' AS owner FROM costmon_doc \gset
SELECT 'created missing role ' || r || ' (NOLOGIN; costmon migrate sets up logins)'
FROM json_array_elements_text((SELECT doc->'database'->'roles' FROM costmon_doc)) r
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r);
SELECT format('CREATE ROLE %I NOLOGIN', r)
FROM json_array_elements_text((SELECT doc->'database'->'roles' FROM costmon_doc)) r
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
CREATE DATABASE :"staging" TEMPLATE template0 OWNER :"owner";
SQL
} | psql_script --db "$MAINT_DB" -v staging="$STAGING" >"$SCRATCH/create" 2>"$SCRATCH/create.err" \
    || die "cannot create the staging database $STAGING: $(error_line "$SCRATCH/create.err")"
STAGING_STATE=created
while IFS= read -r line; do [[ -n $line ]] && info "$line"; done <"$SCRATCH/create"

if [[ -n $TSDB ]]; then
    psql_script --db "$STAGING" -v tsdb="$TSDB" >/dev/null 2>"$SCRATCH/pre.err" <<'SQL' \
        || die "timescaledb_pre_restore failed: $(error_line "$SCRATCH/pre.err")"
CREATE EXTENSION timescaledb VERSION :'tsdb';
SELECT timescaledb_pre_restore();
SQL
fi

info "pg_restore into staging database $STAGING${TSDB:+ (TimescaleDB $TSDB)}"
pg_tool --db "$STAGING" pg_restore --exit-on-error --single-transaction <"$BACKUP/database.dump" \
    2>"$SCRATCH/restore.err" \
    || die "pg_restore failed: $(error_line "$SCRATCH/restore.err"); $TARGET was not touched"

if [[ -n $TSDB ]]; then
    psql_script --db "$STAGING" -c 'SELECT timescaledb_post_restore();' >/dev/null 2>"$SCRATCH/post.err" \
        || die "timescaledb_post_restore failed: $(error_line "$SCRATCH/post.err")"
fi

# ---- 4. the restored data is the backed-up data -------------------------------------------

{
    manifest_sql "$MANIFEST"
    stats_sql '\gset costmon_live_'
    cat <<'SQL'
WITH m AS (SELECT doc->'database' AS d FROM costmon_doc),
     l AS (SELECT :'costmon_live_doc'::json AS d)
SELECT line FROM (
    SELECT 1 AS k, key AS a1, '' AS a2, '' AS a3,
           format('rows differ in %s: backup %s, restored %s', key,
                  coalesce(b.value, 'no table'), coalesce(r.value, 'no table')) AS line
    FROM json_each_text((SELECT d FROM m)->'row_counts') b
    FULL JOIN json_each_text((SELECT d FROM l)->'row_counts') r USING (key)
    WHERE b.value IS DISTINCT FROM r.value
    UNION ALL
    SELECT 2, provider, day, currency,
           format('costs differ for %s %s %s: backup billed %s effective %s in %s lines, restored billed %s effective %s in %s lines',
                  provider, day, currency,
                  coalesce(b.billed_cost::text, 'none'), coalesce(b.effective_cost::text, 'none'),
                  coalesce(b.line_items::text, '0'),
                  coalesce(r.billed_cost::text, 'none'), coalesce(r.effective_cost::text, 'none'),
                  coalesce(r.line_items::text, '0'))
    FROM json_to_recordset((SELECT d FROM m)->'costs')
         AS b(provider text, day text, currency text, billed_cost numeric, effective_cost numeric, line_items bigint)
    FULL JOIN json_to_recordset((SELECT d FROM l)->'costs')
         AS r(provider text, day text, currency text, billed_cost numeric, effective_cost numeric, line_items bigint)
         USING (provider, day, currency)
    WHERE (b.billed_cost, b.effective_cost, b.line_items) IS DISTINCT FROM (r.billed_cost, r.effective_cost, r.line_items)
) diff ORDER BY k, a1, a2, a3;
SELECT 'checked ' || count(*) || ' tables, ' || coalesce(sum(value::bigint), 0) || ' rows'
FROM json_each_text(:'costmon_live_doc'::json->'row_counts');
SQL
} | psql_script --db "$STAGING" >"$SCRATCH/verify" 2>"$SCRATCH/verify.err" \
    || die "cannot verify the restored data: $(error_line "$SCRATCH/verify.err")"
checked=$(tail -n1 "$SCRATCH/verify")
sed '$d' "$SCRATCH/verify" | grep -v '^$' >"$SCRATCH/diff" || true
if [[ -s $SCRATCH/diff ]]; then
    while IFS= read -r line; do printf '%s: mismatch: %s\n' "$PROG" "$line" >&2; done <"$SCRATCH/diff"
    die 5 "restored data differs from the manifest in $(wc -l <"$SCRATCH/diff") place(s); $TARGET was not touched"
fi
info "restored data matches the manifest ($checked)"

# ---- 5. replace the target ---------------------------------------------------------------

STAGING_STATE=swapping
psql_script --db "$MAINT_DB" -v target="$TARGET" -v staging="$STAGING" >/dev/null 2>"$SCRATCH/swap.err" <<'SQL' \
    || die "could not replace $TARGET: $(error_line "$SCRATCH/swap.err")"
SET client_min_messages = error;
DROP DATABASE IF EXISTS :"target" WITH (FORCE);
ALTER DATABASE :"staging" RENAME TO :"target";
SQL
STAGING_STATE=renamed
if [[ -n $TSDB ]]; then
    # Renaming a database stops its TimescaleDB background workers; this starts them again.
    psql_script --db "$TARGET" -c 'SELECT timescaledb_post_restore();' >/dev/null 2>"$SCRATCH/post.err" \
        || warn "timescaledb_post_restore on $TARGET failed: $(error_line "$SCRATCH/post.err")"
fi
info "database $TARGET restored from $(basename "$BACKUP")"

# ---- Grafana -------------------------------------------------------------------------------

if [[ $HAS_GRAFANA == yes && $DB_MODE == url && -n $GRAFANA_DIR ]]; then
    staging_dir="${GRAFANA_DIR%/}.restore-$$"
    mkdir -p "$staging_dir"
    tar -C "$staging_dir" -xzf "$BACKUP/grafana-data.tar.gz" 2>"$SCRATCH/grafana.err" \
        || { rm -rf "$staging_dir"; die "grafana: extracting failed: $(error_line "$SCRATCH/grafana.err")"; }
    rm -rf "$GRAFANA_DIR" && mv -T "$staging_dir" "$GRAFANA_DIR"
    info "grafana: data restored into $GRAFANA_DIR"
elif [[ $HAS_GRAFANA == yes && $DB_MODE == compose && $TARGET != "$APP_DB" ]]; then
    info "grafana: left as it is (restored into $TARGET, not the stack's database $APP_DB)"
elif [[ $HAS_GRAFANA == yes && $DB_MODE == compose && $GRAFANA == yes ]]; then
    cid=$(compose ps -a -q "$GRAFANA_SERVICE" 2>/dev/null | head -n1)
    [[ -n $cid ]] || die "grafana: no $GRAFANA_SERVICE container (run make up first); the database is restored"
    compose stop "$GRAFANA_SERVICE" >/dev/null && STOPPED+=("$GRAFANA_SERVICE")
    docker run --rm -i --network none --volumes-from "$cid" "$HELPER_IMAGE" sh -c \
        "find '$GRAFANA_DATA_PATH' -mindepth 1 -delete && tar -C '$GRAFANA_DATA_PATH' -xzf -" \
        <"$BACKUP/grafana-data.tar.gz" 2>"$SCRATCH/grafana.err" \
        || die "grafana: restoring its volume failed: $(error_line "$SCRATCH/grafana.err"); the database is restored"
    info "grafana: data volume restored"
elif [[ $HAS_GRAFANA == yes ]]; then
    info "grafana: left as it is (the backup has grafana-data.tar.gz: restore it with --grafana-dir DIR or in compose mode)"
fi
grep -q -E '^(prometheus-snapshot|loki-data)\.tar\.gz ' "$SCRATCH/files" \
    && info "prometheus/loki archives are not restored automatically; see README (Backup and restore)"
exit 0
