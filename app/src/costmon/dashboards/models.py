"""3. Model comparison: unit prices per model, input vs output vs cached tokens, model mix."""

from __future__ import annotations

from . import uids, variables
from .board import board
from .panels import money_timeseries, row, sql_timeseries, table
from .sql import DIMENSIONS, FILTERS, TOKENS

UID = uids.MODELS
TITLE = "Model comparison"

TOKEN_ROWS = f"{TOKENS} IS NOT NULL"  # only lines whose unit is a token count

PER_1K = f"""
    SELECT provider, model, token_type, sum({TOKENS}) AS tokens, sum(effective_cost) AS cost,
           1000 * sum(effective_cost) / nullif(sum({TOKENS}), 0) AS cost_per_1k_tokens,
           billing_currency AS currency
    FROM billing_daily
    WHERE $__timeFilter(day) AND {FILTERS} AND {TOKEN_ROWS}
    GROUP BY provider, model, token_type, billing_currency
    ORDER BY provider, model, token_type
    """


TYPES = ("input", "output", "cached_input", "cache_write")


def _per_type(expr: str, suffix: str) -> str:
    return ", ".join(f"sum({expr}) FILTER (WHERE token_type = '{t}') AS {t}_{suffix}" for t in TYPES)


SPLIT = f"""
    SELECT provider, model, {_per_type("effective_cost", "cost")}, {_per_type(TOKENS, "tokens")},
           sum(effective_cost) AS total_cost, billing_currency AS currency
    FROM billing_daily
    WHERE $__timeFilter(day) AND {FILTERS} AND {TOKEN_ROWS}
    GROUP BY provider, model, billing_currency
    ORDER BY total_cost DESC, provider, model
    """

COST_BY_TYPE = f"""
    SELECT $__timeGroupAlias(day, '1d'), token_type AS metric, sum(effective_cost) AS cost
    FROM billing_daily
    WHERE $__timeFilter(day) AND {FILTERS} AND {TOKEN_ROWS}
    GROUP BY 1, 2
    ORDER BY 1, 2
    """

# Token volume is not money: every currency's lines count (the currency filter is not applied).
VOLUME_BY_TYPE = f"""
    SELECT $__timeGroupAlias(day, '1d'), token_type AS metric, sum({TOKENS}) AS tokens
    FROM billing_daily
    WHERE $__timeFilter(day) AND {DIMENSIONS} AND {TOKEN_ROWS}
    GROUP BY 1, 2
    ORDER BY 1, 2
    """

UNIT_PRICE_OVER_TIME = f"""
    SELECT $__timeGroupAlias(day, '1d'), model AS metric,
           1000 * sum(effective_cost) / nullif(sum({TOKENS}), 0) AS cost_per_1k_tokens
    FROM billing_daily
    WHERE $__timeFilter(day) AND {FILTERS} AND {TOKEN_ROWS}
    GROUP BY 1, 2
    ORDER BY 1, 2
    """

MIX = f"""
    SELECT $__timeGroupAlias(day, '1d'), model AS metric, sum(effective_cost) AS cost
    FROM billing_daily
    WHERE $__timeFilter(day) AND {FILTERS}
    GROUP BY 1, 2
    ORDER BY 1, 2
    """


def panels() -> list:
    return [
        row("Unit prices"),
        table("Cost per 1K tokens by model and token type", PER_1K,
              money=("cost",), units={"tokens": "short", "cost_per_1k_tokens": "none"},
              height=10),
        sql_timeseries("Cost per 1K tokens over time (${currency})", UNIT_PRICE_OVER_TIME,
                       unit="none", decimals=6, span=24),
        row("Input vs output vs cached"),
        table("Cost and tokens by token type", SPLIT,
              money=tuple(f"{t}_cost" for t in TYPES) + ("total_cost",),
              units={f"{t}_tokens": "short" for t in TYPES},
              height=9),
        money_timeseries("Token cost by type", COST_BY_TYPE),
        sql_timeseries("Token volume by type", VOLUME_BY_TYPE, unit="short", stacked=True, bars=True),
        row("Model mix"),
        money_timeseries("Model mix over time (share of daily spend)", MIX, percent=True, span=24),
    ]


def build() -> dict:
    return board(UID, TITLE, description="Cost per 1K tokens per model, input vs output vs cached "
                 "token cost and volume, model mix over time.",
                 variables=variables.billing(), panels=panels())
