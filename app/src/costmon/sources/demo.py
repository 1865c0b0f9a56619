"""Deterministic demo billing: realistic multi-cloud LLM spend, no credentials needed.

Amazon Bedrock, Azure OpenAI and Vertex AI lines at public list prices, one line
per (day, provider, model, customer or internal env, token type), with daily
charge periods. Every figure is a pure function of (seed, day, model, customer,
token type) plus `now`, which anchors the growth curve, the runaway day and the
partial current day. The window asked for never changes a value, so fetching a
window in pieces gives exactly the rows of fetching it whole.

Growth is anchored at `now`'s date (the month of `now` is where the customer
budget shares below hold), so the demo looks like a healthy business whenever it
is run. A run on a later day therefore restates past days slightly (~0.5 % a
day); the loader's slice replace makes that harmless.

Where the provider's own string lives: `charge_description` holds the string a
classifier reads (the AWS usage type, the Azure meter name, the Vertex SKU
description); `sku_id` holds a stable made-up id in the provider's id format.
Every billing account and sub-account id starts with `demo-`, so demo rows are
never mistaken for real spend.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from ..records import BillingRecord, Window
from ..store.loader import RunStats

UTC = dt.timezone.utc
CURRENCY = "USD"
GROWTH_PER_MONTH = 0.15  # spend grows 15 % a month (compounded daily)
RUNAWAY_CUSTOMER = "cust-007"  # one day at RUNAWAY_FACTOR x its normal spend
RUNAWAY_FACTOR = 5.0
NEW_MODEL_CUSTOMER = "cust-014"  # starts on a model it never used, the day before `now`
OVER_BUDGET_CUSTOMERS = ("cust-004", "cust-011", "cust-018")  # over their tier budget every month
_DAYS_PER_MONTH = 30.4375
_YESTERDAY = object()  # sentinel: runaway day = the day before now's UTC date


# ---- plans and customers -------------------------------------------------------------------

@dataclass(frozen=True)
class DemoTier:
    name: str
    monthly_price: Decimal  # what the customer pays us, USD/month
    llm_budget: Decimal  # what we may spend on LLMs for them, USD/month


@dataclass(frozen=True)
class DemoCustomer:
    id: str
    name: str
    tier: str


DEMO_TIERS: dict[str, DemoTier] = {t.name: t for t in (
    DemoTier("starter", Decimal("49"), Decimal("8")),
    DemoTier("pro", Decimal("99"), Decimal("18")),
    DemoTier("business", Decimal("199"), Decimal("35")),
)}

# (id, display name, tier, share of the tier's LLM budget spent in the month of `now`).
# Normal customers stay under 0.75 so growth and noise keep them under budget; the
# over-budget ones sit so high that even three months back (growth 0.66x) they exceed it.
_CUSTOMERS: tuple[tuple[str, str, str, float], ...] = (
    ("cust-001", "Acme Analytics", "starter", 0.55),
    ("cust-002", "Birch & Co", "starter", 0.40),
    ("cust-003", "Cobalt Health", "starter", 0.62),
    ("cust-004", "Dune Logistics", "starter", 1.85),
    ("cust-005", "Ember Studio", "starter", 0.35),
    ("cust-006", "Fjord Travel", "starter", 0.70),
    ("cust-007", "Granite Legal", "pro", 0.50),
    ("cust-008", "Harbor Retail", "pro", 0.66),
    ("cust-009", "Iris Education", "pro", 0.45),
    ("cust-010", "Juniper Finance", "pro", 0.72),
    ("cust-011", "Kestrel Media", "pro", 1.75),
    ("cust-012", "Lumen Robotics", "pro", 0.58),
    ("cust-013", "Maple Insurance", "pro", 0.38),
    ("cust-014", "Nimbus Games", "pro", 0.52),
    ("cust-015", "Orchid Biotech", "business", 0.64),
    ("cust-016", "Pioneer Energy", "business", 0.48),
    ("cust-017", "Quartz Security", "business", 0.70),
    ("cust-018", "Rivet Manufacturing", "business", 1.80),
    ("cust-019", "Sierra Telecom", "business", 0.56),
    ("cust-020", "Tundra Foods", "business", 0.44),
)


def demo_customers() -> list[DemoCustomer]:
    """The demo's customer catalogue (for example budget configs)."""
    return [DemoCustomer(cid, name, tier) for cid, name, tier, _ in _CUSTOMERS]


# ---- models and list prices ----------------------------------------------------------------

@dataclass(frozen=True)
class _Sku:
    token_type: str
    description: str  # usage type / meter name / SKU description, as the provider bills it
    price: Decimal  # USD per consumed unit of the model's `unit`
    ratio: float  # tokens of this type per input token


@dataclass(frozen=True)
class _Model:
    model: str
    provider: str
    unit: str  # consumed_unit: "1K tokens" (Bedrock, Azure OpenAI) or "Tokens" (Vertex)
    native_id: str  # Bedrock model id / Azure deployment / Vertex publisher model
    region: str
    skus: tuple[_Sku, ...]

    @property
    def input_cost(self) -> float:
        """USD per input token with its companion output/cached tokens."""
        scale = 1000 if self.unit == "1K tokens" else 1
        return sum(float(s.price) * s.ratio for s in self.skus) / scale


def _bedrock(model: str, native: str, name: str, inp: str, out: str, *, cache_read: str | None = None,
             cache_write: str | None = None, region: str = "USE1", out_ratio: float = 0.25) -> _Model:
    # AWS bills first-party Bedrock tokens with pricing unit "1K tokens"; prices are per 1K.
    skus = [_Sku("input", f"{region}-{name}-input-tokens", Decimal(inp), 1.0),
            _Sku("output", f"{region}-{name}-output-tokens", Decimal(out), out_ratio)]
    if cache_read:
        skus.append(_Sku("cached_input", f"{region}-{name}-cache-read-input-token-count", Decimal(cache_read), 0.9))
    if cache_write:
        skus.append(_Sku("cache_write", f"{region}-{name}-cache-write-input-token-count", Decimal(cache_write), 0.08))
    return _Model(model, "aws", "1K tokens", native, {"USE1": "us-east-1", "USW2": "us-west-2"}[region], tuple(skus))


def _azure(model: str, deployment: str, inp: tuple[str, str], out: tuple[str, str] | None = None,
           cached: tuple[str, str] | None = None, out_ratio: float = 0.25) -> _Model:
    # Azure OpenAI meters (global deployments) are priced per 1K tokens.
    skus = [_Sku("input", inp[0], Decimal(inp[1]), 1.0)]
    if out:
        skus.append(_Sku("output", out[0], Decimal(out[1]), out_ratio))
    if cached:
        skus.append(_Sku("cached_input", cached[0], Decimal(cached[1]), 0.6))
    return _Model(model, "azure", "1K tokens", deployment, "eastus", tuple(skus))


def _vertex(model: str, name: str, inp: str, out: str, cached: str | None = None) -> _Model:
    # Vertex AI bills Gemini per token (list prices quoted per 1M; here per token).
    skus = [_Sku("input", f"{name} Text Input - Predictions", Decimal(inp), 1.0),
            _Sku("output", f"{name} Text Output - Predictions", Decimal(out), 0.2)]
    if cached:
        base = name.replace(" GA", "")
        skus.append(_Sku("cached_input", f"{base} Input Text Caching", Decimal(cached), 0.5))
    return _Model(model, "gcp", "Tokens", model, "us-central1", tuple(skus))


MODELS: tuple[_Model, ...] = (
    # Amazon Bedrock on-demand, USD per 1K tokens (list per 1M / 1000).
    _bedrock("claude-3-haiku", "anthropic.claude-3-haiku-20240307-v1:0", "Claude3Haiku",
             "0.00025", "0.00125"),  # $0.25 / $1.25 per 1M
    _bedrock("claude-3.5-sonnet", "anthropic.claude-3-5-sonnet-20240620-v1:0", "Claude3.5Sonnet",
             "0.003", "0.015"),  # $3 / $15 per 1M
    _bedrock("claude-3.7-sonnet", "anthropic.claude-3-7-sonnet-20250219-v1:0", "Claude3.7Sonnet",
             "0.003", "0.015", cache_read="0.0003", cache_write="0.00375"),  # $3 / $15, read $0.30, write $3.75
    _bedrock("claude-sonnet-4", "anthropic.claude-sonnet-4-20250514-v1:0", "Claude4Sonnet",
             "0.003", "0.015", cache_read="0.0003", cache_write="0.00375"),  # $3 / $15, read $0.30, write $3.75
    _bedrock("llama-3.1-70b", "meta.llama3-1-70b-instruct-v1:0", "Llama3-1-70B",
             "0.00072", "0.00072", region="USW2"),  # $0.72 / $0.72 per 1M
    _bedrock("nova-lite", "amazon.nova-lite-v1:0", "NovaLite",
             "0.00006", "0.00024", cache_read="0.000015"),  # $0.06 / $0.24, cached $0.015 per 1M
    _bedrock("nova-pro", "amazon.nova-pro-v1:0", "NovaPro",
             "0.0008", "0.0032", cache_read="0.0002"),  # $0.80 / $3.20, cached $0.20 per 1M
    # Azure OpenAI, global standard deployments, USD per 1K tokens.
    _azure("gpt-4o", "gpt-4o-2024-11-20", ("gpt 4o 1120 Inp glbl Tokens", "0.0025"),
           ("gpt 4o 1120 Outp glbl Tokens", "0.01"),
           ("gpt 4o 1120 cached Inp glbl Tokens", "0.00125")),  # $2.50 / $10, cached $1.25 per 1M
    _azure("gpt-4o-mini", "gpt-4o-mini-2024-07-18", ("gpt-4o-mini-0718-Inp-glbl Tokens", "0.00015"),
           ("gpt-4o-mini-0718-Outp-glbl Tokens", "0.0006"),
           ("gpt 4o mini 0718 cached Inp glbl Tokens", "0.000075")),  # $0.15 / $0.60, cached $0.075 per 1M
    _azure("gpt-4.1", "gpt-4.1-2025-04-14", ("gpt 4.1 Inp glbl Tokens", "0.002"),
           ("gpt 4.1 Outp glbl Tokens", "0.008"),
           ("gpt 4.1 cached Inp glbl Tokens", "0.0005")),  # $2 / $8, cached $0.50 per 1M
    _azure("o3-mini", "o3-mini-2025-01-31", ("o3 mini 0131 input glbl Tokens", "0.0011"),
           ("o3 mini 0131 output glbl Tokens", "0.0044"),
           ("o3 mini 0131 cached input glbl Tokens", "0.00055"),
           out_ratio=0.8),  # $1.10 / $4.40, cached $0.55 per 1M; reasoning tokens bill as output
    _azure("text-embedding-3-large", "text-embedding-3-large",
           ("text-embedding-3-large-glbl Tokens", "0.00013")),  # $0.13 per 1M, input only
    # Vertex AI, USD per token.
    _vertex("gemini-2.0-flash", "Gemini 2.0 Flash", "0.00000015", "0.0000006"),  # $0.15 / $0.60 per 1M
    _vertex("gemini-2.5-flash", "Gemini 2.5 Flash GA", "0.0000003", "0.0000025",
            cached="0.00000003"),  # $0.30 / $2.50, cached $0.03 per 1M
    _vertex("gemini-2.5-pro", "Gemini 2.5 Pro", "0.00000125", "0.00001",
            cached="0.000000125"),  # $1.25 / $10, cached $0.125 per 1M (prompts <= 200K)
)
_BY_NAME = {m.model: m for m in MODELS}
_POOLS = {p: [m.model for m in MODELS if m.provider == p] for p in ("aws", "azure", "gcp")}

# Billing accounts: (billing account, its name, {"prod"|"dev": (sub-account, sub-account name)}).
_ACCOUNTS = {
    "aws": ("demo-aws-payer", "Demo AWS payer", "Amazon Bedrock",
            {"prod": ("demo-aws-prod", "Demo AWS prod"), "dev": ("demo-aws-staging", "Demo AWS staging")}),
    "azure": ("demo-azure-ea", "Demo Azure EA", "Azure OpenAI",
              {"prod": ("demo-azure-sub-prod", "Demo Azure prod subscription"),
               "dev": ("demo-azure-sub-dev", "Demo Azure dev subscription")}),
    "gcp": ("demo-gcp-billing", "Demo GCP billing account", "Vertex AI",
            {"prod": ("demo-gcp-prod", "demo-gcp-prod"), "dev": ("demo-gcp-dev", "demo-gcp-dev")}),
}

# Untagged internal spend (customer_id None), USD/month at the level of `now`'s month:
# about a third of the total. dev and test follow office hours; eval runs every night.
_INTERNAL = {"dev": 80.0, "test": 35.0, "eval": 60.0}
_INTERNAL_PROJECT = {"dev": "dev-sandbox", "test": "ci-tests", "eval": "eval-harness"}
# Weekly shape (Mon..Sun) before normalising to a weekly mean of 1.
_WEEK = {"customer": (1.0, 1.02, 1.04, 1.03, 0.97, 0.6, 0.5),
         "office": (1.0, 1.05, 1.05, 1.0, 0.9, 0.15, 0.1),
         "nightly": (1.0,) * 7}
_WEEK = {k: tuple(v / (sum(w) / 7) for v in w) for k, w in _WEEK.items()}
_SHAPE = {"dev": "office", "test": "office", "eval": "nightly"}


def demo_skus() -> list[tuple[str, str, str, str, str]]:
    """Every (provider, service_name, charge_description, model, token_type) the demo can emit."""
    return [(m.provider, _ACCOUNTS[m.provider][2], s.description, m.model, s.token_type)
            for m in MODELS for s in m.skus]


# ---- deterministic randomness --------------------------------------------------------------

def _uniforms(key: str) -> tuple[float, float]:
    """Two uniforms in (0, 1) that depend only on `key` (never on call order)."""
    h = hashlib.blake2b(key.encode(), digest_size=16).digest()
    a, b = int.from_bytes(h[:8], "big"), int.from_bytes(h[8:], "big")
    return (a + 0.5) / 2**64, (b + 0.5) / 2**64


def _lognormal(key: str, sigma: float) -> float:
    """A factor with median ~1 and spread sigma (Box-Muller on the key's uniforms)."""
    u1, u2 = _uniforms(key)
    z = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
    return math.exp(sigma * z - sigma * sigma / 2)


def _pick(key: str, items: list[str], k: int) -> list[str]:
    """k distinct items chosen by hashing, stable for a key."""
    return sorted(items, key=lambda it: hashlib.blake2b(f"{key}|{it}".encode(), digest_size=8).digest())[:k]


# ---- what gets generated -------------------------------------------------------------------

@dataclass(frozen=True)
class _Plan:
    """One stream of lines: a model used by a customer (or an internal env) every day."""

    model: _Model
    customer_id: str | None
    env: str
    project_id: str
    shape: str  # key of _WEEK
    monthly_usd: float  # spend at the level of `now`'s month
    start: dt.date | None = None  # first day billed (None: always)


def _project(model: str) -> str:
    if model.startswith("text-embedding"):
        return "semantic-search"
    if model in ("o3-mini", "claude-sonnet-4", "gemini-2.5-pro", "claude-3.7-sonnet"):
        return "agent-workflows"
    if model in ("claude-3-haiku", "nova-lite", "gpt-4o-mini", "gemini-2.0-flash"):
        return "doc-summarizer"
    return "support-assistant"


def _customer_models(seed: int, cid: str, index: int) -> list[tuple[str, float]]:
    """3-5 models for a customer, mostly on one cloud, with spend weights summing to 1."""
    home = ("aws", "azure", "gcp")[index % 3]
    n_home = 2 + int(_uniforms(f"{seed}|{cid}|n")[0] * 2)  # 2 or 3 on the home cloud
    models = _pick(f"{seed}|{cid}|home", _POOLS[home], n_home)
    others = [m for p, pool in _POOLS.items() if p != home for m in pool]
    models += _pick(f"{seed}|{cid}|other", others, 1 + int(_uniforms(f"{seed}|{cid}|n")[1] * 2))
    weights = [0.5 + _uniforms(f"{seed}|{cid}|w|{m}")[0] for m in models]
    total = sum(weights)
    return [(m, w / total) for m, w in zip(models, weights)]


def _plans(seed: int, today: dt.date) -> list[_Plan]:
    plans = []
    for index, (cid, _name, tier, use) in enumerate(_CUSTOMERS):
        monthly = float(DEMO_TIERS[tier].llm_budget) * use
        chosen = _customer_models(seed, cid, index)
        for model, weight in chosen:
            plans.append(_Plan(_BY_NAME[model], cid, "prod", _project(model), "customer", monthly * weight))
        if cid == NEW_MODEL_CUSTOMER:
            # A model this customer never used before, from the day before `now` on
            # (so "unexpected model" detection has something to find).
            new = next(m.model for m in MODELS if m.model not in {c for c, _ in chosen}
                       and not m.model.startswith("text-embedding") and m.provider != "gcp")
            plans.append(_Plan(_BY_NAME[new], cid, "prod", _project(new), "customer", monthly * 0.25,
                               start=today - dt.timedelta(days=1)))
    for env, monthly in _INTERNAL.items():
        weights = {m.model: 0.3 + _uniforms(f"{seed}|{env}|w|{m.model}")[0] for m in MODELS}
        total = sum(weights.values())
        for m in MODELS:
            plans.append(_Plan(m, None, env, _INTERNAL_PROJECT[env], _SHAPE[env], monthly * weights[m.model] / total))
    return plans


@functools.cache
def _sku_id(provider: str, description: str) -> str:
    digest = hashlib.blake2b(f"demo|{provider}|{description}".encode(), digest_size=8).hexdigest().upper()
    if provider == "azure":  # Azure meter ids are GUIDs
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"demo-azure-meter:{description}"))
    if provider == "gcp":  # Cloud Billing SKU ids look like 1127-99B9-1860
        return f"{digest[:4]}-{digest[4:8]}-{digest[8:12]}"
    return digest  # AWS price list SKU codes are 16 upper-case characters


@functools.cache
def _resource_id(model: _Model, sub_account: str, env: str) -> str:
    if model.provider == "aws":
        return f"arn:aws:bedrock:{model.region}::foundation-model/{model.native_id}"
    if model.provider == "azure":
        return (f"/subscriptions/{sub_account}/resourceGroups/rg-llm-{env}/providers/"
                f"Microsoft.CognitiveServices/accounts/demo-aoai-{env}/deployments/{model.native_id}")
    return (f"//aiplatform.googleapis.com/projects/{sub_account}/locations/{model.region}"
            f"/publishers/google/models/{model.native_id}")


class DemoSource:
    """The `demo` billing source: deterministic, realistic, never beyond `now`."""

    provider = "demo"

    def __init__(self, name: str = "demo", now: dt.datetime | None = None, seed: int = 42, *,
                 runaway_day: dt.date | None | object = _YESTERDAY,
                 runaway_customer: str = RUNAWAY_CUSTOMER, runaway_factor: float = RUNAWAY_FACTOR):
        now = now if now is not None else dt.datetime.now(UTC)
        if now.tzinfo is None:
            raise ValueError("DemoSource: now must be timezone-aware")
        self.name = name
        self.seed = seed
        self.now = now.astimezone(UTC)
        self.today = self.now.date()
        self.runaway_day = self.today - dt.timedelta(days=1) if runaway_day is _YESTERDAY else runaway_day
        self.runaway_customer = runaway_customer
        self.runaway_factor = runaway_factor
        self.stats = RunStats()  # no upstream API: zero calls
        self.accounts: frozenset[str] | None = None
        self._plans = _plans(seed, self.today)

    # Expected level (no noise) of a plan shape on a day: weekly shape x growth.
    def _level(self, shape: str, day: dt.date) -> float:
        months = (day - self.today).days / _DAYS_PER_MONTH
        return _WEEK[shape][day.weekday()] * (1 + GROWTH_PER_MONTH) ** months

    def _day_noise(self, day: dt.date, who: str) -> float:
        """One factor per customer-day: a busy day is busy on every model."""
        return _lognormal(f"{self.seed}|{day.isoformat()}|{who}", 0.12)

    def _runaway_noise(self, day: dt.date, who: str) -> float:
        """The day factor that makes `day` `factor` x the trailing 7-day mean (what anomaly rules compute)."""
        trailing = sum(self._level("customer", d) * self._day_noise(d, who)
                       for d in (day - dt.timedelta(days=k) for k in range(1, 8))) / 7
        return self.runaway_factor * trailing / self._level("customer", day)

    def fetch(self, window: Window) -> Iterator[BillingRecord]:
        for day in window.days():
            if day > self.today:
                break
            yield from self._day(day)

    def _day(self, day: dt.date) -> Iterator[BillingRecord]:
        start = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
        end = start + dt.timedelta(days=1)
        fraction = 1.0
        if day == self.today:  # the current day so far, in whole hours
            end = self.now.replace(minute=0, second=0, microsecond=0)
            fraction = self.now.hour / 24
            if fraction == 0:
                return
        seed, iso = self.seed, day.isoformat()
        daily_noise: dict[str, float] = {}
        for plan in self._plans:
            if plan.start is not None and day < plan.start:
                continue
            who = plan.customer_id or f"internal-{plan.env}"
            runaway = plan.customer_id == self.runaway_customer and day == self.runaway_day
            noise = daily_noise.get(who)
            if noise is None:
                noise = daily_noise[who] = (self._runaway_noise if runaway else self._day_noise)(day, who)
            usd = plan.monthly_usd / _DAYS_PER_MONTH * self._level(plan.shape, day) * noise * fraction
            model = plan.model
            input_tokens = usd / model.input_cost
            account, account_name, service, subs = _ACCOUNTS[model.provider]
            sub, sub_name = subs["prod" if plan.env == "prod" else "dev"]
            tags = {"env": plan.env} if plan.customer_id is None else {"customer_id": plan.customer_id,
                                                                       "env": plan.env}
            for sku in model.skus:
                key = f"{seed}|{iso}|{model.provider}|{model.model}|{who}|{sku.token_type}"
                # The runaway day is exactly `factor` x normal: no line noise on top.
                tokens = round(input_tokens * sku.ratio * (1.0 if runaway else _lognormal(key, 0.08)))
                if tokens <= 0:
                    continue
                quantity = Decimal(tokens).scaleb(-3) if model.unit == "1K tokens" else Decimal(tokens)
                cost = quantity * sku.price  # exact: at most 10 decimal places
                yield BillingRecord(
                    charge_period_start=start, charge_period_end=end, provider=model.provider,
                    billing_account_id=account, billing_account_name=account_name,
                    sub_account_id=sub, sub_account_name=sub_name,
                    billed_cost=cost, effective_cost=cost, billing_currency=CURRENCY,
                    service_name=service, sku_id=_sku_id(model.provider, sku.description),
                    charge_description=sku.description, region=model.region,
                    resource_id=_resource_id(model, sub, plan.env),
                    consumed_quantity=quantity, consumed_unit=model.unit,
                    model=model.model, token_type=sku.token_type,
                    customer_id=plan.customer_id, project_id=plan.project_id, tags=dict(tags),
                    estimated=day == self.today)
