"""make bench: the real loader vs `psql \\copy` of the same rows, and the loader's peak RSS.

Starts its own throwaway PostgreSQL (app/tests/support/pgcluster.py), loads N
generated line items through costmon's loader into billing_line_items (a
hypertable where TimescaleDB is loaded), then `psql \\copy`s the very same rows
(written to a file beforehand, not timed) into an identical empty table.
Targets from the issue: ratio >= 0.6, peak RSS <= 150 MB.
"""

from __future__ import annotations

import argparse
import json
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import psycopg  # noqa: E402

from costmon.records import BillingRecord, Window  # noqa: E402
from costmon.store import loader  # noqa: E402
from costmon.store.db import has_timescaledb  # noqa: E402
from costmon.store.migrate import migrate  # noqa: E402
from support import pgcluster  # noqa: E402

UTC = dt.timezone.utc
MODELS = [("aws", "Amazon Bedrock", "claude-3.5-sonnet", "USE1-Claude3.5Sonnet-input-tokens"),
          ("aws", "Amazon Bedrock", "nova-pro", "USE1-NovaPro-output-tokens"),
          ("azure", "Azure OpenAI", "gpt-4o", "gpt 4o 0513 Input global Tokens"),
          ("gcp", "Vertex AI", "gemini-2.5-flash", "Gemini 2.5 Flash GA Text Input - Predictions")]


def records(n: int, window: Window):
    """n deterministic line items spread over the window's days (streamed, never held).

    Values come from small precomputed tables so the benchmark times the loader,
    not Decimal arithmetic in the generator.
    """
    days = [window.start_ts + dt.timedelta(days=d) for d in range((window.end - window.start).days)]
    ends = [d + dt.timedelta(days=1) for d in days]
    costs = [Decimal(i) / Decimal(1000) for i in range(9973)]
    quantities = [Decimal(i) for i in range(1000)]
    customers = [f"cust-{i:03d}" for i in range(40)]
    tags = [{"customer_id": c} for c in customers]
    subs = [f"bench-sub-{i}" for i in range(7)]
    projects = [f"proj-{i}" for i in range(5)]
    nd = len(days)
    for i in range(n):
        prov, service, model, sku = MODELS[i % len(MODELS)]
        d = i % nd
        cost = costs[i % 9973]
        c = i % 40
        yield BillingRecord(
            charge_period_start=days[d], charge_period_end=ends[d], provider=prov,
            billing_account_id="bench-" + prov, billed_cost=cost, effective_cost=cost,
            billing_currency="USD", sub_account_id=subs[i % 7], service_name=service,
            sku_id=sku, charge_description=sku, region="us-east-1", model=model,
            token_type="input" if i % 2 else "output", consumed_quantity=quantities[i % 1000],
            consumed_unit="Tokens", customer_id=customers[c] if i % 11 else None,
            project_id=projects[i % 5], tags=tags[c])


def copy_text(value: object) -> str:
    """COPY text format for the psql file: \\N for NULL, backslash-escaped specials."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dict):
        value = json.dumps(value, separators=(",", ":"))
    s = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def psql_path() -> str:
    found = shutil.which("psql") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))), None)
    if not found:
        raise SystemExit("psql not found: apt-get install postgresql-client-15")
    return str(found)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=60)
    args = ap.parse_args()
    window = Window(dt.date(2026, 1, 1), dt.date(2026, 1, 1) + dt.timedelta(days=args.days))
    rss_start = peak_rss_mb()

    with pgcluster.server() as server:
        pgcluster.wait_ready(server)
        dsn = pgcluster.fresh_database(server, "costmon_bench")
        with psycopg.connect(dsn) as conn:
            migrate(conn)
            timescale = has_timescaledb(conn)
            conn.execute("CREATE TABLE bench_copy (LIKE billing_line_items INCLUDING ALL)")
            if timescale:
                conn.execute("SELECT create_hypertable('bench_copy', 'charge_period_start', "
                             "chunk_time_interval => INTERVAL '7 days')")
            conn.commit()

            t0 = time.perf_counter()
            result = loader.load(conn, source="bench", window=window, records=records(args.rows, window))
            loader_s = time.perf_counter() - t0
            rss_loader = peak_rss_mb()

        # The same rows as COPY text, written before timing psql.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rows.tsv"
            with path.open("w") as f:
                tail = f"\tbench\t{result.run_id}\n"
                for rec in records(args.rows, window):
                    f.write("\t".join(copy_text(getattr(rec, c)) for c in loader.COLUMNS) + tail)
            os.chmod(tmp, 0o755)
            cols = ", ".join(loader.COLUMNS + ("source", "ingest_run_id"))
            t0 = time.perf_counter()
            subprocess.run([psql_path(), dsn, "-v", "ON_ERROR_STOP=1", "-q", "-c",
                            f"\\copy bench_copy ({cols}) FROM '{path}'"], check=True)
            psql_s = time.perf_counter() - t0

        with psycopg.connect(dsn) as conn:
            a = conn.execute("SELECT count(*), sum(effective_cost) FROM billing_line_items").fetchone()
            b = conn.execute("SELECT count(*), sum(effective_cost) FROM bench_copy").fetchone()
        if a != b:
            print(f"MISMATCH: loader {a} vs psql {b}", file=sys.stderr)
            return 1

    loader_rate, psql_rate = args.rows / loader_s, args.rows / psql_s
    ratio = loader_rate / psql_rate
    target = "TimescaleDB hypertable" if timescale else "plain PostgreSQL table"
    print(f"rows: {args.rows:,} over {args.days} days into a {target}")
    print(f"loader:      {loader_rate:>12,.0f} rows/s  ({loader_s:.2f} s, incl. validation and refresh)")
    print(f"psql \\copy:  {psql_rate:>12,.0f} rows/s  ({psql_s:.2f} s)")
    print(f"ratio:       {ratio:.2f}  (target >= 0.60) {'OK' if ratio >= 0.6 else 'BELOW TARGET'}")
    print(f"peak RSS:    {rss_loader:.0f} MB during the load (process start {rss_start:.0f} MB; "
          f"target <= 150 MB) {'OK' if rss_loader <= 150 else 'ABOVE TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
