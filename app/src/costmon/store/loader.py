"""Replaces a slice of billing_line_items atomically.

A slice is (source, billing account(s), charge days of a window). One
transaction deletes the slice and COPYs the new rows (and, on plain PostgreSQL,
rewrites the same slice of the billing_daily table), so re-ingesting a window
gives identical totals and restated billing replaces the old figures. If
anything fails mid-COPY the transaction rolls back and the previous slice stays.
Each run is a row in ingest_runs whatever its outcome.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

import psycopg
from psycopg import pq
from psycopg.types.json import Jsonb

from ..records import COLUMNS, UNKNOWN_MODEL, BillingRecord, RecordError, Window
from .db import has_timescaledb

_COPY_SQL = f"COPY billing_line_items ({', '.join(COLUMNS + ('source', 'ingest_run_id'))}) FROM STDIN"
_values = operator.attrgetter(*COLUMNS)
_TAGS = COLUMNS.index("tags")
_PROGRESS_EVERY = 10_000

# Plain PostgreSQL keeps billing_daily as a table (timescaledb/005_billing_daily.pg.sql).
# After a slice replace the slice holds exactly the records just copied, so their daily
# sums are computed on the way through and the table's slice is rewritten from them
# (the same grouping as the continuous aggregate in 005_billing_daily.tsdb.sql).
_DAILY_GROUPS = ("provider", "billing_account_id", "sub_account_id", "service_name", "service_category",
                 "region", "model", "token_type", "customer_id", "project_id", "charge_category",
                 "consumed_unit", "billing_currency", "source")
_daily_key = operator.attrgetter(*_DAILY_GROUPS[:-1])
_DAILY_COPY = (f"COPY billing_daily (day, {', '.join(_DAILY_GROUPS)}, billed_cost, effective_cost, "
               "consumed_quantity, line_items) FROM STDIN")
_DAILY_DELETE = """DELETE FROM billing_daily WHERE source = %(source)s
    AND day >= %(start)s AND day < %(end)s
    AND (%(accounts)s::text[] IS NULL OR billing_account_id = ANY(%(accounts)s::text[]))"""


class _DailySums:
    """Daily totals of the records passing through, keyed like billing_daily."""

    def __init__(self) -> None:
        self.groups: dict[tuple, list] = {}
        self._days: dict[dt.datetime, dt.datetime] = {}

    def add(self, rec: BillingRecord) -> None:
        start = rec.charge_period_start
        day = self._days.get(start)
        if day is None:
            day = self._days[start] = start.astimezone(dt.timezone.utc).replace(
                hour=0, minute=0, second=0, microsecond=0)
        key = (day,) + _daily_key(rec)
        acc = self.groups.get(key)
        if acc is None:
            self.groups[key] = [rec.billed_cost, rec.effective_cost, rec.consumed_quantity, 1]
            return
        acc[0] += rec.billed_cost
        acc[1] += rec.effective_cost
        if rec.consumed_quantity is not None:  # SQL sum(): NULLs skipped, all-NULL stays NULL
            acc[2] = rec.consumed_quantity if acc[2] is None else acc[2] + rec.consumed_quantity
        acc[3] += 1

    def write(self, conn: psycopg.Connection, source: str, window: Window,
              accounts: set[str] | None) -> None:
        conn.execute(_DAILY_DELETE, {"source": source, "start": window.start_ts, "end": window.end_ts,
                                     "accounts": sorted(accounts) if accounts is not None else None})
        with conn.cursor().copy(_DAILY_COPY) as copy:
            for (day, *groups), (billed, effective, quantity, n) in self.groups.items():
                copy.write_row([day, *groups, source, billed, effective, quantity, n])


class LoadError(Exception):
    """The slice could not be replaced; what was stored before is unchanged."""

    def __init__(self, reason: str, message: str):
        self.reason = reason  # short, bounded: used as a metric label
        super().__init__(message)


@dataclass
class LoadResult:
    run_id: int
    rows: int = 0
    unclassified: int = 0
    deleted: int = 0
    accounts: set[str] = field(default_factory=set)


@dataclass
class RunStats:
    """Filled by a source while it fetches: upstream calls and their estimated price."""

    api_calls: int = 0
    api_cost_usd: Decimal = Decimal(0)


def start_run(conn: psycopg.Connection, source: str, window: Window) -> int:
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO ingest_runs (source, window_start, window_end) VALUES (%s, %s, %s) RETURNING id",
            (source, window.start, window.end)).fetchone()
    return row[0]


def finish_run(conn: psycopg.Connection, run_id: int, *, status: str, rows: int = 0,
               unclassified: int = 0, stats: RunStats | None = None,
               error_reason: str | None = None, error: str | None = None) -> None:
    stats = stats or RunStats()
    with conn.transaction():
        conn.execute(
            """UPDATE ingest_runs SET finished_at = now(), status = %s, rows_loaded = %s,
                   unclassified_rows = %s, api_calls = %s, api_cost_usd = %s,
                   error_reason = %s, error = %s
               WHERE id = %s""",
            (status, rows, unclassified, stats.api_calls, stats.api_cost_usd,
             error_reason, error, run_id))


def replace_slice(conn: psycopg.Connection, *, source: str, window: Window,
                  records: Iterable[BillingRecord], run_id: int,
                  accounts: Iterable[str] | None = None,
                  on_row: Callable[[int], None] | None = None) -> LoadResult:
    """Delete the slice and COPY `records` in one transaction.

    accounts=None: the source is authoritative for the whole window (every billing
    account it has rows for there is replaced, so an account that vanished in a
    restatement is removed too). Otherwise only those accounts' rows are replaced,
    and a record of any other account is an error.
    Every record must fall inside the window: a row outside it would not be
    replaced by the next run of the same window and would double count.
    """
    fixed = set(accounts) if accounts is not None else None
    result = LoadResult(run_id=run_id)
    try:
        with conn.transaction():
            if fixed is None:
                cur = conn.execute(
                    """DELETE FROM billing_line_items WHERE source = %s
                       AND charge_period_start >= %s AND charge_period_start < %s""",
                    (source, window.start_ts, window.end_ts))
            else:
                cur = conn.execute(
                    """DELETE FROM billing_line_items WHERE source = %s
                       AND billing_account_id = ANY(%s)
                       AND charge_period_start >= %s AND charge_period_start < %s""",
                    (source, sorted(fixed), window.start_ts, window.end_ts))
            result.deleted = cur.rowcount
            daily = None if has_timescaledb(conn) else _DailySums()
            # COPY text rows through psycopg's C dumpers: as fast as psql \copy of a file.
            with conn.cursor().copy(_COPY_SQL) as copy:
                for rec in _checked(records, window, fixed):
                    row = list(_values(rec))
                    row[_TAGS] = Jsonb(row[_TAGS])
                    row += (source, run_id)
                    copy.write_row(row)
                    result.rows += 1
                    if rec.model == UNKNOWN_MODEL:
                        result.unclassified += 1
                    result.accounts.add(rec.billing_account_id)
                    if daily is not None:
                        daily.add(rec)
                    if on_row and result.rows % _PROGRESS_EVERY == 0:
                        on_row(result.rows)
            if on_row:
                on_row(result.rows)
            if daily is not None:
                daily.write(conn, source, window, fixed)
    except RecordError as exc:
        raise LoadError("bad_record", f"{source} {window}: rejected record #{result.rows + 1}: {exc}") from exc
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LoadError("database", f"{source} {window}: load failed, previous data kept: {first}") from exc
    return result


def _checked(records: Iterable[BillingRecord], window: Window,
             accounts: set[str] | None) -> Iterator[BillingRecord]:
    lo, hi = window.start_ts, window.end_ts
    for rec in records:
        rec.validate()
        if not lo <= rec.charge_period_start < hi:
            raise RecordError(f"charge_period_start {rec.charge_period_start.isoformat()} is outside window {window}")
        if accounts is not None and rec.billing_account_id not in accounts:
            raise RecordError(f"billing account {rec.billing_account_id!r} is not one of this slice's accounts")
        yield rec


def refresh_daily(conn: psycopg.Connection, window: Window) -> None:
    """Materialize billing_daily for exactly the touched days (TimescaleDB; plain PostgreSQL
    already rewrote its table inside replace_slice's transaction)."""
    # The refresh cannot run inside a transaction and must see the slice just written,
    # so end the open (implicit) transaction first; inside conn.transaction() psycopg refuses.
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        conn.commit()
    previous = conn.autocommit
    conn.autocommit = True
    try:
        if has_timescaledb(conn):
            conn.execute("CALL refresh_continuous_aggregate('billing_daily', %s, %s)",
                         (window.start_ts, window.end_ts))
    finally:
        conn.autocommit = previous


def load(conn: psycopg.Connection, *, source: str, window: Window,
         records: Iterable[BillingRecord], accounts: Iterable[str] | None = None,
         stats: RunStats | None = None,
         on_row: Callable[[int], None] | None = None) -> LoadResult:
    """One ingest run: record it, replace the slice, refresh the aggregate.

    Raises LoadError (after recording the failure) when the slice was not replaced.
    """
    run_id = start_run(conn, source, window)
    try:
        result = replace_slice(conn, source=source, window=window, records=records,
                               run_id=run_id, accounts=accounts, on_row=on_row)
    except LoadError as exc:
        finish_run(conn, run_id, status="failed", stats=stats, error_reason=exc.reason, error=str(exc))
        raise
    except Exception as exc:  # a source failing mid-stream: same guarantee, its own reason
        reason = getattr(exc, "reason", "source")
        message = f"{source} {window}: {exc}"
        finish_run(conn, run_id, status="failed", stats=stats, error_reason=reason, error=message)
        raise LoadError(reason, message) from exc
    finish_run(conn, run_id, status="success", rows=result.rows,
               unclassified=result.unclassified, stats=stats)
    try:
        refresh_daily(conn, window)
    except psycopg.Error as exc:  # e.g. a login that does not own the continuous aggregate
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise LoadError("refresh", f"{source} {window}: line items stored, but refreshing billing_daily "
                                   f"failed ({first}); its hourly refresh policy will catch up") from exc
    return result
