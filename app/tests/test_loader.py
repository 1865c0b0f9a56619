"""The loader replaces a (source, account, days) slice atomically: no double counting, ever."""

import datetime as dt
from decimal import Decimal

import psycopg
import pytest

from costmon.records import BillingRecord, Window
from costmon.store.loader import LoadError, load
from support.records import line

W = Window(dt.date(2026, 3, 1), dt.date(2026, 3, 4))


def totals(conn, table="billing_line_items"):
    col = "day" if table == "billing_daily" else "charge_period_start"
    return {(r[0], r[1].date(), r[2]): r[3] for r in conn.execute(
        f"SELECT provider, {col}, billing_currency, sum(effective_cost) FROM {table} "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")}


def runs(conn):
    return conn.execute("SELECT status, rows_loaded, error_reason FROM ingest_runs ORDER BY id").fetchall()


def test_loading_the_same_window_twice_gives_identical_totals(conn):
    batch = [line("2026-03-01", "1.25"), line("2026-03-02", "2.50"), line("2026-03-03", "0.0000001")]
    load(conn, source="aws", window=W, records=batch)
    first = totals(conn)
    load(conn, source="aws", window=W, records=batch)
    assert totals(conn) == first
    assert first[("aws", dt.date(2026, 3, 3), "USD")] == Decimal("0.0000001")  # exact, not float
    assert conn.execute("SELECT count(*) FROM billing_line_items").fetchone()[0] == 3
    assert [r[0] for r in runs(conn)] == ["success", "success"]


def test_restated_figures_replace_the_old_ones_and_vanished_rows_go(conn):
    load(conn, source="aws", window=W, records=[line("2026-03-01", "10"), line("2026-03-02", "20")])
    load(conn, source="aws", window=W, records=[line("2026-03-01", "11.5")])  # day 2 restated away
    assert totals(conn) == {("aws", dt.date(2026, 3, 1), "USD"): Decimal("11.5")}


def test_a_window_replaces_only_its_own_days_and_source(conn):
    load(conn, source="aws", window=Window(dt.date(2026, 2, 28), dt.date(2026, 3, 1)),
         records=[line("2026-02-28", "5")])
    load(conn, source="other", window=W, records=[line("2026-03-01", "7")])
    load(conn, source="aws", window=W, records=[line("2026-03-01", "1")])
    load(conn, source="aws", window=W, records=[])
    assert totals(conn) == {("aws", dt.date(2026, 2, 28), "USD"): Decimal("5"),
                            ("aws", dt.date(2026, 3, 1), "USD"): Decimal("7")}


def test_fixed_accounts_replace_only_those_accounts(conn):
    load(conn, source="aws", window=W, records=[line("2026-03-01", "1", account="A"),
                                                line("2026-03-01", "2", account="B")])
    load(conn, source="aws", window=W, accounts=["A"], records=[line("2026-03-01", "3", account="A")])
    got = dict(conn.execute("SELECT billing_account_id, sum(billed_cost) FROM billing_line_items GROUP BY 1"))
    assert got == {"A": Decimal("3"), "B": Decimal("2")}
    with pytest.raises(LoadError, match="not one of this slice's accounts"):
        load(conn, source="aws", window=W, accounts=["A"], records=[line("2026-03-01", "9", account="B")])


def test_currencies_are_never_summed_together(conn):
    load(conn, source="azure", window=W, records=[
        line("2026-03-01", "10", provider="azure", currency="USD"),
        line("2026-03-01", "10", provider="azure", currency="EUR")])
    got = totals(conn, "billing_daily")
    assert got == {("azure", dt.date(2026, 3, 1), "EUR"): Decimal("10"),
                   ("azure", dt.date(2026, 3, 1), "USD"): Decimal("10")}


def test_a_failure_mid_load_keeps_the_previous_slice_and_records_the_failure(conn):
    load(conn, source="aws", window=W, records=[line("2026-03-01", "4"), line("2026-03-02", "6")])
    before = totals(conn)

    def broken():
        yield line("2026-03-01", "100")
        yield line("2026-03-02", "100")
        raise ConnectionResetError("upstream closed the stream")

    with pytest.raises(LoadError, match="upstream closed the stream"):
        load(conn, source="aws", window=W, records=broken())
    assert totals(conn) == before
    assert runs(conn)[-1] == ("failed", 0, "source")


def test_a_record_outside_the_window_is_rejected_because_it_would_double_count(conn):
    load(conn, source="aws", window=W, records=[line("2026-03-01", "4")])
    with pytest.raises(LoadError, match="outside window"):
        load(conn, source="aws", window=W, records=[line("2026-03-01", "1"), line("2026-03-04", "1")])
    assert totals(conn) == {("aws", dt.date(2026, 3, 1), "USD"): Decimal("4")}
    assert runs(conn)[-1][0] == "failed" and runs(conn)[-1][2] == "bad_record"


@pytest.mark.parametrize("bad, message", [
    (dict(billed_cost=1.5), "must be a Decimal"),
    (dict(billing_currency="usd"), "ISO 4217"),
    (dict(charge_category="Refund"), "charge_category"),
    (dict(token_type="prompt"), "token_type"),
    (dict(billed_cost=Decimal("NaN")), "finite"),
])
def test_malformed_records_are_rejected_with_the_field_named(conn, bad, message):
    rec = line("2026-03-01", "1")
    for k, v in bad.items():
        setattr(rec, k, v)
    with pytest.raises(LoadError, match=message):
        load(conn, source="aws", window=W, records=[rec])
    assert totals(conn) == {}


def test_text_with_tabs_newlines_and_backslashes_survives_copy(conn):
    rec = line("2026-03-01", "1", charge_description="a\tb\nc\\d", tags={"team": "x\ty", "n": 1})
    load(conn, source="aws", window=W, records=[rec])
    got = conn.execute("SELECT charge_description, tags FROM billing_line_items").fetchone()
    assert got == ("a\tb\nc\\d", {"team": "x\ty", "n": 1})


def test_unknown_models_are_counted_in_the_run(conn):
    load(conn, source="aws", window=W, records=[line("2026-03-01", "1", model="unknown", token_type="other"),
                                                line("2026-03-01", "1")])
    assert conn.execute("SELECT unclassified_rows FROM ingest_runs").fetchone() == (1,)


def test_database_down_during_load_is_one_clear_error(db):
    conn = psycopg.connect(db)
    with psycopg.connect(db, autocommit=True) as admin:
        load(conn, source="aws", window=W, records=[line("2026-03-01", "1")])
        pid = conn.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises((LoadError, psycopg.OperationalError)):
        load(conn, source="aws", window=W, records=[line("2026-03-01", "2")])
    with psycopg.connect(db) as fresh:
        assert totals(fresh) == {("aws", dt.date(2026, 3, 1), "USD"): Decimal("1")}


def test_billing_daily_always_equals_the_line_items_it_summarizes(conn):
    def by_day(table, col):
        return {r[:4]: r[4:] for r in conn.execute(
            f"""SELECT source, billing_account_id, ({col} AT TIME ZONE 'UTC')::date, billing_currency,
                       sum(effective_cost), sum(billed_cost) FROM {table} GROUP BY 1, 2, 3, 4""")}

    load(conn, source="aws", window=W, records=[line("2026-03-01", "1", account="A"),
                                                line("2026-03-02", "2", account="B"),
                                                line("2026-03-02", "3", account="B", currency="EUR")])
    load(conn, source="gcp", window=W, records=[line("2026-03-01", "5", provider="gcp")])
    load(conn, source="aws", window=W, accounts=["B"], records=[line("2026-03-03", "7", account="B")])
    with pytest.raises(LoadError):
        load(conn, source="aws", window=W, records=[line("2026-03-09", "1")])
    daily = by_day("billing_daily", "day")
    assert daily == by_day("billing_line_items", "charge_period_start")
    assert daily[("aws", "B", dt.date(2026, 3, 3), "USD")] == (Decimal("7"), Decimal("7"))
    assert ("aws", "B", dt.date(2026, 3, 2), "EUR") not in daily


@pytest.mark.timescaledb
def test_a_writer_that_cannot_refresh_the_aggregate_gets_one_clear_line_and_keeps_the_rows(timescale, db):
    from support import pgcluster

    timescale.execute("CREATE ROLE loader_writer LOGIN PASSWORD 'w' IN ROLE costmon_writer")
    timescale.commit()
    with psycopg.connect(pgcluster.with_params(db, user="loader_writer", password="w")) as writer:
        with pytest.raises(LoadError, match="line items stored, but refreshing billing_daily failed") as err:
            load(writer, source="aws", window=W, records=[line("2026-03-01", "4")])
    assert err.value.reason == "refresh"
    assert totals(timescale) == {("aws", dt.date(2026, 3, 1), "USD"): Decimal("4")}
