"""The interface every billing source implements.

A source turns one provider's billing API into BillingRecords for a window of
charge days. Paging, throttling and retries live inside the source and nowhere
else. A source counts its upstream calls in `stats` (some APIs bill per call).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from ..records import BillingRecord, Window
from ..store.loader import RunStats


class SourceError(Exception):
    """A source could not deliver; `reason` is a short, bounded label (throttled, auth, payload...)."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retry `attempt + 1`: base, 2*base, 4*base ... never above cap."""
    return min(cap, base * 2 ** (attempt - 1))


@runtime_checkable
class Source(Protocol):
    name: str  # instance name: the `source` column, the `source` metric label
    provider: str  # aws, azure, gcp, demo...
    stats: RunStats
    # Billing accounts this source replaces in a window; None = every account
    # it has rows for in the window (the source is authoritative for its slice).
    accounts: frozenset[str] | None

    def fetch(self, window: Window) -> Iterator[BillingRecord]:
        ...
