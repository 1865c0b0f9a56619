"""/metrics: billing figures read from the database, bounded labels, clean exposition."""

import datetime as dt
import shutil
import subprocess

import psycopg
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from costmon.metrics import CostCollector
from costmon.records import Window
from costmon.store.loader import load
from support.records import line

NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.timezone.utc)


def collector(db, **kw):
    return CostCollector(lambda: psycopg.connect(db), clock=lambda: NOW, cache_seconds=0, **kw)


def samples(coll, name):
    out = {}
    for fam in coll.collect():
        for s in fam.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def value(coll, name, **labels):
    got = samples(coll, name)
    return got.get(tuple(sorted(labels.items())))


@pytest.fixture
def loaded(conn, db):
    w = Window(dt.date(2026, 2, 20), dt.date(2026, 3, 11))
    records = [
        line("2026-03-10", "1.50", customer="cust-a"),                      # today
        line("2026-03-09", "2.25", customer="cust-a"),                      # yesterday
        line("2026-03-09", "0.75", customer=None),                          # untagged
        line("2026-03-03", "4.00", customer="cust-b", model="gpt-4o", provider="azure",
             service_name="Azure OpenAI", currency="EUR"),                  # last 7 days, EUR
        line("2026-03-01", "10", customer="cust-c", model="gemini-2.5-pro", provider="gcp",
             service_name="Vertex AI"),
        line("2026-02-25", "100", customer="cust-a"),                       # before the month
        line("2026-03-05", "0.10", model="unknown", token_type="other", customer="cust-a"),
    ]
    load(conn, source="test", window=w, records=records)
    return db


def test_costs_per_period_are_exact_sums_of_the_stored_lines(loaded):
    c = collector(loaded)
    eff = "costmon_billing_effective_cost"
    assert value(c, eff, period="today", provider="aws", service="Amazon Bedrock",
                 model="claude-3-haiku", currency="USD") == 1.5
    assert value(c, eff, period="yesterday", provider="aws", service="Amazon Bedrock",
                 model="claude-3-haiku", currency="USD") == 3.0
    assert value(c, eff, period="month_to_date", provider="aws", service="Amazon Bedrock",
                 model="claude-3-haiku", currency="USD") == 4.5  # 1.50 + 2.25 + 0.75
    assert value(c, eff, period="last_7_days", provider="azure", service="Azure OpenAI",
                 model="gpt-4o", currency="EUR") == 4.0
    # Feb 25 is outside the month and outside the 7 full days before today.
    assert value(c, "costmon_billing_billed_cost", period="month_to_date", provider="aws",
                 currency="USD") == pytest.approx(4.6)  # + the unknown 0.10
    assert value(c, "costmon_billing_unclassified_line_items", provider="aws") == 1


def test_currencies_stay_apart(loaded):
    c = collector(loaded)
    got = samples(c, "costmon_customer_effective_cost")
    currencies = {dict(k)["currency"] for k in got}
    assert currencies == {"USD", "EUR"}
    assert value(c, "costmon_customer_effective_cost", period="month_to_date", customer="cust-b",
                 currency="EUR") == 4.0


def test_untagged_spend_is_its_own_customer_and_small_ones_fold_into_other(loaded):
    c = collector(loaded, top_customers=1)
    cust = {(dict(k)["customer"], dict(k)["currency"]): v for k, v in
            samples(c, "costmon_customer_effective_cost").items() if dict(k)["period"] == "month_to_date"}
    # cust-c leads the month; cust-a leads today and yesterday, so it keeps its name too.
    assert cust == {("cust-c", "USD"): 10.0, ("cust-a", "USD"): pytest.approx(3.85),
                    ("untagged", "USD"): 0.75, ("other", "EUR"): 4.0}


def test_a_small_customer_spiking_yesterday_keeps_its_own_label(loaded, conn):
    load(conn, source="spike", window=Window(dt.date(2026, 3, 9), dt.date(2026, 3, 10)),
         records=[line("2026-03-09", "9", customer="cust-z")])
    c = collector(loaded, top_customers=1)
    assert value(c, "costmon_customer_effective_cost", period="yesterday", customer="cust-z",
                 currency="USD") == 9.0
    labels = {dict(k)["customer"] for k in samples(c, "costmon_customer_effective_cost")}
    assert labels == {"cust-z", "cust-c", "cust-a", "untagged", "other"}  # cust-b folded away


def test_series_cap_drops_the_smallest_and_says_how_many(loaded):
    c = collector(loaded, max_series=12)
    dropped = value(c, "costmon_metrics_series_dropped")
    assert dropped > 0
    kept = len(samples(c, "costmon_billing_effective_cost")) + len(samples(c, "costmon_customer_effective_cost"))
    assert kept + dropped == 19  # what an uncapped collector exposes, below
    full = collector(loaded)
    assert len(samples(full, "costmon_billing_effective_cost")) + \
        len(samples(full, "costmon_customer_effective_cost")) == 19


def test_source_health_comes_from_ingest_runs(loaded, conn):
    c = collector(loaded)
    assert value(c, "costmon_source_runs_total", source="test", status="success") == 1
    assert value(c, "costmon_source_rows_total", source="test") == 7
    assert value(c, "costmon_source_unclassified_rows_total", source="test") == 1
    assert value(c, "costmon_source_last_run_rows", source="test") == 7
    assert value(c, "costmon_source_last_success_timestamp_seconds", source="test") > 0
    assert value(c, "costmon_database_up") == 1


def test_database_down_is_a_gauge_not_a_failed_scrape(pg_server):
    errors = []
    c = CostCollector(lambda: psycopg.connect("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1),
                      cache_seconds=0, on_error=errors.append)
    assert value(c, "costmon_database_up") == 0
    assert samples(c, "costmon_billing_effective_cost") == {}
    assert errors


def test_results_are_cached_between_scrapes(loaded, conn):
    c = CostCollector(lambda: psycopg.connect(loaded), clock=lambda: NOW, cache_seconds=3600)
    before = value(c, "costmon_source_rows_total", source="test")
    load(conn, source="other", window=Window(dt.date(2026, 3, 10), dt.date(2026, 3, 11)),
         records=[line("2026-03-10", "1")])
    assert value(c, "costmon_source_rows_total", source="other") is None
    assert value(c, "costmon_source_rows_total", source="test") == before


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed (apt-get install prometheus)")
def test_exposition_passes_promtool_check_metrics(loaded):
    registry = CollectorRegistry()
    registry.register(collector(loaded))
    text = generate_latest(registry)
    proc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_alert_thresholds_from_settings_are_exposed_even_with_the_database_down():
    from costmon.config import load_settings

    settings = load_settings({"COSTMON_ALERT_THRESHOLDS": "daily_spend:USD=150, customer_daily_quota:EUR=4.5"},
                             need_database=False)
    c = CostCollector(lambda: psycopg.connect("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1),
                      cache_seconds=0, thresholds=settings.alert_thresholds)
    assert samples(c, "costmon_alert_threshold") == {
        (("alert", "daily_spend"), ("currency", "USD")): 150.0,
        (("alert", "customer_daily_quota"), ("currency", "EUR")): 4.5}


@pytest.mark.parametrize("text, problem", [
    ("daily_spend=150", "is not alert:CURRENCY=amount"),
    ("weekly:USD=1", "unknown alert 'weekly'"),
    ("daily_spend:usd=1", "ISO 4217"),
    ("daily_spend:USD=-3", "non-negative"),
])
def test_malformed_alert_thresholds_name_the_variable(text, problem):
    from costmon.config import ConfigError, load_settings

    with pytest.raises(ConfigError) as err:
        load_settings({"COSTMON_ALERT_THRESHOLDS": text}, need_database=False)
    assert err.value.problems[0].startswith("COSTMON_ALERT_THRESHOLDS=")
    assert problem in err.value.problems[0]
