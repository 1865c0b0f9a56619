"""The one normalized billing row every source yields.

Column names follow FinOps FOCUS 1.2 (snake_cased): ChargePeriodStart ->
charge_period_start, BilledCost -> billed_cost, and so on. The LLM fields
(`model`, `token_type`) and attribution (`customer_id`, `project_id`) are ours.
Nothing downstream of a source knows a provider's raw format.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

# FOCUS ChargeCategory values.
CHARGE_CATEGORIES = ("Usage", "Purchase", "Tax", "Credit", "Adjustment")
TOKEN_TYPES = ("input", "output", "cached_input", "cache_write", "other")
UNKNOWN_MODEL = "unknown"


class RecordError(ValueError):
    """A record that must not be stored (it would corrupt totals)."""


@dataclass(slots=True)
class BillingRecord:
    charge_period_start: dt.datetime
    charge_period_end: dt.datetime
    provider: str  # short, stable id used as a label: aws, azure, gcp, openai, ...
    billing_account_id: str
    billed_cost: Decimal
    effective_cost: Decimal
    billing_currency: str  # ISO 4217, upper case
    charge_category: str = "Usage"
    billing_account_name: str | None = None
    sub_account_id: str | None = None  # AWS account / Azure subscription / GCP project
    sub_account_name: str | None = None
    service_name: str | None = None
    service_category: str | None = "AI and Machine Learning"
    sku_id: str | None = None
    charge_description: str | None = None
    region: str | None = None
    resource_id: str | None = None
    consumed_quantity: Decimal | None = None
    consumed_unit: str | None = None
    model: str = UNKNOWN_MODEL
    token_type: str = "other"
    customer_id: str | None = None  # None = untagged spend, kept and shown as such
    project_id: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    estimated: bool = False  # provider says the figure is not final yet (AWS "Estimated")

    def validate(self) -> "BillingRecord":
        """Raise RecordError naming the first thing wrong; return self when sound."""
        for name in ("charge_period_start", "charge_period_end"):
            value = getattr(self, name)
            if not isinstance(value, dt.datetime) or value.tzinfo is None:
                raise RecordError(f"{name} must be a timezone-aware datetime, got {value!r}")
        if self.charge_period_end < self.charge_period_start:
            raise RecordError("charge_period_end is before charge_period_start")
        for name in ("billed_cost", "effective_cost"):
            if not isinstance(getattr(self, name), Decimal):
                raise RecordError(f"{name} must be a Decimal, got {type(getattr(self, name)).__name__}")
            if not getattr(self, name).is_finite():
                raise RecordError(f"{name} is not a finite number")
        if self.consumed_quantity is not None and not isinstance(self.consumed_quantity, Decimal):
            raise RecordError("consumed_quantity must be a Decimal or None")
        if not (isinstance(self.billing_currency, str) and len(self.billing_currency) == 3
                and self.billing_currency.isalpha() and self.billing_currency.isupper()):
            raise RecordError(f"billing_currency must be an ISO 4217 code, got {self.billing_currency!r}")
        if self.charge_category not in CHARGE_CATEGORIES:
            raise RecordError(f"charge_category {self.charge_category!r} is not one of {CHARGE_CATEGORIES}")
        if self.token_type not in TOKEN_TYPES:
            raise RecordError(f"token_type {self.token_type!r} is not one of {TOKEN_TYPES}")
        if not self.provider or not self.billing_account_id:
            raise RecordError("provider and billing_account_id are required")
        if not self.model:
            raise RecordError("model must not be empty (use 'unknown')")
        return self

    @property
    def charge_day(self) -> dt.date:
        return self.charge_period_start.astimezone(dt.timezone.utc).date()


# Column order used by the loader's COPY and the schema; one place.
COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(BillingRecord))


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open range of UTC charge days [start, end)."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} must be after start {self.start}")

    @property
    def start_ts(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time(), tzinfo=dt.timezone.utc)

    @property
    def end_ts(self) -> dt.datetime:
        return dt.datetime.combine(self.end, dt.time(), tzinfo=dt.timezone.utc)

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days)]

    def contains(self, ts: dt.datetime) -> bool:
        return self.start_ts <= ts < self.end_ts

    def chunks(self, days: int) -> list["Window"]:
        out, cur = [], self.start
        while cur < self.end:
            nxt = min(cur + dt.timedelta(days=days), self.end)
            out.append(Window(cur, nxt))
            cur = nxt
        return out

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"
