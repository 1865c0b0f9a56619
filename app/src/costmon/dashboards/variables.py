"""Dashboard variables: SQL query variables on billing_daily, scoped to the time picker.

Dimension variables are multi-value with an "All" whose value is the constant
`'__all'` (see sql.any_of); `currency` is single-value so money is never
summed across currencies. Every query is executed by the tests.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_b
from grafana_foundation_sdk.models import dashboard as dm

from . import datasources
from .sql import ALL_VALUE, CUSTOMER, PROVIDER_FILTER, dedent


def _query(name: str, label: str, sql: str, *, multi: bool = True,
           sort: dm.VariableSort = dm.VariableSort.ALPHABETICAL_ASC) -> dashboard_b.QueryVariable:
    sql = dedent(sql)
    v = (dashboard_b.QueryVariable(name).label(label).query(sql)
         .datasource(datasources.timescaledb())
         .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(sort).multi(multi))
    v._internal.definition = sql  # what Grafana's editor shows; the SDK has no setter
    if multi:
        v = (v.include_all(True).all_value(ALL_VALUE)
             .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"])))
    else:
        v = v.include_all(False)
    return v


def currency() -> dashboard_b.QueryVariable:
    # Largest spend first, so the default (first) currency is the main one.
    return _query("currency", "Currency", """
        SELECT billing_currency FROM billing_daily
        WHERE $__timeFilter(day)
        GROUP BY billing_currency ORDER BY sum(effective_cost) DESC, billing_currency
        """, multi=False, sort=dm.VariableSort.DISABLED)


def provider() -> dashboard_b.QueryVariable:
    return _query("provider", "Provider", """
        SELECT DISTINCT provider FROM billing_daily WHERE $__timeFilter(day)
        """)


def account() -> dashboard_b.QueryVariable:
    # Chained: only the accounts of the selected providers.
    return _query("account", "Billing account", f"""
        SELECT DISTINCT billing_account_id FROM billing_daily
        WHERE $__timeFilter(day) AND {PROVIDER_FILTER}
        """)


def customer() -> dashboard_b.QueryVariable:
    return _query("customer", "Customer", f"""
        SELECT DISTINCT {CUSTOMER} FROM billing_daily WHERE $__timeFilter(day)
        """)


def model() -> dashboard_b.QueryVariable:
    return _query("model", "Model", """
        SELECT DISTINCT model FROM billing_daily WHERE $__timeFilter(day)
        """)


def choice(name: str, label: str, values: list[str], default: str) -> dashboard_b.CustomVariable:
    """A fixed list (thresholds and the like); used in SQL as ${name:sqlstring}::numeric."""
    options = [dm.VariableOption(selected=v == default, text=v, value=v) for v in values]
    return (dashboard_b.CustomVariable(name).label(label).values(",".join(values))
            .multi(False).include_all(False).options(options)
            .current(dm.VariableOption(selected=True, text=default, value=default)))


def billing() -> list:
    """The variables every billing dashboard has, in display order."""
    return [currency(), provider(), account(), customer(), model()]
