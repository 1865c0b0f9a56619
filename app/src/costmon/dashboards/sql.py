"""SQL building blocks for the TimescaleDB panels.

Rules every panel query follows (the tests enforce them):
- Variables are only ever used as `${name:sqlstring}`: Grafana quotes each
  value as a SQL string literal (doubling quotes), so a value cannot break out.
  "All" is the variable's custom allValue, inserted raw: the constant
  `'__all'` (ours, never user input), which `any_of` turns into "no filter".
- Money is never summed across currencies: billing panels filter on the
  single-value `$currency` variable and/or group by billing_currency.
- Spend with no customer tag is the customer 'untagged', never dropped.
- Day boundaries are UTC days (billing days), whatever the session time zone.
"""

from __future__ import annotations

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.runtime import UnknownDataquery

from . import datasources

ALL = "__all"  # the allValue marker; `'__all'` can never be a real provider/model id
ALL_VALUE = f"'{ALL}'"

CUSTOMER = "coalesce(customer_id, 'untagged')"
UNTAGGED = "untagged"


def var(name: str) -> str:
    """A variable reference Grafana expands to comma-separated quoted literals."""
    return "${" + name + ":sqlstring}"


def any_of(column: str, variable: str) -> str:
    """`column` is one of the selected values, or anything when All is selected.

    With All the first disjunct is the constant '__all' IN ('__all'), which the
    planner folds to true, so no filter is applied at all.
    """
    return f"({ALL_VALUE} IN ({var(variable)}) OR {column} IN ({var(variable)}))"


CURRENCY_FILTER = f"billing_currency = {var('currency')}"
PROVIDER_FILTER = any_of("provider", "provider")
ACCOUNT_FILTER = any_of("billing_account_id", "account")
CUSTOMER_FILTER = any_of(CUSTOMER, "customer")
MODEL_FILTER = any_of("model", "model")

# Every dimension filter of the billing dashboards, without the currency.
DIMENSIONS = " AND ".join([PROVIDER_FILTER, ACCOUNT_FILTER, CUSTOMER_FILTER, MODEL_FILTER])
# ... and with it: what a money panel in the selected currency uses.
FILTERS = f"{CURRENCY_FILTER} AND {DIMENSIONS}"


def utc_day(offset_days: int = 0, unit: str = "day") -> str:
    """Start of the current UTC day/week/month, shifted by whole days, as timestamptz.

    Computed on a UTC wall-clock timestamp so DST in the session time zone
    cannot shift it; compared with `day`, it keeps the aggregate's index usable.
    """
    base = f"date_trunc('{unit}', now() AT TIME ZONE 'UTC')"
    if offset_days:
        sign = "-" if offset_days < 0 else "+"
        base = f"({base} {sign} interval '{abs(offset_days)} days')"
    return f"{base} AT TIME ZONE 'UTC'"


TODAY = utc_day()
YESTERDAY = utc_day(-1)
WEEK_START = utc_day(unit="week")  # ISO week: Monday
MONTH_START = utc_day(unit="month")

# Consumed quantity expressed in tokens; NULL when the unit is not a token count.
TOKENS = ("consumed_quantity * CASE lower(consumed_unit)"
          " WHEN 'tokens' THEN 1 WHEN 'token' THEN 1"
          " WHEN '1k tokens' THEN 1000 WHEN 'k tokens' THEN 1000 WHEN 'thousand tokens' THEN 1000"
          " WHEN '1m tokens' THEN 1000000 WHEN 'm tokens' THEN 1000000"
          " WHEN 'million tokens' THEN 1000000 END")


def dedent(sql: str) -> str:
    """Strip the common indentation of a triple-quoted query (stable JSON, readable in the UI)."""
    import textwrap

    return textwrap.dedent(sql).strip()


class SqlTarget(cogbuilder.Builder[UnknownDataquery]):
    """A raw SQL query for the PostgreSQL/TimescaleDB datasource (the SDK has no builder for it)."""

    def __init__(self, sql: str, *, fmt: str = "table", ref_id: str = "A") -> None:
        if fmt not in ("table", "time_series"):
            raise ValueError(f"unknown SQL result format {fmt!r}")
        self._sql = dedent(sql)
        self._fmt = fmt
        self._ref_id = ref_id

    def build(self) -> UnknownDataquery:
        return UnknownDataquery({
            "datasource": datasources.timescaledb().to_json(),
            "editorMode": "code",
            "format": self._fmt,
            "rawQuery": True,
            "rawSql": self._sql,
            "refId": self._ref_id,
        })


# Top 10 customers of the range by name, untagged always, everyone else as 'other'.
DAILY_BY_CUSTOMER = f"""
    WITH d AS (
        SELECT day, {CUSTOMER} AS customer, sum(effective_cost) AS cost
        FROM billing_daily
        WHERE $__timeFilter(day) AND {FILTERS}
        GROUP BY 1, 2
    ), top AS (
        SELECT customer FROM d GROUP BY customer ORDER BY sum(cost) DESC, customer LIMIT 10
    )
    SELECT $__timeGroupAlias(day, '1d'),
           CASE WHEN customer = 'untagged' OR customer IN (SELECT customer FROM top)
                THEN customer ELSE 'other' END AS metric,
           sum(cost) AS cost
    FROM d
    GROUP BY 1, 2
    ORDER BY 1, 2
    """
