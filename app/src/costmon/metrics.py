"""Prometheus metrics read from the database at scrape time (see METRICS.md).

The collector queries aggregates, not raw lines, and caches the result for a
few seconds so a burst of scrapes costs one round of queries. Label sets are
bounded: top-N customers and models keep their names, the rest become `other`.
Money stays Decimal until the very last step (exposition is float by format).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import __version__
from .snapshot_cache import SnapshotCache

PERIODS = ("today", "yesterday", "month_to_date", "last_7_days")
OTHER = "other"
UNTAGGED = "untagged"


def period_bounds(today: dt.date) -> dict[str, tuple[dt.date, dt.date]]:
    """Half-open [start, end) UTC day ranges for each period label."""
    tomorrow = today + dt.timedelta(days=1)
    return {
        "today": (today, tomorrow),
        "yesterday": (today - dt.timedelta(days=1), today),
        "month_to_date": (today.replace(day=1), tomorrow),
        "last_7_days": (today - dt.timedelta(days=7), today),
    }


_PERIOD_CTE = """
WITH periods(period, p_start, p_end) AS (VALUES
    ('today', %(today)s::date, %(tomorrow)s::date),
    ('yesterday', %(yesterday)s::date, %(today)s::date),
    ('month_to_date', %(month_start)s::date, %(tomorrow)s::date),
    ('last_7_days', %(week_start)s::date, %(today)s::date))
"""

# One pass over the days the periods span; the grouping sets give every breakdown we expose.
_COST_SQL = _PERIOD_CTE + """
SELECT p.period, b.provider, coalesce(b.service_name, ''), b.model, b.customer_id,
       b.billing_currency, sum(b.effective_cost), sum(b.billed_cost),
       sum(CASE WHEN b.model = 'unknown' THEN b.line_items ELSE 0 END)
FROM billing_daily b
JOIN periods p ON b.day >= p.p_start AND b.day < p.p_end
WHERE b.day >= %(low)s AND b.day < %(tomorrow)s
GROUP BY 1, 2, 3, 4, 5, 6
"""

_FRESHNESS_SQL = """
SELECT provider, extract(epoch FROM max(charge_period_start))
FROM billing_line_items WHERE charge_period_start >= %(since)s GROUP BY provider
"""

_RUNS_SQL = """
SELECT source, status, coalesce(error_reason, ''), count(*), sum(rows_loaded),
       sum(unclassified_rows), sum(api_calls), sum(api_cost_usd)
FROM ingest_runs WHERE status <> 'running' GROUP BY 1, 2, 3
"""

_LAST_SQL = """
SELECT DISTINCT ON (source) source, status, extract(epoch FROM finished_at - started_at), rows_loaded
FROM ingest_runs WHERE status <> 'running' ORDER BY source, finished_at DESC
"""

_LAST_SUCCESS_SQL = """
SELECT source, extract(epoch FROM max(finished_at)) FROM ingest_runs
WHERE status = 'success' GROUP BY source
"""


@dataclass
class Snapshot:
    database_up: bool = False
    query_seconds: float = 0.0
    series_dropped: int = 0
    effective: dict[tuple[str, ...], Decimal] = field(default_factory=dict)
    billed: dict[tuple[str, ...], Decimal] = field(default_factory=dict)
    customer: dict[tuple[str, ...], Decimal] = field(default_factory=dict)
    unclassified: dict[str, int] = field(default_factory=dict)
    freshness: dict[str, float] = field(default_factory=dict)
    runs: list[tuple] = field(default_factory=list)
    last: list[tuple] = field(default_factory=list)
    last_success: dict[str, float] = field(default_factory=dict)


def _top(totals: dict[str, dict[str, Decimal]], n: int, keep: Iterable[str] = ()) -> set[str]:
    """The n names with the largest spend; ranked per currency so no currencies are added."""
    best = {name: max(by_ccy.values()) for name, by_ccy in totals.items()}
    ranked = sorted(best, key=lambda k: (-best[k], k))
    return set(ranked[:n]) | set(keep)


def _fold(rows: Iterable[tuple], key: Callable[[tuple], tuple], acc: dict) -> None:
    for row in rows:
        k, v = key(row)
        acc[k] = acc.get(k, Decimal(0)) + v


def build_snapshot(conn: psycopg.Connection, today: dt.date, *, top_customers: int,
                   top_models: int, max_series: int) -> Snapshot:
    bounds = period_bounds(today)
    params = {
        "today": today, "tomorrow": bounds["today"][1], "yesterday": bounds["yesterday"][0],
        "month_start": bounds["month_to_date"][0], "week_start": bounds["last_7_days"][0],
        "low": min(bounds["month_to_date"][0], bounds["last_7_days"][0]),
    }
    snap = Snapshot(database_up=True)
    rows = conn.execute(_COST_SQL, params).fetchall()

    # Rank customers and models to bound label values: the biggest this month, plus
    # the biggest yesterday and today, so a small customer that suddenly spikes keeps
    # its own name (and its alert) instead of vanishing into `other`.
    models_by: dict[str, dict[str, dict[str, Decimal]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(Decimal)))
    customers_by: dict[str, dict[str, dict[str, Decimal]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(Decimal)))
    for period, _prov, _svc, model, customer, ccy, eff, _billed, _unk in rows:
        models_by[period][model][ccy] += eff
        customers_by[period][customer or UNTAGGED][ccy] += eff
    models = _top(models_by["month_to_date"], top_models, keep=("unknown",))
    customers = {UNTAGGED}
    for period in ("month_to_date", "yesterday", "today"):
        customers |= _top(customers_by[period], top_customers)

    _fold(rows, lambda r: ((r[0], r[1], r[2], r[3] if r[3] in models else OTHER, r[5]), r[6]),
          snap.effective)
    _fold(rows, lambda r: ((r[0], r[1], r[5]), r[7]), snap.billed)
    _fold(rows, lambda r: ((r[0], (r[4] or UNTAGGED) if (r[4] or UNTAGGED) in customers else OTHER,
                            r[5]), r[6]), snap.customer)
    for period, prov, *_rest, unk in rows:
        if period == "month_to_date":
            snap.unclassified[prov] = snap.unclassified.get(prov, 0) + int(unk)

    since = dt.datetime.combine(today - dt.timedelta(days=62), dt.time(), tzinfo=dt.timezone.utc)
    snap.freshness = {p: float(ts) for p, ts in conn.execute(_FRESHNESS_SQL, {"since": since})}
    snap.runs = conn.execute(_RUNS_SQL).fetchall()
    snap.last = conn.execute(_LAST_SQL).fetchall()
    snap.last_success = {s: float(ts) for s, ts in conn.execute(_LAST_SUCCESS_SQL)}
    snap.series_dropped = _cap(snap, max_series)
    return snap


def _cap(snap: Snapshot, max_series: int) -> int:
    """Drop the smallest cost series beyond the cap; health series are never dropped."""
    fixed = len(snap.billed) + len(snap.unclassified) + len(snap.freshness) + 4 * len(snap.last_success)
    budget = max(max_series - fixed, 0)
    series = [(abs(v), "effective", k) for k, v in snap.effective.items()] + \
             [(abs(v), "customer", k) for k, v in snap.customer.items()]
    if len(series) <= budget:
        return 0
    series.sort(key=lambda s: s[0])
    dropped = series[: len(series) - budget]
    for _v, kind, key in dropped:
        getattr(snap, kind).pop(key)
    return len(dropped)


class CostCollector(Collector):
    """Custom collector: one cached database snapshot per `cache_seconds`."""

    def __init__(self, connect: Callable[[], psycopg.Connection], *, cache_seconds: float = 30,
                 top_customers: int = 10, top_models: int = 10, max_series: int = 2000,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
                 thresholds: Iterable[tuple[str, str, Decimal]] = (),
                 on_error: Callable[[Exception], None] | None = None):
        self._connect = connect
        self._limits = dict(top_customers=top_customers, top_models=top_models, max_series=max_series)
        self._clock = clock
        self._on_error = on_error
        self._thresholds = tuple(thresholds)
        self._cache = SnapshotCache(self._take, cache_seconds)

    def snapshot(self) -> Snapshot:
        return self._cache.get()

    def _take(self) -> Snapshot:
        started = time.perf_counter()
        try:
            with self._connect() as conn:
                snap = build_snapshot(conn, self._clock().astimezone(dt.timezone.utc).date(),
                                      **self._limits)
        except (psycopg.Error, OSError, Exception) as exc:  # noqa: BLE001 - scrape must not fail
            if self._on_error:
                self._on_error(exc)
            snap = Snapshot(database_up=False)
        snap.query_seconds = time.perf_counter() - started
        return snap

    def describe(self) -> Iterator[Metric]:
        return iter(())  # dynamic label sets: skip the registration-time collect

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        yield from _billing_metrics(snap)
        yield from _health_metrics(snap)
        up = GaugeMetricFamily("costmon_database_up", "1 when the last scrape could query the database")
        up.add_metric([], 1.0 if snap.database_up else 0.0)
        yield up
        q = GaugeMetricFamily("costmon_metrics_query_duration_seconds",
                              "Time the last scrape spent querying the database")
        q.add_metric([], snap.query_seconds)
        yield q
        d = GaugeMetricFamily("costmon_metrics_series_dropped",
                              "Cost series dropped by COSTMON_METRICS_MAX_SERIES in the last scrape")
        d.add_metric([], snap.series_dropped)
        yield d
        limits = GaugeMetricFamily("costmon_alert_threshold",
                                   "Alert threshold from COSTMON_ALERT_THRESHOLDS (money per UTC day)",
                                   labels=["alert", "currency"])
        for alert, currency, amount in self._thresholds:
            limits.add_metric([alert, currency], float(amount))
        yield limits
        info = GaugeMetricFamily("costmon_build_info", "Collector version", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info


def _billing_metrics(snap: Snapshot) -> Iterator[Metric]:
    eff = GaugeMetricFamily("costmon_billing_effective_cost",
                            "Effective cost (amortized, after credits) in the billing currency",
                            labels=["period", "provider", "service", "model", "currency"])
    for key, value in sorted(snap.effective.items()):
        eff.add_metric(list(key), float(value))
    yield eff
    billed = GaugeMetricFamily("costmon_billing_billed_cost", "Billed (invoiced) cost in the billing currency",
                               labels=["period", "provider", "currency"])
    for key, value in sorted(snap.billed.items()):
        billed.add_metric(list(key), float(value))
    yield billed
    cust = GaugeMetricFamily("costmon_customer_effective_cost",
                             "Effective cost attributed to a customer (untagged and other included)",
                             labels=["period", "customer", "currency"])
    for key, value in sorted(snap.customer.items()):
        cust.add_metric(list(key), float(value))
    yield cust
    unk = GaugeMetricFamily("costmon_billing_unclassified_line_items",
                            "Month-to-date line items whose SKU matched no classification rule",
                            labels=["provider"])
    for prov, n in sorted(snap.unclassified.items()):
        unk.add_metric([prov], n)
    yield unk
    fresh = GaugeMetricFamily("costmon_billing_last_charge_timestamp_seconds",
                              "Newest charge period start held for the provider", labels=["provider"])
    for prov, ts in sorted(snap.freshness.items()):
        fresh.add_metric([prov], ts)
    yield fresh


def _health_metrics(snap: Snapshot) -> Iterator[Metric]:
    last_ok = GaugeMetricFamily("costmon_source_last_success_timestamp_seconds",
                                "End time of the source's last successful run", labels=["source"])
    for source, ts in sorted(snap.last_success.items()):
        last_ok.add_metric([source], ts)
    yield last_ok
    duration = GaugeMetricFamily("costmon_source_last_run_duration_seconds",
                                 "Duration of the source's last finished run", labels=["source"])
    rows = GaugeMetricFamily("costmon_source_last_run_rows",
                             "Line items loaded by the source's last successful run", labels=["source"])
    for source, status, seconds, loaded in snap.last:
        duration.add_metric([source], float(seconds or 0))
        if status == "success":
            rows.add_metric([source], float(loaded))
    yield duration
    yield rows

    runs = CounterMetricFamily("costmon_source_runs", "Finished source runs", labels=["source", "status"])
    errors = CounterMetricFamily("costmon_source_errors", "Failed source runs by reason",
                                 labels=["source", "reason"])
    loaded = CounterMetricFamily("costmon_source_rows", "Line items loaded", labels=["source"])
    unclassified = CounterMetricFamily("costmon_source_unclassified_rows",
                                       "Line items loaded with model unknown", labels=["source"])
    calls = CounterMetricFamily("costmon_source_api_calls", "Upstream billing API calls", labels=["source"])
    price = CounterMetricFamily("costmon_source_api_cost_usd",
                                "Estimated price of upstream billing API calls", labels=["source"])
    by_status: dict[tuple[str, str], int] = defaultdict(int)
    by_source: dict[str, list] = defaultdict(lambda: [0, 0, 0, Decimal(0)])
    for source, status, reason, count, n_rows, n_unk, n_calls, cost in snap.runs:
        by_status[(source, status)] += count
        if status == "failed":
            errors.add_metric([source, reason or "unknown"], count)
        acc = by_source[source]
        acc[0] += n_rows
        acc[1] += n_unk
        acc[2] += n_calls
        acc[3] += cost
    for (source, status), count in sorted(by_status.items()):
        runs.add_metric([source, status], count)
    for source, (n_rows, n_unk, n_calls, cost) in sorted(by_source.items()):
        loaded.add_metric([source], n_rows)
        unclassified.add_metric([source], n_unk)
        calls.add_metric([source], n_calls)
        price.add_metric([source], float(cost))
    yield from (runs, errors, loaded, unclassified, calls, price)
