"""5. Anomalies: daily spend against its trailing 7-day average, spike days, newly used models."""

from __future__ import annotations

from . import uids, variables
from .board import board
from .panels import money_timeseries, row, sql_timeseries, table
from .sql import CUSTOMER, FILTERS, YESTERDAY, utc_day, var

UID = uids.ANOMALIES
TITLE = "Anomalies"

# Trailing average = spend of the 7 previous days / 7 (a day without spend counts as 0).
TRAILING = ("sum(spend) OVER (PARTITION BY {by} ORDER BY day"
            " RANGE BETWEEN interval '168 hours' PRECEDING AND interval '24 hours' PRECEDING) / 7")
# The range, plus the 7 days before it that the first days' averages need.
RANGE_WITH_HISTORY = ("day >= $__timeFrom()::timestamptz - interval '168 hours'"
                      " AND day <= $__timeTo()::timestamptz")
MIN_SPEND = f"{var('min_spend')}::numeric"
RATIO = f"{var('ratio')}::numeric"

VS_TRAILING = f"""
    WITH d AS (
        SELECT day, sum(effective_cost) AS spend
        FROM billing_daily
        WHERE {RANGE_WITH_HISTORY} AND {FILTERS}
        GROUP BY day
    ), s AS (
        SELECT day, spend, {TRAILING.format(by="true")} AS trailing_avg
        FROM d
    )
    SELECT day AS "time", spend AS "daily spend", coalesce(trailing_avg, 0) AS "trailing 7-day average"
    FROM s
    WHERE $__timeFilter(day)
    ORDER BY 1
    """

RATIO_BY_PROVIDER = f"""
    WITH d AS (
        SELECT day, provider, sum(effective_cost) AS spend
        FROM billing_daily
        WHERE {RANGE_WITH_HISTORY} AND {FILTERS}
        GROUP BY day, provider
    ), s AS (
        SELECT day, provider, spend, {TRAILING.format(by="provider")} AS trailing_avg
        FROM d
    )
    SELECT day AS "time", provider AS metric, spend / nullif(trailing_avg, 0) AS ratio
    FROM s
    WHERE $__timeFilter(day)
    ORDER BY 1, 2
    """

_SERIES = f"""
    base AS (
        SELECT day, provider, model, {CUSTOMER} AS customer, billing_currency,
               sum(effective_cost) AS spend
        FROM billing_daily
        WHERE {{window}} AND {FILTERS}
        GROUP BY 1, 2, 3, 4, 5
    ), d AS (
        SELECT day, 'provider' AS dimension, provider AS value, billing_currency, sum(spend) AS spend
        FROM base GROUP BY 1, 2, 3, 4
        UNION ALL
        SELECT day, 'model', model, billing_currency, sum(spend) FROM base GROUP BY 1, 2, 3, 4
        UNION ALL
        SELECT day, 'customer', customer, billing_currency, sum(spend) FROM base GROUP BY 1, 2, 3, 4
    ), s AS (
        SELECT *, coalesce({TRAILING.format(by="dimension, value, billing_currency")}, 0) AS trailing_avg
        FROM d
    )"""


def _series(window: str) -> str:
    """Daily spend per provider, per model and per customer (one row each), with trailing averages."""
    return _SERIES.replace("{window}", window).strip()


SPIKES = f"""
    WITH {_series(RANGE_WITH_HISTORY)}
    SELECT day AS "time", dimension, value, spend, trailing_avg,
           spend / nullif(trailing_avg, 0) AS ratio, billing_currency AS currency
    FROM s
    WHERE $__timeFilter(day) AND spend >= {MIN_SPEND}
      AND trailing_avg > 0 AND spend >= {RATIO} * trailing_avg
    ORDER BY day DESC, ratio DESC, dimension, value
    LIMIT 200
    """

RECENT = f"""
    WITH {_series(f"day >= {utc_day(-8)}")}
    SELECT day AS "time", dimension, value, spend, trailing_avg,
           spend / nullif(trailing_avg, 0) AS ratio, billing_currency AS currency
    FROM s
    WHERE day >= {YESTERDAY} AND spend >= {MIN_SPEND}
    ORDER BY spend / nullif(trailing_avg, 0) DESC NULLS FIRST, spend DESC, dimension, value
    LIMIT 100
    """

# Per customer: a model billed yesterday or today that the customer was not billed for in
# the 7 days before (a model new to everyone shows for each customer using it).
NEW_MODELS = f"""
    WITH recent AS (
        SELECT {CUSTOMER} AS customer, provider, model, billing_currency,
               sum(effective_cost) AS spend, min(day) AS first_seen
        FROM billing_daily
        WHERE day >= {YESTERDAY} AND {FILTERS}
        GROUP BY 1, provider, model, billing_currency
    ), before AS (
        SELECT DISTINCT {CUSTOMER} AS customer, provider, model
        FROM billing_daily
        WHERE day >= {utc_day(-8)} AND day < {YESTERDAY} AND {FILTERS}
    )
    SELECT r.first_seen AS "time", r.customer, r.provider, r.model, r.spend,
           r.billing_currency AS currency
    FROM recent r
    LEFT JOIN before b USING (customer, provider, model)
    WHERE b.model IS NULL
    ORDER BY r.spend DESC, r.customer, r.provider, r.model
    """


def panels() -> list:
    return [
        row("Spend against its trailing 7-day average"),
        money_timeseries("Daily spend vs trailing 7-day average", VS_TRAILING, stacked=False,
                         bars=False),
        sql_timeseries("Daily spend / trailing 7-day average, per provider (${currency})", RATIO_BY_PROVIDER,
                       unit="none", decimals=2),
        table("Spike days: spend >= ${ratio} x trailing 7-day average (per provider, model, customer)",
              SPIKES, money=("spend", "trailing_avg"), units={"ratio": "none"}, height=10),
        table("Yesterday and today vs trailing 7-day average (per provider, model, customer)", RECENT,
              money=("spend", "trailing_avg"), units={"ratio": "none"}, height=10),
        table("New models: billed to a customer yesterday or today, not in the 7 days before", NEW_MODELS,
              money=("spend",), height=7),
    ]


def build() -> dict:
    return board(UID, TITLE, description="Daily spend vs trailing 7-day average per provider, model "
                 "and customer; spike days; models new this week.",
                 variables=[*variables.billing(),
                            variables.choice("ratio", "Spike ratio", ["2", "3", "5", "10"], "3"),
                            variables.choice("min_spend", "Minimum daily spend",
                                             ["0", "0.1", "1", "10", "100", "1000"], "1")],
                 panels=panels())
