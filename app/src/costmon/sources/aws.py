"""AWS Cost Explorer (GetCostAndUsage) -> BillingRecords.

One DAILY request per configured SERVICE (paged by NextPageToken), grouped by
USAGE_TYPE and the customer tag: Cost Explorer allows two GroupBy keys, and
asking per service keeps the service name on every row (a Bedrock Marketplace
model such as "Claude 3 Haiku (Amazon Bedrock Edition)" is only recognisable
by its service). Every request is billed by AWS ($0.01), so each one is
counted in `stats`, botocore's own retries are off (they would be invisible
and billed) and throttling is retried here, a bounded number of times.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from ..classify import classify
from ..records import BillingRecord, Window
from ..store.loader import RunStats
from .base import SourceError, backoff_delay

DEFAULT_SERVICES = (
    "Amazon Bedrock",
    "Amazon SageMaker",
    "Claude 3 Haiku (Amazon Bedrock Edition)",
    "Claude 3.5 Sonnet (Amazon Bedrock Edition)",
)
PRICE_PER_REQUEST_USD = Decimal("0.01")
THROTTLED = ("LimitExceededException", "ThrottlingException", "Throttling", "TooManyRequestsException")
DENIED = ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "UnrecognizedClientException",
          "InvalidClientTokenId", "ExpiredTokenException")
METRICS = ("UnblendedCost", "AmortizedCost", "UsageQuantity")


def make_client(endpoint_url: str | None = None):
    """A Cost Explorer client without botocore retries (ours are counted and bounded).

    boto3 itself honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_COST_EXPLORER.
    """
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "total_max_attempts": 1},
                    connect_timeout=10, read_timeout=60)
    return boto3.client("ce", region_name="us-east-1", endpoint_url=endpoint_url, config=config)


def caller_account(endpoint_url: str | None = None) -> str:
    import boto3

    return boto3.client("sts", region_name="us-east-1", endpoint_url=endpoint_url) \
        .get_caller_identity()["Account"]


class AwsCostExplorerSource:
    provider = "aws"
    accounts = None  # authoritative for everything this source name loaded in the window

    def __init__(self, name: str = "aws", *, services: Sequence[str] = DEFAULT_SERVICES,
                 customer_tag: str = "customer_id", account_id: str | None = None,
                 client: Any = None, client_factory: Callable[[], Any] = make_client,
                 account_resolver: Callable[[], str] = caller_account,
                 max_attempts: int = 5, backoff_seconds: float = 2.0, max_backoff_seconds: float = 60.0,
                 sleep: Callable[[float], None] | None = None):
        if not services:
            raise ValueError("at least one AWS service is required")
        self.name = name
        self.services = tuple(services)
        self.customer_tag = customer_tag
        self.account_id = account_id
        self._client = client
        self._client_factory = client_factory
        self._account_resolver = account_resolver
        self.max_attempts = max(1, max_attempts)
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.sleep = sleep or time.sleep  # injectable: tests never wait
        self.stats = RunStats()

    # ---- requests ------------------------------------------------------------------------

    def request(self, window: Window, service: str, token: str | None = None) -> dict[str, Any]:
        req: dict[str, Any] = {
            "TimePeriod": {"Start": window.start.isoformat(), "End": window.end.isoformat()},
            "Granularity": "DAILY",
            "Metrics": list(METRICS),
            "Filter": {"Dimensions": {"Key": "SERVICE", "Values": [service]}},
            "GroupBy": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"},
                        {"Type": "TAG", "Key": self.customer_tag}],
        }
        if token:
            req["NextPageToken"] = token
        return req

    def _call(self, client: Any, request: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        for attempt in range(1, self.max_attempts + 1):
            self.stats.api_calls += 1
            try:
                response = client.get_cost_and_usage(**request)
            except NoCredentialsError:
                raise SourceError("auth", "aws: no AWS credentials found (set AWS_ACCESS_KEY_ID/"
                                          "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role)") from None
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                message = (exc.response.get("Error", {}).get("Message") or code).splitlines()[0]
                if code in THROTTLED:
                    if attempt == self.max_attempts:
                        raise SourceError("throttled", f"aws: Cost Explorer still throttling ({code}) "
                                                       f"after {attempt} attempts") from None
                    self.sleep(backoff_delay(attempt, self.backoff_seconds, self.max_backoff_seconds))
                    continue
                if code in DENIED:
                    raise SourceError("auth", f"aws: access denied by Cost Explorer ({code}: {message}); "
                                              "needs ce:GetCostAndUsage, on the management account "
                                              "with Cost Explorer enabled") from None
                raise SourceError("upstream", f"aws: Cost Explorer error {code}: {message}") from None
            except BotoCoreError as exc:
                raise SourceError("unavailable", f"aws: Cost Explorer unreachable: {exc}") from None
            self.stats.api_cost_usd += PRICE_PER_REQUEST_USD  # AWS bills answered requests
            return response
        raise AssertionError("unreachable")

    # ---- records -------------------------------------------------------------------------

    def fetch(self, window: Window) -> Iterator[BillingRecord]:
        client = self._client or self._client_factory()
        account = self.account_id or self._resolve_account()
        for service in self.services:
            token = None
            while True:
                page = self._call(client, self.request(window, service, token))
                for result in page.get("ResultsByTime", []):
                    yield from self._records(result, service, account)
                token = page.get("NextPageToken")
                if not token:
                    break

    def _resolve_account(self) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.account_id = self._account_resolver()
        except (BotoCoreError, ClientError) as exc:
            raise SourceError("auth", f"aws: cannot tell which account this is (sts:GetCallerIdentity "
                                      f"failed: {str(exc).splitlines()[0]}); set COSTMON_AWS_ACCOUNT_ID") from None
        return self.account_id

    def _records(self, result: dict[str, Any], service: str, account: str) -> Iterator[BillingRecord]:
        start = _day(result["TimePeriod"]["Start"])
        end = _day(result["TimePeriod"]["End"])
        estimated = bool(result.get("Estimated", False))
        for group in result.get("Groups", []):
            keys = group.get("Keys", [])
            usage_type = keys[0] if keys else ""
            customer = _tag_value(keys[1]) if len(keys) > 1 else None
            metrics = group.get("Metrics", {})
            billed, currency = _amount(metrics, "UnblendedCost")
            effective, effective_currency = _amount(metrics, "AmortizedCost")
            if effective_currency != currency:
                raise SourceError("payload", f"aws: {usage_type} on {start.date()} has UnblendedCost in "
                                             f"{currency} but AmortizedCost in {effective_currency}")
            quantity, unit = _amount(metrics, "UsageQuantity", money=False)
            cls = classify("aws", usage_type, service)
            yield BillingRecord(
                charge_period_start=start, charge_period_end=end, provider="aws",
                billing_account_id=account, sub_account_id=account,
                billed_cost=billed, effective_cost=effective, billing_currency=currency,
                service_name=service, sku_id=usage_type, charge_description=usage_type,
                consumed_quantity=quantity, consumed_unit=unit,
                model=cls.model, token_type=cls.token_type, customer_id=customer,
                tags={self.customer_tag: customer} if customer else {},
                estimated=estimated)


def _day(text: str) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), tzinfo=dt.timezone.utc)


def _tag_value(key: str) -> str | None:
    """'customer_id$acme' -> 'acme'; 'customer_id$' (untagged) -> None."""
    _, _, value = key.partition("$")
    return value or None


def _amount(metrics: dict[str, Any], name: str, *, money: bool = True) -> tuple[Any, Any]:
    metric = metrics.get(name)
    if metric is None:
        if money:
            raise SourceError("payload", f"aws: response has no {name} metric")
        return None, None
    try:
        amount = Decimal(metric["Amount"])
        if not amount.is_finite():
            raise ValueError
    except (KeyError, TypeError, ValueError, ArithmeticError):
        raise SourceError("payload", f"aws: {name} amount {metric.get('Amount')!r} is not a number") from None
    unit = metric.get("Unit")
    if money:
        return amount, (unit or "").upper()
    return amount, (None if unit in (None, "", "N/A") else unit)
