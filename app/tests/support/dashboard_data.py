"""Billing data for the dashboard tests: the demo source, plus a small slice in another currency.

Rows go through the real loader (one ingest run per source) and end at "now".
The demo brings providers, customers, untagged spend, token types, a runaway
customer day and a customer starting a new model; the EUR slice (an Azure
account billed in euros) proves panels keep currencies apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import psycopg

from costmon import ingest
from costmon.records import BillingRecord, Window
from costmon.sources import demo
from costmon.store import loader

UTC = dt.timezone.utc
EUR_SOURCE = "azure-eur-sample"
EUR_ACCOUNT = "sample-azure-eur"


def eur_records(window: Window) -> Iterator[BillingRecord]:
    """Two customers and the untagged bucket on gpt-4o in EUR, every day of the window."""
    for n, day in enumerate(window.days()):
        start = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
        for c, customer in enumerate(("eu-cust-1", "eu-cust-2", None)):
            for token_type, price in (("input", "0.0023"), ("output", "0.0092")):
                tokens = Decimal(20_000 + 1_000 * ((n + 3 * c) % 7))
                cost = (tokens / 1000 * Decimal(price)).quantize(Decimal("0.000001"))
                yield BillingRecord(
                    charge_period_start=start, charge_period_end=start + dt.timedelta(days=1),
                    provider="azure", billing_account_id=EUR_ACCOUNT, billed_cost=cost,
                    effective_cost=cost, billing_currency="EUR", service_name="Azure OpenAI",
                    sku_id=f"gpt-4o-{token_type}", model="gpt-4o", token_type=token_type,
                    customer_id=customer, consumed_quantity=tokens, consumed_unit="Tokens",
                    region="westeurope")


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
    ingest.run(conn, demo.DemoSource(name="demo", now=now), window)
    loader.load(conn, source=EUR_SOURCE, window=window, records=eur_records(window))
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
