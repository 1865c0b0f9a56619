"""make bench-dashboards: latency of every dashboard SQL query on a large generated data set.

Starts its own throwaway PostgreSQL (app/tests/support/pgcluster.py; with TimescaleDB
preloaded when the extension is installed, unless --postgres-only), loads N hourly
line items spread over D days ending today through costmon's real loader, then
runs every SQL panel query and variable query of every dashboard (expanded the
way Grafana expands them: All selected, the default time range) R times and
prints p50/p95 per query. Target from the issue: p95 <= 100 ms on TimescaleDB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import psycopg  # noqa: E402

import costmon.dashboards as dashboards  # noqa: E402
from costmon.dashboards import datasources  # noqa: E402
from costmon.records import BillingRecord, Window  # noqa: E402
from costmon.store import loader  # noqa: E402
from costmon.store.db import has_timescaledb  # noqa: E402
from costmon.store.migrate import migrate  # noqa: E402
from support import pgcluster  # noqa: E402
from support.grafana_sql import ALL, TimeRange, expand_sql, variables_used  # noqa: E402

UTC = dt.timezone.utc
TARGET_MS = 100.0
# provider, billing account, currency, service, models
PROVIDERS = [
    ("aws", "bench-aws-payer", "USD", "Amazon Bedrock",
     ["claude-3.5-sonnet", "claude-3-haiku", "nova-pro", "llama-3.1-70b"]),
    ("azure", "bench-azure-ea", "EUR", "Azure OpenAI", ["gpt-4o", "gpt-4o-mini", "o3-mini"]),
    ("gcp", "bench-gcp-billing", "USD", "Vertex AI", ["gemini-2.5-pro", "gemini-2.5-flash"]),
    ("openai", "bench-openai-org", "USD", "OpenAI API", ["gpt-4.1", "gpt-4.1-mini", "text-embedding-3"]),
]
TOKEN_TYPES = ("input", "output", "cached_input")
REGIONS = ("us-east-1", "eu-west-1", "us-central1")


def combos(customers: int) -> list[tuple]:
    """Every (provider spec, model, token type, customer) a line can belong to."""
    names = [None] + [f"cust-{i:04d}" for i in range(customers)]  # None: untagged
    out = []
    for spec in PROVIDERS:
        for model in spec[4]:
            for token_type in TOKEN_TYPES:
                for customer in names:
                    out.append((spec, model, token_type, customer))
    return out


def records(n: int, window: Window, customers: int, first_index: int = 0):
    """n deterministic hourly line items over the window (streamed, never held).

    Each day draws its lines from a rotating slice of the combinations, so a
    day holds about n/days/24 distinct daily rows of the aggregate, like real
    hourly billing exports.
    """
    days = window.days()
    all_combos = combos(customers)
    per_day = max(1, n // len(days))
    hours = [dt.timedelta(hours=h) for h in range(24)]
    costs = [Decimal(i) / Decimal(100000) for i in range(1, 10007)]
    quantities = [Decimal(1000 + 37 * i) for i in range(997)]
    subs = [f"bench-sub-{k}" for k in range(5)]
    projects = [f"proj-{k}" for k in range(11)]
    produced = 0
    for d, day in enumerate(days):
        start = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
        count = per_day if d < len(days) - 1 else n - produced
        for j in range(count):
            i = first_index + produced
            c = (d * 7919 + j // 24) % len(all_combos)
            spec, model, token_type, customer = all_combos[c]
            provider, account, currency, service, _ = spec
            hour_start = start + hours[j % 24]
            cost = costs[i % len(costs)]
            yield BillingRecord(
                charge_period_start=hour_start, charge_period_end=hour_start + hours[1],
                provider=provider, billing_account_id=account, billed_cost=cost, effective_cost=cost,
                billing_currency=currency, sub_account_id=subs[c % 5],
                service_name=service, sku_id=f"{model}-{token_type}", charge_description=model,
                region=REGIONS[c % 3], model=model, token_type=token_type,
                consumed_quantity=quantities[i % len(quantities)], consumed_unit="Tokens",
                customer_id=customer, project_id=projects[c % 11])
            produced += 1


def load(conn: psycopg.Connection, rows: int, days: int, customers: int, today: dt.date) -> float:
    """Load through the real loader in 30-day slices; returns seconds."""
    window = Window(today - dt.timedelta(days=days - 1), today + dt.timedelta(days=1))
    per_day = rows // days
    t0 = time.perf_counter()
    done = 0
    chunks = window.chunks(30)
    for k, chunk in enumerate(chunks):
        n = per_day * len(chunk.days()) if k < len(chunks) - 1 else rows - done
        loader.load(conn, source="bench", window=chunk, records=records(n, chunk, customers, done))
        done += n
        print(f"  loaded {done:,} / {rows:,} line items", end="\r", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return time.perf_counter() - t0


def queries() -> list[tuple[str, str, str, dict]]:
    """(dashboard uid, label, raw SQL, board) for every SQL target and variable query."""
    out = []
    for m in dashboards.DASHBOARDS:
        board = m.build()
        for v in board["templating"]["list"]:
            if v["type"] == "query":
                out.append((m.UID, f"variable ${v['name']}", v["query"], board))
        for panel in board.get("panels", []):
            for t in panel.get("targets", []):
                if t.get("datasource", {}).get("type") == datasources.POSTGRES_TYPE:
                    out.append((m.UID, panel["title"], t["rawSql"], board))
    return out


def expand(conn: psycopg.Connection, sql: str, board: dict, time_range: TimeRange,
           timescaledb: bool, first_values: dict) -> str:
    variables = {v["name"]: v for v in board["templating"]["list"]}
    values = {}
    for name in variables_used(sql):
        var = variables[name]
        if var.get("includeAll"):
            values[name] = ALL
        elif var["type"] == "custom":
            values[name] = var["current"]["value"]
        else:  # single-value query variable: its first value, as Grafana picks on load
            if name not in first_values:
                first = expand(conn, var["query"], board, time_range, timescaledb, first_values)
                first_values[name] = conn.execute(first).fetchone()[0]
            values[name] = first_values[name]
    all_values = {n: v["allValue"] for n, v in variables.items() if v.get("allValue")}
    return expand_sql(sql, time_range=time_range, values=values, all_values=all_values,
                      timescaledb=timescaledb)


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="line items to generate (10M)")
    ap.add_argument("--days", type=int, default=730, help="days of history ending today (2 years)")
    ap.add_argument("--customers", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=10, help="timed runs per query (after one warm-up)")
    ap.add_argument("--range-days", type=int, default=30, help="dashboard time range (now-Nd/d .. now)")
    ap.add_argument("--postgres-only", action="store_true",
                    help="plain PostgreSQL even where TimescaleDB is installed (billing_daily is a table the loader maintains)")
    args = ap.parse_args()
    # The latency target is about the TimescaleDB aggregate: use it wherever it is installed.
    os.environ["COSTMON_TEST_TIMESCALEDB"] = "0" if args.postgres_only else "1"
    if args.rows < args.days:
        ap.error("--rows must be at least --days")
    now = dt.datetime.now(UTC)

    with pgcluster.server() as server:
        pgcluster.wait_ready(server)
        dsn = pgcluster.fresh_database(server, "costmon_bench_dashboards")
        with psycopg.connect(dsn) as conn:
            migrate(conn)
            timescale = has_timescaledb(conn)
            load_s = load(conn, args.rows, args.days, args.customers, now.date())
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            daily_rows = conn.execute("SELECT count(*) FROM billing_daily").fetchone()[0]
            # After the load, so the ingest runs it recorded fall inside the range.
            time_range = TimeRange.last_days(args.range_days, dt.datetime.now(UTC))
            first_values: dict = {}
            results = []
            for uid, label, sql, board in queries():
                text = expand(conn, sql, board, time_range, timescale, first_values.setdefault(uid, {}))
                n = len(conn.execute(text).fetchall())  # warm-up, and the row count
                samples = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    conn.execute(text).fetchall()
                    samples.append((time.perf_counter() - t0) * 1000)
                results.append((uid, label, n, percentile(samples, 50), percentile(samples, 95)))
                print(f"  {uid:<24} {label[:60]:<60} p95 {results[-1][4]:8.1f} ms", file=sys.stderr)

    kind = "TimescaleDB (billing_daily = continuous aggregate)" if timescale else \
        "plain PostgreSQL (billing_daily = a view over billing_line_items)"
    print(f"\n{args.rows:,} line items over {args.days} days ({daily_rows:,} billing_daily rows), "
          f"{kind}; loaded in {load_s:.0f} s")
    print(f"time range now-{args.range_days}d/d..now, every variable All; {args.repeat} runs per query\n")
    print(f"{'dashboard':<24} {'query':<62} {'rows':>6} {'p50 ms':>9} {'p95 ms':>9}")
    for uid, label, n, p50, p95 in results:
        flag = "" if p95 <= TARGET_MS else "  > target"
        print(f"{uid:<24} {label[:62]:<62} {n:>6} {p50:>9.1f} {p95:>9.1f}{flag}")
    over = [r for r in results if r[4] > TARGET_MS]
    worst = max(results, key=lambda r: r[4])
    print(f"\n{len(results)} queries; {len(over)} with p95 above {TARGET_MS:.0f} ms; "
          f"worst p95 {worst[4]:.1f} ms ({worst[0]} / {worst[1]}); "
          f"median of p95 {statistics.median(r[4] for r in results):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
