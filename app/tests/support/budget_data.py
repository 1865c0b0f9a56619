"""Demo billing and the example config for the budget tests, plus independent arithmetic.

The expected figures in the budget tests are computed here in Python, straight
from the BillingRecords the demo yields, never from the SQL under test.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path

import psycopg

from costmon.config import load_settings
from costmon.records import BillingRecord, Window
from costmon.sources.demo import DemoSource
from costmon.store.loader import load

UTC = dt.timezone.utc
# A fixed "now": late in a 31-day month, so over-budget customers are over, and
# the 7 days before yesterday lie in the same month.
NOW = dt.datetime(2026, 3, 25, 15, 0, tzinfo=UTC)
TODAY = NOW.date()
EXAMPLE_CONFIG = Path(__file__).resolve().parents[3] / "compose" / "costmon.example.yaml"
DEMO_WINDOW = Window(dt.date(2026, 2, 1), TODAY + dt.timedelta(days=1))


@functools.cache
def demo_records(now: dt.datetime = NOW, window: Window = DEMO_WINDOW) -> tuple[BillingRecord, ...]:
    return tuple(DemoSource(now=now).fetch(window))


def load_demo(conn: psycopg.Connection, now: dt.datetime = NOW, window: Window = DEMO_WINDOW) -> None:
    load(conn, source="demo", window=window, records=demo_records(now, window))


def demo_database(server_dsn: str, name: str) -> str:
    """A new database: migrated, demo billing up to NOW loaded, the example config synced."""
    from costmon import budgets
    from costmon.store.migrate import migrate

    from . import pgcluster

    dsn = pgcluster.fresh_database(server_dsn, name)
    with psycopg.connect(dsn) as conn:
        migrate(conn)
        load_demo(conn)
        assert budgets.sync(conn, settings())
    return dsn


def settings(config: Path | str = EXAMPLE_CONFIG):
    return load_settings({"COSTMON_CONFIG_FILE": str(config)}, need_database=False)


def daily(records: Iterable[BillingRecord], keep: Callable[[BillingRecord], bool] = lambda r: True
          ) -> dict[dt.date, Decimal]:
    """Effective cost per UTC charge day of the records `keep` accepts."""
    out: dict[dt.date, Decimal] = defaultdict(Decimal)
    for r in records:
        if keep(r):
            out[r.charge_day] += r.effective_cost
    return out


def span(days: dict[dt.date, Decimal], start: dt.date, stop: dt.date) -> Decimal:
    """Sum over [start, stop)."""
    return sum((v for d, v in days.items() if start <= d < stop), Decimal(0))


def close(a: Decimal, b: Decimal, places: int = 12) -> bool:
    """Equal to `places` decimals (SQL numeric and Python Decimal round divisions differently)."""
    q = Decimal(1).scaleb(-places)
    return abs(Decimal(a) - Decimal(b)) < q
