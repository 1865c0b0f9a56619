# Every verb an operator and a developer use. `make help` lists them.
SHELL := /bin/bash
COMPOSE := docker compose --project-directory compose -f compose/docker-compose.yml --env-file compose/.env
VENV := .venv
PY := $(VENV)/bin/python
EXTRAS := test,aws,azure,gcp,dashboards

.PHONY: help init up down ps logs demo check test test-python bench deps venv

help:  ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

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
