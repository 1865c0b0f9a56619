"""Budgets, forecast, anomalies, unexpected models and margins: config and figures.

Figures are checked on the deterministic demo data for a fixed "now"
(support.budget_data.NOW, 2026-03-25 15:00 UTC); every expected value is
computed in the test from the records the demo yields, not copied from output.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal

import psycopg
import pytest

from costmon import analysis, budgets, cli
from costmon.config import ConfigError
from costmon.records import Window
from costmon.sources import demo
from costmon.store.loader import load
from support.budget_data import (EXAMPLE_CONFIG, TODAY, close, daily, demo_database, demo_records, load_demo,
                                 settings, span)
from support.records import line

D = dt.timedelta
MONTH_START = TODAY.replace(day=1)


@pytest.fixture(scope="module")
def demo_db(pg_server):
    return demo_database(pg_server, "costmon_budgets_figures")


@pytest.fixture
def dconn(demo_db):
    with psycopg.connect(demo_db) as c:
        yield c


def write_config(tmp_path, text: str):
    path = tmp_path / "costmon.yaml"
    path.write_text(textwrap.dedent(text))
    return settings(path)


# ---- the config file ---------------------------------------------------------------------

def test_the_example_config_is_valid_and_is_the_demo_catalogue():
    cfg = budgets.load(settings())
    assert budgets.problems(settings()) == []
    assert {(t.name, t.monthly_price, t.llm_budget, t.currency) for t in cfg.tiers.values()} == {
        ("starter", Decimal(49), Decimal(8), "USD"), ("pro", Decimal(99), Decimal(18), "USD"),
        ("business", Decimal(199), Decimal(35), "USD")}
    assert {(t.name, t.monthly_price, t.llm_budget) for t in demo.DEMO_TIERS.values()} == \
        {(t.name, t.monthly_price, t.llm_budget) for t in cfg.tiers.values()}
    assert [(c.id, c.name, c.tier) for c in cfg.customers] == \
        [(c.id, c.name, c.tier) for c in demo.demo_customers()]
    assert [(t.label, t.severity) for t in cfg.thresholds] == [
        ("50", "info"), ("80", "warning"), ("95", "critical"), ("100", "critical")]
    scopes = {(b.scope, b.name): (b.limit, b.currency) for b in cfg.budgets}
    assert scopes[("global", "all")] == (Decimal(500), "USD")
    assert scopes[("customer", "cust-001")] == (Decimal(8), "USD")  # the starter tier's LLM budget
    assert scopes[("customer", "cust-015")] == (Decimal(45), "USD")  # its override
    assert len(scopes) == 1 + 3 + 20


@pytest.mark.parametrize("snippet, problem", [
    ("customers: [{id: c1, tier: gold}]", "customers[0] (c1).tier 'gold' is not a defined tier (starter)"),
    ("customers: [{id: c1, tier: starter}, {id: c1, tier: starter}]", "customers[1] (c1).id is listed twice"),
    ("customers: [{id: c1}]", "customers[0].tier is required"),
    ("customers: [{id: c1, tier: starter, budget: -3}]",
     "customers[0] (c1).budget must be greater than 0, got -3"),
    ("customers: [{id: c1, tier: starter, budgte: 3}]", "customers[0].budgte is not a known key"),
    ("tiers: {pro: {monthly_price: abc, llm_budget: 18}}", "tiers.pro.monthly_price must be a number, got 'abc'"),
    ("tiers: {pro: {monthly_price: 99, llm_budget: 0}}", "tiers.pro.llm_budget must be greater than 0, got 0"),
    ("tiers: {pro: {monthly_price: 99, llm_budget: 18, currency: usd}}",
     "tiers.pro.currency must be an ISO 4217 code like USD, got 'usd'"),
    ("budgets: {global: true}", "budgets.global must be a number, got True"),
    ("budgets: {providers: [aws]}", "budgets.providers must be a mapping of provider id to amount"),
    ("budgets: {providers: {aws: {amount: 10, currency: EURO}}}",
     "budgets.providers.aws.currency must be an ISO 4217 code like USD, got 'EURO'"),
    ("budgets: {monthly: 10}", "budgets.monthly is not a known key"),
    ("thresholds: [50, 50]", "thresholds[1] repeats the threshold 50"),
    ("thresholds: []", "thresholds must be a non-empty list of percentages"),
    ("thresholds: [{percent: 60, severity: critical}, {percent: 90, severity: info}]",
     "thresholds severities must rise with the threshold (info, warning, critical)"),
    ("thresholds: [{percent: 60, severity: page}]", "thresholds[0].severity must be one of info, warning, critical"),
    ("currency: dollars", "currency must be an ISO 4217 code like USD, got 'dollars'"),
])
def test_each_problem_is_one_line_naming_the_key(tmp_path, snippet, problem):
    base = "tiers: {starter: {monthly_price: 49, llm_budget: 8}}\n"
    if snippet.startswith("tiers:"):
        base = ""
    s = write_config(tmp_path, base + snippet + "\n")
    found = budgets.problems(s)
    assert len(found) == 1, found
    assert found[0].startswith(f"COSTMON_CONFIG_FILE {s.config_file}: ")
    assert problem in found[0]
    assert "\n" not in found[0]
    with pytest.raises(ConfigError):
        budgets.load(s)


def test_every_problem_is_reported_at_once(tmp_path):
    s = write_config(tmp_path, """
        tiers: {pro: {monthly_price: -1, llm_budget: 18}}
        customers: [{id: c1, tier: pro}, {id: "bad id", tier: pro}]
        budgets: {global: 0}
        """)
    assert [p.split(": ", 1)[1] for p in budgets.problems(s)] == [
        "tiers.pro.monthly_price must be 0 or more, got -1",
        "customers[1].id must be a name of letters, digits and _.:@/- (max 128), got 'bad id'",
        "budgets.global must be greater than 0, got 0",
    ]


def test_amounts_are_exact_decimals_and_currencies_are_kept(tmp_path):
    s = write_config(tmp_path, """
        currency: EUR
        tiers:
          pro: {monthly_price: 99.99, llm_budget: 0.1}
          us: {monthly_price: "49", llm_budget: 8, currency: USD}
        budgets:
          global: 1000.10
          providers: {aws: {amount: 300, currency: USD}, gcp: 250}
        customers: [{id: c1, tier: pro}, {id: c2, tier: us, budget: 12.5}]
        """)
    cfg = budgets.load(s)
    got = {(b.scope, b.name): (b.limit, b.currency) for b in cfg.budgets}
    assert got == {("global", "all"): (Decimal("1000.10"), "EUR"), ("provider", "aws"): (Decimal(300), "USD"),
                   ("provider", "gcp"): (Decimal(250), "EUR"), ("customer", "c1"): (Decimal("0.1"), "EUR"),
                   ("customer", "c2"): (Decimal("12.5"), "USD")}
    assert cfg.tiers["pro"].monthly_price == Decimal("99.99")


def test_thresholds_default_and_explicit_severities(tmp_path):
    cfg = budgets.load(write_config(tmp_path, "thresholds: [90, 25, {percent: 120, severity: critical}]\n"))
    assert [(t.percent, t.severity) for t in cfg.thresholds] == [
        (Decimal(25), "info"), (Decimal(90), "warning"), (Decimal(120), "critical")]
    assert budgets.load(write_config(tmp_path, "sources: [demo]\n")).thresholds[0].ratio == Decimal("0.5")


def test_costmon_check_prints_one_line_per_problem(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiers: {pro: {monthly_price: 99}}\ncustomers: [{id: c1, tier: gold}]\n")
    monkeypatch.setenv("COSTMON_CONFIG_FILE", str(bad))
    assert cli.main(["check", "--offline"]) == cli.EXIT_PROBLEM
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"costmon check: COSTMON_CONFIG_FILE {bad}: tiers.pro.llm_budget is required",
        f"costmon check: COSTMON_CONFIG_FILE {bad}: customers[0] (c1).tier 'gold' is not a defined tier (none defined)",
    ]
    monkeypatch.setenv("COSTMON_CONFIG_FILE", str(EXAMPLE_CONFIG))
    assert cli.main(["check", "--offline"]) == 0


# ---- syncing to tables ----------------------------------------------------------------------

def tables(conn):
    return {
        "tiers": conn.execute("SELECT name, monthly_price, llm_budget, currency FROM plan_tiers ORDER BY 1").fetchall(),
        "customers": conn.execute("SELECT id, display_name, tier, budget_override FROM customers ORDER BY 1").fetchall(),
        "budgets": conn.execute("SELECT scope, name, monthly_limit, currency FROM budgets ORDER BY 1, 2").fetchall(),
    }


def test_sync_makes_the_tables_equal_to_the_file(conn, tmp_path):
    first = write_config(tmp_path, """
        tiers: {starter: {monthly_price: 49, llm_budget: 8}, pro: {monthly_price: 99, llm_budget: 18}}
        budgets: {global: 500, providers: {aws: 150}}
        customers: [{id: c1, name: One, tier: starter}, {id: c2, tier: pro, budget: 20}]
        """)
    assert budgets.sync(conn, first) is True
    assert tables(conn) == {
        "tiers": [("pro", Decimal(99), Decimal(18), "USD"), ("starter", Decimal(49), Decimal(8), "USD")],
        "customers": [("c1", "One", "starter", None), ("c2", "c2", "pro", Decimal(20))],
        "budgets": [("customer", "c1", Decimal(8), "USD"), ("customer", "c2", Decimal(20), "USD"),
                    ("global", "all", Decimal(500), "USD"), ("provider", "aws", Decimal(150), "USD")],
    }
    # c1 leaves, the aws budget goes, a global budget changes: the file wins.
    second = write_config(tmp_path, """
        tiers: {pro: {monthly_price: 99, llm_budget: 18}}
        budgets: {global: 650}
        customers: [{id: c2, tier: pro}]
        """)
    budgets.sync(conn, second)
    assert tables(conn) == {
        "tiers": [("pro", Decimal(99), Decimal(18), "USD")],
        "customers": [("c2", "c2", "pro", None)],
        "budgets": [("customer", "c2", Decimal(18), "USD"), ("global", "all", Decimal(650), "USD")],
    }


def test_a_bad_file_or_a_file_without_budgets_leaves_the_tables_alone(conn, tmp_path):
    budgets.sync(conn, settings())
    before = tables(conn)
    with pytest.raises(ConfigError):
        budgets.sync(conn, write_config(tmp_path, "customers: [{id: c1, tier: gold}]\n"))
    assert tables(conn) == before
    assert budgets.sync(conn, write_config(tmp_path, "sources: [aws]\n")) is False
    assert tables(conn) == before
    assert len(before["customers"]) == 20


# ---- budget use and forecast ------------------------------------------------------------

def _keep(scope: str, name: str):
    if scope == "global":
        return lambda r: r.billing_currency == "USD"
    if scope == "provider":
        return lambda r: r.billing_currency == "USD" and r.provider == name
    return lambda r: r.billing_currency == "USD" and r.customer_id == name


def test_month_to_date_and_forecast_per_budget_follow_from_the_demo_lines(dconn):
    cfg = budgets.load(settings())
    uses = {(u.scope, u.name): u for u in analysis.budget_use(dconn, TODAY)}
    assert set(uses) == {(b.scope, b.name) for b in cfg.budgets}
    days_after = 31 - 25  # March has 31 days; today is the 25th
    for b in cfg.budgets:
        days = daily(demo_records(), _keep(b.scope, b.name))
        full = span(days, MONTH_START, TODAY)
        today = days.get(TODAY, Decimal(0))
        avg = span(days, TODAY - D(7), TODAY) / 7
        u = uses[(b.scope, b.name)]
        assert (u.limit, u.currency) == (b.limit, b.currency)
        assert u.month_to_date == full + today, b  # exact: sums of exact line costs
        assert u.today == today
        assert close(u.trailing_7d_daily, avg)
        assert u.days_left == days_after + 1
        assert close(u.forecast, full + max(today, avg) + avg * days_after), b
        assert close(u.used_ratio, (full + today) / b.limit)
        assert close(u.forecast_ratio, u.forecast / b.limit)
    assert uses[("global", "all")].month_to_date > 0


def test_the_demo_over_budget_customers_are_over_budget(dconn):
    uses = analysis.budget_use(dconn, TODAY)
    over = {u.name for u in uses if u.scope == "customer" and u.used_ratio >= 1}
    assert over == set(demo.OVER_BUDGET_CUSTOMERS)
    forecast_over = {u.name for u in uses if u.scope == "customer" and u.forecast_ratio > 1}
    assert forecast_over == set(demo.OVER_BUDGET_CUSTOMERS)


def test_forecast_arithmetic_worked_example(conn):
    """100 USD budget, today 2026-03-10 (21 days of March after it)."""
    lines = [line(f"2026-03-{d:02d}", "2", customer="c1") for d in range(1, 10)]  # 2/day, Mar 1-9
    lines += [line("2026-02-28", "9", customer="c1")]  # before the month and the trailing week
    lines += [line("2026-03-10", "0.5", customer="c1")]  # today so far
    load(conn, source="t", window=Window(dt.date(2026, 2, 1), dt.date(2026, 3, 11)), records=lines)
    conn.execute("INSERT INTO budgets (scope, name, monthly_limit, currency) VALUES ('global', 'all', 100, 'USD')")
    [u] = analysis.budget_use(conn, dt.date(2026, 3, 10))
    assert u.month_to_date == Decimal("18.5")
    assert u.trailing_7d_daily == Decimal(2)  # Mar 3-9
    # 18 (full days) + max(0.5, 2) for today + 2 x 21 days after today
    assert u.forecast == Decimal(62)
    assert u.forecast_ratio == Decimal("0.62")
    # Today already over the average: today's actual spend counts instead.
    load(conn, source="t2", window=Window(dt.date(2026, 3, 10), dt.date(2026, 3, 11)),
         records=[line("2026-03-10", "4.5", customer="c2")])
    [u] = analysis.budget_use(conn, dt.date(2026, 3, 10))
    assert u.forecast == Decimal(18 + 5 + 2 * 21)
    # On the first of a month the trailing week is the previous month's end.
    [u] = analysis.budget_use(conn, dt.date(2026, 3, 1))
    assert u.month_to_date == Decimal(2)
    assert close(u.trailing_7d_daily, Decimal(9) / 7)
    assert close(u.forecast, Decimal(2) + Decimal(9) / 7 * 30)


def test_spend_counts_only_against_budgets_in_its_currency(conn):
    load(conn, source="t", window=Window(dt.date(2026, 3, 1), dt.date(2026, 3, 11)), records=[
        line("2026-03-05", "10", customer="c1", provider="azure"),
        line("2026-03-05", "1000", customer="c1", provider="azure", currency="EUR"),
    ])
    conn.execute("""INSERT INTO budgets (scope, name, monthly_limit, currency) VALUES
        ('global', 'all', 100, 'USD'), ('provider', 'azure', 2000, 'EUR'), ('customer', 'c1', 20, 'USD')""")
    got = {(u.scope, u.name): (u.month_to_date, u.currency) for u in analysis.budget_use(conn, dt.date(2026, 3, 10))}
    assert got == {("global", "all"): (Decimal(10), "USD"), ("provider", "azure"): (Decimal(1000), "EUR"),
                   ("customer", "c1"): (Decimal(10), "USD")}


def test_burn_chart_runs_from_actuals_to_the_forecast(dconn):
    rows = dconn.execute("SELECT * FROM budget_burn_at(%s) WHERE scope = 'global' ORDER BY 1", (TODAY,)).fetchall()
    [use] = [u for u in analysis.budget_use(dconn, TODAY) if u.scope == "global"]
    assert len(rows) == 31
    days = daily(demo_records(), _keep("global", "all"))
    for ts, _scope, _name, ccy, actual, forecast, limit in rows:
        d = ts.astimezone(dt.timezone.utc).date()
        assert (ccy, limit) == ("USD", Decimal(500))
        assert actual == (span(days, MONTH_START, d + D(1)) if d <= TODAY else None)
        assert (forecast is None) == (d < TODAY - D(1))
    assert close(rows[-1][5], use.forecast)
    assert rows[TODAY.day - 2][5] == rows[TODAY.day - 2][4]  # the forecast starts where yesterday ended


# ---- anomalies --------------------------------------------------------------------------------

def test_the_runaway_customer_day_is_an_anomaly_with_the_exact_ratio(dconn):
    yesterday = TODAY - D(1)
    rows = {(a.day, a.dimension, a.name): a for a in analysis.recent_anomalies(dconn, TODAY)}
    days = daily(demo_records(), lambda r: r.customer_id == demo.RUNAWAY_CUSTOMER)
    baseline = span(days, yesterday - D(7), yesterday) / 7
    a = rows[(yesterday, "customer", demo.RUNAWAY_CUSTOMER)]
    assert a.spend == days[yesterday]
    assert close(a.baseline, baseline)
    assert close(a.ratio, days[yesterday] / baseline, 9)
    assert a.ratio > 3  # the demo's runaway is 5x its normal level, noise aside
    # It is the only one: no provider, model or other customer tripled yesterday or today.
    flagged = {(d, dim, n) for (d, dim, n), x in rows.items() if x.ratio is not None and x.ratio > 3}
    assert flagged == {(yesterday, "customer", demo.RUNAWAY_CUSTOMER)}


def test_anomaly_baseline_counts_days_without_spend_as_zero(conn):
    load(conn, source="t", window=Window(dt.date(2026, 3, 1), dt.date(2026, 3, 11)), records=[
        line("2026-03-02", "7", customer="c1"),  # the only day in the trailing week of Mar 9
        line("2026-03-09", "4", customer="c1"),
    ])
    [a] = [a for a in analysis.anomalies(conn, dt.date(2026, 3, 9), dt.date(2026, 3, 10)) if a.dimension == "customer"]
    assert (a.spend, a.baseline, a.ratio) == (Decimal(4), Decimal(1), Decimal(4))
    [first] = [a for a in analysis.anomalies(conn, dt.date(2026, 3, 2), dt.date(2026, 3, 3)) if a.dimension == "customer"]
    assert first.ratio is None  # nothing before it: no baseline, no ratio


# ---- unexpected models ---------------------------------------------------------------------

def _models_by_customer(records, start, stop):
    out: dict[str, set[str]] = {}
    for r in records:
        if start <= r.charge_day < stop and r.model != "unknown":
            out.setdefault(r.customer_id or "untagged", set()).add(r.model)
    return out


def test_a_model_new_to_a_customer_is_unexpected(dconn):
    recent = _models_by_customer(demo_records(), TODAY - D(1), TODAY + D(1))
    before = _models_by_customer(demo_records(), TODAY - D(8), TODAY - D(1))
    expected = {(c, m) for c, models in recent.items() for m in models - before.get(c, set())}
    got = analysis.unexpected_models(dconn, TODAY)
    assert {(u.customer, u.model) for u in got} == expected
    assert {c for c, _ in expected} == {demo.NEW_MODEL_CUSTOMER}  # the demo's one new model
    [u] = got
    spend = sum((r.effective_cost for r in demo_records() if r.customer_id == u.customer
                 and r.model == u.model and r.charge_day >= TODAY - D(1)), Decimal(0))
    assert (u.spend, u.first_day, u.currency) == (spend, TODAY - D(1), "USD")


def test_unexpected_model_window_is_the_seven_days_before_yesterday(conn):
    d = dt.date(2026, 3, 20)
    load(conn, source="t", window=Window(dt.date(2026, 3, 1), dt.date(2026, 3, 21)), records=[
        line("2026-03-20", "1", customer="c1", model="new-today"),
        line("2026-03-19", "2", customer="c1", model="new-yesterday"),
        line("2026-03-12", "1", customer="c1", model="seen-8-days-ago"),  # d-8: in the window
        line("2026-03-20", "1", customer="c1", model="seen-8-days-ago"),
        line("2026-03-11", "1", customer="c1", model="seen-9-days-ago"),  # d-9: forgotten
        line("2026-03-19", "1", customer="c1", model="seen-9-days-ago"),
        line("2026-03-15", "1", customer="c2", model="new-today"),  # another customer's history
        line("2026-03-20", "3", customer=None, model="gpt-4o"),  # untagged counts as a customer
        line("2026-03-20", "1", customer="c1", model="unknown", token_type="other"),
    ])
    got = {(u.customer, u.model): u.spend for u in analysis.unexpected_models(conn, d)}
    assert got == {("c1", "new-today"): Decimal(1), ("c1", "new-yesterday"): Decimal(2),
                   ("c1", "seen-9-days-ago"): Decimal(1), ("untagged", "gpt-4o"): Decimal(3)}


def test_demo_customer_given_an_extra_model_shows_up(conn):
    load_demo(conn)
    target = "cust-003"
    used = _models_by_customer(demo_records(), TODAY - D(40), TODAY + D(1))[target]
    new_model = next(m.model for m in demo.MODELS if m.model not in used)
    load(conn, source="manual", window=Window(TODAY, TODAY + D(1)),
         records=[line(TODAY.isoformat(), "0.42", customer=target, model=new_model, account="manual")])
    got = {(u.customer, u.model): u.spend for u in analysis.unexpected_models(conn, TODAY)}
    assert got[(target, new_model)] == Decimal("0.42")
    assert {c for c, _ in got} == {target, demo.NEW_MODEL_CUSTOMER}


# ---- margins --------------------------------------------------------------------------------

def test_margin_per_customer_and_tier_is_plan_price_minus_llm_cost(dconn):
    cfg = budgets.load(settings())
    costs = {c.id: span(daily(demo_records(), _keep("customer", c.id)), MONTH_START, TODAY + D(1))
             for c in cfg.customers}
    got = {m.customer: m for m in analysis.customer_margins(dconn, TODAY)}
    assert set(got) == set(costs)
    for c in cfg.customers:
        price = cfg.tiers[c.tier].monthly_price
        m = got[c.id]
        assert (m.tier, m.revenue, m.llm_cost, m.margin) == (c.tier, price, costs[c.id], price - costs[c.id])
        assert close(m.margin_ratio, (price - costs[c.id]) / price)
    tiers = {t.tier: t for t in analysis.tier_margins(dconn, TODAY)}
    for name, tier in cfg.tiers.items():
        members = [c.id for c in cfg.customers if c.tier == name]
        revenue = tier.monthly_price * len(members)
        cost = sum((costs[i] for i in members), Decimal(0))
        t = tiers[name]
        assert (t.customers, t.revenue, t.llm_cost, t.margin) == (len(members), revenue, cost, revenue - cost)
        assert close(t.margin_ratio, (revenue - cost) / revenue)
    assert all(m.margin > 0 for m in got.values())  # the demo's plans all still make money


def test_a_customer_costing_more_than_its_plan_has_a_negative_margin(conn):
    load_demo(conn)
    budgets.sync(conn, settings())
    demo_cost = span(daily(demo_records(), _keep("customer", "cust-001")), MONTH_START, TODAY + D(1))
    load(conn, source="manual", window=Window(TODAY - D(2), TODAY - D(1)),
         records=[line((TODAY - D(2)).isoformat(), "60", customer="cust-001", account="manual"),
                  line((TODAY - D(2)).isoformat(), "70", customer="cust-001", account="manual",
                       currency="EUR")])  # another currency: not part of a USD plan's margin
    [m] = [m for m in analysis.customer_margins(conn, TODAY) if m.customer == "cust-001"]
    assert m.llm_cost == demo_cost + 60
    assert m.margin == Decimal(49) - demo_cost - 60 < 0
    monthly = conn.execute("SELECT month, llm_cost, margin FROM customer_margin_between(%s, %s) "
                           "WHERE customer = 'cust-001' ORDER BY month",
                           (dt.date(2026, 2, 1), TODAY + D(1))).fetchall()
    feb = span(daily(demo_records(), _keep("customer", "cust-001")), dt.date(2026, 2, 1), MONTH_START)
    assert [(r[0].date(), r[1], r[2]) for r in monthly] == [
        (dt.date(2026, 2, 1), feb, 49 - feb), (MONTH_START, m.llm_cost, m.margin)]


# ---- the views the dashboards read ---------------------------------------------------------

@pytest.mark.parametrize("view, function", [
    ("budget_status", "budget_status_at(costmon_today())"),
    ("budget_burn", "budget_burn_at(costmon_today())"),
    ("cost_anomalies_daily", "cost_anomalies_between(costmon_today() - 30, costmon_today() + 1)"),
    ("unexpected_models", "unexpected_models_at(costmon_today())"),
    ("customer_margin", "customer_margin_at(costmon_today())"),
    ("tier_margin", "tier_margin_at(costmon_today())"),
])
def test_each_view_is_its_function_applied_to_today(dconn, view, function):
    assert dconn.execute(f"SELECT * FROM {view} ORDER BY 1, 2, 3").fetchall() == \
        dconn.execute(f"SELECT * FROM {function} ORDER BY 1, 2, 3").fetchall()


def test_day_boundaries_are_utc_whatever_the_session_time_zone(dconn):
    utc = analysis.budget_use(dconn, TODAY)
    dconn.execute("SET TIME ZONE 'Pacific/Auckland'")
    assert analysis.budget_use(dconn, TODAY) == utc
