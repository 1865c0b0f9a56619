"""Prometheus metrics for budgets, forecasts, anomalies, unexpected models and margins.

A custom collector registered beside metrics.CostCollector in `costmon serve`.
Like that one it reads the database at scrape time through the SQL functions
in analysis.py, caches one snapshot for a few seconds, and never fails a
scrape: with the database down it exposes only `costmon_budget_up 0`.

Label values are bounded: budgets are configured (customers beyond
`max_customers`, the least used first, are left out and counted); anomaly
series cover every provider, and the `top_models` models and `top_customers`
customers furthest past the CostAnomaly line (3x their baseline), in money, per
currency: a small customer's runaway day outranks a big customer's busy day.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import psycopg
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import analysis
from .budgets import BudgetConfig, Threshold
from .snapshot_cache import SnapshotCache

ANOMALY_RATIO = 3  # CostAnomaly's line in rules/budgets.yml; ranks which anomaly series to keep
MAX_UNEXPECTED = 50  # (customer, model) pairs; a burst of new models must not explode the label set
PERIODS = {"yesterday": -1, "today": 0}


@dataclass
class BudgetSnapshot:
    up: bool = False
    budgets: list[analysis.BudgetUse] = field(default_factory=list)
    customers_omitted: int = 0
    anomalies: list[tuple[str, analysis.Anomaly]] = field(default_factory=list)  # (period, row)
    unexpected: list[analysis.UnexpectedModel] = field(default_factory=list)
    margins: list[analysis.CustomerMargin] = field(default_factory=list)
    tiers: list[analysis.TierMargin] = field(default_factory=list)


def _top_movers(rows: Iterable[analysis.Anomaly], n: int) -> list[analysis.Anomaly]:
    """The n rows with the most money beyond 3x their baseline, per currency (never compared across)."""
    by_ccy: dict[str, list[analysis.Anomaly]] = defaultdict(list)
    for r in rows:
        by_ccy[r.currency].append(r)
    out = []
    for group in by_ccy.values():
        group.sort(key=lambda r: (-(r.spend - ANOMALY_RATIO * r.baseline), r.name))
        out.extend(group[:n])
    return out


def build_snapshot(conn: psycopg.Connection, today: dt.date, *, top_customers: int = 10,
                   top_models: int = 10, max_customers: int = 100) -> BudgetSnapshot:
    snap = BudgetSnapshot(up=True)

    uses = analysis.budget_use(conn, today)
    customers = sorted((u for u in uses if u.scope == "customer"),
                       key=lambda u: (-max(u.used_ratio, u.forecast_ratio), u.name))
    snap.budgets = [u for u in uses if u.scope != "customer"] + customers[:max_customers]
    snap.customers_omitted = max(len(customers) - max_customers, 0)

    recent = analysis.recent_anomalies(conn, today)
    for period, offset in PERIODS.items():
        day = today + dt.timedelta(days=offset)
        rows = [r for r in recent if r.day == day]
        chosen = [r for r in rows if r.dimension == "provider"]
        chosen += _top_movers((r for r in rows if r.dimension == "model"), top_models)
        chosen += _top_movers((r for r in rows if r.dimension == "customer"), top_customers)
        snap.anomalies.extend((period, r) for r in chosen)

    unexpected = analysis.unexpected_models(conn, today)
    snap.unexpected = sorted(unexpected, key=lambda u: (-u.spend, u.customer, u.model))[:MAX_UNEXPECTED]

    margins = sorted(analysis.customer_margins(conn, today), key=lambda m: (m.margin, m.customer))
    snap.margins = margins[:max_customers]
    snap.tiers = analysis.tier_margins(conn, today)
    return snap


class BudgetCollector(Collector):
    """One cached database snapshot per `cache_seconds`; thresholds come from the config."""

    def __init__(self, connect: Callable[[], psycopg.Connection], config: BudgetConfig, *,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
                 cache_seconds: float = 30, top_customers: int = 10, top_models: int = 10,
                 max_customers: int = 100, on_error: Callable[[Exception], None] | None = None):
        self._connect = connect
        self._thresholds: tuple[Threshold, ...] = config.thresholds
        self._clock = clock
        self._limits = dict(top_customers=top_customers, top_models=top_models, max_customers=max_customers)
        self._on_error = on_error
        self._cache = SnapshotCache(self._take, cache_seconds)

    def snapshot(self) -> BudgetSnapshot:
        return self._cache.get()

    def _take(self) -> BudgetSnapshot:
        try:
            with self._connect() as conn:
                return build_snapshot(conn, self._clock().astimezone(dt.timezone.utc).date(), **self._limits)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail; the up gauge says why not
            if self._on_error:
                self._on_error(exc)
            return BudgetSnapshot(up=False)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # dynamic label sets: skip the registration-time collect

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        up = GaugeMetricFamily("costmon_budget_up", "1 when the last scrape could compute budget figures")
        up.add_metric([], 1.0 if snap.up else 0.0)
        yield up
        if not snap.up:
            return
        yield from _budget_metrics(snap, self._thresholds)
        yield from _anomaly_metrics(snap)
        yield from _margin_metrics(snap)


def _gauge(name: str, doc: str, labels: list[str], rows: Iterable[tuple[list[str], object]]) -> Metric:
    g = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        g.add_metric(values, float(value))
    return g


def _budget_metrics(snap: BudgetSnapshot, thresholds: tuple[Threshold, ...]) -> Iterator[Metric]:
    labels = ["scope", "name", "currency"]

    def each(attr: str):
        return (([u.scope, u.name, u.currency], getattr(u, attr)) for u in snap.budgets)

    yield _gauge("costmon_budget_limit", "Monthly budget in its currency", labels, each("limit"))
    yield _gauge("costmon_budget_spend", "Month-to-date effective spend in the budget's currency (UTC month)",
                 labels, each("month_to_date"))
    yield _gauge("costmon_budget_used_ratio", "Month-to-date spend / budget", labels, each("used_ratio"))
    yield _gauge("costmon_budget_forecast", "Month-end spend forecast in the budget's currency",
                 labels, each("forecast"))
    yield _gauge("costmon_budget_forecast_ratio", "Month-end forecast / budget", labels, each("forecast_ratio"))
    yield _gauge("costmon_budget_threshold_ratio",
                 "A configured alert threshold of the budget, as a fraction of it",
                 labels + ["threshold", "severity"],
                 (([u.scope, u.name, u.currency, t.label, t.severity], t.ratio)
                  for u in snap.budgets for t in thresholds))
    yield _gauge("costmon_budget_customers_omitted",
                 "Customer budgets left out of these series by the label cap", [],
                 [([], snap.customers_omitted)])


def _anomaly_metrics(snap: BudgetSnapshot) -> Iterator[Metric]:
    labels = ["dimension", "name", "period", "currency"]

    def each(attr: str, rows=snap.anomalies):
        return (([r.dimension, r.name, period, r.currency], getattr(r, attr)) for period, r in rows
                if getattr(r, attr) is not None)

    yield _gauge("costmon_cost_anomaly_ratio",
                 "Spend of the day / mean daily spend of the 7 days before it", labels, each("ratio"))
    yield _gauge("costmon_cost_anomaly_spend", "Spend of the day the anomaly ratio is about", labels,
                 each("spend"))
    yield _gauge("costmon_cost_anomaly_baseline", "Mean daily spend of the 7 days before that day",
                 labels, each("baseline"))
    yield _gauge("costmon_unexpected_model_usage",
                 "Spend today and yesterday on a model the customer did not use in the 7 days before",
                 ["customer", "model", "currency"],
                 (([u.customer, u.model, u.currency], u.spend) for u in snap.unexpected))


def _margin_metrics(snap: BudgetSnapshot) -> Iterator[Metric]:
    labels = ["customer", "tier", "currency"]
    yield _gauge("costmon_customer_revenue", "Monthly plan price of the customer's tier", labels,
                 (([m.customer, m.tier, m.currency], m.revenue) for m in snap.margins))
    yield _gauge("costmon_customer_margin", "Plan price minus month-to-date LLM cost", labels,
                 (([m.customer, m.tier, m.currency], m.margin) for m in snap.margins))
    yield _gauge("costmon_customer_margin_ratio", "Customer margin / plan price", labels,
                 (([m.customer, m.tier, m.currency], m.margin_ratio) for m in snap.margins
                  if m.margin_ratio is not None))
    yield _gauge("costmon_tier_margin", "Plan revenue minus month-to-date LLM cost of a tier's customers",
                 ["tier", "currency"], (([t.tier, t.currency], t.margin) for t in snap.tiers))
    yield _gauge("costmon_tier_margin_ratio", "Tier margin / tier revenue", ["tier", "currency"],
                 (([t.tier, t.currency], t.margin_ratio) for t in snap.tiers if t.margin_ratio is not None))


def collectors(settings, connect: Callable[[], psycopg.Connection]) -> list[Collector]:
    """What `costmon serve` registers beside the main collector (the config is validated here)."""
    from . import budgets
    from . import logging as log

    logger = log.get()
    return [BudgetCollector(
        connect, budgets.load(settings), cache_seconds=settings.metrics_cache_seconds,
        top_customers=settings.metrics_top_customers, top_models=settings.metrics_top_models,
        on_error=lambda exc: logger.error("budget_metrics_query_failed",
                                          error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__))]
