"""Small in-process Sources for scheduler and backfill tests: deterministic rows, or a failure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

from costmon.records import BillingRecord, Window
from costmon.sources.base import SourceError
from costmon.store.loader import RunStats


class DailySource:
    """One line per day of any window asked for, `amount` each; remembers every window fetched.
    `fail_on` days raise SourceError(reason) when reached, as a throttled API would mid-run."""

    provider = "aws"
    accounts = None

    def __init__(self, name: str = "daily", amount: str = "1.25", *, fail_on: set[dt.date] = frozenset(),
                 reason: str = "throttled"):
        self.name, self.amount = name, Decimal(amount)
        self.fail_on, self.reason = set(fail_on), reason
        self.windows: list[Window] = []
        self.stats = RunStats()

    def fetch(self, window: Window) -> Iterator[BillingRecord]:
        self.windows.append(window)
        for day in window.days():
            self.stats.api_calls += 1
            if day in self.fail_on:
                raise SourceError(self.reason, f"{self.name}: upstream refused {day}")
            start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
            yield BillingRecord(charge_period_start=start, charge_period_end=start + dt.timedelta(days=1),
                                provider=self.provider, billing_account_id="111111111111",
                                billed_cost=self.amount, effective_cost=self.amount, billing_currency="USD",
                                service_name="Amazon Bedrock", sku_id="USE1-Claude3Haiku-input-tokens",
                                model="claude-3-haiku", token_type="input", customer_id="acme")
