"""Budget metrics: the collector's series, their bounds, its health gauge, and the alerts they raise.

On the demo data for a fixed "now" (support.budget_data.NOW). Values are
checked against the SQL functions (analysis.py, themselves checked against the
demo records in test_budgets.py); the alerts are evaluated by the real
promtool on the project's rule file, fed with what the collector exposes.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from costmon import analysis, budgets
from costmon.budget_metrics import BudgetCollector
from costmon.records import Window
from costmon.sources import demo
from costmon.store.loader import load
from support.budget_data import NOW, TODAY, demo_database, settings
from support.procs import costmon_serve, free_port, http_get

RULES = Path(__file__).resolve().parents[2] / "prometheus" / "rules" / "budgets.yml"
ANOMALY_FLOOR = 1.0  # rules/budgets.yml default for USD


@pytest.fixture(scope="module")
def demo_db(pg_server):
    return demo_database(pg_server, "costmon_budget_metrics")


@pytest.fixture
def dconn(demo_db):
    with psycopg.connect(demo_db) as c:
        yield c


def collector(dsn, **kw) -> BudgetCollector:
    kw.setdefault("cache_seconds", 0)
    return BudgetCollector(lambda: psycopg.connect(dsn), budgets.load(settings()), clock=lambda: NOW, **kw)


def samples(coll) -> dict[str, dict[tuple, float]]:
    out: dict[str, dict[tuple, float]] = {}
    for fam in coll.collect():
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def key(**labels) -> tuple:
    return tuple(sorted(labels.items()))


def test_budget_series_are_the_sql_figures(demo_db, dconn):
    got = samples(collector(demo_db))
    cfg = budgets.load(settings())
    uses = analysis.budget_use(dconn, TODAY)
    assert len(uses) == 24
    for u in uses:
        k = key(scope=u.scope, name=u.name, currency=u.currency)
        assert got["costmon_budget_limit"][k] == float(u.limit)
        assert got["costmon_budget_spend"][k] == float(u.month_to_date)
        assert got["costmon_budget_used_ratio"][k] == float(u.used_ratio)
        assert got["costmon_budget_forecast"][k] == float(u.forecast)
        assert got["costmon_budget_forecast_ratio"][k] == float(u.forecast_ratio)
        for t in cfg.thresholds:
            tk = key(scope=u.scope, name=u.name, currency=u.currency, threshold=t.label, severity=t.severity)
            assert got["costmon_budget_threshold_ratio"][tk] == float(t.percent) / 100
    assert len(got["costmon_budget_threshold_ratio"]) == 24 * 4
    assert got["costmon_budget_up"] == {(): 1.0}
    assert got["costmon_budget_customers_omitted"] == {(): 0.0}


def test_anomaly_unexpected_model_and_margin_series(demo_db, dconn):
    got = samples(collector(demo_db))
    yesterday = TODAY - dt.timedelta(days=1)
    [runaway] = [a for a in analysis.recent_anomalies(dconn, TODAY)
                 if (a.day, a.dimension, a.name) == (yesterday, "customer", demo.RUNAWAY_CUSTOMER)]
    k = key(dimension="customer", name=demo.RUNAWAY_CUSTOMER, period="yesterday", currency="USD")
    assert got["costmon_cost_anomaly_ratio"][k] == float(runaway.ratio) > 3
    assert got["costmon_cost_anomaly_spend"][k] == float(runaway.spend) >= ANOMALY_FLOOR
    assert got["costmon_cost_anomaly_baseline"][k] == float(runaway.baseline)
    assert {dict(k)["name"] for k in got["costmon_cost_anomaly_ratio"] if dict(k)["dimension"] == "provider"} \
        == {"aws", "azure", "gcp"}

    [new] = analysis.unexpected_models(dconn, TODAY)
    assert got["costmon_unexpected_model_usage"] == {
        key(customer=demo.NEW_MODEL_CUSTOMER, model=new.model, currency="USD"): float(new.spend)}

    for m in analysis.customer_margins(dconn, TODAY):
        mk = key(customer=m.customer, tier=m.tier, currency=m.currency)
        assert got["costmon_customer_margin"][mk] == float(m.margin)
        assert got["costmon_customer_margin_ratio"][mk] == float(m.margin_ratio)
        assert got["costmon_customer_revenue"][mk] == float(m.revenue)
    for t in analysis.tier_margins(dconn, TODAY):
        assert got["costmon_tier_margin"][key(tier=t.tier, currency=t.currency)] == float(t.margin)
        assert got["costmon_tier_margin_ratio"][key(tier=t.tier, currency=t.currency)] == float(t.margin_ratio)


def test_label_sets_are_bounded(demo_db):
    got = samples(collector(demo_db, max_customers=5, top_customers=2, top_models=3))
    customers = {dict(k)["name"] for k in got["costmon_budget_used_ratio"] if dict(k)["scope"] == "customer"}
    assert len(customers) == 5
    assert set(demo.OVER_BUDGET_CUSTOMERS) <= customers  # the most used budgets are the ones kept
    assert got["costmon_budget_customers_omitted"] == {(): 15.0}
    assert len(got["costmon_customer_margin"]) == 5
    for dim, limit in (("customer", 2), ("model", 3)):
        for period in ("yesterday", "today"):
            names = [k for k in got["costmon_cost_anomaly_spend"]
                     if dict(k)["dimension"] == dim and dict(k)["period"] == period]
            assert len(names) == limit, (dim, period)
    # The runaway customer is the furthest past 3x its baseline, so it is kept.
    assert key(dimension="customer", name=demo.RUNAWAY_CUSTOMER, period="yesterday", currency="USD") \
        in got["costmon_cost_anomaly_ratio"]


def test_database_down_exposes_only_the_health_gauge():
    errors = []
    c = BudgetCollector(lambda: psycopg.connect("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1),
                        budgets.load(settings()), cache_seconds=0, on_error=errors.append)
    families = list(c.collect())
    assert [(f.name, [s.value for s in f.samples]) for f in families] == [("costmon_budget_up", [0.0])]
    assert errors and isinstance(errors[0], psycopg.OperationalError)
    registry = CollectorRegistry()
    registry.register(c)
    assert b"costmon_budget_up 0.0" in generate_latest(registry)


def test_schema_not_migrated_is_down_too(empty_db):
    c = BudgetCollector(lambda: psycopg.connect(empty_db), budgets.load(settings()), cache_seconds=0)
    assert samples(c) == {"costmon_budget_up": {(): 0.0}}


def test_database_reads_are_cached_between_scrapes(db, conn):
    budgets.sync(conn, settings())
    c = BudgetCollector(lambda: psycopg.connect(db), budgets.load(settings()), clock=lambda: NOW,
                        cache_seconds=3600)
    spend = key(scope="global", name="all", currency="USD")
    assert samples(c)["costmon_budget_spend"][spend] == 0.0
    load(conn, source="t", window=Window(TODAY, TODAY + dt.timedelta(days=1)),
         records=[*demo.DemoSource(now=NOW).fetch(Window(TODAY, TODAY + dt.timedelta(days=1)))][:5])
    assert samples(c)["costmon_budget_spend"][spend] == 0.0  # still the cached snapshot
    fresh = BudgetCollector(lambda: psycopg.connect(db), budgets.load(settings()), clock=lambda: NOW,
                            cache_seconds=0)
    assert samples(fresh)["costmon_budget_spend"][spend] > 0


# ---- the alerts the demo's figures raise, through the real rules ---------------------------------

def _expected_alerts(dconn, cfg) -> list[dict]:
    """Which alerts the rules must raise, from the SQL figures and the rules' documented semantics."""
    alerts = []
    for u in analysis.budget_use(dconn, TODAY):
        reached = [t for t in cfg.thresholds if t.ratio <= u.used_ratio]
        where = dict(scope=u.scope, name=u.name, currency=u.currency)
        if reached:
            alerts.append(dict(alertname="BudgetThreshold", threshold=reached[-1].label,
                               severity=reached[-1].severity, **where))
        if u.forecast_ratio > 1 and u.used_ratio < 1:
            alerts.append(dict(alertname="ForecastOverBudget", severity="warning", **where))
    for a in analysis.recent_anomalies(dconn, TODAY):
        if a.ratio is not None and a.ratio > 3 and a.spend >= ANOMALY_FLOOR:
            period = "today" if a.day == TODAY else "yesterday"
            alerts.append(dict(alertname="CostAnomaly", severity="warning", dimension=a.dimension,
                               name=a.name, period=period, currency=a.currency))
    for u in analysis.unexpected_models(dconn, TODAY):
        if u.spend > 0:
            alerts.append(dict(alertname="UnexpectedModelUsage", severity="info", customer=u.customer,
                               model=u.model, currency=u.currency))
    for m in analysis.customer_margins(dconn, TODAY):
        if m.margin < 0:
            alerts.append(dict(alertname="NegativeMargin", severity="warning", customer=m.customer,
                               tier=m.tier, currency=m.currency))
    return alerts


def _series(name: str, labels: tuple) -> str:
    inner = ",".join(f"{k}={json.dumps(v)}" for k, v in (*labels, ("instance", "c1:8080"), ("job", "costmon")))
    return f"{name}{{{inner}}}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_the_demo_figures_raise_the_expected_alerts_through_the_rules(demo_db, dconn, tmp_path):
    cfg = budgets.load(settings())
    exposed = samples(collector(demo_db))
    expected = _expected_alerts(dconn, cfg)
    names = {a["alertname"] for a in expected}
    # What the demo is built to show: runaway day, new model, over-budget customers, a forecast over.
    assert {"BudgetThreshold", "ForecastOverBudget", "CostAnomaly", "UnexpectedModelUsage"} <= names
    assert dict(alertname="CostAnomaly", severity="warning", dimension="customer", name=demo.RUNAWAY_CUSTOMER,
                period="yesterday", currency="USD") in expected
    for cid in demo.OVER_BUDGET_CUSTOMERS:
        assert dict(alertname="BudgetThreshold", threshold="100", severity="critical", scope="customer",
                    name=cid, currency="USD") in expected

    spec = {
        "rule_files": [str(RULES.with_name("thresholds.yml")), str(RULES)],  # the anomaly floor lives there
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [{"series": _series(name, labels), "values": f"{value!r}x10"}
                             for name, by_labels in exposed.items() for labels, value in by_labels.items()],
            "promql_expr_test": [{
                "expr": 'ALERTS{alertstate="firing"}',
                "eval_time": "5m",
                "exp_samples": [{"labels": "ALERTS" + "{" + ",".join(
                    f"{k}={json.dumps(v)}" for k, v in sorted({**a, "alertstate": "firing"}.items())) + "}",
                    "value": 1} for a in expected],
            }],
        }],
    }
    path = tmp_path / "demo_alerts_test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    run = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


# ---- wired into `costmon serve` ---------------------------------------------------------------

def test_costmon_serve_exposes_the_budget_metrics(db, conn):
    now = dt.datetime.now(dt.timezone.utc)
    window = Window(now.date() - dt.timedelta(days=10), now.date() + dt.timedelta(days=1))
    load(conn, source="demo", window=window, records=demo.DemoSource(now=now).fetch(window))
    port = free_port()
    with costmon_serve(db, port, "--no-scheduler", env={"COSTMON_CONFIG_FILE": str(settings().config_file)}):
        status, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert "costmon_budget_up 1.0" in body
    assert 'costmon_budget_limit{currency="USD",name="all",scope="global"} 500.0' in body
    assert (f'costmon_cost_anomaly_ratio{{currency="USD",dimension="customer",name="{demo.RUNAWAY_CUSTOMER}",'
            f'period="yesterday"}}') in body
    # Serving synced the config into the tables the dashboards join against.
    assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 20
