"""The demo source: deterministic, realistic multi-cloud LLM billing, never beyond `now`."""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from decimal import Decimal

import pytest

from costmon.ingest import run
from costmon.records import TOKEN_TYPES, Window
from costmon.sources.base import Source
from costmon.sources.demo import (DEMO_TIERS, NEW_MODEL_CUSTOMER, OVER_BUDGET_CUSTOMERS,
                                  RUNAWAY_CUSTOMER, DemoSource, demo_customers, demo_skus)

UTC = dt.timezone.utc
NOW = dt.datetime(2025, 6, 18, 14, 37, 12, tzinfo=UTC)  # a Wednesday afternoon
TODAY = NOW.date()
CANONICAL_MODELS = {
    "claude-3-haiku", "claude-3.5-sonnet", "claude-3.7-sonnet", "claude-sonnet-4", "llama-3.1-70b",
    "nova-lite", "nova-pro", "gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3-mini", "text-embedding-3-large",
    "gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-pro",
}


def days_back(n: int, now: dt.datetime = NOW) -> Window:
    """The n UTC days ending with now's (partial) day."""
    today = now.date()
    return Window(today - dt.timedelta(days=n - 1), today + dt.timedelta(days=1))


@pytest.fixture(scope="module")
def quarter():
    """90 days of demo billing up to NOW."""
    return list(DemoSource(now=NOW).fetch(days_back(90)))


def by_customer_day(records) -> dict[str, dict[dt.date, Decimal]]:
    out: dict[str, dict[dt.date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for r in records:
        if r.customer_id is not None:
            out[r.customer_id][r.charge_day] += r.billed_cost
    return out


def by_day(records) -> dict[dt.date, Decimal]:
    out: dict[dt.date, Decimal] = defaultdict(Decimal)
    for r in records:
        out[r.charge_day] += r.billed_cost
    return out


def trailing_ratio(series: dict[dt.date, Decimal], day: dt.date) -> float:
    """A day's spend over the mean of the 7 days before it (the anomaly ratio)."""
    prior = [series[day - dt.timedelta(days=k)] for k in range(1, 8)]
    return float(series[day] / (sum(prior) / 7))


# ---- the source contract --------------------------------------------------------------------

def test_it_is_a_source_with_no_upstream_calls():
    src = DemoSource(now=NOW)
    assert isinstance(src, Source)
    assert (src.name, src.provider, src.accounts, src.stats.api_calls) == ("demo", "demo", None, 0)


def test_now_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        DemoSource(now=dt.datetime(2025, 6, 18, 12))


# ---- determinism ----------------------------------------------------------------------------

def test_same_inputs_give_the_same_rows(quarter):
    assert list(DemoSource(now=NOW).fetch(days_back(90))) == quarter


def test_fetching_in_pieces_gives_exactly_the_rows_of_fetching_whole(quarter):
    src = DemoSource(now=NOW)
    for size in (1, 7, 31):
        pieces = [r for w in days_back(90).chunks(size) for r in src.fetch(w)]
        assert pieces == quarter, f"chunks of {size} days differ"


def test_the_hour_of_now_changes_only_the_partial_day():
    early = list(DemoSource(now=NOW.replace(hour=9)).fetch(days_back(30)))
    late = list(DemoSource(now=NOW.replace(hour=20)).fetch(days_back(30)))
    assert [r for r in early if r.charge_day < TODAY] == [r for r in late if r.charge_day < TODAY]


def test_the_seed_changes_the_data():
    a = by_day(DemoSource(now=NOW, seed=1).fetch(days_back(7)))
    b = by_day(DemoSource(now=NOW, seed=2).fetch(days_back(7)))
    assert a != b


# ---- shape of the data ----------------------------------------------------------------------

def test_every_record_is_valid_demo_labelled_usd_llm_billing(quarter):
    for r in quarter:
        r.validate()
        assert r.billing_account_id.startswith("demo-") and r.sub_account_id.startswith("demo-"), r
        assert r.billing_currency == "USD"
        assert r.provider in ("aws", "azure", "gcp")
        assert r.model in CANONICAL_MODELS
        assert r.charge_period_end - r.charge_period_start <= dt.timedelta(days=1)
        assert r.project_id
        assert r.tags["env"] in ("prod", "dev", "test", "eval")
        assert r.tags.get("customer_id") == r.customer_id
    assert len({r.model for r in quarter}) >= 8
    assert {r.token_type for r in quarter} == set(TOKEN_TYPES) - {"other"}
    assert {r.service_name for r in quarter} == {"Amazon Bedrock", "Azure OpenAI", "Vertex AI"}


def test_cost_is_exactly_quantity_times_list_price(quarter):
    prices = defaultdict(set)
    for r in quarter:
        assert r.billed_cost == r.effective_cost
        assert -r.billed_cost.as_tuple().exponent <= 10
        assert r.consumed_unit == ("Tokens" if r.provider == "gcp" else "1K tokens")
        prices[r.charge_description].add(r.billed_cost / r.consumed_quantity)
    assert all(len(p) == 1 for p in prices.values()), "one unit price per SKU"
    # Spot checks against public list prices.
    assert prices["USE1-Claude3.5Sonnet-input-tokens"] == {Decimal("0.003")}  # $3 per 1M
    assert prices["gpt 4o 1120 Outp glbl Tokens"] == {Decimal("0.01")}  # $10 per 1M
    assert prices["Gemini 2.5 Flash GA Text Input - Predictions"] == {Decimal("3E-7")}  # $0.30 per 1M


def test_a_day_has_three_to_five_hundred_lines(quarter):
    per_day = defaultdict(int)
    for r in quarter:
        if r.charge_day < TODAY:
            per_day[r.charge_day] += 1
    assert 300 <= min(per_day.values()) and max(per_day.values()) <= 500


def test_untagged_internal_spend_is_a_sizable_share(quarter):
    total = sum(r.billed_cost for r in quarter)
    untagged = [r for r in quarter if r.customer_id is None]
    share = sum(r.billed_cost for r in untagged) / total
    assert Decimal("0.2") < share < Decimal("0.5")
    assert {r.tags["env"] for r in untagged} == {"dev", "test", "eval"}


def test_weekdays_cost_more_than_weekends(quarter):
    days = by_day(r for r in quarter if r.charge_day < TODAY)
    weekday = statistics.mean(v for d, v in days.items() if d.weekday() < 5)
    weekend = statistics.mean(v for d, v in days.items() if d.weekday() >= 5)
    assert weekday > weekend * Decimal("1.3")


def test_spend_grows_ten_to_twenty_percent_a_month():
    # Whole weeks against whole weeks, so the weekday mix is the same on both sides.
    days = by_day(DemoSource(now=NOW, runaway_day=None).fetch(days_back(85)))
    blocks = [sum(days[TODAY - dt.timedelta(days=k)] for k in range(start, start + 28)) for start in (1, 29, 57)]
    for later, earlier in zip(blocks, blocks[1:]):
        monthly = float(later / earlier) ** (30.4375 / 28)
        assert 1.10 <= monthly <= 1.20, blocks


def test_a_quarter_has_a_realistic_volume():
    rows = sum(1 for _ in DemoSource(now=NOW).fetch(days_back(90)))
    assert 25_000 < rows < 40_000


# ---- what the budget and anomaly features need to find --------------------------------------

def test_customers_come_in_three_plan_tiers():
    customers = demo_customers()
    assert len(customers) == 20 and len({c.id for c in customers}) == 20
    assert {c.tier for c in customers} == {"starter", "pro", "business"}
    assert {(t.name, t.monthly_price, t.llm_budget) for t in DEMO_TIERS.values()} == {
        ("starter", Decimal(49), Decimal(8)), ("pro", Decimal(99), Decimal(18)),
        ("business", Decimal(199), Decimal(35))}
    assert {RUNAWAY_CUSTOMER, NEW_MODEL_CUSTOMER, *OVER_BUDGET_CUSTOMERS} <= {c.id for c in customers}


def test_the_same_few_customers_run_over_their_tier_budget_every_month():
    tier = {c.id: c.tier for c in demo_customers()}
    records = DemoSource(now=NOW).fetch(Window(dt.date(2025, 3, 1), dt.date(2025, 6, 1)))
    spend: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for r in records:
        if r.customer_id:
            spend[r.charge_day.month, r.customer_id] += r.billed_cost
    for month in (3, 4, 5):
        over = {c for c in tier if spend[month, c] > DEMO_TIERS[tier[c]].llm_budget}
        assert over == set(OVER_BUDGET_CUSTOMERS), month
        assert 2 <= len(over) <= 3


def test_the_runaway_customer_spends_five_times_normal_the_day_before_now(quarter):
    series = by_customer_day(quarter)
    yesterday = TODAY - dt.timedelta(days=1)
    assert 4.7 <= trailing_ratio(series[RUNAWAY_CUSTOMER], yesterday) <= 5.3
    # Nothing else looks like an anomaly: no other customer-day reaches 2.5x its trailing mean.
    first = min(series[RUNAWAY_CUSTOMER]) + dt.timedelta(days=7)
    for customer, days in series.items():
        for day in days:
            if first <= day < TODAY and (customer, day) != (RUNAWAY_CUSTOMER, yesterday):
                assert trailing_ratio(days, day) < 2.5, (customer, day)


@pytest.mark.parametrize("runaway_day", [dt.date(2025, 6, 14), dt.date(2025, 6, 16)])  # a Saturday, a Monday
def test_the_runaway_day_can_be_moved_and_is_five_x_on_any_weekday(runaway_day):
    src = DemoSource(now=NOW, runaway_day=runaway_day)
    series = by_customer_day(src.fetch(days_back(14)))[RUNAWAY_CUSTOMER]
    assert 4.7 <= trailing_ratio(series, runaway_day) <= 5.3
    assert trailing_ratio(series, TODAY - dt.timedelta(days=1)) < 2.5


def test_runaway_can_be_switched_off():
    series = by_customer_day(DemoSource(now=NOW, runaway_day=None).fetch(days_back(14)))[RUNAWAY_CUSTOMER]
    assert trailing_ratio(series, TODAY - dt.timedelta(days=1)) < 2.5


def test_one_customer_starts_on_a_model_it_never_used_before(quarter):
    models_by_day: dict[dt.date, set[str]] = defaultdict(set)
    for r in quarter:
        if r.customer_id == NEW_MODEL_CUSTOMER:
            models_by_day[r.charge_day].add(r.model)
    yesterday = TODAY - dt.timedelta(days=1)
    before = set().union(*(models for day, models in models_by_day.items() if day < yesterday))
    new = models_by_day[yesterday] - before
    assert len(new) == 1 and new <= models_by_day[TODAY]


# ---- never beyond now; the partial current day -----------------------------------------------

def test_nothing_is_generated_after_now():
    records = list(DemoSource(now=NOW).fetch(Window(TODAY - dt.timedelta(days=2), TODAY + dt.timedelta(days=30))))
    assert records and max(r.charge_period_end for r in records) <= NOW
    assert max(r.charge_day for r in records) == TODAY


def test_today_is_partial_up_to_the_last_whole_hour():
    today = Window(TODAY, TODAY + dt.timedelta(days=1))
    at = {hour: list(DemoSource(now=NOW.replace(hour=hour)).fetch(today)) for hour in (6, 18)}
    for hour, records in at.items():
        assert {r.charge_period_end for r in records} == {dt.datetime(2025, 6, 18, hour, tzinfo=UTC)}
        assert all(r.estimated for r in records)
    ratio = sum(r.billed_cost for r in at[6]) / sum(r.billed_cost for r in at[18])
    assert abs(ratio - Decimal(6) / 18) < Decimal("0.001")  # only token rounding differs
    assert list(DemoSource(now=NOW.replace(hour=0, minute=59)).fetch(today)) == []
    assert not any(r.estimated for r in DemoSource(now=NOW).fetch(Window(TODAY - dt.timedelta(days=3), TODAY)))


# ---- the classifier reads the demo's strings as the demo meant them --------------------------

@pytest.mark.parametrize("provider,service,description,model,token_type", [
    pytest.param(*sku, id=sku[2]) for sku in demo_skus()])
def test_the_classifier_agrees_with_every_demo_sku(provider, service, description, model, token_type):
    from costmon.classify import classify

    got = classify(provider, description, service)
    assert (got.model, got.token_type) == (model, token_type)


# ---- end to end through the loader -----------------------------------------------------------

def totals_by_provider_day(conn):
    return conn.execute(
        """SELECT provider, charge_period_start::date, billing_currency, sum(billed_cost), count(*)
           FROM billing_line_items WHERE source = 'demo' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""").fetchall()


def test_ingesting_the_demo_twice_leaves_identical_totals(conn):
    window = days_back(14)
    expected = sum(r.billed_cost for r in DemoSource(now=NOW).fetch(window))
    first = run(conn, DemoSource(now=NOW), window)
    before = totals_by_provider_day(conn)
    second = run(conn, DemoSource(now=NOW), window)
    after = totals_by_provider_day(conn)
    assert first.rows == second.rows == second.deleted > 4000
    assert first.unclassified == 0
    assert before == after
    assert {p for p, *_ in after} == {"aws", "azure", "gcp"}
    assert sum(total for *_, total, _ in after) == expected
    runs = conn.execute("SELECT status, rows_loaded, api_calls FROM ingest_runs ORDER BY id").fetchall()
    assert runs == [("success", first.rows, 0), ("success", second.rows, 0)]
