"""Billing data for the dashboard tests: the demo source when present, else a small stand-in.

Either way the rows go through the real loader (one ingest run per source), end
at "now", and contain what the panels look for: several providers and
currencies, untagged spend, token types, a spike day and a model first used
yesterday.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import psycopg

from costmon.records import BillingRecord, Window
from costmon.store import loader

UTC = dt.timezone.utc

_MODELS = [  # provider, account, currency, service, model, unit price per 1K tokens by type
    ("aws", "111111111111", "USD", "Amazon Bedrock", "claude-3.5-sonnet", ("0.003", "0.015", "0.0003")),
    ("aws", "111111111111", "USD", "Amazon Bedrock", "nova-pro", ("0.0008", "0.0032", "0.0002")),
    ("azure", "azure-ea-1", "EUR", "Azure OpenAI", "gpt-4o", ("0.0025", "0.01", "0.00125")),
    ("gcp", "gcp-billing-1", "USD", "Vertex AI", "gemini-2.5-flash", ("0.0003", "0.0025", "0.000075")),
]
_NEW_MODEL = ("aws", "111111111111", "USD", "Amazon Bedrock", "claude-opus-4", ("0.015", "0.075", "0.0015"))
_CUSTOMERS = [None, "acme", "globex", "initech", "umbrella", "hooli"]
_TYPES = ("input", "output", "cached_input")


def _lines(day: dt.date, spec, customer: str | None, scale: int) -> Iterator[BillingRecord]:
    provider, account, currency, service, model, prices = spec
    start = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
    for token_type, price in zip(_TYPES, prices):
        tokens = Decimal(1000 * scale * (3 if token_type == "input" else 1))
        cost = (tokens / 1000 * Decimal(price)).quantize(Decimal("0.000001"))
        yield BillingRecord(
            charge_period_start=start, charge_period_end=start + dt.timedelta(days=1),
            provider=provider, billing_account_id=account, billed_cost=cost, effective_cost=cost,
            billing_currency=currency, service_name=service, sku_id=f"{model}-{token_type}",
            model=model, token_type=token_type, customer_id=customer,
            consumed_quantity=tokens, consumed_unit="Tokens", region="us-east-1")


def standin_records(window: Window) -> Iterator[BillingRecord]:
    days = window.days()
    spike_day, new_model_day = days[-2], days[-2]  # yesterday
    for n, day in enumerate(days):
        for m, spec in enumerate(_MODELS):
            for c, customer in enumerate(_CUSTOMERS):
                scale = 50 + (n * 7 + m * 13 + c * 29) % 40
                if day == spike_day and customer == "globex":
                    scale *= 12  # a runaway customer day
                yield from _lines(day, spec, customer, scale)
        if day >= new_model_day:
            yield from _lines(day, _NEW_MODEL, "initech", 40)


@dataclass(frozen=True)
class DataSet:
    name: str
    runaway_customer: str  # spends several times its usual amount yesterday
    new_model_customer: str  # billed yesterday for a model it did not use the week before


def load(conn: psycopg.Connection, now: dt.datetime, days: int = 45) -> DataSet:
    """Load `days` days of billing ending today into the database."""
    today = now.astimezone(UTC).date()
    window = Window(today - dt.timedelta(days=days - 1), today + dt.timedelta(days=1))
    _sync_example_budgets(conn)
    try:
        from costmon.sources import demo
    except ImportError:  # before the demo source existed
        loader.load(conn, source="standin", window=window, records=standin_records(window))
        return DataSet("stand-in", "globex", "initech")
    from costmon import ingest

    ingest.run(conn, demo.DemoSource(name="demo", now=now), window)
    return DataSet("demo", demo.RUNAWAY_CUSTOMER, demo.NEW_MODEL_CUSTOMER)


def _sync_example_budgets(conn: psycopg.Connection) -> None:
    """Budgets, plan tiers and customers of compose/costmon.example.yaml (the budget panels join them)."""
    from pathlib import Path

    import yaml

    from costmon import budgets

    example = Path(__file__).resolve().parents[3] / "compose" / "costmon.example.yaml"
    config, problems = budgets.parse(yaml.safe_load(example.read_text()), str(example))
    assert not problems, problems
    budgets.write(conn, config)
