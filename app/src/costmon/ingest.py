"""One source run for one window: fetch -> records -> loader (slice replace)."""

from __future__ import annotations

from typing import Callable

import psycopg

from .records import Window
from .sources.base import Source
from .store.loader import LoadResult, RunStats, load


def run(conn: psycopg.Connection, source: Source, window: Window, *,
        on_row: Callable[[int], None] | None = None) -> LoadResult:
    """Replace `source`'s slice for `window` with what it fetches now.

    Raises store.loader.LoadError (already recorded in ingest_runs) when nothing
    was replaced; what was stored before stays intact.
    """
    source.stats = RunStats()
    return load(conn, source=source.name, window=window, records=source.fetch(window),
                accounts=source.accounts, stats=source.stats, on_row=on_row)
