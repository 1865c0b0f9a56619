#!/usr/bin/env bash
# Installs the Debian packages the tests use (PostgreSQL 15, promtool, amtool,
# docker-compose for `config` validation) when run as root; otherwise names them.
set -euo pipefail

need=()
command -v python3 >/dev/null || need+=(python3 python3-venv)
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql-15)
command -v psql >/dev/null || need+=(postgresql-client-15)
command -v promtool >/dev/null || need+=(prometheus)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v runuser >/dev/null || need+=(util-linux)

[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]} (run: sudo apt-get install ${need[*]})" >&2
  exit 1
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The Debian packages start system services; the tests start their own servers.
for svc in postgresql prometheus prometheus-alertmanager prometheus-node-exporter; do
  (command -v systemctl >/dev/null && systemctl stop "$svc" 2>/dev/null) || service "$svc" stop 2>/dev/null || true
done
