"""Azure Cost Management source: the real azure-mgmt-costmanagement client against a local Query API."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest

from costmon.ingest import run
from costmon.records import Window
from costmon.sources.azure import AzureCostSource, make_client, retry_after_seconds, scope_accounts
from costmon.store.loader import LoadError
from fakes.azure_cost import CostManagementFake, load_result
from support.records import stored_totals

SCOPE = "providers/Microsoft.Billing/billingAccounts/98765432"
WINDOW = Window(dt.date(2026, 3, 1), dt.date(2026, 3, 4))
FIRST = {"ActualCost": "azure/query_actualcost.json", "AmortizedCost": "azure/query_amortizedcost.json"}
RESTATED = {"ActualCost": "azure/query_actualcost_restated.json",
            "AmortizedCost": "azure/query_amortizedcost_restated.json"}


def fake(files: dict[str, str], **kw) -> CostManagementFake:
    return CostManagementFake({t: load_result(f) for t, f in files.items()}, **kw)


def source(api: CostManagementFake, **kw) -> AzureCostSource:
    kw.setdefault("sleep", lambda s: None)
    return AzureCostSource(scope=kw.pop("scope", SCOPE), client=make_client(endpoint=api.url), **kw)


def payload_totals(files: dict[str, str], window: Window) -> dict[tuple, tuple[Decimal, Decimal]]:
    """(provider, day, currency) -> (sum ActualCost, sum AmortizedCost), read by column name from the files."""
    out: dict[tuple, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for i, cost_type in enumerate(("ActualCost", "AmortizedCost")):
        result = load_result(files[cost_type])["properties"]
        names = [c["name"] for c in result["columns"]]
        for row in result["rows"]:
            r = dict(zip(names, row))
            day = dt.datetime.strptime(str(r["UsageDate"]), "%Y%m%d").date()
            if window.start <= day < window.end:
                out[("azure", day, r["Currency"])][i] += Decimal(r["Cost"])
    return {k: (v[0], v[1]) for k, v in out.items()}


def stored_rows(conn) -> list[tuple]:
    return conn.execute("""SELECT charge_period_start, billing_account_id, charge_description, customer_id,
                                  model, token_type, billed_cost, effective_cost, billing_currency,
                                  consumed_quantity
                           FROM billing_line_items ORDER BY 1, 3, 4, 9""").fetchall()


def test_actual_and_amortized_pages_load_with_daily_totals_equal_to_the_payloads_per_currency(conn):
    with fake(FIRST, page_size=3) as api:
        result = run(conn, source(api), WINDOW)
    assert stored_totals(conn) == payload_totals(FIRST, WINDOW)
    assert {c for (_, _, c) in stored_totals(conn)} == {"USD", "EUR"}  # never converted, never mixed
    # 10 rows per cost type, 3 a page: 4 requests each, every nextLink followed with the same body.
    assert len(api.bodies) == 8
    assert [b["type"] for b in api.bodies] == ["ActualCost"] * 4 + ["AmortizedCost"] * 4
    assert all(b == api.bodies[0] for b in api.bodies[:4])
    assert sum("$skiptoken" in r.query for r in api.requests) == 6
    assert result.rows == 11  # 10 keys in both, the reservation purchase only in ActualCost
    assert conn.execute("SELECT api_calls, status FROM ingest_runs").fetchone() == (8, "success")


def test_columns_are_read_by_name_and_rows_keep_meter_customer_currency_and_classification(conn):
    with fake(FIRST) as api:
        run(conn, source(api), WINDOW)
    rows = {(r[0].date(), r[2], r[3]): r for r in stored_rows(conn)}
    first = rows[(dt.date(2026, 3, 1), "gpt 4o 0513 Input global Tokens", "acme")]
    assert first[1] == "98765432"  # the billing account named by the scope
    assert first[4:] == ("gpt-4o", "input", Decimal("12.503419875232"), Decimal("12.503419875232"), "USD",
                         Decimal("5001.36795"))
    untagged = rows[(dt.date(2026, 3, 1), "gpt 4o 0513 Input global Tokens", None)]
    assert untagged[6] == Decimal("0.8300000000000001")  # the figure exactly as the API sent it
    mini = rows[(dt.date(2026, 3, 2), "gpt-4o-mini-0718 Inp glbl Tokens", "globex")]
    assert mini[4:6] == ("gpt-4o-mini", "input") and mini[8] == "EUR"
    cached = rows[(dt.date(2026, 3, 3), "gpt-4.1 cached Inp glbl Tokens", "acme")]
    assert cached[4:6] == ("gpt-4.1", "cached_input")
    # Billed vs effective: a reservation purchase is billed once, its use is amortized daily.
    purchase = rows[(dt.date(2026, 3, 1), "Azure OpenAI Provisioned Reservation", None)]
    assert (purchase[6], purchase[7]) == (Decimal(1200), Decimal(0))
    ptu = rows[(dt.date(2026, 3, 2), "Provisioned Managed Global Unit", None)]
    assert (ptu[6], ptu[7]) == (Decimal(0), Decimal("39.45205479"))


def test_a_rerun_changes_nothing(conn):
    with fake(FIRST) as api:
        run(conn, source(api), WINDOW)
        before = stored_rows(conn)
        run(conn, source(api), WINDOW)
    assert stored_rows(conn) == before


def test_restated_figures_replace_the_old_ones_and_days_outside_stay(conn):
    with fake(FIRST) as api:
        run(conn, source(api), WINDOW)
    restate = Window(dt.date(2026, 3, 2), WINDOW.end)
    with fake(RESTATED) as api:
        run(conn, source(api), restate)
    expected = {k: v for k, v in payload_totals(FIRST, WINDOW).items() if k[1] == dt.date(2026, 3, 1)}
    expected.update(payload_totals(RESTATED, restate))
    assert stored_totals(conn) == expected
    assert conn.execute("""SELECT billed_cost FROM billing_line_items
                           WHERE charge_description = 'gpt-4.1 cached Inp glbl Tokens'""").fetchall() == [
        (Decimal("9.1"),)]


def test_the_query_is_daily_custom_grouped_twice_filtered_to_ai_services_and_anonymous_on_a_fake():
    with fake(FIRST, page_size=100) as api:
        src = source(api, services=("Azure OpenAI", "Foundry Models"), customer_tag="team")
        list(src.fetch(Window(dt.date(2026, 3, 1), dt.date(2026, 3, 3))))
    actual = api.bodies[0]
    assert actual == {
        "type": "ActualCost", "timeframe": "Custom",
        "timePeriod": {"from": "2026-03-01T00:00:00+00:00", "to": "2026-03-02T23:59:59+00:00"},
        "dataset": {
            "granularity": "Daily",
            "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"},
                            "totalQuantity": {"name": "UsageQuantity", "function": "Sum"}},
            "grouping": [{"type": "Dimension", "name": "Meter"}, {"type": "TagKey", "name": "team"}],
            "filter": {"dimensions": {"name": "ServiceName", "operator": "In",
                                      "values": ["Azure OpenAI", "Foundry Models"]}}}}
    assert api.bodies[1] == {**actual, "type": "AmortizedCost"}
    assert api.requests[0].path == f"/{SCOPE}/providers/Microsoft.CostManagement/query"
    assert "authorization" not in api.requests[0].headers


def test_429_waits_the_longest_costmanagement_retry_after_header_then_succeeds(conn):
    slept: list[float] = []
    with fake(FIRST, page_size=100) as api:
        api.throttle(2, {"x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after": "5",
                         "x-ms-ratelimit-microsoft.costmanagement-entity-retry-after": "12",
                         "x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after": "3",
                         "x-ms-ratelimit-microsoft.costmanagement-qpu-remaining": "QueryResource=0"})
        run(conn, source(api, sleep=slept.append), WINDOW)
    assert slept == [12, 12]
    assert stored_totals(conn) == payload_totals(FIRST, WINDOW)
    assert conn.execute("SELECT api_calls FROM ingest_runs").fetchone() == (4,)


def test_429_with_only_retry_after_uses_it():
    slept: list[float] = []
    with fake(FIRST, page_size=100) as api:
        api.throttle(1, {"Retry-After": "7"})
        list(source(api, sleep=slept.append).fetch(WINDOW))
    assert slept == [7]


def test_throttling_is_bounded_and_keeps_what_was_stored(conn):
    with fake(FIRST) as api:
        run(conn, source(api), WINDOW)
    before = stored_rows(conn)
    slept: list[float] = []
    with fake(RESTATED) as api:
        api.throttle(10, {"x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after": "2"})
        with pytest.raises(LoadError) as exc:
            run(conn, source(api, sleep=slept.append, max_attempts=3), WINDOW)
    assert slept == [2, 2] and len(api.bodies) == 3
    assert exc.value.reason == "throttled" and "after 3 attempts" in str(exc.value)
    assert stored_rows(conn) == before


def test_a_wait_longer_than_allowed_fails_at_once_instead_of_sleeping():
    slept: list[float] = []
    with fake(FIRST) as api:
        api.throttle(1, {"x-ms-ratelimit-microsoft.costmanagement-tenant-retry-after": "3600"})
        src = source(api, sleep=slept.append, max_wait_seconds=300)
        with pytest.raises(Exception) as exc:
            list(src.fetch(WINDOW))
    assert slept == [] and getattr(exc.value, "reason", None) == "throttled"
    assert "asks to wait 3600s" in str(exc.value)


def test_access_denied_is_one_clear_line(conn):
    with fake(FIRST) as api:
        api.deny(403, "RBACAccessDenied", "The client 'costmon' with object id '00000000-0000-0000-0000-000000000001' "
                 "does not have authorization to perform action 'Microsoft.CostManagement/query/action' over "
                 f"scope '/{SCOPE}' or the scope is invalid.")
        with pytest.raises(LoadError) as exc:
            run(conn, source(api), WINDOW)
    assert len(api.bodies) == 1
    message = str(exc.value)
    assert exc.value.reason == "auth" and "\n" not in message
    assert "does not have authorization" in message and "Cost Management Reader" in message


def test_a_query_with_too_many_groupings_is_refused_before_any_call():
    with pytest.raises(ValueError, match="at most|1 to 2"):
        AzureCostSource(scope=SCOPE, group_by=("Meter", "SubscriptionId"), customer_tag="customer_id")


@pytest.mark.parametrize("scope, expected", [
    ("subscriptions/00000000-0000-0000-0000-000000000000", ("00000000-0000-0000-0000-000000000000",) * 2),
    ("/subscriptions/abc/resourceGroups/ai-rg", ("abc", "abc")),
    ("providers/Microsoft.Billing/billingAccounts/70664866", ("70664866", None)),
    ("/providers/Microsoft.Billing/billingAccounts/123:456_2019-05-31/billingProfiles/XYZ",
     ("123:456_2019-05-31", None)),
])
def test_the_scope_names_the_billing_and_sub_account(scope, expected):
    assert scope_accounts(scope) == expected


def test_retry_after_headers_are_case_insensitive_and_the_longest_wins():
    assert retry_after_seconds({"X-Ms-Ratelimit-Microsoft.CostManagement-Client-Retry-After": "4",
                                "x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after": "9",
                                "Retry-After": "60"}) == 9
    assert retry_after_seconds({"Content-Type": "application/json"}) is None
