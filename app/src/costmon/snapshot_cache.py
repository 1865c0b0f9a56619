"""A value recomputed at most once per `seconds`: scrapes in a burst share one round of queries."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SnapshotCache(Generic[T]):
    def __init__(self, compute: Callable[[], T], seconds: float):
        self._compute = compute
        self._seconds = seconds
        self._lock = threading.Lock()  # one scrape computes; concurrent ones wait and reuse it
        self._value: T | None = None
        self._taken = 0.0

    def get(self) -> T:
        with self._lock:
            now = time.monotonic()
            if self._value is None or now - self._taken >= self._seconds:
                self._value = self._compute()
                self._taken = now
            return self._value
