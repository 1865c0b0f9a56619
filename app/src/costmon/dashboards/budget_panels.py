"""Budget, forecast and margin panels for the Executive overview and Customers dashboards.

They read the views of timescaledb/011_budget_views.sql (over billing_daily,
the same figures as the costmon_budget_* metrics): budgets and tiers come from
the config file, synced into tables. "This month" is the UTC calendar month
whatever the time picker says; a budget only counts spend in its own currency.
"""

from __future__ import annotations

from . import uids
from .panels import gauge, link, money_trend, row, table
from .sql import any_of, var

CURRENCY = var("currency")
RATIO_STEPS = ((None, "green"), (0.8, "orange"), (1.0, "red"))

# ---- Executive overview: the global and provider budgets -----------------------------------

_COMPANY = f"""scope IN ('global', 'provider') AND currency = {CURRENCY}
      AND (scope = 'global' OR {any_of('name', 'provider')})"""

BUDGET_USED = f"""
    SELECT CASE WHEN scope = 'global' THEN 'all providers' ELSE name END AS budget, used_ratio AS used
    FROM budget_status
    WHERE {_COMPANY}
    ORDER BY scope <> 'global', name
    """

FORECAST_VS_BUDGET = f"""
    SELECT CASE WHEN scope = 'global' THEN 'all providers' ELSE name END AS budget,
           forecast_ratio AS forecast_vs_budget
    FROM budget_status
    WHERE {_COMPANY}
    ORDER BY scope <> 'global', name
    """

# Day of the month on the x axis: the forecast runs to the month's end, past "now".
BURN = f"""
    SELECT extract(day FROM "time" AT TIME ZONE 'UTC')::int AS day_of_month,
           actual AS spent, forecast, monthly_limit AS budget
    FROM budget_burn
    WHERE scope = 'global' AND currency = {CURRENCY}
    ORDER BY 1
    """

BUDGETS = """
    SELECT scope, name, monthly_limit AS budget, month_to_date AS spent, used_ratio AS used,
           trailing_7d_daily AS daily_average, forecast, forecast_ratio AS forecast_vs_budget,
           currency
    FROM budget_status
    WHERE scope IN ('global', 'provider')
    ORDER BY scope <> 'global', forecast_ratio DESC, name
    """

TIERS = """
    SELECT tier, customers, revenue, llm_cost, margin, margin_ratio, currency
    FROM tier_margin
    ORDER BY margin_ratio, tier
    """

FORECAST_HELP = ("Month-end forecast = full days of the month so far + max(today so far, trailing "
                 "7-day daily average) + that average x the days after today (UTC). Budgets come "
                 "from the config file; only spend in the budget's currency counts.")


def executive() -> list:
    return [
        row("Budgets this month (UTC calendar month)"),
        gauge("Budget used (${currency})", BUDGET_USED, span=6, thresholds=RATIO_STEPS,
              description="Month-to-date spend / monthly budget, company-wide and per provider."),
        gauge("Month-end forecast vs budget (${currency})", FORECAST_VS_BUDGET, span=6, max_value=1.5,
              thresholds=RATIO_STEPS, description=FORECAST_HELP),
        money_trend("Month burn: spent, forecast, budget (${currency}, all providers)", BURN,
                    x_field="day_of_month", dashed=("forecast",), span=12, description=FORECAST_HELP),
        table("Budgets: spend, forecast and budget per scope (every currency)", BUDGETS,
              money=("budget", "spent", "daily_average", "forecast"), percent=("used", "forecast_vs_budget"),
              span=14, height=7, description=FORECAST_HELP),
        table("Margin per plan tier this month (plan revenue - LLM cost)", TIERS,
              money=("revenue", "llm_cost", "margin"), percent=("margin_ratio",), span=10, height=7),
    ]


# ---- Customers: customer budgets and margins ---------------------------------------------------

_CUSTOMERS = f"scope = 'customer' AND currency = {CURRENCY} AND {any_of('name', 'customer')}"

CUSTOMER_USED = f"""
    SELECT name AS customer, used_ratio AS used
    FROM budget_status
    WHERE {_CUSTOMERS}
    ORDER BY used_ratio DESC, name
    LIMIT 12
    """

CUSTOMER_FORECAST = f"""
    SELECT name AS customer, forecast_ratio AS forecast_vs_budget
    FROM budget_status
    WHERE {_CUSTOMERS}
    ORDER BY forecast_ratio DESC, name
    LIMIT 12
    """

# The selected customers' budgets added up (one currency): spent, forecast, budget by day.
CUSTOMER_BURN = f"""
    SELECT extract(day FROM "time" AT TIME ZONE 'UTC')::int AS day_of_month,
           sum(actual) AS spent, sum(forecast) AS forecast, sum(monthly_limit) AS budget
    FROM budget_burn
    WHERE {_CUSTOMERS}
    GROUP BY 1
    ORDER BY 1
    """

MARGINS = f"""
    SELECT m.customer, m.display_name, m.tier, m.revenue AS plan_price, m.llm_cost, m.margin,
           m.margin_ratio, m.llm_budget, s.used_ratio AS budget_used, s.forecast,
           s.forecast_ratio AS forecast_vs_budget, m.currency
    FROM customer_margin m
    LEFT JOIN budget_status s ON s.scope = 'customer' AND s.name = m.customer AND s.currency = m.currency
    WHERE {any_of('m.customer', 'customer')}
    ORDER BY m.margin, m.customer
    """


def customers() -> list:
    return [
        row("Budgets and margins this month (UTC calendar month)"),
        gauge("Customer budget used (top 12, ${currency})", CUSTOMER_USED, span=8, height=7,
              thresholds=RATIO_STEPS,
              description="Month-to-date spend / the customer's LLM budget (its tier's, or its override)."),
        gauge("Customer forecast vs budget (top 12, ${currency})", CUSTOMER_FORECAST, span=8, height=7,
              max_value=1.5, thresholds=RATIO_STEPS, description=FORECAST_HELP),
        money_trend("Selected customers' burn: spent, forecast, budgets (${currency})", CUSTOMER_BURN,
                    x_field="day_of_month", dashed=("forecast",), span=8, height=7, description=FORECAST_HELP),
        table("Margin per customer this month (plan price - LLM cost)", MARGINS,
              money=("plan_price", "llm_cost", "margin", "llm_budget", "forecast"),
              percent=("margin_ratio", "budget_used", "forecast_vs_budget"),
              links={"customer": [link("Cost explorer for this customer", uids.EXPLORER, customer="customer")]},
              height=10, description="Lowest margin first. " + FORECAST_HELP),
    ]
