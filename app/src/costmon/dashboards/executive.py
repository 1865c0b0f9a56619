"""1. Executive overview: what we spend now, where the month lands, who and what drives it."""

from __future__ import annotations

from . import budget_panels, uids, variables
from .board import board
from .panels import link, money_stat, money_timeseries, row, table
from .sql import CUSTOMER, DIMENSIONS, FILTERS, MONTH_START, TODAY, WEEK_START, utc_day

UID = uids.EXECUTIVE
TITLE = "Executive overview"


def _spend_since(start: str) -> str:
    return f"""
        SELECT {TODAY} AS "time", billing_currency AS metric, sum(effective_cost) AS spend
        FROM billing_daily
        WHERE day >= {start} AND {FILTERS}
        GROUP BY billing_currency
        """


# The same forecast as the budgets (timescaledb/011_budget_views.sql, budget_status):
# the month's full days so far, plus the larger of today's spend so far and the trailing
# 7 full days' daily average, plus that average for every day after today.
FORECAST = f"""
    WITH daily AS (
        SELECT day, billing_currency, sum(effective_cost) AS cost
        FROM billing_daily
        WHERE day >= least({MONTH_START}, {utc_day(-7)}) AND day < {utc_day(1)} AND {FILTERS}
        GROUP BY day, billing_currency
    ), parts AS (
        SELECT billing_currency,
               coalesce(sum(cost) FILTER (WHERE day >= {MONTH_START} AND day < {TODAY}), 0) AS full_days,
               coalesce(sum(cost) FILTER (WHERE day >= {TODAY}), 0) AS today_so_far,
               coalesce(sum(cost) FILTER (WHERE day >= {utc_day(-7)} AND day < {TODAY}), 0) / 7 AS avg7
        FROM daily
        GROUP BY billing_currency
    )
    SELECT {TODAY} AS "time", billing_currency AS metric,
           full_days + greatest(today_so_far, avg7)
           + avg7 * (extract(day FROM date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month'
                                      - date_trunc('day', now() AT TIME ZONE 'UTC')) - 1) AS forecast
    FROM parts
    """

BY_CURRENCY = f"""
    SELECT billing_currency AS currency,
           sum(effective_cost) FILTER (WHERE day >= {TODAY}) AS today,
           sum(effective_cost) FILTER (WHERE day >= {WEEK_START}) AS this_week,
           sum(effective_cost) FILTER (WHERE day >= {MONTH_START}) AS month_to_date,
           sum(billed_cost) FILTER (WHERE day >= {MONTH_START}) AS billed_month_to_date
    FROM billing_daily
    WHERE day >= least({MONTH_START}, {WEEK_START}) AND {DIMENSIONS}
    GROUP BY billing_currency
    ORDER BY month_to_date DESC NULLS LAST
    """

DAILY_BY_PROVIDER = f"""
    SELECT $__timeGroupAlias(day, '1d'), provider AS metric, sum(effective_cost) AS cost
    FROM billing_daily
    WHERE $__timeFilter(day) AND {FILTERS}
    GROUP BY 1, 2
    ORDER BY 1, 2
    """

MOVERS = f"""
    WITH w AS (
        SELECT provider, model, billing_currency,
               coalesce(sum(effective_cost) FILTER (WHERE day >= {utc_day(-7)}), 0) AS last_7_days,
               coalesce(sum(effective_cost) FILTER (WHERE day < {utc_day(-7)}), 0) AS previous_7_days
        FROM billing_daily
        WHERE day >= {utc_day(-14)} AND day < {TODAY} AND {FILTERS}
        GROUP BY provider, model, billing_currency
    )
    SELECT provider, model, last_7_days, previous_7_days,
           last_7_days - previous_7_days AS change,
           (last_7_days - previous_7_days) / nullif(previous_7_days, 0) AS change_ratio,
           billing_currency AS currency
    FROM w
    ORDER BY abs(last_7_days - previous_7_days) DESC, provider, model
    LIMIT 10
    """

# Top 10 customers of the range; untagged spend is always listed, whatever its rank.
TOP_CUSTOMERS = f"""
    WITH c AS (
        SELECT {CUSTOMER} AS customer, billing_currency, sum(effective_cost) AS spend
        FROM billing_daily
        WHERE $__timeFilter(day) AND {FILTERS}
        GROUP BY 1, 2
    ), r AS (
        SELECT customer, billing_currency, spend,
               spend / nullif(sum(spend) OVER (), 0) AS share,
               row_number() OVER (ORDER BY spend DESC, customer) AS rank
        FROM c
    )
    SELECT customer, spend, share, billing_currency AS currency
    FROM r WHERE rank <= 10 OR customer = 'untagged'
    ORDER BY spend DESC, customer
    """

TOP_MODELS = f"""
    WITH m AS (
        SELECT provider, model, billing_currency, sum(effective_cost) AS spend
        FROM billing_daily
        WHERE $__timeFilter(day) AND {FILTERS}
        GROUP BY 1, 2, 3
    )
    SELECT provider, model, spend, spend / nullif(sum(spend) OVER (), 0) AS share,
           billing_currency AS currency
    FROM m
    ORDER BY spend DESC, provider, model
    LIMIT 10
    """

FRESHNESS = """
    SELECT source,
           max(finished_at) FILTER (WHERE status = 'success') AS last_success,
           extract(epoch FROM now() - max(finished_at) FILTER (WHERE status = 'success')) AS age,
           max(window_end) FILTER (WHERE status = 'success') AS data_through,
           (array_agg(status ORDER BY started_at DESC))[1] AS last_status,
           (array_agg(error_reason ORDER BY started_at DESC))[1] AS last_error_reason
    FROM ingest_runs
    GROUP BY source
    ORDER BY source
    """


def panels() -> list:
    return [
        row("Spend (UTC days, effective cost)"),
        money_stat("Today", _spend_since(TODAY)),
        money_stat("This week", _spend_since(WEEK_START)),
        money_stat("Month to date", _spend_since(MONTH_START)),
        money_stat("Month-end forecast", FORECAST,
                   description="Month to date (full days) + trailing 7-day daily average "
                               "x remaining days of the month, today included."),
        table("Spend by currency (every currency, never converted)", BY_CURRENCY,
              money=("today", "this_week", "month_to_date", "billed_month_to_date"),
              span=12, height=6),
        money_timeseries("Daily spend by provider", DAILY_BY_PROVIDER, span=12, height=6),
        *budget_panels.executive(),
        row("Leaders and movers"),
        table("Top customers (selected range)", TOP_CUSTOMERS, money=("spend",), percent=("share",),
              links={"customer": [link("Customer detail", uids.CUSTOMERS, customer="customer")]},
              span=12, height=9),
        table("Top models (selected range)", TOP_MODELS, money=("spend",), percent=("share",),
              links={"model": [link("Model comparison", uids.MODELS, model="model")]},
              span=12, height=9),
        table("Biggest movers: last 7 full days vs the 7 before", MOVERS,
              money=("last_7_days", "previous_7_days", "change"), percent=("change_ratio",),
              links={"model": [link("Cost explorer", uids.EXPLORER, model="model", provider="provider")]},
              span=24, height=8),
        row("Data freshness"),
        table("Data freshness per source", FRESHNESS, units={"age": "s"}, span=24, height=6),
    ]


def build() -> dict:
    return board(UID, TITLE, description="Spend today, this week and month to date, the month-end "
                 "forecast, budgets and margins, top customers and models, biggest movers, data freshness.",
                 variables=variables.billing(), panels=panels())
