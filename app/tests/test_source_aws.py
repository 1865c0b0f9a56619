"""AWS Cost Explorer source: real boto3 against moto (data) and a scripted local endpoint (errors)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest
import requests
from moto import mock_aws

from costmon.ingest import run
from costmon.records import Window
from costmon.sources.aws import AwsCostExplorerSource, make_client
from costmon.store.loader import LoadError
from fakes import aws_ce
from fakes.server import payload
from support.records import stored_totals

MOTO_API = "http://motoapi.amazonaws.com/moto-api"
WINDOW = Window(dt.date(2026, 3, 1), dt.date(2026, 3, 4))
SERVICES = ("Amazon Bedrock", "Claude 3 Haiku (Amazon Bedrock Edition)")
FIRST_RUN = ["aws/ce_bedrock_page1.json", "aws/ce_bedrock_page2.json", "aws/ce_marketplace_haiku.json"]


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_COST_EXPLORER", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.fixture
def moto():
    """moto's Cost Explorer; results are queued through moto's own HTTP API."""
    with mock_aws():
        def inject(*files: str) -> None:
            r = requests.post(f"{MOTO_API}/static/ce/cost-and-usage-results",
                              json={"results": [payload(f) for f in files]}, timeout=10)
            assert r.status_code == 201

        def reset() -> None:
            assert requests.post(f"{MOTO_API}/reset", timeout=10).status_code == 200

        inject.reset = reset
        yield inject


def source(**kw) -> AwsCostExplorerSource:
    kw.setdefault("services", SERVICES)
    kw.setdefault("sleep", lambda s: None)
    return AwsCostExplorerSource(**kw)


def payload_totals(files: list[str]) -> dict[tuple, tuple[Decimal, Decimal]]:
    """(provider, day, currency) -> (sum UnblendedCost, sum AmortizedCost), from the payloads themselves."""
    out: dict[tuple, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for f in files:
        for result in payload(f)["ResultsByTime"]:
            day = dt.date.fromisoformat(result["TimePeriod"]["Start"])
            for group in result["Groups"]:
                m = group["Metrics"]
                key = ("aws", day, m["UnblendedCost"]["Unit"])
                out[key][0] += Decimal(m["UnblendedCost"]["Amount"])
                out[key][1] += Decimal(m["AmortizedCost"]["Amount"])
    return {k: (v[0], v[1]) for k, v in out.items()}


def stored_rows(conn) -> list[tuple]:
    return conn.execute("""SELECT charge_period_start, billing_account_id, service_name, sku_id, customer_id,
                                  model, token_type, billed_cost, effective_cost, billing_currency,
                                  consumed_quantity, estimated
                           FROM billing_line_items ORDER BY 1, 2, 3, 4, 5""").fetchall()


def test_pages_and_services_load_with_daily_totals_equal_to_the_payloads(conn, moto):
    moto(*FIRST_RUN)
    src = source()
    result = run(conn, src, WINDOW)

    groups = sum(len(r["Groups"]) for f in FIRST_RUN for r in payload(f)["ResultsByTime"])
    assert result.rows == groups == 10
    assert stored_totals(conn) == payload_totals(FIRST_RUN)
    # Three paid requests: Bedrock page 1 and 2, the marketplace service; each counted and priced.
    runs = conn.execute("SELECT status, api_calls, api_cost_usd, rows_loaded FROM ingest_runs").fetchall()
    assert runs == [("success", 3, Decimal("0.03"), 10)]


def test_rows_keep_service_customer_tag_estimated_flag_and_classification(conn, moto):
    moto(*FIRST_RUN)
    run(conn, source(), WINDOW)
    rows = conn.execute("""SELECT sku_id, customer_id, service_name, model, token_type, estimated,
                                  billing_account_id, consumed_quantity, tags
                           FROM billing_line_items WHERE charge_period_start = '2026-03-01'
                           ORDER BY billed_cost DESC""").fetchall()
    assert rows[0] == ("USE1-Claude3Haiku-output-tokens", "acme", "Amazon Bedrock", "claude-3-haiku",
                       "output", False, "123456789012", Decimal("1642.5"), {"customer_id": "acme"})
    untagged = [r for r in rows if r[1] is None]
    assert len(untagged) == 1 and untagged[0][0] == "USE1-Claude3Haiku-input-tokens" and untagged[0][8] == {}
    marketplace = [r for r in rows if r[2] == "Claude 3 Haiku (Amazon Bedrock Edition)"]
    assert {(r[3], r[4]) for r in marketplace} == {("claude-3-haiku", "input"), ("claude-3-haiku", "output")}
    estimated_days = conn.execute("""SELECT DISTINCT (charge_period_start AT TIME ZONE 'UTC')::date
                                     FROM billing_line_items WHERE estimated""").fetchall()
    assert estimated_days == [(dt.date(2026, 3, 3),)]
    cache = conn.execute("SELECT model, token_type FROM billing_line_items WHERE sku_id LIKE '%cache-read%'").fetchone()
    assert cache == ("claude-sonnet-4.5", "cached_input")


def test_a_rerun_changes_nothing(conn, moto):
    moto(*FIRST_RUN)
    run(conn, source(), WINDOW)
    before = stored_rows(conn)
    run(conn, source(), WINDOW)  # moto answers the same requests with the same results
    assert stored_rows(conn) == before
    assert stored_totals(conn) == payload_totals(FIRST_RUN)


def test_restated_figures_replace_the_old_ones_and_days_outside_stay(conn, moto):
    moto(*FIRST_RUN)
    run(conn, source(), WINDOW)
    moto.reset()
    restated = ["aws/ce_bedrock_restated.json", "aws/ce_marketplace_restated.json"]
    moto(*restated)
    run(conn, source(), Window(dt.date(2026, 3, 2), WINDOW.end))

    expected = {k: v for k, v in payload_totals(FIRST_RUN).items() if k[1] == dt.date(2026, 3, 1)}
    expected.update(payload_totals(restated))
    assert stored_totals(conn) == expected
    # The estimated figure for 3 March became final, with amortized below unblended.
    assert conn.execute("""SELECT billed_cost, effective_cost, estimated FROM billing_line_items
                           WHERE charge_period_start = '2026-03-03'""").fetchall() == [
        (Decimal("1.4375"), Decimal("1.1"), False)]


def test_requests_are_daily_per_service_grouped_by_usage_type_and_customer_tag(monkeypatch):
    pages = [payload("aws/ce_bedrock_page1.json"), payload("aws/ce_bedrock_page2.json"),
             payload("aws/ce_marketplace_haiku.json")]
    fake, script = aws_ce.server(pages)
    with fake:
        # The standard per-service endpoint variable reaches boto3: the CLI can target a fake too.
        monkeypatch.setenv("AWS_ENDPOINT_URL_COST_EXPLORER", fake.url)
        src = source(client_factory=make_client, account_id="210987654321", customer_tag="team")
        records = list(src.fetch(WINDOW))
    assert len(records) == 10 and {r.billing_account_id for r in records} == {"210987654321"}
    first, second, third = script.calls
    assert first == {
        "TimePeriod": {"Start": "2026-03-01", "End": "2026-03-04"}, "Granularity": "DAILY",
        "Metrics": ["UnblendedCost", "AmortizedCost", "UsageQuantity"],
        "Filter": {"Dimensions": {"Key": "SERVICE", "Values": ["Amazon Bedrock"]}},
        "GroupBy": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}, {"Type": "TAG", "Key": "team"}]}
    assert second == {**first, "NextPageToken": pages[0]["NextPageToken"]}
    assert third["Filter"]["Dimensions"]["Values"] == ["Claude 3 Haiku (Amazon Bedrock Edition)"]
    assert "NextPageToken" not in third
    assert (src.stats.api_calls, src.stats.api_cost_usd) == (3, Decimal("0.03"))


def test_throttling_backs_off_and_retries_then_succeeds():
    slept: list[float] = []
    fake, script = aws_ce.server([
        ("ThrottlingException", "Rate exceeded"),
        ("LimitExceededException", "You have exceeded the rate limit for the GetCostAndUsage operation."),
        payload("aws/ce_marketplace_haiku.json")])
    with fake:
        src = source(client=make_client(fake.url), account_id="210987654321", sleep=slept.append,
                     services=("Claude 3 Haiku (Amazon Bedrock Edition)",), backoff_seconds=2)
        records = list(src.fetch(WINDOW))
    assert len(records) == 2
    assert slept == [2, 4]  # exponential, through the injected sleep: the test never waits
    assert len(script.calls) == 3  # botocore's own retries are off: every request is one we count
    assert (src.stats.api_calls, src.stats.api_cost_usd) == (3, Decimal("0.01"))


def test_throttling_is_bounded_and_keeps_what_was_stored(conn, moto):
    moto(*FIRST_RUN)
    run(conn, source(), WINDOW)
    before = stored_rows(conn)

    slept: list[float] = []
    fake, script = aws_ce.server([("ThrottlingException", "Rate exceeded")] * 10)
    with fake:
        src = source(client=make_client(fake.url), account_id="123456789012", max_attempts=4,
                     sleep=slept.append, backoff_seconds=1, max_backoff_seconds=3)
        with pytest.raises(LoadError) as exc:
            run(conn, src, WINDOW)
    assert len(script.calls) == 4 and slept == [1, 2, 3]
    assert exc.value.reason == "throttled" and "after 4 attempts" in str(exc.value)
    assert stored_rows(conn) == before
    last = conn.execute("""SELECT status, error_reason, api_calls, api_cost_usd FROM ingest_runs
                           ORDER BY id DESC LIMIT 1""").fetchone()
    assert last == ("failed", "throttled", 4, Decimal("0"))


def test_access_denied_is_one_clear_line_without_retrying(conn):
    fake, script = aws_ce.server([("AccessDeniedException", "User not enabled for cost explorer access")] * 3)
    with fake:
        src = source(client=make_client(fake.url), account_id="123456789012")
        with pytest.raises(LoadError) as exc:
            run(conn, src, WINDOW)
    assert len(script.calls) == 1
    message = str(exc.value)
    assert exc.value.reason == "auth" and "\n" not in message
    assert "User not enabled for cost explorer access" in message and "ce:GetCostAndUsage" in message
    assert conn.execute("SELECT error_reason FROM ingest_runs").fetchone() == ("auth",)


def test_a_malformed_amount_is_rejected_and_nothing_is_replaced(conn, moto):
    moto(*FIRST_RUN)
    run(conn, source(), WINDOW)
    before = stored_rows(conn)
    broken = payload("aws/ce_marketplace_haiku.json")
    broken["ResultsByTime"][0]["Groups"][0]["Metrics"]["UnblendedCost"]["Amount"] = "n/a"
    fake, _ = aws_ce.server([broken])
    with fake:
        src = source(client=make_client(fake.url), account_id="123456789012",
                     services=("Claude 3 Haiku (Amazon Bedrock Edition)",))
        with pytest.raises(LoadError) as exc:
            run(conn, src, WINDOW)
    assert exc.value.reason == "payload" and "'n/a' is not a number" in str(exc.value)
    assert stored_rows(conn) == before
