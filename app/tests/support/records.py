"""Small factories for BillingRecords in tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from costmon.records import BillingRecord

UTC = dt.timezone.utc


def day(d: str) -> dt.datetime:
    return dt.datetime.fromisoformat(d).replace(tzinfo=UTC)


def line(d: str, cost: str, *, provider: str = "aws", account: str = "111111111111",
         currency: str = "USD", customer: str | None = "cust-1", model: str = "claude-3-haiku",
         token_type: str = "input", effective: str | None = None, **kw) -> BillingRecord:
    start = day(d)
    return BillingRecord(
        charge_period_start=start, charge_period_end=start + dt.timedelta(days=1),
        provider=provider, billing_account_id=account, billed_cost=Decimal(cost),
        effective_cost=Decimal(effective if effective is not None else cost),
        billing_currency=currency, service_name=kw.pop("service_name", "Amazon Bedrock"),
        sku_id=kw.pop("sku_id", "USE1-Claude3Haiku-input-tokens"), model=model,
        token_type=token_type, customer_id=customer,
        consumed_quantity=kw.pop("consumed_quantity", Decimal(1000)), consumed_unit="Tokens", **kw)


def stored_totals(conn) -> dict[tuple, tuple[Decimal, Decimal]]:
    """(provider, UTC day, currency) -> (billed, effective) as stored in billing_line_items."""
    rows = conn.execute("""SELECT provider, (charge_period_start AT TIME ZONE 'UTC')::date, billing_currency,
                                  sum(billed_cost), sum(effective_cost)
                           FROM billing_line_items GROUP BY 1, 2, 3""").fetchall()
    return {(p, d, c): (b, e) for p, d, c, b, e in rows}
