"""GCP billing export source: the real google-cloud-bigquery client against a local BigQuery
endpoint that executes the source's own SQL over export rows (see fakes/bigquery.py)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest

from costmon.ingest import run
from costmon.records import Window
from costmon.sources.gcp import GcpBillingExportSource, query_sql
from costmon.store.loader import LoadError
from fakes.bigquery import BYTES_PER_ROW, BigQueryFake, export_rows
from support.records import stored_totals

TABLE = "acme-billing.billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9"
FIXTURE = "gcp/billing_export_rows.json"
WINDOW = Window(dt.date(2026, 3, 1), dt.date(2026, 3, 4))
AI_SERVICES = {"Vertex AI", "Gemini API", "Generative Language API"}


def fake(**kw) -> BigQueryFake:
    return BigQueryFake(TABLE, export_rows(FIXTURE), **kw)


def source(api: BigQueryFake, **kw) -> GcpBillingExportSource:
    kw.setdefault("sleep", lambda s: None)
    kw.setdefault("page_size", 3)
    return GcpBillingExportSource(table=TABLE, endpoint=api.url, **kw)


def export_totals(rows, window: Window) -> dict[tuple, tuple[Decimal, Decimal]]:
    """(provider, day, currency) -> (sum cost, sum cost + credits) over the export rows themselves."""
    out: dict[tuple, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for r in rows:
        day = dt.datetime.fromisoformat(r["usage_start_time"]).date()
        if r["service"]["description"] in AI_SERVICES and window.start <= day < window.end:
            credits = sum((c["amount"] for c in r["credits"]), Decimal(0))
            out[("gcp", day, r["currency"])][0] += r["cost"]
            out[("gcp", day, r["currency"])][1] += r["cost"] + credits
    return {k: (v[0], v[1]) for k, v in out.items()}


def stored_rows(conn) -> list[tuple]:
    return conn.execute("""SELECT charge_period_start, billing_account_id, sub_account_id, sku_id, customer_id,
                                  charge_category, model, token_type, billed_cost, effective_cost,
                                  billing_currency, consumed_quantity
                           FROM billing_line_items ORDER BY 1, 2, 3, 4, 5""").fetchall()


def test_export_rows_load_with_daily_totals_equal_to_the_export_per_currency_credits_folded_in(conn):
    with fake() as api:
        src = source(api)
        result = run(conn, src, WINDOW)
    assert stored_totals(conn) == export_totals(export_rows(FIXTURE), WINDOW)
    assert {c for (_, _, c) in stored_totals(conn)} == {"USD", "EUR"}
    assert result.rows == 8  # 9 AI rows in the window; two hours of one SKU and customer make one day row
    # 8 result rows, 3 a page: jobs.query, jobs.get, then getQueryResults for pages 2 and 3.
    assert api.calls() == [("POST", "queries"), ("GET", "jobs"), ("GET", "queries"), ("GET", "queries")]
    assert src.stats.api_calls == 4
    scanned = sum(1 for p in api.partitions if "2026-02-28" <= p[:10] < "2026-03-11")
    assert src.stats.api_cost_usd == (Decimal(scanned * BYTES_PER_ROW) / 2 ** 40 * Decimal("6.25")).quantize(
        Decimal("0.000001"))


def test_rows_are_per_day_sku_project_and_customer_label(conn):
    with fake() as api:
        run(conn, source(api), WINDOW)
    rows = {(r[0].date(), r[3], r[4]): r for r in stored_rows(conn)}
    acme_input = rows[(dt.date(2026, 3, 1), "FDD8-5B4F-0B2B", "acme")]
    assert acme_input[1:3] == ("01A2B3-C4D5E6-F7A8B9", "ai-prod-4821")
    assert acme_input[5:] == ("Usage", "gemini-2.5-flash", "input", Decimal("2.222221"), Decimal("2.022221"),
                              "USD", Decimal("7.407403"))
    untagged = rows[(dt.date(2026, 3, 1), "FDD8-5B4F-0B2B", None)]
    assert untagged[8:10] == (Decimal("0.5"), Decimal("0.5"))
    output = rows[(dt.date(2026, 3, 1), "E1A3-4C7D-9F22", "acme")]
    assert output[6:10] == ("gemini-2.5-flash", "output", Decimal("3.5"), Decimal("2.25"))
    eur = rows[(dt.date(2026, 3, 3), "1127-99B9-1860", "initech")]
    assert eur[1:3] == ("0F1E2D-3C4B5A-697887", "eu-assist-77") and eur[6:8] == ("gemini-2.0-flash", "input")
    assert eur[10] == "EUR"
    tax = [r for r in rows.values() if r[5] == "Tax"]
    assert len(tax) == 1 and tax[0][8] == Decimal("0.42")
    # Compute Engine is not an AI service; 28 February is outside the window.
    assert conn.execute("""SELECT count(*) FROM billing_line_items
                           WHERE billed_cost IN (99, 7)""").fetchone() == (0,)


def test_a_rerun_changes_nothing(conn):
    with fake() as api:
        run(conn, source(api), WINDOW)
        before = stored_rows(conn)
        run(conn, source(api), WINDOW)
    assert stored_rows(conn) == before


def test_late_export_rows_restate_the_days_they_belong_to_without_double_counting(conn):
    with fake() as api:
        run(conn, source(api), WINDOW)
        late = export_rows(FIXTURE, "late_rows")
        api.add(late)  # landed two days later, in a later partition
        run(conn, source(api), Window(dt.date(2026, 3, 2), WINDOW.end))
    assert stored_totals(conn) == export_totals(export_rows(FIXTURE) + late, WINDOW)
    globex = conn.execute("""SELECT billed_cost FROM billing_line_items
                             WHERE sku_id = 'B7C1-2D3E-4F50'""").fetchall()
    assert globex == [(Decimal("3.0"),)]


def test_the_partition_filter_prunes_the_scan_and_late_days_decide_what_is_reread():
    with fake() as api:
        # 1 March only: partitions 28 Feb..7 Mar are scanned, not the whole table.
        src = source(api, late_days=7)
        list(src.fetch(Window(dt.date(2026, 3, 1), dt.date(2026, 3, 2))))
        first_bytes = api.results["job_1"]["bytes"]
        assert first_bytes < BYTES_PER_ROW * len(api.partitions)
        # The 2 March cache row landed in the 4 March partition: with no late days it is not seen.
        day2 = Window(dt.date(2026, 3, 2), dt.date(2026, 3, 3))
        no_late = {r.sku_id for r in source(api, late_days=0).fetch(day2)}
        with_late = {r.sku_id for r in source(api, late_days=2).fetch(day2)}
        # A table partitioned on usage_start_time filters on it alone.
        by_usage = {r.sku_id for r in source(api, partition_column="usage_start_time").fetch(day2)}
    assert "9A0B-1C2D-3E4F" not in no_late and "9A0B-1C2D-3E4F" in with_late and "9A0B-1C2D-3E4F" in by_usage


def test_the_query_is_parameterized_standard_sql_on_the_configured_table():
    with fake() as api:
        src = source(api, services=("Vertex AI",), customer_label="tenant")
        list(src.fetch(WINDOW))
    body = api.queries[0]
    assert body["useLegacySql"] is False and f"`{TABLE}`" in body["query"]
    assert "2026" not in body["query"] and "tenant" not in body["query"]  # values travel as parameters
    params = {p["name"]: p for p in body["queryParameters"]}
    assert params["start"]["parameterValue"] == {"value": "2026-03-01"}
    assert params["end"]["parameterValue"] == {"value": "2026-03-04"}
    assert params["partition_start"]["parameterValue"] == {"value": "2026-02-28"}
    assert params["partition_end"]["parameterValue"] == {"value": "2026-03-11"}
    assert params["services"]["parameterValue"] == {"arrayValues": [{"value": "Vertex AI"}]}
    assert params["customer_label"]["parameterValue"] == {"value": "tenant"}


def test_a_query_still_running_is_waited_for():
    with fake(incomplete_first=True) as api:
        records = list(source(api).fetch(WINDOW))
    assert len(records) == 8


def test_rate_limits_back_off_and_retry_then_succeed():
    slept: list[float] = []
    with fake() as api:
        api.rate_limit(2)
        src = source(api, sleep=slept.append, backoff_seconds=2)
        records = list(src.fetch(WINDOW))
    assert len(records) == 8 and slept == [2, 4]


def test_rate_limits_are_bounded_and_what_was_stored_stays(conn):
    with fake() as api:
        run(conn, source(api), WINDOW)
        before = stored_rows(conn)
        api.rate_limit(10)
        slept: list[float] = []
        with pytest.raises(LoadError) as exc:
            run(conn, source(api, sleep=slept.append, max_attempts=3), WINDOW)
    assert exc.value.reason == "throttled" and len(slept) == 2
    assert stored_rows(conn) == before


def test_access_denied_is_one_clear_line(conn):
    with fake() as api:
        api.deny()
        with pytest.raises(LoadError) as exc:
            run(conn, source(api), WINDOW)
    message = str(exc.value)
    assert exc.value.reason == "auth" and "\n" not in message
    assert "Access Denied" in message and "BigQuery Data Viewer" in message


@pytest.mark.parametrize("table", ["billing.table", "proj.data set.t", "p.d.t`; DROP TABLE x; --"])
def test_a_malformed_table_name_is_refused(table):
    with pytest.raises(ValueError, match="project.dataset.table"):
        query_sql(table, "_PARTITIONTIME")
