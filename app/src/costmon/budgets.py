"""Budgets, plan tiers and customers from the YAML config file, checked and synced to tables.

The file (COSTMON_CONFIG_FILE) may hold other sections; this module reads only
`currency`, `thresholds`, `tiers`, `budgets` and `customers`. Every problem is
one line naming the key, and all are reported at once. `sync` makes the
`plan_tiers`, `customers` and `budgets` tables equal to the file, so SQL views
and dashboards join against exactly what the operator configured.

Amounts are Decimal in one currency each (the file's `currency`, default USD,
unless a budget or tier names its own); spend is compared only with budgets in
its own currency, never converted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg

from .config import ConfigError, Settings

SECTIONS = ("currency", "thresholds", "tiers", "budgets", "customers")
SEVERITIES = ("info", "warning", "critical")
DEFAULT_THRESHOLDS = (50, 80, 95, 100)
DEFAULT_CURRENCY = "USD"
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$")
_SYNC_LOCK = 7_215_006  # advisory lock: two collectors starting at once sync one after the other


@dataclass(frozen=True)
class Threshold:
    percent: Decimal
    severity: str

    @property
    def ratio(self) -> Decimal:
        return self.percent / 100

    @property
    def label(self) -> str:
        """The percent as a label value: '80', '92.5'."""
        return format(self.percent.normalize(), "f")


@dataclass(frozen=True)
class Tier:
    name: str
    monthly_price: Decimal
    llm_budget: Decimal
    currency: str


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    tier: str
    budget: Decimal | None = None  # overrides the tier's LLM budget


@dataclass(frozen=True)
class Budget:
    scope: str  # global | provider | customer
    name: str  # 'all' for global, the provider id, the customer id
    limit: Decimal
    currency: str


@dataclass(frozen=True)
class BudgetConfig:
    currency: str = DEFAULT_CURRENCY
    thresholds: tuple[Threshold, ...] = ()
    tiers: dict[str, Tier] = field(default_factory=dict)
    customers: tuple[Customer, ...] = ()
    budgets: tuple[Budget, ...] = ()
    present: bool = False  # the file has at least one of our sections

    def customer_budget(self, customer: Customer) -> Budget:
        tier = self.tiers[customer.tier]
        return Budget("customer", customer.id, customer.budget or tier.llm_budget, tier.currency)


def default_severity(percent: Decimal) -> str:
    """Severity rises with the threshold: below 80 % info, below 95 % warning, then critical."""
    if percent < 80:
        return "info"
    if percent < 95:
        return "warning"
    return "critical"


class _Problems:
    def __init__(self, where: str):
        self.where = where
        self.lines: list[str] = []

    def add(self, key: str, text: str) -> None:
        self.lines.append(f"{self.where}: {key} {text}")

    def amount(self, key: str, value: Any, *, positive: bool) -> Decimal | None:
        """A finite Decimal (> 0 or >= 0); None after recording a problem."""
        if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
            self.add(key, f"must be a number, got {value!r}")
            return None
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            self.add(key, f"must be a number, got {value!r}")
            return None
        if not amount.is_finite() or amount < 0 or (positive and amount == 0):
            self.add(key, f"must be {'greater than 0' if positive else '0 or more'}, got {value!r}")
            return None
        return amount

    def currency(self, key: str, value: Any) -> str | None:
        if isinstance(value, str) and _CURRENCY.match(value):
            return value
        self.add(key, f"must be an ISO 4217 code like USD, got {value!r}")
        return None

    def name(self, key: str, value: Any) -> str | None:
        if isinstance(value, str) and _NAME.match(value):
            return value
        self.add(key, f"must be a name of letters, digits and _.:@/- (max 128), got {value!r}")
        return None

    def mapping(self, key: str, value: Any, allowed: tuple[str, ...], required: tuple[str, ...] = ()
                ) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.add(key, f"must be a mapping, got {type(value).__name__}")
            return None
        for k in value:
            if k not in allowed:
                self.add(f"{key}.{k}", f"is not a known key (expected one of: {', '.join(allowed)})")
        for k in required:
            if k not in value:
                self.add(f"{key}.{k}", "is required")
        return value


def parse(raw: Mapping[str, Any], where: str = "config") -> tuple[BudgetConfig, list[str]]:
    """The budget sections of a loaded YAML file, and one line per problem found."""
    p = _Problems(where)
    present = any(k in raw for k in SECTIONS)
    currency = DEFAULT_CURRENCY
    if "currency" in raw:
        currency = p.currency("currency", raw["currency"]) or DEFAULT_CURRENCY
    thresholds = _thresholds(p, raw.get("thresholds", list(DEFAULT_THRESHOLDS)))
    tiers = _tiers(p, raw.get("tiers", {}), currency)
    declared = set(raw["tiers"]) if isinstance(raw.get("tiers"), Mapping) else set()
    customers = _customers(p, raw.get("customers", []), tiers, declared)
    budgets = _budgets(p, raw.get("budgets", {}), currency)
    cfg = BudgetConfig(currency=currency, thresholds=thresholds, tiers=tiers, customers=customers,
                       budgets=(), present=present)
    customer_budgets = tuple(cfg.customer_budget(c) for c in customers if c.tier in tiers)
    cfg = BudgetConfig(currency=currency, thresholds=thresholds, tiers=tiers, customers=customers,
                       budgets=budgets + customer_budgets, present=present)
    return cfg, p.lines


def _thresholds(p: _Problems, raw: Any) -> tuple[Threshold, ...]:
    if not isinstance(raw, list) or not raw:
        p.add("thresholds", f"must be a non-empty list of percentages, got {raw!r}")
        return tuple(Threshold(Decimal(t), default_severity(Decimal(t))) for t in DEFAULT_THRESHOLDS)
    out: dict[Decimal, Threshold] = {}
    for i, item in enumerate(raw):
        key = f"thresholds[{i}]"
        severity = None
        value = item
        if isinstance(item, Mapping):
            if p.mapping(key, item, ("percent", "severity"), ("percent",)) is None or "percent" not in item:
                continue
            value, severity = item["percent"], item.get("severity")
            if severity is not None and severity not in SEVERITIES:
                p.add(f"{key}.severity", f"must be one of {', '.join(SEVERITIES)}, got {severity!r}")
                continue
        percent = p.amount(key, value, positive=True)
        if percent is None:
            continue
        if percent > 1000:
            p.add(key, f"is a percentage of the budget and must be at most 1000, got {value!r}")
            continue
        if percent in out:
            p.add(key, f"repeats the threshold {value!r}")
            continue
        out[percent] = Threshold(percent, severity or default_severity(percent))
    ordered = tuple(sorted(out.values(), key=lambda t: t.percent))
    ranks = [SEVERITIES.index(t.severity) for t in ordered]
    if ranks != sorted(ranks):
        p.add("thresholds", "severities must rise with the threshold (info, warning, critical)")
    return ordered


def _tiers(p: _Problems, raw: Any, currency: str) -> dict[str, Tier]:
    if not isinstance(raw, Mapping):
        p.add("tiers", f"must be a mapping of tier name to its price and budget, got {type(raw).__name__}")
        return {}
    out: dict[str, Tier] = {}
    for name, spec in raw.items():
        key = f"tiers.{name}"
        if p.name(key, name) is None:
            continue
        spec = p.mapping(key, spec, ("monthly_price", "llm_budget", "currency"),
                         ("monthly_price", "llm_budget"))
        if spec is None:
            continue
        price = p.amount(f"{key}.monthly_price", spec.get("monthly_price"), positive=False) \
            if "monthly_price" in spec else None
        budget = p.amount(f"{key}.llm_budget", spec.get("llm_budget"), positive=True) \
            if "llm_budget" in spec else None
        ccy = p.currency(f"{key}.currency", spec["currency"]) if "currency" in spec else currency
        if price is not None and budget is not None and ccy:
            out[name] = Tier(name, price, budget, ccy)
    return out


def _customers(p: _Problems, raw: Any, tiers: dict[str, Tier], declared: set[str]) -> tuple[Customer, ...]:
    if not isinstance(raw, list):
        p.add("customers", f"must be a list of customers, got {type(raw).__name__}")
        return ()
    out: list[Customer] = []
    seen: set[str] = set()
    for i, spec in enumerate(raw):
        key = f"customers[{i}]"
        spec = p.mapping(key, spec, ("id", "name", "tier", "budget"), ("id", "tier"))
        if spec is None or "id" not in spec or "tier" not in spec:
            continue
        cid = p.name(f"{key}.id", spec["id"])
        if cid is None:
            continue
        key = f"customers[{i}] ({cid})"
        if cid in seen:
            p.add(f"{key}.id", "is listed twice")
            continue
        seen.add(cid)
        tier = spec["tier"]
        if tier not in tiers:
            if isinstance(tier, str) and tier in declared:
                continue  # the tier itself is wrong, and said so: no second line for it
            known = ", ".join(sorted(tiers)) or "none defined"
            p.add(f"{key}.tier", f"{tier!r} is not a defined tier ({known})")
            continue
        name = spec.get("name", cid)
        if not isinstance(name, str) or not name.strip():
            p.add(f"{key}.name", f"must be a non-empty string, got {name!r}")
            continue
        budget = None
        if spec.get("budget") is not None:
            budget = p.amount(f"{key}.budget", spec["budget"], positive=True)
            if budget is None:
                continue
        out.append(Customer(cid, name.strip(), tier, budget))
    return tuple(out)


def _budget_amount(p: _Problems, key: str, spec: Any, currency: str) -> tuple[Decimal, str] | None:
    """`1500` or `{amount: 1500, currency: EUR}`."""
    if isinstance(spec, Mapping):
        spec = p.mapping(key, spec, ("amount", "currency"), ("amount",))
        if spec is None or "amount" not in spec:
            return None
        amount = p.amount(f"{key}.amount", spec["amount"], positive=True)
        ccy = p.currency(f"{key}.currency", spec["currency"]) if "currency" in spec else currency
        return (amount, ccy) if amount is not None and ccy else None
    amount = p.amount(key, spec, positive=True)
    return (amount, currency) if amount is not None else None


def _budgets(p: _Problems, raw: Any, currency: str) -> tuple[Budget, ...]:
    spec = p.mapping("budgets", raw, ("global", "providers"))
    if spec is None:
        return ()
    out: list[Budget] = []
    if spec.get("global") is not None:
        got = _budget_amount(p, "budgets.global", spec["global"], currency)
        if got:
            out.append(Budget("global", "all", *got))
    providers = spec.get("providers") or {}
    if not isinstance(providers, Mapping):
        p.add("budgets.providers", f"must be a mapping of provider id to amount, got {type(providers).__name__}")
        return tuple(out)
    for name, amount in providers.items():
        key = f"budgets.providers.{name}"
        if p.name(key, name) is None:
            continue
        got = _budget_amount(p, key, amount, currency)
        if got:
            out.append(Budget("provider", name, *got))
    return tuple(out)


# ---- hooks used by the CLI ------------------------------------------------------------------

def _where(settings: Settings) -> str:
    return f"COSTMON_CONFIG_FILE {settings.config_file}" if settings.config_file else "config"


def problems(settings: Settings) -> list[str]:
    """`costmon check`: one line per problem in the budget sections (none when there is no file)."""
    return parse(settings.file_config or {}, _where(settings))[1]


def load(settings: Settings) -> BudgetConfig:
    """The validated config; ConfigError listing every problem otherwise."""
    cfg, found = parse(settings.file_config or {}, _where(settings))
    if found:
        raise ConfigError(found)
    return cfg


def sync(conn: psycopg.Connection, settings: Settings) -> bool:
    """Make plan_tiers, customers and budgets equal to the file; False (tables untouched) without one.

    A file without any budget section leaves the tables alone, so a replica
    started without the file does not erase what another one synced.
    """
    cfg = load(settings)
    if not cfg.present:
        return False
    write(conn, cfg)
    return True


def write(conn: psycopg.Connection, cfg: BudgetConfig) -> None:
    """Replace the three tables' rows with the config's, in one transaction."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SYNC_LOCK,))
        conn.execute("DELETE FROM budgets")
        conn.execute("DELETE FROM customers")
        conn.execute("DELETE FROM plan_tiers")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO plan_tiers (name, monthly_price, llm_budget, currency) VALUES (%s, %s, %s, %s)",
                [(t.name, t.monthly_price, t.llm_budget, t.currency) for t in cfg.tiers.values()])
            cur.executemany(
                "INSERT INTO customers (id, display_name, tier, budget_override) VALUES (%s, %s, %s, %s)",
                [(c.id, c.name, c.tier, c.budget) for c in cfg.customers])
            cur.executemany(
                "INSERT INTO budgets (scope, name, monthly_limit, currency) VALUES (%s, %s, %s, %s)",
                [(b.scope, b.name, b.limit, b.currency) for b in cfg.budgets])
        # Small tables never reach autovacuum's analyze threshold; without statistics the
        # planner guesses hundreds of rows each and prices the budget views into JIT territory.
        conn.execute("ANALYZE plan_tiers, customers, budgets")
