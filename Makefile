# Every verb an operator and a developer use. `make help` lists them.
SHELL := /bin/bash
# `docker compose` (v2) where installed, else Debian's docker-compose 1.29.
COMPOSE_BIN := $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)
# compose/docker-compose.override.yml (yours, not committed) is layered on top when present.
COMPOSE := $(COMPOSE_BIN) --project-directory compose -f compose/docker-compose.yml \
  $(if $(wildcard compose/docker-compose.override.yml),-f compose/docker-compose.override.yml) \
  --env-file compose/.env
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := test,aws,azure,gcp,dashboards

.PHONY: help init up down ps logs demo check test test-python bench deps venv

help:  ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

# ---- operator verbs --------------------------------------------------------

init:  ## write compose/.env (fresh secrets) and compose/secrets/ if absent; never overwrites
	@scripts/init.sh

up: init  ## build and start the stack (demo data when COSTMON_SOURCES is empty)
	$(COMPOSE) up -d --build
	@echo "Grafana: $$(grep -E '^GRAFANA_ROOT_URL=' compose/.env | cut -d= -f2-) (user admin, password GRAFANA_ADMIN_PASSWORD in compose/.env)"

down:  ## stop the stack (volumes and data are kept)
	$(COMPOSE) down

ps:  ## state and health of every service
	$(COMPOSE) ps

logs:  ## follow the logs (SERVICE=collector for one service)
	$(COMPOSE) logs -f --tail=100 $(SERVICE)

demo:  ## (re)load deterministic demo billing into the running stack (DAYS=90)
	$(COMPOSE) exec collector costmon demo $(if $(DAYS),--days $(DAYS))

check: deps venv  ## validate compose, Prometheus rules and tests, Alertmanager, collector settings
	@COSTMON_BIN=$(VENV)/bin/costmon scripts/check.sh

.PHONY: backup restore
backup:  ## back up the database and Grafana into backups/ (BACKUP_ROOT, BACKUP_KEEP=7; README)
	@COMPOSE="$(COMPOSE)" BACKUP_ROOT="$(BACKUP_ROOT)" BACKUP_KEEP="$(BACKUP_KEEP)" scripts/backup.sh

restore:  ## restore BACKUP=backups/costmon-<stamp>; FORCE=1 replaces a database that has data
	@test -n "$(BACKUP)" || { echo "usage: make restore BACKUP=backups/costmon-<stamp> [FORCE=1]" >&2; exit 2; }
	@COMPOSE="$(COMPOSE)" scripts/restore.sh $(if $(FORCE),--force) "$(BACKUP)"

# ---- developer verbs -------------------------------------------------------

deps:  ## install the system packages the tests need (as root) or name them
	@scripts/ensure-deps.sh

$(VENV)/.installed: app/pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e "app[$(EXTRAS)]"
	touch $@

venv: $(VENV)/.installed  ## build the Python virtualenv in .venv

test: deps venv  ## run every test (Python, promtool, amtool, compose validation)
	$(PY) -m pytest -q app/tests

bench: deps venv  ## loader throughput vs psql \copy, and peak RSS (BENCH_ROWS=1000000)
	$(PY) app/bench/bench_loader.py --rows $${BENCH_ROWS:-1000000}
	$(MAKE) --no-print-directory bench-dashboards

.PHONY: dashboards bench-dashboards
dashboards: venv  ## regenerate grafana/dashboards/*.json from app/src/costmon/dashboards
	$(PY) -m costmon.dashboards

bench-dashboards: deps venv  ## dashboard SQL latency p50/p95 (BENCH_DASHBOARD_ROWS=10000000)
	$(PY) app/bench/bench_dashboards.py --rows $${BENCH_DASHBOARD_ROWS:-10000000}
