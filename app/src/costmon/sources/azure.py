"""Azure Cost Management Query API (query.usage) -> BillingRecords.

Two Daily queries on the configured scope, ActualCost (billed) and
AmortizedCost (effective), grouped by one meter dimension and the customer tag
(the API allows two groupings) and filtered to the configured AI services.
Rows are read by column name, never position: `UsageDate` is an integer
yyyymmdd, `Currency` is a column and need not be USD. Pages are followed
through `nextLink` (same body POSTed again). The SDK does not retry the query
POST on 429, so this module waits the longest of the
x-ms-ratelimit-microsoft.costmanagement-*-retry-after headers (or Retry-After)
and retries, a bounded number of times.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from ..classify import classify
from ..records import BillingRecord, Window
from ..store.loader import RunStats
from .base import SourceError

DEFAULT_SERVICES = ("Azure OpenAI", "Azure OpenAI Service", "Cognitive Services", "Azure AI Services",
                    "Foundry Models", "Foundry Tools")
MAX_GROUPINGS = 2  # the Query API rejects more
COST_TYPES = ("ActualCost", "AmortizedCost")
COST_COLUMNS = ("Cost", "PreTaxCost")  # MCA/modern vs legacy EA name for the same figure
_RETRY_HEADER = re.compile(r"^x-ms-ratelimit-microsoft\.costmanagement-[a-z-]*retry-after$", re.I)
# Dimension -> where its value goes on the record.
_DIMENSION_FIELD = {
    "meter": "charge_description", "metersubcategory": "charge_description", "metercategory": "service_name",
    "servicename": "service_name", "meterid": "sku_id", "subscriptionid": "sub_account_id",
    "subscriptionname": "sub_account_name", "resourcelocation": "region", "resourceid": "resource_id",
    "resourcegroupname": "resource_id", "resourcegroup": "resource_id",
}


class _AnonymousCredential:
    """For a local fake endpoint: the no-op authentication policy never asks for a token."""

    def get_token(self, *scopes: str, **kwargs: Any):  # pragma: no cover - never called
        raise RuntimeError("anonymous credential has no token")


def make_client(*, endpoint: str | None = None, tenant_id: str | None = None, client_id: str | None = None,
                client_secret: str | None = None):
    """CostManagementClient with azure-core retries off (429 is handled, counted and bounded here).

    Service principal when tenant/client/secret are given; otherwise the
    default credential chain; with an endpoint override and no service
    principal, anonymous (local fakes).
    """
    from azure.core.pipeline.policies import SansIOHTTPPolicy
    from azure.mgmt.costmanagement import CostManagementClient

    kwargs: dict[str, Any] = {"retry_total": 0}
    if endpoint:
        kwargs["base_url"] = endpoint.rstrip("/")
    if tenant_id and client_id and client_secret:
        from azure.identity import ClientSecretCredential

        credential: Any = ClientSecretCredential(tenant_id, client_id, client_secret)
    elif endpoint:
        credential = _AnonymousCredential()
        kwargs["authentication_policy"] = SansIOHTTPPolicy()
    else:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    if endpoint and not isinstance(credential, _AnonymousCredential):
        kwargs["credential_scopes"] = [endpoint.rstrip("/") + "/.default"]
    return CostManagementClient(credential, **kwargs)


def scope_accounts(scope: str) -> tuple[str, str | None]:
    """(billing_account_id, sub_account_id) named by a Cost Management scope."""
    parts = [p for p in scope.strip("/").split("/") if p]
    lower = [p.lower() for p in parts]
    if "subscriptions" in lower:
        sub = parts[lower.index("subscriptions") + 1]
        return sub, sub
    for marker in ("billingaccounts", "managementgroups"):
        if marker in lower and lower.index(marker) + 1 < len(parts):
            return parts[lower.index(marker) + 1], None
    return scope.strip("/"), None


def retry_after_seconds(headers: Any) -> float | None:
    """The longest wait any Cost Management throttling header asks for; Retry-After as fallback."""
    waits = []
    for name, value in headers.items():
        if _RETRY_HEADER.match(name):
            try:
                waits.append(float(value))
            except (TypeError, ValueError):
                pass
    if not waits:
        try:
            waits.append(float(headers.get("Retry-After") or headers.get("retry-after")))
        except (TypeError, ValueError):
            return None
    return max(waits)


class AzureCostSource:
    provider = "azure"
    accounts = None

    def __init__(self, name: str = "azure", *, scope: str, services: Sequence[str] = DEFAULT_SERVICES,
                 service_dimension: str = "ServiceName", group_by: Sequence[str] = ("Meter",),
                 customer_tag: str | None = "customer_id", client: Any = None,
                 client_factory: Callable[[], Any] | None = None, max_attempts: int = 5,
                 max_wait_seconds: float = 300, default_wait_seconds: float = 30,
                 sleep: Callable[[float], None] | None = None):
        groupings = len(group_by) + (1 if customer_tag else 0)
        if not group_by or groupings > MAX_GROUPINGS:
            raise ValueError(f"the Cost Management query allows 1 to {MAX_GROUPINGS} groupings "
                             f"(dimensions plus the customer tag), got {groupings}")
        self.name = name
        self.scope = scope.strip("/")
        self.services = tuple(services)
        self.service_dimension = service_dimension
        self.group_by = tuple(group_by)
        self.customer_tag = customer_tag or None
        self._client = client
        self._client_factory = client_factory or make_client
        self.max_attempts = max(1, max_attempts)
        self.max_wait_seconds = max_wait_seconds
        self.default_wait_seconds = default_wait_seconds
        self.sleep = sleep or time.sleep  # injectable: tests never wait
        self.billing_account_id, self.sub_account_id = scope_accounts(self.scope)
        self.stats = RunStats()

    # ---- requests ------------------------------------------------------------------------

    def query(self, cost_type: str, window: Window) -> dict[str, Any]:
        last_day = window.end - dt.timedelta(days=1)
        grouping = [{"type": "Dimension", "name": d} for d in self.group_by]
        if self.customer_tag:
            grouping.append({"type": "TagKey", "name": self.customer_tag})
        dataset: dict[str, Any] = {
            "granularity": "Daily",
            "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"},
                            "totalQuantity": {"name": "UsageQuantity", "function": "Sum"}},
            "grouping": grouping,
        }
        if self.services:
            dataset["filter"] = {"dimensions": {"name": self.service_dimension, "operator": "In",
                                                "values": list(self.services)}}
        return {"type": cost_type, "timeframe": "Custom",
                "timePeriod": {"from": f"{window.start.isoformat()}T00:00:00+00:00",
                               "to": f"{last_day.isoformat()}T23:59:59+00:00"},
                "dataset": dataset}

    def _rows(self, client: Any, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        from azure.core.rest import HttpRequest

        def first() -> str | None:
            return client.query.usage(self.scope, body, cls=lambda resp, _d, _h: resp.http_response.text())

        def following(url: str) -> Callable[[], str | None]:
            def send() -> str | None:
                response = client.send_request(HttpRequest("POST", url, json=body))
                _raise_for_status(response)
                return response.text()
            return send

        call: Callable[[], str | None] = first
        while True:
            text = self._send(call, body["type"])
            if not text:  # 204: nothing for this query
                return
            try:
                page = json.loads(text, parse_float=Decimal)
                props = page.get("properties") or {}
                names = [c["name"] for c in props.get("columns") or []]
                rows = props.get("rows") or []
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise SourceError("payload", f"azure: {body['type']} response is not a query result: "
                                             f"{exc}") from None
            for row in rows:
                yield dict(zip(names, row))
            next_link = props.get("nextLink")
            if not next_link:
                return
            call = following(next_link)

    def _send(self, call: Callable[[], str | None], what: str) -> str | None:
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

        for attempt in range(1, self.max_attempts + 1):
            self.stats.api_calls += 1
            try:
                return call()
            except ClientAuthenticationError as exc:
                if exc.response is None:  # the credential could not get a token
                    raise SourceError("auth", f"azure: cannot authenticate: {_first_line(exc)}") from None
                raise self._denied(exc) from None
            except HttpResponseError as exc:
                status = exc.status_code or (exc.response.status_code if exc.response is not None else None)
                if status == 429:
                    wait = retry_after_seconds(exc.response.headers) if exc.response is not None else None
                    wait = self.default_wait_seconds if wait is None else wait
                    if attempt == self.max_attempts:
                        raise SourceError("throttled", f"azure: Cost Management still throttling {what} "
                                                       f"after {attempt} attempts") from None
                    if wait > self.max_wait_seconds:
                        raise SourceError("throttled", f"azure: Cost Management asks to wait {wait:g}s "
                                                       f"(more than {self.max_wait_seconds:g}s); try later") from None
                    self.sleep(wait)
                    continue
                if status in (401, 403):
                    raise self._denied(exc) from None
                raise SourceError("upstream", f"azure: Cost Management {what} query failed "
                                              f"(HTTP {status}): {_first_line(exc)}") from None
            except ServiceRequestError as exc:
                raise SourceError("unavailable", f"azure: Cost Management unreachable: {_first_line(exc)}") from None
        raise AssertionError("unreachable")

    def _denied(self, exc: Exception) -> SourceError:
        return SourceError("auth", f"azure: access denied to Cost Management on {self.scope} "
                                   f"({_first_line(exc)}); needs Cost Management Reader on that scope")

    # ---- records -------------------------------------------------------------------------

    def fetch(self, window: Window) -> Iterator[BillingRecord]:
        client = self._client or self._client_factory()
        merged: dict[tuple, dict[str, Any]] = {}
        for cost_type in COST_TYPES:
            for row in self._rows(client, self.query(cost_type, window)):
                key, values = self._parse(row)
                slot = merged.setdefault(key, {"billed": Decimal(0), "effective": Decimal(0),
                                               "quantity": None, "values": values})
                slot["billed" if cost_type == "ActualCost" else "effective"] += values["cost"]
                if values["quantity"] is not None and (cost_type == "ActualCost" or slot["quantity"] is None):
                    slot["quantity"] = values["quantity"]
        for (day, currency, dims, customer), slot in merged.items():
            yield self._record(day, currency, dict(dims), customer, slot)

    def _parse(self, row: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
        cost_col = next((c for c in COST_COLUMNS if c in row), None)
        if cost_col is None or "UsageDate" not in row or "Currency" not in row:
            raise SourceError("payload", f"azure: query result lacks a cost, UsageDate or Currency column "
                                         f"(columns: {', '.join(row)})")
        day = _usage_date(row["UsageDate"])
        currency = str(row["Currency"] or "").upper()
        cost = _decimal(row[cost_col], cost_col)
        quantity = _decimal(row["UsageQuantity"], "UsageQuantity") if row.get("UsageQuantity") is not None else None
        dims = tuple((d, row.get(d)) for d in self.group_by)
        customer = (row.get("TagValue") or None) if self.customer_tag else None
        return (day, currency, dims, customer), {"cost": cost, "quantity": quantity}

    def _record(self, day: dt.date, currency: str, dims: dict[str, Any], customer: str | None,
                slot: dict[str, Any]) -> BillingRecord:
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
        fields: dict[str, Any] = {"sub_account_id": self.sub_account_id,
                                  "service_name": self.services[0] if len(self.services) == 1 else None}
        for dim, value in dims.items():
            target = _DIMENSION_FIELD.get(dim.lower())
            if target and value not in (None, ""):
                fields[target] = str(value)
        texts = [str(v) for v in dims.values() if v not in (None, "")]
        cls = classify("azure", *texts)
        return BillingRecord(
            charge_period_start=start, charge_period_end=start + dt.timedelta(days=1), provider="azure",
            billing_account_id=self.billing_account_id, billed_cost=slot["billed"],
            effective_cost=slot["effective"], billing_currency=currency,
            consumed_quantity=slot["quantity"], model=cls.model, token_type=cls.token_type,
            customer_id=customer, tags={self.customer_tag: customer} if customer else {}, **fields)


def _raise_for_status(response: Any) -> None:
    from azure.core.exceptions import HttpResponseError

    if response.status_code not in (200, 204):
        raise HttpResponseError(response=response)


def _usage_date(value: Any) -> dt.date:
    text = str(value)
    try:
        if re.fullmatch(r"\d{8}", text):
            return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise SourceError("payload", f"azure: UsageDate {value!r} is not a date") from None


def _decimal(value: Any, column: str) -> Decimal:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        if not number.is_finite():
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        raise SourceError("payload", f"azure: {column} {value!r} is not a number") from None
    return number


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
