#!/usr/bin/env bash
# Back up costmon into <root>/costmon-<UTC stamp>/: the cost database (pg_dump -Fc),
# Grafana's data, optionally a Prometheus TSDB snapshot and Loki's data, a
# manifest.json (files, sizes, sha256, row counts, cost sums, versions) and
# SHA256SUMS. Everything is written into <root>/.tmp-<stamp>-<pid> and renamed
# only when complete, so a directory named costmon-* is always a whole backup.
# Keeps the newest BACKUP_KEEP complete backups.
set -Eeuo pipefail
umask 077  # dumps hold cost data and Grafana password hashes
PROG=backup
# shellcheck source=scripts/lib/backup-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/backup-common.sh"

usage() {
    cat <<EOF
usage: scripts/backup.sh [--database-url URL | --compose] [options]

  --database-url URL   back up this PostgreSQL/TimescaleDB database with local client tools
                       (default: \$COSTMON_DATABASE_URL; prefer the variable: arguments show in ps)
  --compose            back up the compose stack (default when no URL is given)
  --root DIR           backup root (\$BACKUP_ROOT, default: backups/ in the repository)
  --keep N             keep the newest N complete backups (\$BACKUP_KEEP, default 7)
  --grafana-dir DIR    url mode: also archive this Grafana data directory
  --no-grafana         compose mode: skip Grafana's data volume
  --prometheus MODE    compose mode: auto (snapshot if the admin API answers, else skip with a line),
                       yes (fail without it) or no (\$BACKUP_PROMETHEUS, default auto)
  --loki               compose mode: also archive Loki's data volume (\$BACKUP_LOKI=yes)
EOF
}

ROOT=${BACKUP_ROOT:-$REPO_ROOT/backups}
KEEP=${BACKUP_KEEP:-7}
URL=${COSTMON_DATABASE_URL:-}
FORCE_COMPOSE=no
GRAFANA=yes
GRAFANA_DIR=
PROMETHEUS=${BACKUP_PROMETHEUS:-auto}
LOKI=${BACKUP_LOKI:-no}

while [[ $# -gt 0 ]]; do
    case $1 in
        --database-url) [[ $# -ge 2 ]] || die 2 "--database-url needs a value"; URL=$2; shift 2 ;;
        --compose) FORCE_COMPOSE=yes; shift ;;
        --root) [[ $# -ge 2 ]] || die 2 "--root needs a value"; ROOT=$2; shift 2 ;;
        --keep) [[ $# -ge 2 ]] || die 2 "--keep needs a value"; KEEP=$2; shift 2 ;;
        --grafana-dir) [[ $# -ge 2 ]] || die 2 "--grafana-dir needs a value"; GRAFANA_DIR=$2; shift 2 ;;
        --no-grafana) GRAFANA=no; shift ;;
        --prometheus) [[ $# -ge 2 ]] || die 2 "--prometheus needs a value"; PROMETHEUS=$2; shift 2 ;;
        --loki) LOKI=yes; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die 2 "unknown argument: $1" ;;
    esac
done
[[ $KEEP =~ ^[1-9][0-9]*$ ]] || die 2 "BACKUP_KEEP/--keep must be a whole number >= 1, got '$KEEP'"
[[ $PROMETHEUS =~ ^(auto|yes|no)$ ]] || die 2 "--prometheus must be auto, yes or no, got '$PROMETHEUS'"
[[ $LOKI =~ ^(yes|no)$ ]] || die 2 "BACKUP_LOKI must be yes or no, got '$LOKI'"

if [[ $FORCE_COMPOSE == no && -n $URL ]]; then use_url "$URL"; else use_compose; fi
unset URL COSTMON_DATABASE_URL

mkdir -p "$ROOT" || die "cannot create backup root $ROOT"
ROOT=$(cd "$ROOT" && pwd)
CREATED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
STAMP=${CREATED_AT//[-:]/}
WORK="$ROOT/.tmp-$STAMP-$$"
COMPLETE=no
SESSION_PID=
PAUSED=()
SKIPPED=()

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local rc=$?
    set +e
    [[ -n $SESSION_PID ]] && kill "$SESSION_PID" 2>/dev/null
    local svc
    for svc in "${PAUSED[@]}"; do compose unpause "$svc" >/dev/null 2>&1; done
    if [[ $COMPLETE != yes ]]; then
        rm -rf "$WORK"
        [[ $rc -eq 0 ]] && rc=1
        printf '%s: failed; nothing was kept (no new costmon-* directory)\n' "$PROG" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap '' PIPE  # a dead psql session must give an error here, not kill us before cleanup

mkdir -m 700 "$WORK" || die "cannot create $WORK"
info "writing $WORK ($DB_MODE mode)"

# ---- database: one snapshot for the dump and the manifest's counts and sums ----

SESSION_MARK="--costmon-end-$$--"

session_start() {
    coproc COSTMON_PSQL { pg_tool psql -X -q -A -t -v ON_ERROR_STOP=1 2>"$WORK/.session.err"; }
    SESSION_PID=$COSTMON_PSQL_PID
    exec {SESSION_IN}>&"${COSTMON_PSQL[1]}" {SESSION_OUT}<&"${COSTMON_PSQL[0]}"
}

# session_query SQL: run SQL in the open session; print its output.
session_query() {
    printf '%s\n\\echo %s\n' "$1" "$SESSION_MARK" 2>/dev/null 1>&"$SESSION_IN" || return 1
    local line
    while IFS= read -r line <&"$SESSION_OUT"; do
        [[ $line == "$SESSION_MARK" ]] && return 0
        printf '%s\n' "$line"
    done
    return 1  # psql exited: connection refused, SQL error...
}

session_failed() { die "database: $1: $(error_line "$WORK/.session.err" || echo 'psql exited')"; }

session_start
SNAPSHOT=$(session_query "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT pg_export_snapshot();") \
    || session_failed "cannot open a snapshot"
VERSIONS=$(session_query "SELECT current_setting('server_version') || '|'
                                 || coalesce((SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'), '');") \
    || session_failed "cannot read versions"
PG_VERSION=${VERSIONS%%|*}
TSDB_VERSION=${VERSIONS#*|}
DB_JSON=$(session_query "$(stats_sql ';')") || session_failed "cannot count rows and sum costs"

info "database: pg_dump (PostgreSQL $PG_VERSION${TSDB_VERSION:+, TimescaleDB $TSDB_VERSION})"
pg_tool pg_dump -Fc --snapshot="$SNAPSHOT" >"$WORK/database.dump" 2>"$WORK/.pg_dump.err" \
    || die "database: pg_dump failed: $(error_line "$WORK/.pg_dump.err" || echo "exit status $?")"
# TimescaleDB's catalog always draws this pg_dump warning; it is harmless for a full dump.
grep -v -E 'circular foreign-key constraints|^pg_dump: (detail|hint): ' "$WORK/.pg_dump.err" >&2 || true
PG_DUMP_VERSION=$(pg_local pg_dump --version)
session_query "COMMIT;" >/dev/null || session_failed "snapshot transaction"
printf '\\q\n' 1>&"$SESSION_IN"
exec {SESSION_IN}>&- {SESSION_OUT}<&-
wait "$SESSION_PID" 2>/dev/null || true
SESSION_PID=

# ---- Grafana, Prometheus, Loki ----------------------------------------------------

service_container() { compose ps -q "$1" 2>/dev/null | head -n1; }

# volume_archive SERVICE PATH OUT: tar.gz of PATH as the service sees it, read
# through a throwaway container; the service is paused meanwhile so files
# (Grafana's SQLite database) are not caught mid-write.
volume_archive() {
    local svc=$1 path=$2 out=$3 cid
    cid=$(service_container "$svc")
    [[ -n $cid ]] || die "$svc: service is not running; start it or skip it"
    compose pause "$svc" >/dev/null 2>&1 && PAUSED+=("$svc")
    docker run --rm --network none --volumes-from "$cid:ro" "$HELPER_IMAGE" \
        tar -C "$path" -czf - . >"$out" 2>"$WORK/.$svc.err" \
        || die "$svc: archiving $path failed: $(error_line "$WORK/.$svc.err" || echo 'docker run failed')"
    if [[ ${#PAUSED[@]} -gt 0 && ${PAUSED[-1]} == "$svc" ]]; then
        compose unpause "$svc" >/dev/null 2>&1 || warn "$svc: could not unpause; run: docker compose unpause $svc"
        unset 'PAUSED[-1]'
    fi
}

if [[ $DB_MODE == url ]]; then
    if [[ -n $GRAFANA_DIR ]]; then
        [[ -d $GRAFANA_DIR ]] || die "grafana: $GRAFANA_DIR is not a directory"
        info "grafana: archiving $GRAFANA_DIR"
        tar -C "$GRAFANA_DIR" -czf "$WORK/grafana-data.tar.gz" . 2>"$WORK/.grafana.err" \
            || die "grafana: archiving $GRAFANA_DIR failed: $(error_line "$WORK/.grafana.err")"
    else
        SKIPPED+=("grafana: not archived (url mode without --grafana-dir)")
    fi
    SKIPPED+=("prometheus: not archived (url mode)" "loki: not archived (url mode)")
else
    if [[ $GRAFANA == yes ]]; then
        info "grafana: archiving the $GRAFANA_SERVICE data volume ($GRAFANA_DATA_PATH)"
        volume_archive "$GRAFANA_SERVICE" "$GRAFANA_DATA_PATH" "$WORK/grafana-data.tar.gz"
    else
        SKIPPED+=("grafana: skipped (--no-grafana)")
    fi

    if [[ $PROMETHEUS != no ]]; then
        # Needs Prometheus started with --web.enable-admin-api.
        snap_reply=$(compose exec -T "$PROMETHEUS_SERVICE" wget -qO- --post-data= \
            "http://localhost:9090/api/v1/admin/tsdb/snapshot" 2>&1) || snap_reply=
        snap_name=$(sed -n -E 's/.*"name":"([^"]+)".*/\1/p' <<<"$snap_reply")
        if [[ -n $snap_name && $snap_name =~ ^[A-Za-z0-9_.-]+$ ]]; then
            info "prometheus: archiving TSDB snapshot $snap_name"
            compose exec -T "$PROMETHEUS_SERVICE" tar -C "$PROMETHEUS_DATA_PATH/snapshots" -czf - "$snap_name" \
                >"$WORK/prometheus-snapshot.tar.gz" 2>"$WORK/.prometheus.err"
            tar_rc=$?
            compose exec -T "$PROMETHEUS_SERVICE" rm -rf "$PROMETHEUS_DATA_PATH/snapshots/$snap_name" \
                || warn "prometheus: could not remove snapshot $snap_name inside the container"
            [[ $tar_rc -eq 0 ]] || die "prometheus: archiving snapshot failed: $(error_line "$WORK/.prometheus.err")"
        elif [[ $PROMETHEUS == yes ]]; then
            die "prometheus: no snapshot (is it running with --web.enable-admin-api?)"
        else
            SKIPPED+=("prometheus: skipped (snapshot API unavailable; start Prometheus with --web.enable-admin-api)")
        fi
    else
        SKIPPED+=("prometheus: skipped (--prometheus no)")
    fi

    if [[ $LOKI == yes ]]; then
        info "loki: archiving the $LOKI_SERVICE data volume ($LOKI_DATA_PATH)"
        volume_archive "$LOKI_SERVICE" "$LOKI_DATA_PATH" "$WORK/loki-data.tar.gz"
    else
        SKIPPED+=("loki: skipped (pass --loki to include it)")
    fi
fi
for line in "${SKIPPED[@]}"; do info "$line"; done

# ---- versions, manifest, checksums, rename ------------------------------------------

app_version() {
    local v=
    if [[ $DB_MODE == compose ]]; then
        v=$(compose exec -T "$COLLECTOR_SERVICE" costmon --version 2>/dev/null | awk '{print $NF}') || v=
    elif command -v costmon >/dev/null; then
        v=$(costmon --version 2>/dev/null | awk '{print $NF}') || v=
    fi
    if [[ -z $v && -f $REPO_ROOT/app/pyproject.toml ]]; then
        v=$(sed -n -E 's/^version = "([^"]+)"$/\1/p' "$REPO_ROOT/app/pyproject.toml" | head -n1)
    fi
    printf '%s' "${v:-unknown}"
}

declare -A KIND=([database.dump]=postgresql-custom [grafana-data.tar.gz]=grafana-data
                 [prometheus-snapshot.tar.gz]=prometheus-snapshot [loki-data.tar.gz]=loki-data)
FILES=()
for f in database.dump grafana-data.tar.gz prometheus-snapshot.tar.gz loki-data.tar.gz; do
    [[ -f $WORK/$f ]] && FILES+=("$f")
done
rm -f "$WORK"/.*.err

{
    printf '{\n'
    printf '    "format": "%s",\n' "$MANIFEST_FORMAT"
    printf '    "created_at": "%s",\n' "$CREATED_AT"
    printf '    "mode": "%s",\n' "$DB_MODE"
    printf '    "versions": {\n'
    printf '        "app": %s,\n' "$(json_str "$(app_version)")"
    printf '        "postgresql": %s,\n' "$(json_str "$PG_VERSION")"
    if [[ -n $TSDB_VERSION ]]; then printf '        "timescaledb": %s,\n' "$(json_str "$TSDB_VERSION")"
    else printf '        "timescaledb": null,\n'; fi
    printf '        "pg_dump": %s\n' "$(json_str "$PG_DUMP_VERSION")"
    printf '    },\n'
    printf '    "files": [\n'
    n=0
    for f in "${FILES[@]}"; do
        n=$((n + 1))
        printf '        {"name": "%s", "kind": "%s", "bytes": %s, "sha256": "%s"}%s\n' \
            "$f" "${KIND[$f]}" "$(size_of "$WORK/$f")" "$(sha256_of "$WORK/$f")" "$([[ $n -lt ${#FILES[@]} ]] && echo ,)"
    done
    printf '    ],\n'
    printf '    "skipped": ['
    sep=
    for line in "${SKIPPED[@]}"; do printf '%s\n        %s' "$sep" "$(json_str "$line")"; sep=,; done
    [[ ${#SKIPPED[@]} -gt 0 ]] && printf '\n    '
    printf '],\n'
    printf '    "database": %s\n' "$(sed '2,$s/^/    /' <<<"$DB_JSON")"
    printf '}\n'
} >"$WORK/manifest.json"

(cd "$WORK" && sha256sum "${FILES[@]}" manifest.json >SHA256SUMS)
sync "$WORK"/* "$WORK" 2>/dev/null || sync

FINAL="$ROOT/costmon-$STAMP"
for i in "" -1 -2 -3 -4 -5 -6 -7 -8 -9; do  # two backups within one second
    [[ -e $ROOT/costmon-$STAMP$i ]] || { FINAL="$ROOT/costmon-$STAMP$i"; break; }
done
[[ -e $FINAL ]] && die "too many backups named costmon-$STAMP*"
if ! mv -T -n "$WORK" "$FINAL" || [[ -e $WORK ]]; then die "could not rename $WORK to $FINAL"; fi
COMPLETE=yes
sync "$ROOT" 2>/dev/null || true

summary=()
for f in "${FILES[@]}"; do summary+=("$f $(size_of "$FINAL/$f") bytes"); done
rows=$(grep -c -E '^ {8}"[^"]+": [0-9]+,?$' <<<"$DB_JSON" || true)
info "complete: $FINAL (${summary[*]}; $rows tables counted)"

# ---- retention: newest KEEP complete backups; never anything incomplete ---------------

is_complete() { [[ -f $1/manifest.json && -f $1/SHA256SUMS ]]; }
mapfile -t complete < <(
    for d in "$ROOT"/costmon-*; do
        [[ -d $d && $(basename "$d") =~ ^costmon-[0-9]{8}T[0-9]{6}Z(-[1-9])?$ ]] && is_complete "$d" && echo "$d"
    done | LC_ALL=C sort)
excess=$(( ${#complete[@]} - KEEP ))
for ((i = 0; i < excess; i++)); do
    [[ ${complete[i]} == "$FINAL" ]] && continue
    rm -rf -- "${complete[i]}" && info "retention: removed ${complete[i]} (keeping $KEEP)"
done
exit 0
