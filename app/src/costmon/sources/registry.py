"""Which billing sources exist, which are enabled and complete, and how to build them.

Everything a source needs is read here from Settings.environ (with config.Env,
so each problem is one line naming the variable). Cloud sources are opt-in:
a source is scheduled only when COSTMON_SOURCES names it (or its
COSTMON_<P>_ENABLED is true), and only when its settings are complete. With
nothing enabled, the demo source is scheduled (it is the default source).
`costmon ingest --source S` builds any source whose settings are complete.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from ..config import ConfigError, Env, Settings
from .base import Source

CLOUD = ("aws", "azure", "gcp")
KNOWN = CLOUD + ("demo",)
DEFAULT_SCHEDULES = {"aws": "0 3 * * *", "azure": "0 4 * * *", "gcp": "0 */6 * * *", "demo": "15 * * * *"}


@dataclass
class SourceSpec:
    name: str
    schedule: str  # 5-field crontab, UTC
    enabled: bool  # asked for: scheduled by `serve` when also complete
    problems: list[str] = field(default_factory=list)  # one line each; empty = complete
    factory: Callable[[], Source] | None = None

    @property
    def complete(self) -> bool:
        return not self.problems and self.factory is not None


@dataclass(frozen=True)
class RunPolicy:
    """What window each scheduled run re-reads."""

    restatement_days: int = 3  # trailing days re-ingested every run
    restate_month_days: frozenset[int] = frozenset({5})  # days of month that re-read the whole previous month
    max_catchup_days: int = 31  # a gap since the last success is filled back this far at most


def _cron(value: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    CronTrigger.from_crontab(value, timezone=dt.timezone.utc)  # raises ValueError with the reason
    return value


def _days_of_month(value: str) -> frozenset[int]:
    days = frozenset(int(v) for v in value.split(",") if v.strip())
    if any(not 1 <= d <= 28 for d in days):
        raise ValueError("expected days of month 1-28, comma separated")
    return days


def run_policy(settings: Settings, env: Env | None = None) -> RunPolicy:
    env = env or Env(settings.environ)
    return RunPolicy(
        restatement_days=settings.restatement_days,
        restate_month_days=env.get("COSTMON_RESTATE_MONTH_DAYS", frozenset({5}), _days_of_month),
        max_catchup_days=env.integer("COSTMON_CATCHUP_MAX_DAYS", 31, minimum=1))


def _enabled(settings: Settings, env: Env, name: str) -> bool:
    asked = name in settings.sources or env.flag(f"COSTMON_{name.upper()}_ENABLED", False)
    if name == "demo" and not asked:
        # The default source when nothing real is configured, so a fresh appliance shows
        # live (clearly demo-*) figures instead of empty dashboards.
        probe = Env(settings.environ)
        return not settings.sources and not any(
            probe.flag(f"COSTMON_{c.upper()}_ENABLED", False) for c in CLOUD)
    return asked


def _spec(settings: Settings, name: str, build: Callable[[Env], Callable[[], Source]]) -> SourceSpec:
    env = Env(settings.environ)
    enabled = _enabled(settings, env, name)
    schedule = env.get(f"COSTMON_{name.upper()}_SCHEDULE", DEFAULT_SCHEDULES[name], _cron)
    factory = build(env)
    return SourceSpec(name, schedule, enabled, list(env.problems), None if env.problems else factory)


# ---- per source ------------------------------------------------------------------------------

def _aws(env: Env) -> Callable[[], Source]:
    from . import aws

    services = env.words("COSTMON_AWS_SERVICES", aws.DEFAULT_SERVICES)
    tag = env.get("COSTMON_AWS_CUSTOMER_TAG", "customer_id")
    account = env.raw("COSTMON_AWS_ACCOUNT_ID")
    attempts = env.integer("COSTMON_AWS_MAX_ATTEMPTS", 5, minimum=1)
    key, secret = env.raw("AWS_ACCESS_KEY_ID"), env.raw("AWS_SECRET_ACCESS_KEY")
    if key and not secret:
        env.problems.append("AWS_SECRET_ACCESS_KEY is not set (AWS_ACCESS_KEY_ID is)")
    if secret and not key:
        env.problems.append("AWS_ACCESS_KEY_ID is not set (AWS_SECRET_ACCESS_KEY is)")
    if not services:
        env.problems.append("COSTMON_AWS_SERVICES is empty: name at least one Cost Explorer SERVICE")
    return lambda: aws.AwsCostExplorerSource("aws", services=services, customer_tag=tag,
                                             account_id=account, max_attempts=attempts)


def _azure(env: Env) -> Callable[[], Source]:
    from . import azure

    scope = env.get("COSTMON_AZURE_SCOPE", None, required=True,
                    what="the Cost Management scope, e.g. subscriptions/<id>")
    principal = {v: env.raw(v) for v in ("COSTMON_AZURE_TENANT_ID", "COSTMON_AZURE_CLIENT_ID",
                                         "COSTMON_AZURE_CLIENT_SECRET")}
    if any(principal.values()):
        for variable, value in principal.items():
            if not value:
                env.problems.append(f"{variable} is not set (a service principal needs tenant, client id and secret)")
    endpoint = env.raw("COSTMON_AZURE_ENDPOINT")
    services = env.words("COSTMON_AZURE_SERVICES", azure.DEFAULT_SERVICES)
    dimension = env.get("COSTMON_AZURE_SERVICE_DIMENSION", "ServiceName")
    group_by = env.words("COSTMON_AZURE_GROUP_BY", ("Meter",))
    tag = env.get("COSTMON_AZURE_CUSTOMER_TAG", "customer_id")
    if tag.lower() == "none":
        tag = None
    if not group_by or len(group_by) + (1 if tag else 0) > azure.MAX_GROUPINGS:
        env.problems.append(f"COSTMON_AZURE_GROUP_BY={','.join(group_by)!r} is invalid: the Cost Management query "
                            f"allows {azure.MAX_GROUPINGS} groupings including the customer tag")
    attempts = env.integer("COSTMON_AZURE_MAX_ATTEMPTS", 5, minimum=1)
    max_wait = env.integer("COSTMON_AZURE_MAX_WAIT_SECONDS", 300, minimum=1)

    def build() -> Source:
        return azure.AzureCostSource(
            "azure", scope=scope, services=services, service_dimension=dimension, group_by=group_by,
            customer_tag=tag, max_attempts=attempts, max_wait_seconds=max_wait,
            client_factory=lambda: azure.make_client(
                endpoint=endpoint, tenant_id=principal["COSTMON_AZURE_TENANT_ID"],
                client_id=principal["COSTMON_AZURE_CLIENT_ID"],
                client_secret=principal["COSTMON_AZURE_CLIENT_SECRET"]))
    return build


def _gcp(env: Env) -> Callable[[], Source]:
    from . import gcp

    def table_name(v: str) -> str:
        if not gcp.valid_table(v):
            raise ValueError("expected project.dataset.table")
        return v

    def partition(v: str) -> str:
        if v not in gcp.PARTITION_COLUMNS:
            raise ValueError(f"expected one of {', '.join(gcp.PARTITION_COLUMNS)}")
        return v

    table = env.get("COSTMON_GCP_BILLING_TABLE", None, table_name, required=True,
                    what="the billing export table, project.dataset.gcp_billing_export_v1_<ACCOUNT>")
    project = env.raw("COSTMON_GCP_PROJECT")
    services = env.words("COSTMON_GCP_SERVICES", gcp.DEFAULT_SERVICES)
    label = env.get("COSTMON_GCP_CUSTOMER_LABEL", "customer_id")
    column = env.get("COSTMON_GCP_PARTITION_COLUMN", "_PARTITIONTIME", partition)
    late = env.integer("COSTMON_GCP_LATE_DAYS", 7)
    location = env.raw("COSTMON_GCP_LOCATION")
    endpoint = env.raw("COSTMON_BIGQUERY_ENDPOINT")
    price = env.get("COSTMON_GCP_USD_PER_TIB", gcp.USD_PER_TIB, Decimal)
    keyfile = env.raw("GOOGLE_APPLICATION_CREDENTIALS")
    if keyfile and not endpoint and not os.path.isfile(keyfile):
        env.problems.append(f"GOOGLE_APPLICATION_CREDENTIALS={keyfile!r} is not a readable file")
    if not services:
        env.problems.append("COSTMON_GCP_SERVICES is empty: name at least one service.description")
    return lambda: gcp.GcpBillingExportSource(
        "gcp", table=table, project=project, services=services, customer_label=label,
        partition_column=column, late_days=late, location=location, endpoint=endpoint, usd_per_tib=price)


def _demo(env: Env) -> Callable[[], Source]:
    def build() -> Source:
        from .demo import DemoSource
        return DemoSource(name="demo", now=dt.datetime.now(dt.timezone.utc))
    return build


_BUILDERS = {"aws": _aws, "azure": _azure, "gcp": _gcp, "demo": _demo}


# ---- what the CLI and the scheduler call ----------------------------------------------------

def specs(settings: Settings) -> dict[str, SourceSpec]:
    return {name: _spec(settings, name, _BUILDERS[name]) for name in KNOWN}


def problems(settings: Settings) -> list[str]:
    """One line per problem of each enabled source (for `costmon check`)."""
    out = [f"COSTMON_SOURCES names unknown source {n!r} (known: {', '.join(KNOWN)})"
           for n in settings.sources if n not in KNOWN]
    env = Env(settings.environ)
    run_policy(settings, env)
    out += env.problems
    for spec in specs(settings).values():
        if spec.enabled:
            out += [f"source {spec.name}: {p}" for p in spec.problems]
    return out


def scheduled(settings: Settings) -> tuple[list[SourceSpec], list[SourceSpec]]:
    """(enabled and complete, enabled but incomplete)."""
    enabled = [s for s in specs(settings).values() if s.enabled]
    return [s for s in enabled if s.complete], [s for s in enabled if not s.complete]


def build_source(settings: Settings, name: str) -> Source:
    """The Source called `name`; ConfigError naming what is missing when it cannot be built."""
    if name not in _BUILDERS:
        raise ConfigError([f"unknown source {name!r}: expected one of {', '.join(KNOWN)}"])
    spec = _spec(settings, name, _BUILDERS[name])
    if not spec.complete:
        raise ConfigError([f"source {name}: {p}" for p in spec.problems])
    try:
        return spec.factory()
    except ValueError as exc:
        raise ConfigError([f"source {name}: {exc}"]) from None
