"""Settings from the environment (plus an optional YAML file).

Every problem is reported as one line naming the variable, and all problems
are collected before failing so an operator fixes them in one pass.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(Exception):
    """One or more settings are missing or malformed; .problems holds one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class Env:
    """Reads typed values from an environment mapping, collecting problems."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        self.environ = dict(os.environ if environ is None else environ)
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.environ.get(name)
        return value if value not in (None, "") else None

    def get(self, name: str, default: T, parse: Callable[[str], T] = str, *,
            required: bool = False, what: str = "") -> T:
        value = self.raw(name)
        if value is None:
            if required:
                self.problems.append(f"{name} is not set{': ' + what if what else ''}")
            return default
        try:
            return parse(value)
        except (ValueError, TypeError) as exc:
            self.problems.append(f"{name}={_shown(name, value)} is invalid: {exc}")
            return default

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        def parse(v: str) -> int:
            n = int(v)
            if n < minimum:
                raise ValueError(f"must be >= {minimum}")
            return n
        return self.get(name, default, parse)

    def flag(self, name: str, default: bool) -> bool:
        def parse(v: str) -> bool:
            low = v.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        return self.get(name, default, parse)

    def words(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        return self.get(name, default, lambda v: tuple(w.strip() for w in v.split(",") if w.strip()))


SECRET_MARKERS = ("PASSWORD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "DATABASE_URL", "DSN")


def is_secret(name: str) -> bool:
    return any(m in name.upper() for m in SECRET_MARKERS)


def _shown(name: str, value: str) -> str:
    return "<redacted>" if is_secret(name) else repr(value)


def _database_url(v: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    if "://" in v and not v.startswith(("postgresql://", "postgres://")):
        raise ValueError("expected a postgresql:// URL or a libpq key=value string")
    try:
        conninfo_to_dict(v)
    except Exception:  # noqa: BLE001 - psycopg raises ProgrammingError; the text may hold the password
        raise ValueError("expected a postgresql:// URL or a libpq key=value string") from None
    return v


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    log_level: str = "info"
    log_file: str | None = None
    metrics_cache_seconds: int = 30
    metrics_top_customers: int = 10
    metrics_top_models: int = 10
    metrics_max_series: int = 2000
    raw_retention_days: int = 730
    compress_after_days: int = 90
    sources: tuple[str, ...] = ()
    restatement_days: int = 3
    demo_days: int = 90
    alert_thresholds: tuple[tuple[str, str, Decimal], ...] = ()
    grafana_db_user: str | None = None
    grafana_db_password: str | None = None
    config_file: str | None = None
    file_config: dict[str, Any] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)


LOG_LEVELS = ("debug", "info", "warning", "error")
# Names the Prometheus rules read from costmon_alert_threshold (prometheus/rules/thresholds.yml).
ALERT_THRESHOLDS = ("daily_spend", "customer_daily_quota", "anomaly_floor")


def _thresholds(text: str) -> tuple[tuple[str, str, Decimal], ...]:
    """'daily_spend:USD=150,customer_daily_quota:EUR=5' -> ((alert, currency, amount), ...)."""
    out = []
    for item in (i.strip() for i in text.split(",") if i.strip()):
        try:
            key, amount = item.split("=", 1)
            alert, currency = key.split(":", 1)
            value = Decimal(amount.strip())
        except (ValueError, InvalidOperation):
            raise ValueError(f"{item!r} is not alert:CURRENCY=amount") from None
        alert, currency = alert.strip(), currency.strip()
        if alert not in ALERT_THRESHOLDS:
            raise ValueError(f"unknown alert {alert!r}; choose from {', '.join(ALERT_THRESHOLDS)}")
        if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
            raise ValueError(f"{currency!r} is not an ISO 4217 currency code")
        if not value.is_finite() or value < 0:
            raise ValueError(f"{item!r}: amount must be a non-negative number")
        out.append((alert, currency, value))
    return tuple(out)


def load_settings(environ: Mapping[str, str] | None = None, *, need_database: bool = True) -> Settings:
    """Parse settings; raise ConfigError listing every problem at once."""
    env = Env(environ)
    database_url = env.get("COSTMON_DATABASE_URL", None, _database_url, required=need_database,
                           what="the PostgreSQL/TimescaleDB connection URL")

    def level(v: str) -> str:
        if v.lower() not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
        return v.lower()

    def port(v: str) -> int:
        n = int(v)
        if not 0 < n < 65536:
            raise ValueError("expected a TCP port 1-65535")
        return n

    config_file = env.raw("COSTMON_CONFIG_FILE")
    file_config: dict[str, Any] = {}
    if config_file:
        try:
            loaded = yaml.safe_load(Path(config_file).read_text())
            if loaded is None:
                loaded = {}
            if not isinstance(loaded, dict):
                raise ValueError("top level must be a mapping")
            file_config = loaded
        except (OSError, yaml.YAMLError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            env.problems.append(f"COSTMON_CONFIG_FILE={config_file!r} cannot be read: {first}")

    grafana_password = env.raw("COSTMON_GRAFANA_DB_PASSWORD")
    settings = Settings(
        database_url=database_url,
        http_host=env.get("COSTMON_HTTP_HOST", "0.0.0.0"),
        http_port=env.get("COSTMON_HTTP_PORT", 8080, port),
        log_level=env.get("COSTMON_LOG_LEVEL", "info", level),
        log_file=env.raw("COSTMON_LOG_FILE"),
        metrics_cache_seconds=env.integer("COSTMON_METRICS_CACHE_SECONDS", 30),
        metrics_top_customers=env.integer("COSTMON_METRICS_TOP_CUSTOMERS", 10, minimum=1),
        metrics_top_models=env.integer("COSTMON_METRICS_TOP_MODELS", 10, minimum=1),
        metrics_max_series=env.integer("COSTMON_METRICS_MAX_SERIES", 2000, minimum=10),
        raw_retention_days=env.integer("COSTMON_RAW_RETENTION_DAYS", 730, minimum=1),
        compress_after_days=env.integer("COSTMON_COMPRESS_AFTER_DAYS", 90, minimum=1),
        sources=env.words("COSTMON_SOURCES", ()),
        restatement_days=env.integer("COSTMON_RESTATEMENT_DAYS", 3, minimum=0),
        demo_days=env.integer("COSTMON_DEMO_DAYS", 90, minimum=1),
        alert_thresholds=env.get("COSTMON_ALERT_THRESHOLDS", (), _thresholds),
        grafana_db_user=env.get("COSTMON_GRAFANA_DB_USER", "grafana_reader" if grafana_password else None),
        grafana_db_password=grafana_password,
        config_file=config_file,
        file_config=file_config,
        environ=env.environ,
    )
    if env.problems:
        raise ConfigError(env.problems)
    return settings
