"""`costmon report`: totals per group from billing_daily, without Grafana.

Currency is always a grouping key, so no figure ever adds two currencies.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import psycopg
from psycopg import sql

# Operator words -> expressions over billing_daily. Only these can be grouped by.
DIMENSIONS = {
    "provider": "provider",
    "day": "(day AT TIME ZONE 'UTC')::date",
    "month": "to_char(day AT TIME ZONE 'UTC', 'YYYY-MM')",
    "billing_account": "billing_account_id",
    "sub_account": "sub_account_id",
    "service": "service_name",
    "region": "region",
    "model": "model",
    "token_type": "token_type",
    "customer": "coalesce(customer_id, 'untagged')",
    "project": "project_id",
    "charge_category": "charge_category",
    "source": "source",
}
VALUES = ("effective_cost", "billed_cost")


def parse_dimensions(text: str) -> list[str]:
    dims = [d.strip() for d in text.split(",") if d.strip()]
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown --by {', '.join(unknown)}; choose from {', '.join(DIMENSIONS)}")
    if not dims:
        raise ValueError("--by needs at least one dimension")
    return dims


def query(conn: psycopg.Connection, start: dt.date, end: dt.date, dims: list[str]) -> list[dict]:
    """Rows of {dim..., currency, effective_cost, billed_cost, line_items} for [start, end)."""
    cols = [sql.SQL("{} AS {}").format(sql.SQL(DIMENSIONS[d]), sql.Identifier(d)) for d in dims]
    q = sql.SQL("""SELECT {cols}, billing_currency AS currency,
                          sum(effective_cost) AS effective_cost, sum(billed_cost) AS billed_cost,
                          sum(line_items)::bigint AS line_items
                   FROM billing_daily
                   WHERE day >= %(start)s AND day < %(end)s
                   GROUP BY {groups}, billing_currency
                   ORDER BY {groups}, billing_currency""").format(
        cols=sql.SQL(", ").join(cols),
        groups=sql.SQL(", ").join(sql.Literal(i + 1) for i in range(len(dims))))
    start_ts = dt.datetime.combine(start, dt.time(), tzinfo=dt.timezone.utc)
    end_ts = dt.datetime.combine(end, dt.time(), tzinfo=dt.timezone.utc)
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(q, {"start": start_ts, "end": end_ts}).fetchall()


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, Decimal):
        return f"{v:.2f}" if abs(v) >= Decimal("0.01") or v == 0 else f"{v.normalize():f}"
    return str(v)


def render(rows: list[dict], dims: list[str], fmt: str) -> str:
    header = dims + ["currency", "effective_cost", "billed_cost", "line_items"]
    if fmt == "json":
        return json.dumps([{k: (str(r[k]) if isinstance(r[k], (Decimal, dt.date)) else r[k])
                            for k in header} for r in rows], indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(header)
        for r in rows:  # exact figures for scripts
            w.writerow(["" if r[k] is None else str(r[k]) for k in header])
        return out.getvalue()
    table = [header] + [[_cell(r[k]) for k in header] for r in rows]
    # Per-currency totals under the table: never one grand total across currencies.
    totals: dict[str, list[Decimal]] = {}
    for r in rows:
        t = totals.setdefault(r["currency"], [Decimal(0), Decimal(0), 0])
        t[0] += r["effective_cost"]
        t[1] += r["billed_cost"]
        t[2] += r["line_items"]
    for ccy, (eff, billed, n) in sorted(totals.items()):
        table.append(["TOTAL"] + [""] * (len(dims) - 1) + [ccy, _cell(eff), _cell(billed), str(n)])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    numeric = {"effective_cost", "billed_cost", "line_items"}
    lines = []
    for n, row in enumerate(table):
        cells = [c.rjust(w) if header[i] in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    if not rows:
        lines.append("(no billing data in this range)")
    return "\n".join(lines) + "\n"
