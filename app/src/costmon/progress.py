"""A progress line on a terminal, silence elsewhere (logs and pipes stay clean)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.label, self.total = label, total
        self.done, self.rows = 0, 0
        self._last = 0.0

    def update(self, *, done: int | None = None, rows: int | None = None) -> None:
        if done is not None:
            self.done = done
        if rows is not None:
            self.rows = rows
        now = time.monotonic()
        if self.enabled and now - self._last >= 0.1:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self.total:
            width = 30
            filled = int(width * min(self.done, self.total) / self.total)
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}"
        else:
            bar = ""
        self.stream.write(f"\r{self.label} {bar} {self.rows:,} rows")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
