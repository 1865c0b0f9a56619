"""Backfill a source over a long window, in chunks, resumably.

Each chunk is one ordinary ingest run (slice replace, an ingest_runs row). A
chunk already covered by a successful run of the same source is skipped unless
`force`, so a backfill stopped by an error or Ctrl-C resumes where it stopped
when run again, without paying twice for what is already loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from .ingest import run
from .records import Window
from .sources.base import Source
from .store.loader import LoadError

# progress(done_chunks, total_chunks, chunk, outcome, rows): outcome is 'loaded' or 'skipped'.
Progress = Callable[[int, int, Window, str, int], None]


@dataclass
class BackfillResult:
    loaded: list[tuple[Window, int]] = field(default_factory=list)  # (chunk, rows)
    skipped: list[Window] = field(default_factory=list)
    api_calls: int = 0

    @property
    def rows(self) -> int:
        return sum(n for _, n in self.loaded)


def covered(conn: psycopg.Connection, source: str, chunk: Window) -> bool:
    """True when one successful run of `source` covered the whole chunk."""
    with conn.transaction():  # commit the read: later runs need a connection outside any transaction
        row = conn.execute("""SELECT 1 FROM ingest_runs WHERE source = %s AND status = 'success'
                                  AND window_start <= %s AND window_end >= %s LIMIT 1""",
                           (source, chunk.start, chunk.end)).fetchone()
    return row is not None


def backfill(conn: psycopg.Connection, source: Source, window: Window, *, chunk_days: int = 7,
             force: bool = False, progress: Progress | None = None) -> BackfillResult:
    """Load `window` chunk by chunk, oldest first. Raises LoadError at the first failed chunk;
    the chunks before it stay loaded and a re-run skips them."""
    if chunk_days < 1:
        raise ValueError("chunk_days must be at least 1")
    chunks = window.chunks(chunk_days)
    result = BackfillResult()
    for i, chunk in enumerate(chunks, 1):
        if not force and covered(conn, source.name, chunk):
            result.skipped.append(chunk)
            if progress:
                progress(i, len(chunks), chunk, "skipped", 0)
            continue
        try:
            loaded = run(conn, source, chunk)
        except LoadError as exc:
            done = len(result.loaded) + len(result.skipped)
            raise LoadError(exc.reason, f"{exc} ({done} of {len(chunks)} chunk(s) before it are loaded; "
                                        "run the same backfill again to resume)") from exc
        finally:
            result.api_calls += source.stats.api_calls
        result.loaded.append((chunk, loaded.rows))
        if progress:
            progress(i, len(chunks), chunk, "loaded", loaded.rows)
    return result
