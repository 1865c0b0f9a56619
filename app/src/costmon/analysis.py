"""Budget use, month-end forecast, anomalies, unexpected models and margins, for a given day.

Thin readers of the SQL functions in timescaledb/011_budget_views.sql (the
dashboards use the same functions through views), so the collector, the
dashboards and the tests agree on every figure. `today` is always passed in:
the caller owns the clock. Amounts are Decimal with their currency beside them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import psycopg

UTC = dt.timezone.utc


def _date(ts: dt.datetime) -> dt.date:
    return ts.astimezone(UTC).date()


@dataclass(frozen=True)
class BudgetUse:
    scope: str  # global | provider | customer
    name: str
    currency: str
    limit: Decimal
    month_to_date: Decimal
    used_ratio: Decimal
    today: Decimal  # today's spend so far (part of month_to_date)
    trailing_7d_daily: Decimal  # mean daily spend over the 7 full days before today
    days_left: int  # days of the month from today on, today included
    forecast: Decimal
    forecast_ratio: Decimal


def budget_use(conn: psycopg.Connection, today: dt.date) -> list[BudgetUse]:
    rows = conn.execute("SELECT * FROM budget_status_at(%s) ORDER BY scope, name", (today,)).fetchall()
    return [BudgetUse(*r) for r in rows]


@dataclass(frozen=True)
class Anomaly:
    day: dt.date
    dimension: str  # provider | model | customer
    name: str
    currency: str
    spend: Decimal
    baseline: Decimal  # mean daily spend of the 7 days before `day`
    ratio: Decimal | None  # None when there is no baseline


def anomalies(conn: psycopg.Connection, start: dt.date, stop: dt.date) -> list[Anomaly]:
    """Each day in [start, stop) per provider, model and customer against its trailing 7-day mean."""
    rows = conn.execute("SELECT * FROM cost_anomalies_between(%s, %s) ORDER BY day, dimension, name, currency",
                        (start, stop)).fetchall()
    return [Anomaly(_date(r[0]), *r[1:]) for r in rows]


def recent_anomalies(conn: psycopg.Connection, today: dt.date) -> list[Anomaly]:
    """Yesterday (complete) and today (partial so far)."""
    return anomalies(conn, today - dt.timedelta(days=1), today + dt.timedelta(days=1))


@dataclass(frozen=True)
class UnexpectedModel:
    customer: str  # 'untagged' for spend without a customer tag
    model: str
    currency: str
    providers: str  # comma-separated
    first_day: dt.date
    spend: Decimal  # today's and yesterday's spend on it


def unexpected_models(conn: psycopg.Connection, today: dt.date) -> list[UnexpectedModel]:
    rows = conn.execute("SELECT * FROM unexpected_models_at(%s) ORDER BY customer, model, currency",
                        (today,)).fetchall()
    return [UnexpectedModel(r[0], r[1], r[2], r[3], _date(r[4]), r[5]) for r in rows]


@dataclass(frozen=True)
class CustomerMargin:
    customer: str
    display_name: str
    tier: str
    currency: str
    revenue: Decimal  # the tier's monthly price
    llm_cost: Decimal  # month to date, in the tier's currency
    margin: Decimal
    margin_ratio: Decimal | None  # None for a free tier
    llm_budget: Decimal


def customer_margins(conn: psycopg.Connection, today: dt.date) -> list[CustomerMargin]:
    rows = conn.execute("SELECT * FROM customer_margin_at(%s) ORDER BY customer", (today,)).fetchall()
    return [CustomerMargin(*r) for r in rows]


@dataclass(frozen=True)
class TierMargin:
    tier: str
    currency: str
    customers: int
    revenue: Decimal
    llm_cost: Decimal
    margin: Decimal
    margin_ratio: Decimal | None


def tier_margins(conn: psycopg.Connection, today: dt.date) -> list[TierMargin]:
    rows = conn.execute("SELECT * FROM tier_margin_at(%s) ORDER BY tier, currency", (today,)).fetchall()
    return [TierMargin(*r) for r in rows]
