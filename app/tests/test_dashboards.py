"""Grafana dashboards and provisioning: generated from code, every query proven.

Every SQL panel query and variable query runs against a real database loaded
through the real loader, after the Grafana macro/variable expansion Grafana
itself would do, as the SELECT-only reader role, and must return data. Every
PromQL expression passes promtool. Every datasource uid is provisioned.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import yaml

import costmon.dashboards as dashboards
from costmon.dashboards import datasources
from costmon.store.db import has_timescaledb
from costmon.store.migrate import ensure_reader_login, migrate
from support import dashboard_data, pgcluster
from support.grafana_sql import (ALL, ExpansionError, TimeRange, expand_promql, expand_sql,
                                 variables_used)

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
BOARDS = {m.UID: m.build() for m in dashboards.DASHBOARDS}
READER = "grafana_reader_dashboards_test"
HOSTILE = "x') OR 1=1; DROP TABLE billing_line_items; --"
# Panels allowed to read billing_line_items: their question is finer than a day.
LINE_ITEM_PANELS = {("costmon-cost-explorer", "Most expensive line items")}
# Budget and margin views over billing_daily (timescaledb/011_budget_views.sql).
BUDGET_VIEWS = re.compile(r"\b(budget_status|budget_burn|customer_margin|tier_margin)\b")


# ---- walking the dashboards ---------------------------------------------------

def _panels(board: dict):
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _targets(ds_type: str):
    for uid, board in BOARDS.items():
        for panel in _panels(board):
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("type") == ds_type:
                    yield uid, panel, target


def _variables(board: dict) -> list[dict]:
    return board["templating"]["list"]


SQL_TARGETS = [pytest.param(uid, panel, target, id=f"{uid}:{panel['title']}:{target['refId']}")
               for uid, panel, target in _targets(datasources.POSTGRES_TYPE)]
PROM_TARGETS = list(_targets(datasources.PROMETHEUS_TYPE))
SQL_VARIABLES = [pytest.param(uid, v, id=f"{uid}:{v['name']}")
                 for uid, board in BOARDS.items() for v in _variables(board) if v["type"] == "query"]


# ---- the database the queries run against -------------------------------------

class Dashboards:
    """A migrated, demo-loaded database and how to run a dashboard query on it."""

    def __init__(self, dsn: str, timescaledb: bool, data_set: str):
        self.dsn, self.timescaledb, self.data_set = dsn, timescaledb, data_set
        self.time_range = TimeRange.last_days(30)
        self.conn = psycopg.connect(pgcluster.with_params(dsn, user=READER), autocommit=True)

    def expand(self, board_uid: str, sql: str, values: dict | None = None) -> str:
        board = BOARDS[board_uid]
        all_values = {v["name"]: v["allValue"] for v in _variables(board) if v.get("allValue")}
        chosen = dict(values or {})
        by_name = {v["name"]: v for v in _variables(board)}
        for name in variables_used(sql) - set(chosen):
            # Defaults as on first load: All, or the first value of a single-value variable.
            if name in by_name:
                chosen[name] = ALL if by_name[name].get("includeAll") else self.first_value(board_uid, name)
        return expand_sql(sql, time_range=self.time_range, values=chosen, all_values=all_values,
                          timescaledb=self.timescaledb)

    def run(self, board_uid: str, sql: str, values: dict | None = None) -> tuple[list[str], list[tuple]]:
        cur = self.conn.execute(self.expand(board_uid, sql, values))
        return [c.name for c in cur.description], cur.fetchall()

    def variable_values(self, board_uid: str, name: str) -> list[str]:
        var = next(v for v in _variables(BOARDS[board_uid]) if v["name"] == name)
        if var["type"] == "custom":
            return [o["value"] for o in var["options"]]
        _, rows = self.run(board_uid, var["query"])
        return [r[0] for r in rows]

    def first_value(self, board_uid: str, name: str) -> str:
        var = next(v for v in _variables(BOARDS[board_uid]) if v["name"] == name)
        if var["type"] == "custom":
            return var["current"]["value"]
        values = self.variable_values(board_uid, name)
        assert values, f"variable {name} of {board_uid} has no values"
        return values[0]


@pytest.fixture(scope="module")
def grafana_db(pg_server):
    dsn = pgcluster.fresh_database(pg_server, "costmon_dashboards_test")
    with psycopg.connect(dsn) as conn:
        migrate(conn)
        data_set = dashboard_data.load(conn, dt.datetime.now(dt.timezone.utc))
        ensure_reader_login(conn, READER, "not-used-with-trust-auth")
        timescaledb = has_timescaledb(conn)
    db = Dashboards(dsn, timescaledb, data_set)
    yield db
    db.conn.close()


# ---- generated JSON -------------------------------------------------------------

def test_committed_dashboards_are_exactly_what_the_code_generates():
    generated = dashboards.generate()
    committed = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert sorted(committed) == sorted(generated), "run `make dashboards` and commit grafana/dashboards"
    for name, text in generated.items():
        assert committed[name] == text, f"{name} is stale: run `make dashboards`"


def test_generation_is_deterministic_and_covers_the_seven_dashboards():
    assert dashboards.generate() == dashboards.generate()
    titles = {b["title"] for b in BOARDS.values()}
    assert titles == {"Executive overview", "Cost explorer", "Model comparison", "Customers",
                      "Anomalies", "Collector health", "Infrastructure"}


def test_check_mode_reports_a_stale_file(tmp_path):
    from costmon.dashboards.__main__ import main

    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--out", str(tmp_path), "--check"]) == 0
    victim = next(tmp_path.glob("*.json"))
    victim.write_text(victim.read_text().replace('"Executive overview"', '"Edited in the UI"'))
    (tmp_path / "leftover.json").write_text("{}")
    assert main(["--out", str(tmp_path), "--check"]) == 1


def test_panels_have_unique_ids_and_fit_the_grid():
    for uid, board in BOARDS.items():
        ids = [p["id"] for p in _panels(board)]
        assert len(ids) == len(set(ids)), uid
        for p in _panels(board):
            pos = p["gridPos"]
            assert pos["x"] + pos["w"] <= 24, (uid, p["title"])
        assert board["timezone"] == "utc" and board["editable"] is False


# ---- provisioning ---------------------------------------------------------------

def _provisioned() -> list[dict]:
    return yaml.safe_load((GRAFANA / "provisioning/datasources/costmon.yml").read_text())["datasources"]


def test_every_panel_target_and_variable_uses_a_provisioned_datasource():
    provisioned = {d["uid"]: d["type"] for d in _provisioned()}
    refs = []
    for uid, board in BOARDS.items():
        for panel in _panels(board):
            if panel["type"] == "row":
                continue
            refs.append((uid, panel["title"], panel["datasource"]))
            refs += [(uid, panel["title"], t["datasource"]) for t in panel.get("targets", [])]
        refs += [(uid, v["name"], v["datasource"]) for v in _variables(board) if "datasource" in v]
    assert refs
    for uid, where, ref in refs:
        assert provisioned.get(ref["uid"]) == ref["type"], f"{uid} / {where}: {ref} is not provisioned"


def test_datasources_are_read_only_and_keep_the_password_out_of_the_file():
    by_uid = {d["uid"]: d for d in _provisioned()}
    assert set(by_uid) == {"costmon-prometheus", "costmon-loki", "costmon-timescaledb"}
    assert all(d["editable"] is False for d in by_uid.values())
    assert by_uid["costmon-prometheus"]["url"] == "http://prometheus:9090"
    assert by_uid["costmon-loki"]["url"] == "http://loki:3100"
    tsdb = by_uid["costmon-timescaledb"]
    assert tsdb["type"] == "grafana-postgresql-datasource"
    assert tsdb["url"] == "timescaledb:5432" and tsdb["jsonData"]["timescaledb"] is True
    assert tsdb["secureJsonData"] == {"password": "${GRAFANA_DB_READER_PASSWORD}"}
    assert tsdb["user"] == "${COSTMON_GRAFANA_DB_USER}"
    assert tsdb["jsonData"]["database"] == "${COSTMON_DB_NAME}"
    assert "password" not in tsdb and "password" not in tsdb["jsonData"]


def test_dashboard_provider_puts_the_files_in_the_ai_cost_folder():
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/costmon.yml").read_text())["providers"]
    assert len(providers) == 1
    p = providers[0]
    assert p["type"] == "file" and p["folder"] == "AI Cost" and p["allowUiUpdates"] is False
    assert p["options"]["path"] == "/etc/grafana/dashboards"


# ---- SQL panels ------------------------------------------------------------------

@pytest.mark.parametrize("board_uid, panel, target", SQL_TARGETS)
def test_sql_panel_query_returns_data(grafana_db, board_uid, panel, target):
    columns, rows = grafana_db.run(board_uid, target["rawSql"])
    assert rows, f"no rows ({grafana_db.data_set.name} data)"
    values = [v for row in rows for c, v in zip(columns, row) if c != "time"]
    assert any(v is not None for v in values), "every value is NULL"
    if target["format"] == "time_series":
        assert "time" in columns, "a time series query must return a `time` column"


@pytest.mark.parametrize("board_uid, panel, target", SQL_TARGETS)
def test_sql_panel_query_runs_with_a_selection_and_with_a_hostile_value(grafana_db, board_uid, panel,
                                                                         target):
    board = BOARDS[board_uid]
    multi = [v["name"] for v in _variables(board) if v.get("includeAll")]
    selection = {name: [grafana_db.first_value(board_uid, name)] for name in multi}
    grafana_db.run(board_uid, target["rawSql"], selection)
    hostile = {name: [HOSTILE, "aws"] for name in multi}
    hostile.update({v["name"]: HOSTILE for v in _variables(board) if not v.get("includeAll")
                    and v["type"] == "query"})
    columns, rows = grafana_db.run(board_uid, target["rawSql"], hostile)
    if "billing_currency = ${currency:sqlstring}" in target["rawSql"]:
        values = [v for row in rows for c, v in zip(columns, row) if c != "time"]
        assert all(v in (None, 0) for v in values), "a hostile currency value matched data"
    assert grafana_db.conn.execute("SELECT count(*) FROM billing_line_items").fetchone()[0] > 0


@pytest.mark.parametrize("board_uid, variable", SQL_VARIABLES)
def test_variable_query_lists_values(grafana_db, board_uid, variable):
    values = grafana_db.variable_values(board_uid, variable["name"])
    assert values and all(isinstance(v, str) and v for v in values)
    assert len(values) == len(set(values))


def test_every_variable_a_query_uses_is_declared_on_its_dashboard():
    for uid, board in BOARDS.items():
        declared = {v["name"] for v in _variables(board)}
        texts = [t.get("rawSql", "") for p in _panels(board) for t in p.get("targets", [])]
        texts += [p.get("title", "") for p in _panels(board)]
        texts += [v.get("query", "") for v in _variables(board) if v["type"] == "query"]
        for text in texts:
            assert variables_used(text) <= declared, (uid, text[:80])


def test_expander_refuses_forms_that_would_interpolate_raw_values():
    tr = TimeRange.last_days(1)
    for sql in ("SELECT 1 WHERE provider = '$provider'", "SELECT [[provider]]",
                "SELECT ${provider:raw}", "SELECT $__unixEpochFilter(x)", "SELECT $__interval"):
        with pytest.raises(ExpansionError):
            expand_sql(sql, time_range=tr, values={"provider": ["aws"]}, all_values={}, timescaledb=False)


def test_billing_panels_read_the_daily_aggregate():
    for uid, panel, target in _targets(datasources.POSTGRES_TYPE):
        sql = target["rawSql"]
        if "billing_line_items" in sql:
            assert (uid, panel["title"]) in LINE_ITEM_PANELS, (uid, panel["title"])
        assert ("billing_daily" in sql or "ingest_runs" in sql or "billing_line_items" in sql
                or BUDGET_VIEWS.search(sql)), (uid, panel["title"])


def test_money_panels_show_the_currency_and_at_least_two_decimals():
    money = re.compile(r"sum\((effective|billed)_cost\)")
    checked = 0
    for uid, panel, target in _targets(datasources.POSTGRES_TYPE):
        sql = target["rawSql"]
        if not money.search(sql) or panel["fieldConfig"]["defaults"].get("unit") == "percentunit":
            continue
        checked += 1
        shows_currency = ("${currency}" in panel["title"]
                          or "billing_currency AS metric" in sql
                          or re.search(r"billing_currency AS currency", sql))
        assert shows_currency, (uid, panel["title"])
        assert "billing_currency" in sql, f"{uid} / {panel['title']}: sums money without a currency"
        decimals = [panel["fieldConfig"]["defaults"].get("decimals")] + [
            p["value"] for o in panel["fieldConfig"]["overrides"] for p in o["properties"]
            if p["id"] == "decimals"]
        assert any(d is not None and d >= 2 for d in decimals), (uid, panel["title"])
    assert checked >= 20


# ---- figures the panels must get right ----------------------------------------------

def _panel_sql(board_uid: str, title: str) -> str:
    panel = next(p for p in _panels(BOARDS[board_uid]) if p["title"] == title)
    return panel["targets"][0]["rawSql"]


def test_untagged_spend_is_its_own_customer_row_with_the_exact_amount(grafana_db):
    currency = grafana_db.first_value("costmon-customers", "currency")
    columns, rows = grafana_db.run("costmon-customers",
                                   _panel_sql("costmon-customers",
                                              "Spend per customer (untagged is its own row)"))
    table = [dict(zip(columns, r)) for r in rows]
    untagged = [r for r in table if r["customer"] == "untagged"]
    assert len(untagged) == 1 and untagged[0]["currency"] == currency
    tr = grafana_db.time_range
    expected = grafana_db.conn.execute(
        """SELECT sum(effective_cost) FROM billing_line_items
           WHERE customer_id IS NULL AND billing_currency = %s
             AND charge_period_start BETWEEN %s AND %s""", (currency, tr.start, tr.end)).fetchone()[0]
    assert expected and untagged[0]["spend"] == expected
    assert sum(r["share"] for r in table) == pytest.approx(Decimal(1))


def test_currencies_are_listed_by_spend_and_never_added_together(grafana_db):
    assert grafana_db.variable_values("costmon-executive", "currency") == ["USD", "EUR"]
    sql = _panel_sql("costmon-executive", "Month to date")
    month = dt.datetime.now(dt.timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for currency in ("USD", "EUR"):
        _, rows = grafana_db.run("costmon-executive", sql, {"currency": currency})
        expected = grafana_db.conn.execute(
            """SELECT sum(effective_cost) FROM billing_line_items
               WHERE billing_currency = %s AND charge_period_start >= %s""", (currency, month)).fetchone()[0]
        assert [(metric, spend) for _, metric, spend in rows] == [(currency, expected)]
    columns, rows = grafana_db.run("costmon-executive", _panel_sql(
        "costmon-executive", "Spend by currency (every currency, never converted)"))
    assert sorted(dict(zip(columns, r))["currency"] for r in rows) == ["EUR", "USD"]


def test_a_provider_selection_shows_only_that_provider(grafana_db):
    sql = _panel_sql("costmon-cost-explorer", "Daily cost by provider (${currency})")
    _, everything = grafana_db.run("costmon-cost-explorer", sql)
    providers = {r[1] for r in everything}
    assert len(providers) >= 2
    chosen = sorted(providers)[0]
    _, rows = grafana_db.run("costmon-cost-explorer", sql, {"provider": [chosen]})
    assert rows and {r[1] for r in rows} == {chosen}


def test_month_end_forecast_follows_the_budget_forecast_formula(grafana_db):
    currency = grafana_db.first_value("costmon-executive", "currency")
    _, rows = grafana_db.run("costmon-executive", _panel_sql("costmon-executive", "Month-end forecast"))
    (_, metric, forecast), = rows
    now = dt.datetime.now(dt.timezone.utc)
    today = dt.datetime.combine(now.date(), dt.time(), tzinfo=dt.timezone.utc)
    month = today.replace(day=1)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)

    def spend(start, end):
        return grafana_db.conn.execute(
            """SELECT coalesce(sum(effective_cost), 0) FROM billing_line_items
               WHERE billing_currency = %s AND charge_period_start >= %s AND charge_period_start < %s""",
            (currency, start, end)).fetchone()[0]

    avg7 = spend(today - dt.timedelta(days=7), today) / 7
    days_after_today = (next_month - today).days - 1
    today_so_far = spend(today, today + dt.timedelta(days=1))
    expected = spend(month, today) + max(today_so_far, avg7) + avg7 * days_after_today
    assert metric == currency
    assert forecast == pytest.approx(expected, rel=Decimal("1e-9"))


def test_spike_table_finds_the_runaway_customer_day(grafana_db):
    sql = _panel_sql("costmon-anomalies",
                     "Spike days: spend >= ${ratio} x trailing 7-day average (per provider, model, customer)")
    columns, rows = grafana_db.run("costmon-anomalies", sql)
    spikes = [dict(zip(columns, r)) for r in rows]
    assert all(s["spend"] >= 3 * s["trailing_avg"] > 0 and s["spend"] >= 1 for s in spikes)
    yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    runaway = [s for s in spikes if (s["dimension"], s["value"]) == ("customer",
                                                                   grafana_db.data_set.runaway_customer)]
    assert [s["time"].date() for s in runaway] == [yesterday]


def test_new_model_table_names_the_customer_that_started_a_model(grafana_db):
    sql = _panel_sql("costmon-anomalies",
                     "New models: billed to a customer yesterday or today, not in the 7 days before")
    columns, rows = grafana_db.run("costmon-anomalies", sql)
    customers = {dict(zip(columns, r))["customer"] for r in rows}
    assert grafana_db.data_set.new_model_customer in customers


# ---- PromQL and LogQL ---------------------------------------------------------------

def test_every_promql_expression_passes_promtool(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not installed (make deps installs it)")
    rules = [{"record": f"costmon:dashboard_check_{i}", "expr": expand_promql(t["expr"])}
             for i, (_, _, t) in enumerate(PROM_TARGETS)]
    assert len(rules) >= 20
    path = tmp_path / "dashboard_exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_catches_a_broken_expression(tmp_path):
    # The check above can fail: a syntax error is reported.
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "x:y", "expr": expand_promql("sum by (source (rate(x[$__rate_interval]))")}]}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode != 0


def test_collector_metrics_used_by_panels_are_documented():
    documented = set(re.findall(r"`(costmon_[a-z_]+)`", (REPO / "METRICS.md").read_text()))
    used = {name for _, _, t in PROM_TARGETS for name in re.findall(r"costmon_[a-z_]+", t["expr"])}
    assert used and used <= documented, used - documented


def test_logs_panel_selects_collector_warnings_and_errors():
    exprs = [t["expr"] for _, _, t in _targets(datasources.LOKI_TYPE)]
    assert exprs == ['{service="collector"} | json | level=~"warn.*|error|critical"']
