#!/usr/bin/env bash
# First start of the timescaledb container only (docker-entrypoint-initdb.d), as
# the postgres superuser, after the image has created the database and the
# timescaledb extension in it. Creates:
#   costmon_writer, costmon_reader  NOLOGIN group roles (migration 008 finds them)
#   $COSTMON_DB_USER                the collector's login, owner of the database,
#                                   member of costmon_writer; runs `costmon migrate`
#   $COSTMON_GRAFANA_DB_USER        Grafana's SELECT-only login, member of costmon_reader
# Passwords come from the environment (compose/.env) and are read by psql's
# \getenv, so they appear in no command line. Safe to run twice.
# Changing a password in .env later does not reach an existing volume: use
# ALTER ROLE ... PASSWORD (README, "Passwords").
set -euo pipefail

: "${POSTGRES_DB:?}" "${COSTMON_DB_PASSWORD:?}" "${GRAFANA_DB_READER_PASSWORD:?}"
export COSTMON_DB_USER="${COSTMON_DB_USER:-costmon}"
export COSTMON_GRAFANA_DB_USER="${COSTMON_GRAFANA_DB_USER:-grafana_reader}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "$POSTGRES_DB" <<'SQL'
\getenv db POSTGRES_DB
\getenv writer_login COSTMON_DB_USER
\getenv writer_password COSTMON_DB_PASSWORD
\getenv reader_login COSTMON_GRAFANA_DB_USER
\getenv reader_password GRAFANA_DB_READER_PASSWORD

SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'costmon_writer') AS make_writer_group,
       NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'costmon_reader') AS make_reader_group,
       EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'writer_login') AS writer_exists,
       EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'reader_login') AS reader_exists
\gset

\if :make_writer_group
CREATE ROLE costmon_writer NOLOGIN;
\endif
\if :make_reader_group
CREATE ROLE costmon_reader NOLOGIN;
\endif

\if :writer_exists
ALTER ROLE :"writer_login" LOGIN PASSWORD :'writer_password';
\else
CREATE ROLE :"writer_login" LOGIN PASSWORD :'writer_password';
\endif
GRANT costmon_writer TO :"writer_login";
-- `costmon migrate/check` read shared_preload_libraries to tell whether TimescaleDB can load.
GRANT pg_read_all_settings TO :"writer_login";
-- The collector owns the schema it migrates (tables, hypertables, aggregates, policies).
ALTER DATABASE :"db" OWNER TO :"writer_login";

\if :reader_exists
ALTER ROLE :"reader_login" LOGIN PASSWORD :'reader_password';
\else
CREATE ROLE :"reader_login" LOGIN PASSWORD :'reader_password';
\endif
GRANT costmon_reader TO :"reader_login";
-- Dashboards only read; a runaway panel query is cut off.
ALTER ROLE :"reader_login" SET default_transaction_read_only = on;
ALTER ROLE :"reader_login" SET statement_timeout = '30s';
SQL
echo "costmon roles ready: ${COSTMON_DB_USER} (collector), ${COSTMON_GRAFANA_DB_USER} (Grafana, read-only)"
