"""2. Cost explorer: cost over time by provider, service, model and customer, with drill-down."""

from __future__ import annotations

from . import uids, variables
from .board import board
from .panels import link, money_timeseries, row, table
from .sql import CUSTOMER, DAILY_BY_CUSTOMER, FILTERS

UID = uids.EXPLORER
TITLE = "Cost explorer"


def _daily_by(dimension: str) -> str:
    return f"""
        SELECT $__timeGroupAlias(day, '1d'), {dimension} AS metric, sum(effective_cost) AS cost
        FROM billing_daily
        WHERE $__timeFilter(day) AND {FILTERS}
        GROUP BY 1, 2
        ORDER BY 1, 2
        """


BREAKDOWN = f"""
    SELECT provider, billing_account_id AS account, coalesce(service_name, 'unknown') AS service,
           model, sum(billed_cost) AS billed, sum(effective_cost) AS effective,
           sum(line_items) AS line_items, billing_currency AS currency
    FROM billing_daily
    WHERE $__timeFilter(day) AND {FILTERS}
    GROUP BY provider, billing_account_id, service_name, model, billing_currency
    ORDER BY effective DESC, provider, account, service, model
    LIMIT 200
    """

BY_CUSTOMER = f"""
    SELECT {CUSTOMER} AS customer, count(DISTINCT model) AS models,
           sum(effective_cost) AS effective, billing_currency AS currency
    FROM billing_daily
    WHERE $__timeFilter(day) AND {FILTERS}
    GROUP BY 1, billing_currency
    ORDER BY effective DESC, customer
    LIMIT 200
    """

# Finer than a day: the individual line items, so this one reads billing_line_items.
LINE_ITEMS = f"""
    SELECT charge_period_start AS "time", provider, billing_account_id AS account,
           sub_account_id AS sub_account, service_name AS service, sku_id AS sku,
           charge_description AS description, model, token_type, {CUSTOMER} AS customer,
           resource_id AS resource, consumed_quantity AS quantity, consumed_unit AS unit,
           effective_cost, billed_cost, billing_currency AS currency
    FROM billing_line_items
    WHERE $__timeFilter(charge_period_start) AND {FILTERS}
    ORDER BY effective_cost DESC, charge_period_start DESC
    LIMIT 100
    """


def panels() -> list:
    return [
        row("Cost over time"),
        money_timeseries("Daily cost by provider", _daily_by("provider")),
        money_timeseries("Daily cost by service", _daily_by("coalesce(service_name, 'unknown')")),
        money_timeseries("Daily cost by model", _daily_by("model")),
        money_timeseries("Daily cost by customer (top 10, untagged, other)", DAILY_BY_CUSTOMER),
        row("Breakdown (click a value to drill down)"),
        table("Cost by provider, account, service and model", BREAKDOWN,
              money=("billed", "effective"),
              links={"model": [link("Model comparison", uids.MODELS, model="model")],
                     "provider": [link("Filter by provider", uids.EXPLORER, provider="provider")],
                     "account": [link("Filter by account", uids.EXPLORER, account="account")]},
              height=10),
        table("Cost by customer", BY_CUSTOMER, money=("effective",),
              links={"customer": [link("Customer detail", uids.CUSTOMERS, customer="customer")]},
              span=8, height=10),
        table("Most expensive line items", LINE_ITEMS, money=("effective_cost", "billed_cost"),
              span=16, height=10),
    ]


def build() -> dict:
    return board(UID, TITLE, description="Cost over time stacked by provider, service, model and "
                 "customer; breakdown tables with drill-down links.",
                 variables=variables.billing(), panels=panels())
