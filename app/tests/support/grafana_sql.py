"""What Grafana does to a dashboard query before it reaches the database or Prometheus.

Exactly the macros and variable forms our dashboards use, implemented the way
Grafana implements them (pkg/tsdb/grafana-postgresql-datasource/macros.go and
the `sqlstring` formatter of the template service). Anything else is an error,
so a dashboard that starts using an unsupported form fails its tests instead of
being half-expanded.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class ExpansionError(ValueError):
    """The query uses a macro or variable form this expander (and our rules) do not allow."""


ALL = object()  # the "All" selection of a multi-value variable


@dataclass(frozen=True)
class TimeRange:
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def last_days(cls, days: int, now: dt.datetime | None = None) -> "TimeRange":
        """Like the dashboards' default `now-30d/d` .. `now` (UTC)."""
        now = now or dt.datetime.now(dt.timezone.utc)
        start = (now - dt.timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
        return cls(start, now)


def rfc3339(ts: dt.datetime) -> str:
    """Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped, 'Z' suffix."""
    ts = ts.astimezone(dt.timezone.utc)
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ts.microsecond:
        text += ("." + f"{ts.microsecond:06d}").rstrip("0")
    return text + "Z"


_INTERVAL = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _interval_seconds(text: str) -> float:
    m = _INTERVAL.match(text.strip().strip("'"))
    if not m:
        raise ExpansionError(f"cannot parse interval {text!r}")
    return int(m.group(1)) * _SECONDS[m.group(2)]


def _go_float(value: float) -> str:
    """fmt %v of a float64: 86400 not 86400.0."""
    return str(int(value)) if float(value).is_integer() else repr(value)


_MACRO = re.compile(r"\$(__[A-Za-z]+)\(([^)]*)\)")


def expand_macros(sql: str, time_range: TimeRange, *, timescaledb: bool) -> str:
    """$__timeFilter, $__timeFrom, $__timeTo, $__timeGroup, $__timeGroupAlias; anything else fails."""

    def macro(m: re.Match) -> str:
        name, args = m.group(1), [a.strip() for a in m.group(2).split(",")]
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{rfc3339(time_range.start)}' AND '{rfc3339(time_range.end)}'"
        if name == "__timeFrom":
            return f"'{rfc3339(time_range.start)}'"
        if name == "__timeTo":
            return f"'{rfc3339(time_range.end)}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            if len(args) != 2:
                raise ExpansionError(f"${name} needs a column and an interval (no fill mode here)")
            seconds = _interval_seconds(args[1])
            if timescaledb:
                group = f"time_bucket('{seconds:.3f}s',{args[0]})"
            else:
                group = f"floor(extract(epoch from {args[0]})/{_go_float(seconds)})*{_go_float(seconds)}"
            return group + (' AS "time"' if name == "__timeGroupAlias" else "")
        raise ExpansionError(f"unsupported macro ${name}")

    return _MACRO.sub(macro, sql)


_VARIABLE = re.compile(r"\$\{([A-Za-z0-9_]+)(?::([A-Za-z]+))?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([^\]]+)\]\]")


def sqlstring(values: Sequence[str]) -> str:
    """Grafana's `sqlstring` format: each value a quoted literal, quotes doubled, comma-joined."""
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


def variables_used(text: str) -> set[str]:
    return {m.group(1) or m.group(3) or m.group(4) for m in _VARIABLE.finditer(text)
            if not (m.group(3) or "").startswith("__")}


def expand_variables(sql: str, values: Mapping[str, object], all_values: Mapping[str, str]) -> str:
    """Replace ${name:sqlstring}; values[name] is a list of strings, one string, or ALL.

    ALL becomes the variable's custom allValue verbatim (Grafana skips formatting
    for it). Bare $name, [[name]] and other formats are refused: they would
    interpolate the raw value.
    """

    def variable(m: re.Match) -> str:
        name, fmt = m.group(1), m.group(2)
        if name is None:
            raise ExpansionError(f"variable form {m.group(0)!r} is not allowed in SQL; use ${{name:sqlstring}}")
        if fmt != "sqlstring":
            raise ExpansionError(f"{m.group(0)!r}: SQL variables must use the :sqlstring format")
        if name not in values:
            raise ExpansionError(f"no value given for variable {name!r}")
        value = values[name]
        if value is ALL:
            if name not in all_values:
                raise ExpansionError(f"variable {name!r} has no custom allValue")
            return all_values[name]
        return sqlstring([value] if isinstance(value, str) else list(value))

    return _VARIABLE.sub(variable, sql)


def expand_sql(sql: str, *, time_range: TimeRange, values: Mapping[str, object],
               all_values: Mapping[str, str], timescaledb: bool) -> str:
    out = expand_variables(expand_macros(sql, time_range, timescaledb=timescaledb), values, all_values)
    if "$" in out:
        raise ExpansionError(f"unexpanded '$' left in query: {out[out.index('$'):][:40]!r}")
    return out


# Grafana's interval variables in PromQL, with representative values.
PROMQL_INTERVALS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1d"}


def expand_promql(expr: str) -> str:
    for name, value in PROMQL_INTERVALS.items():
        expr = expr.replace(name, value)
    if "$" in expr:
        raise ExpansionError(f"unsupported variable in PromQL: {expr[expr.index('$'):][:40]!r}")
    return expr
