"""4. Customers: who spends what, their share, how regularly; untagged spend is a customer row."""

from __future__ import annotations

from . import budget_panels, uids, variables
from .board import board
from .panels import link, money_stat, money_timeseries, row, stat, table
from .sql import CUSTOMER, DAILY_BY_CUSTOMER, FILTERS, TODAY

UID = uids.CUSTOMERS
TITLE = "Customers"

PER_CUSTOMER = f"""
    WITH d AS (
        SELECT {CUSTOMER} AS customer, billing_currency, day, sum(effective_cost) AS spend
        FROM billing_daily
        WHERE $__timeFilter(day) AND {FILTERS}
        GROUP BY 1, 2, 3
    )
    SELECT customer, sum(spend) AS spend,
           sum(spend) / nullif(sum(sum(spend)) OVER (), 0) AS share,
           count(*) FILTER (WHERE spend <> 0) AS days_active,
           sum(spend) / nullif(count(*) FILTER (WHERE spend <> 0), 0) AS avg_daily_spend,
           min(day) AS first_day, max(day) AS last_day,
           billing_currency AS currency
    FROM d
    GROUP BY customer, billing_currency
    ORDER BY spend DESC, customer
    """

UNTAGGED = f"""
    SELECT {TODAY} AS "time", billing_currency AS metric,
           coalesce(sum(effective_cost) FILTER (WHERE customer_id IS NULL), 0) AS untagged
    FROM billing_daily
    WHERE $__timeFilter(day) AND {FILTERS}
    GROUP BY billing_currency
    """

UNTAGGED_SHARE = f"""
    SELECT sum(effective_cost) FILTER (WHERE customer_id IS NULL) / nullif(sum(effective_cost), 0)
           AS untagged_share
    FROM billing_daily
    WHERE $__timeFilter(day) AND {FILTERS}
    """

ACTIVE = f"""
    SELECT count(DISTINCT customer_id) AS customers
    FROM billing_daily
    WHERE $__timeFilter(day) AND {FILTERS} AND customer_id IS NOT NULL
    """

CUSTOMER_MODELS = f"""
    SELECT {CUSTOMER} AS customer, provider, model, sum(effective_cost) AS spend,
           billing_currency AS currency
    FROM billing_daily
    WHERE $__timeFilter(day) AND {FILTERS}
    GROUP BY 1, provider, model, billing_currency
    ORDER BY spend DESC, customer, provider, model
    LIMIT 100
    """


def panels() -> list:
    return [
        row("Who spends"),
        stat("Customers with spend", ACTIVE, unit="short", decimals=0, span=8),
        money_stat("Untagged spend", UNTAGGED, span=8,
                   description="Spend with no customer tag: shown, never hidden."),
        stat("Untagged share", UNTAGGED_SHARE, unit="percentunit", decimals=1, span=8,
             thresholds=((None, "green"), (0.05, "orange"), (0.2, "red"))),
        table("Spend per customer (untagged is its own row)", PER_CUSTOMER,
              money=("spend", "avg_daily_spend"), percent=("share",),
              links={"customer": [link("Cost explorer for this customer", uids.EXPLORER,
                                       customer="customer")]},
              height=10),
        money_timeseries("Daily spend per customer (top 10, untagged, other)", DAILY_BY_CUSTOMER, span=24),
        table("Spend per customer and model", CUSTOMER_MODELS, money=("spend",), height=10),
        *budget_panels.customers(),
    ]


def build() -> dict:
    return board(UID, TITLE, description="Spend per customer, share of total, days active, average "
                 "daily spend; untagged spend shown as its own row; customer budgets, forecasts and margins.",
                 variables=variables.billing(), panels=panels())
