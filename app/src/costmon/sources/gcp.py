"""GCP Cloud Billing export in BigQuery -> BillingRecords.

One parameterized query of the configured export table (standard or
detailed), restricted to the AI services, grouped per usage day, SKU, project
and the customer label. Costs are summed as NUMERIC (the export stores FLOAT64;
NUMERIC keeps the sum exact to 1e-9), billed = cost and effective = cost plus
its credits (credits are negative). The query filters the partition column so
BigQuery scans only the partitions that can hold the window: for the
ingestion-time partitioned tables (_PARTITIONTIME) that is the window plus
`late_days`, because export rows land up to a few days after usage.

The whole result is read before any record is yielded, so a throttled or
failed page can re-run the query (BigQuery caches identical results) without
yielding a row twice. Every HTTP request is counted; the estimated cost is the
bytes the query processed at the on-demand price.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from ..classify import classify
from ..records import BillingRecord, Window
from ..store.loader import RunStats
from .base import SourceError, backoff_delay

DEFAULT_SERVICES = ("Vertex AI", "Gemini API", "Generative Language API")
PARTITION_COLUMNS = ("_PARTITIONTIME", "usage_start_time")
USD_PER_TIB = Decimal("6.25")  # BigQuery on-demand analysis price
_TABLE = re.compile(r"^[A-Za-z0-9_.:-]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_$-]+$")
_RETRYABLE_REASONS = {"rateLimitExceeded", "backendError", "internalError", "badGateway", "jobRateLimitExceeded"}
_CHARGE_CATEGORY = {"regular": "Usage", "tax": "Tax", "adjustment": "Adjustment", "rounding_error": "Adjustment"}
_SCOPES = ("https://www.googleapis.com/auth/bigquery.readonly", "https://www.googleapis.com/auth/cloud-platform")


def valid_table(name: str) -> bool:
    """project.dataset.table (what `COSTMON_GCP_BILLING_TABLE` must hold)."""
    return bool(_TABLE.match(name))


def query_sql(table: str, partition_column: str) -> str:
    if not valid_table(table):
        raise ValueError(f"{table!r} is not a project.dataset.table name")
    if partition_column == "_PARTITIONTIME":
        partition = ("_PARTITIONTIME >= TIMESTAMP(@partition_start) "
                     "AND _PARTITIONTIME < TIMESTAMP(@partition_end)\n  AND ")
    elif partition_column == "usage_start_time":
        partition = ""  # the usage_start_time range below is the partition filter
    else:
        raise ValueError(f"partition column must be one of {', '.join(PARTITION_COLUMNS)}")
    return f"""SELECT
  DATE(usage_start_time) AS usage_day,
  billing_account_id,
  service.description AS service_description,
  sku.id AS sku_id,
  sku.description AS sku_description,
  project.id AS project_id,
  project.name AS project_name,
  location.region AS region,
  (SELECT l.value FROM UNNEST(labels) AS l WHERE l.key = @customer_label LIMIT 1) AS customer,
  cost_type,
  currency,
  usage.pricing_unit AS pricing_unit,
  SUM(CAST(cost AS NUMERIC)) AS cost,
  SUM(IFNULL((SELECT SUM(CAST(c.amount AS NUMERIC)) FROM UNNEST(credits) AS c), 0)) AS credits,
  SUM(CAST(usage.amount_in_pricing_units AS NUMERIC)) AS quantity
FROM `{table}`
WHERE {partition}usage_start_time >= TIMESTAMP(@start) AND usage_start_time < TIMESTAMP(@end)
  AND service.description IN UNNEST(@services)
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12"""


def make_client(project: str | None, *, endpoint: str | None = None,
                on_response: Callable[[Any], None] | None = None):
    """A BigQuery client whose HTTP session reports every response to `on_response`.

    With an endpoint override (local fakes): anonymous credentials. Otherwise
    application default credentials (GOOGLE_APPLICATION_CREDENTIALS, workload
    identity, gcloud), read-only scopes.
    """
    import requests
    from google.api_core.client_options import ClientOptions
    from google.cloud import bigquery

    options = None
    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        credentials: Any = AnonymousCredentials()
        session = requests.Session()
        options = ClientOptions(api_endpoint=endpoint.rstrip("/"))
    else:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError
        from google.auth.transport.requests import AuthorizedSession

        try:
            credentials, default_project = google.auth.default(scopes=list(_SCOPES))
        except DefaultCredentialsError as exc:
            raise SourceError("auth", f"gcp: no Google credentials: {str(exc).splitlines()[0]}") from None
        project = project or default_project
        session = AuthorizedSession(credentials)
    if on_response is not None:
        session.hooks["response"].append(lambda response, *a, **k: on_response(response))
    return bigquery.Client(project=project, credentials=credentials, _http=session, client_options=options)


class GcpBillingExportSource:
    provider = "gcp"
    accounts = None

    def __init__(self, name: str = "gcp", *, table: str, project: str | None = None,
                 services: Sequence[str] = DEFAULT_SERVICES, customer_label: str = "customer_id",
                 partition_column: str = "_PARTITIONTIME", late_days: int = 7, location: str | None = None,
                 endpoint: str | None = None, client_factory: Callable[..., Any] = make_client,
                 page_size: int = 5000, max_attempts: int = 5, backoff_seconds: float = 2.0,
                 max_backoff_seconds: float = 60.0, usd_per_tib: Decimal = USD_PER_TIB,
                 sleep: Callable[[float], None] | None = None):
        self.sql = query_sql(table, partition_column)  # validates both
        if not services:
            raise ValueError("at least one GCP service is required")
        self.name = name
        self.table = table
        # The job runs (and is billed) in this project; by default the table's.
        self.project = project or table.split(".")[0]
        self.services = tuple(services)
        self.customer_label = customer_label
        self.partition_column = partition_column
        self.late_days = late_days
        self.location = location
        self.endpoint = endpoint
        self._client_factory = client_factory
        self.page_size = page_size
        self.max_attempts = max(1, max_attempts)
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.usd_per_tib = usd_per_tib
        self.sleep = sleep or time.sleep  # injectable: tests never wait
        self.stats = RunStats()

    def parameters(self, window: Window) -> list[Any]:
        from google.cloud import bigquery

        params = [
            bigquery.ScalarQueryParameter("start", "DATE", window.start),
            bigquery.ScalarQueryParameter("end", "DATE", window.end),
            bigquery.ArrayQueryParameter("services", "STRING", list(self.services)),
            bigquery.ScalarQueryParameter("customer_label", "STRING", self.customer_label),
        ]
        if self.partition_column == "_PARTITIONTIME":
            # A day early too: the partition is the export's clock, not usage's.
            params += [bigquery.ScalarQueryParameter("partition_start", "DATE",
                                                     window.start - dt.timedelta(days=1)),
                       bigquery.ScalarQueryParameter("partition_end", "DATE",
                                                     window.end + dt.timedelta(days=self.late_days))]
        return params

    def _count(self, response: Any) -> None:
        self.stats.api_calls += 1

    def fetch(self, window: Window) -> Iterator[BillingRecord]:
        for row in self._query(window):
            yield self._record(row)

    def _query(self, window: Window) -> list[dict[str, Any]]:
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        client = self._client_factory(self.project, endpoint=self.endpoint, on_response=self._count)
        config = bigquery.QueryJobConfig(query_parameters=self.parameters(window), use_legacy_sql=False)
        for attempt in range(1, self.max_attempts + 1):
            try:
                rows = client.query_and_wait(self.sql, job_config=config, location=self.location,
                                             page_size=self.page_size, retry=None, job_retry=None)
                result = [dict(r.items()) for r in rows]
                if rows.total_bytes_processed:
                    self.stats.api_cost_usd += (Decimal(rows.total_bytes_processed) / Decimal(2 ** 40)
                                                * self.usd_per_tib).quantize(Decimal("0.000001"))
                return result
            except gexc.GoogleAPICallError as exc:
                reasons = {e.get("reason") for e in (exc.errors or []) if isinstance(e, dict)}
                if reasons & _RETRYABLE_REASONS or exc.code in (429, 500, 502, 503):
                    if attempt == self.max_attempts:
                        raise SourceError("throttled", f"gcp: BigQuery still refusing ({_first_line(exc)}) "
                                                       f"after {attempt} attempts") from None
                    self.sleep(backoff_delay(attempt, self.backoff_seconds, self.max_backoff_seconds))
                    continue
                if exc.code in (401, 403):
                    raise SourceError("auth", f"gcp: access denied to {self.table} ({_first_line(exc)}); needs "
                                              "BigQuery Data Viewer on the dataset and BigQuery Job User "
                                              f"on project {self.project}") from None
                if exc.code == 404:
                    raise SourceError("config", f"gcp: {_first_line(exc)} (check COSTMON_GCP_BILLING_TABLE)") from None
                raise SourceError("upstream", f"gcp: BigQuery query failed: {_first_line(exc)}") from None
            except (gexc.RetryError, OSError) as exc:
                raise SourceError("unavailable", f"gcp: BigQuery unreachable: {_first_line(exc)}") from None
        raise AssertionError("unreachable")

    def _record(self, row: dict[str, Any]) -> BillingRecord:
        day = row["usage_day"]
        if not isinstance(day, dt.date):
            raise SourceError("payload", f"gcp: usage_day {day!r} is not a date")
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
        cost = _decimal(row.get("cost"), "cost")
        credits = _decimal(row.get("credits") or 0, "credits")
        customer = row.get("customer") or None
        sku_description = row.get("sku_description")
        service = row.get("service_description")
        cls = classify("gcp", sku_description, row.get("sku_id"), service)
        return BillingRecord(
            charge_period_start=start, charge_period_end=start + dt.timedelta(days=1), provider="gcp",
            billing_account_id=row.get("billing_account_id") or "unknown",
            charge_category=_CHARGE_CATEGORY.get((row.get("cost_type") or "regular").lower(), "Adjustment"),
            billed_cost=cost, effective_cost=cost + credits,
            billing_currency=str(row.get("currency") or "").upper(),
            sub_account_id=row.get("project_id"), sub_account_name=row.get("project_name"),
            service_name=service, sku_id=row.get("sku_id"), charge_description=sku_description,
            region=row.get("region"),
            consumed_quantity=_decimal(row["quantity"], "quantity") if row.get("quantity") is not None else None,
            consumed_unit=row.get("pricing_unit"), model=cls.model, token_type=cls.token_type,
            customer_id=customer, tags={self.customer_label: customer} if customer else {})


def _decimal(value: Any, column: str) -> Decimal:
    if isinstance(value, Decimal) and value.is_finite():
        return value
    if isinstance(value, int):
        return Decimal(value)
    raise SourceError("payload", f"gcp: {column} {value!r} is not a NUMERIC value")


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
