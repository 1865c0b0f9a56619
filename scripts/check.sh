#!/usr/bin/env bash
# make check: validate every config of the stack with the real tools, without
# starting it. Each step prints one line; the first failure stops with its output.
#   compose file      docker-compose config (Debian's 1.29; compose v2 also accepted)
#   Prometheus        promtool check config / check rules / test rules (tests/*_test.yml)
#   Alertmanager      amtool check-config (both configs)
#   collector         costmon check --offline against the shipped example config
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '%-52s' "$1"; }
run() {
  local out
  if out=$("$@" 2>&1); then
    echo "ok"
  else
    echo "FAILED"
    printf '%s\n' "$out" >&2
    exit 1
  fi
}

compose_bin() {
  if command -v docker-compose >/dev/null 2>&1; then echo docker-compose
  elif docker compose version >/dev/null 2>&1; then echo "docker compose"
  else return 1; fi
}

# Without compose/.env (before `make init`), validate with placeholder secrets.
env_file=compose/.env
tmp=""
if [ ! -f "$env_file" ]; then
  tmp=$(mktemp)
  sed -E 's/^(POSTGRES_PASSWORD|COSTMON_DB_PASSWORD|GRAFANA_DB_READER_PASSWORD|GRAFANA_ADMIN_PASSWORD)=$/\1=check-placeholder/' \
    compose/.env.example > "$tmp"
  env_file=$tmp
fi
trap '[ -n "$tmp" ] && rm -f "$tmp"' EXIT

compose=$(compose_bin) || { echo "make check: neither docker-compose nor docker compose is installed" >&2; exit 1; }
step "compose/docker-compose.yml ($compose config)"
# shellcheck disable=SC2086
run $compose --project-directory compose -f compose/docker-compose.yml --env-file "$env_file" config -q

step "prometheus.yml (promtool check config)"
run promtool check config prometheus/prometheus.yml
step "rules/*.yml (promtool check rules)"
run promtool check rules prometheus/rules/*.yml
step "tests/*_test.yml (promtool test rules)"
run promtool test rules prometheus/tests/*_test.yml

step "alertmanager configs (amtool check-config)"
run amtool check-config alertmanager/alertmanager.yml alertmanager/alertmanager.log-only.yml

costmon=${COSTMON_BIN:-}
if [ -z "$costmon" ]; then
  for c in .venv/bin/costmon "$(command -v costmon || true)"; do
    [ -n "$c" ] && [ -x "$c" ] && { costmon=$c; break; }
  done
fi
[ -n "$costmon" ] || { echo "make check: costmon is not installed (run make venv)" >&2; exit 1; }
step "collector settings (costmon check --offline)"
run env COSTMON_CONFIG_FILE=compose/costmon.example.yaml "$costmon" check --offline
