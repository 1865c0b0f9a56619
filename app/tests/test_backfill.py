"""Backfill: chunked, resumable, forced; and the CLI commands that reach the cloud sources."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from costmon.backfill import backfill
from costmon.ingest import run
from costmon.records import Window
from costmon.store.loader import LoadError
from fakes.azure_cost import CostManagementFake, load_result
from fakes.sources import DailySource

MARCH = Window(dt.date(2026, 3, 1), dt.date(2026, 3, 18))  # 17 days: chunks of 7, 7, 3


def loaded_days(conn, source: str = "daily") -> int:
    return conn.execute("SELECT count(DISTINCT charge_period_start) FROM billing_line_items WHERE source = %s",
                        (source,)).fetchone()[0]


def test_a_window_is_loaded_in_chunks_each_its_own_run_with_progress(conn):
    calls = []
    src = DailySource()
    result = backfill(conn, src, MARCH, chunk_days=7, progress=lambda *a: calls.append(a))
    chunks = [Window(dt.date(2026, 3, 1), dt.date(2026, 3, 8)), Window(dt.date(2026, 3, 8), dt.date(2026, 3, 15)),
              Window(dt.date(2026, 3, 15), dt.date(2026, 3, 18))]
    assert src.windows == chunks
    assert calls == [(1, 3, chunks[0], "loaded", 7), (2, 3, chunks[1], "loaded", 7), (3, 3, chunks[2], "loaded", 3)]
    assert (result.rows, result.skipped, result.api_calls) == (17, [], 17)
    assert conn.execute("SELECT count(*), sum(billed_cost) FROM billing_line_items").fetchone() == (17, Decimal("21.25"))
    assert conn.execute("SELECT window_start, window_end FROM ingest_runs ORDER BY id").fetchall() == [
        (c.start, c.end) for c in chunks]


def test_a_stopped_backfill_resumes_where_it_stopped(conn):
    failing = DailySource(fail_on={dt.date(2026, 3, 10)})
    with pytest.raises(LoadError) as exc:
        backfill(conn, failing, MARCH, chunk_days=7)
    assert exc.value.reason == "throttled"
    assert "1 of 3 chunk(s) before it are loaded; run the same backfill again to resume" in str(exc.value)
    assert loaded_days(conn) == 7

    calls = []
    healthy = DailySource()
    result = backfill(conn, healthy, MARCH, chunk_days=7, progress=lambda *a: calls.append(a[3]))
    assert healthy.windows == [Window(dt.date(2026, 3, 8), dt.date(2026, 3, 15)),
                               Window(dt.date(2026, 3, 15), dt.date(2026, 3, 18))]  # nothing paid twice
    assert calls == ["skipped", "loaded", "loaded"] and len(result.skipped) == 1
    assert loaded_days(conn) == 17
    assert conn.execute("SELECT count(*) FROM billing_line_items").fetchone() == (17,)


def test_force_reloads_and_restated_figures_replace(conn):
    backfill(conn, DailySource(amount="1.25"), MARCH, chunk_days=7)
    skipped = backfill(conn, DailySource(amount="2.00"), MARCH, chunk_days=7)
    assert len(skipped.skipped) == 3 and skipped.rows == 0
    forced = backfill(conn, DailySource(amount="2.00"), MARCH, chunk_days=7, force=True)
    assert len(forced.loaded) == 3
    assert conn.execute("SELECT count(*), sum(billed_cost) FROM billing_line_items").fetchone() == (17, Decimal("34.00"))


def test_a_chunk_inside_a_larger_successful_run_counts_as_loaded(conn):
    run(conn, DailySource(), Window(dt.date(2026, 3, 1), dt.date(2026, 3, 16)))  # e.g. a scheduled catch-up run
    src = DailySource()
    result = backfill(conn, src, MARCH, chunk_days=7)
    assert src.windows == [Window(dt.date(2026, 3, 15), dt.date(2026, 3, 18))]
    assert len(result.skipped) == 2


def test_chunk_days_must_be_positive(conn):
    with pytest.raises(ValueError):
        backfill(conn, DailySource(), MARCH, chunk_days=0)


# ---- through the CLI, against a local Azure Cost Management endpoint ------------------------------

SCOPE = "subscriptions/6f1e2a4b-0000-4c1d-9e2f-1234567890ab"


def cli(*args, env):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("COSTMON_", "AZURE_", "AWS_"))}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "costmon.cli", *args], capture_output=True, text=True,
                          env=full, timeout=120)


@pytest.fixture
def azure_api():
    files = {"ActualCost": "azure/query_actualcost.json", "AmortizedCost": "azure/query_amortizedcost.json"}
    with CostManagementFake({t: load_result(f) for t, f in files.items()}) as api:
        yield api


def test_cli_backfill_and_ingest_reach_a_configured_cloud_source(db, conn, azure_api):
    env = {"COSTMON_DATABASE_URL": db, "COSTMON_AZURE_SCOPE": SCOPE, "COSTMON_AZURE_ENDPOINT": azure_api.url}
    first = cli("backfill", "--source", "azure", "--start", "2026-03-01", "--end", "2026-03-04",
                "--chunk-days", "2", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == ("azure: backfilled 2026-03-01..2026-03-04: 2 chunk(s) loaded (11 line items), "
                                    "0 already loaded and skipped; 8 upstream call(s)")
    assert conn.execute("""SELECT DISTINCT billing_account_id, sub_account_id FROM billing_line_items""").fetchall() \
        == [("6f1e2a4b-0000-4c1d-9e2f-1234567890ab",) * 2]
    again = cli("backfill", "--source", "azure", "--start", "2026-03-01", "--end", "2026-03-04",
                "--chunk-days", "2", env=env)
    assert "0 chunk(s) loaded (0 line items), 2 already loaded and skipped; 0 upstream call(s)" in again.stdout
    assert len(azure_api.bodies) == 8  # the resumed backfill asked nothing upstream

    ingest = cli("ingest", "--source", "azure", "--start", "2026-03-03", "--end", "2026-03-04", env=env)
    assert ingest.returncode == 0, ingest.stderr
    assert conn.execute("SELECT count(*) FROM billing_line_items").fetchone() == (11,)


def test_cli_names_the_missing_variable_of_a_source(db):
    ingest = cli("ingest", "--source", "azure", "--start", "2026-03-01", "--end", "2026-03-02",
                 env={"COSTMON_DATABASE_URL": db})
    assert ingest.returncode == 1
    assert ingest.stderr.strip() == ("costmon ingest: source azure: COSTMON_AZURE_SCOPE is not set: "
                                     "the Cost Management scope, e.g. subscriptions/<id>")
    check = cli("check", "--offline", env={"COSTMON_SOURCES": "gcp", "COSTMON_GCP_BILLING_TABLE": "billing"})
    assert check.returncode == 1
    assert ("costmon check: source gcp: COSTMON_GCP_BILLING_TABLE='billing' is invalid: "
            "expected project.dataset.table") in check.stderr.splitlines()
    bad = cli("backfill", "--source", "demo", "--start", "2026-03-01", "--end", "2026-03-02", "--chunk-days", "0",
              env={"COSTMON_DATABASE_URL": db})
    assert bad.returncode == 2 and "expected a whole number >= 1" in bad.stderr
