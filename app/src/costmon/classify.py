"""Map provider SKU / usage-type / meter strings to `model` and `token_type`.

The knowledge lives in data (rules.yaml, or the file COSTMON_CLASSIFY_RULES
names): an ordered list of regex rules, first match wins, plus a small
ordered table that turns token wording ("Inp", "cached", "-output-tokens",
"CacheReadInputTokenCount") into a token type. This module only loads,
validates and applies them. Anything no rule matches is model "unknown",
token type "other": kept, and counted by the loader.

Called once per billing line (millions in a backfill) with a few hundred
distinct strings, so results are memoised and regexes compiled once.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .records import TOKEN_TYPES, UNKNOWN_MODEL

ENV_RULES = "COSTMON_CLASSIFY_RULES"
PROVIDERS = ("aws", "azure", "gcp", "openai", "anthropic", "any")
_RULE_KEYS = {"name", "provider", "match", "model", "token_type", "note"}
# {g}, {-g}, {.g}, {g|camel}
_PLACEHOLDER = re.compile(r"\{(?P<sep>[-.]?)(?P<group>[A-Za-z_]\w*)(?:\|(?P<filter>camel))?\}")
_GROUP_REF = re.compile(r"^\{(?P<group>[A-Za-z_]\w*)\}$")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[a-z]{2})(?=\d)|(?<=\d)(?=[A-Z][a-z])")
_SPACES = re.compile(r"[\s_]+")
_HYPHENS = re.compile(r"-{2,}")
_FLAGS = re.IGNORECASE | re.MULTILINE


@dataclass(frozen=True, slots=True)
class Classification:
    model: str
    token_type: str
    rule: str | None  # name of the rule that matched; None when nothing did


UNCLASSIFIED = Classification(UNKNOWN_MODEL, "other", None)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    provider: str
    pattern: re.Pattern[str]
    model: str  # template
    token_type: str | None  # literal, "{group}", or None = look up the texts


class Classifier:
    def __init__(self, rules: list[dict[str, Any]], token_types: list[dict[str, Any]],
                 source: str = "rules"):
        self.source = source
        self.token_table = tuple(_token_entry(e, i, source) for i, e in enumerate(token_types, 1))
        self.rules = tuple(_rule(r, i, source) for i, r in enumerate(rules, 1))
        names = [r.name for r in self.rules]
        for i, name in enumerate(names, 1):
            if names.index(name) != i - 1:
                raise ValueError(f"{source}: rule {i}: name {name!r} is already used by rule {names.index(name) + 1}")
        self._by_provider: dict[str, tuple[Rule, ...]] = {}
        # Per-instance memo: the key is the call's own arguments, so a cache hit
        # costs one tuple hash; bounded so a hostile feed cannot grow it forever.
        self._cached = functools.lru_cache(maxsize=65536)(self._classify)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "Classifier":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"classification rules {path}: cannot be read: {exc.strerror or exc}") from exc
        return cls.from_yaml(text, source=str(path))

    @classmethod
    def from_yaml(cls, text: str, source: str = "rules") -> "Classifier":
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{source}: not valid YAML: {first}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a mapping with 'token_types' and 'rules'")
        for key in ("token_types", "rules"):
            if not isinstance(data.get(key), list) or not data[key]:
                raise ValueError(f"{source}: '{key}' must be a non-empty list")
        extra = set(data) - {"token_types", "rules"}
        if extra:
            raise ValueError(f"{source}: unknown top-level key(s) {', '.join(sorted(map(str, extra)))}")
        return cls(data["rules"], data["token_types"], source=source)

    def classify(self, provider: str, *texts: str | None) -> Classification:
        return self._cached(provider, *texts)

    def cache_info(self) -> Any:
        return self._cached.cache_info()

    def _classify(self, provider: str, *texts: str | None) -> Classification:
        parts = [t.strip() for t in texts if t and t.strip()]
        if not parts:
            return UNCLASSIFIED
        # One candidate a line: ^/$ anchor a candidate, '.' stays inside one.
        joined = "\n".join(parts)
        for rule in self._rules_for((provider or "").lower()):
            m = rule.pattern.search(joined)
            if m is None:
                continue
            model = _expand(rule.model, m)
            if rule.token_type is None:
                token_type = self._token_type(parts)
            elif rule.token_type.startswith("{"):
                token_type = self._token_type([m.group(rule.token_type[1:-1]) or ""])
            else:
                token_type = rule.token_type
            return Classification(model or UNKNOWN_MODEL, token_type, rule.name)
        return UNCLASSIFIED

    def _rules_for(self, provider: str) -> tuple[Rule, ...]:
        rules = self._by_provider.get(provider)
        if rules is None:
            rules = tuple(r for r in self.rules if r.provider in ("any", provider))
            self._by_provider[provider] = rules
        return rules

    def _token_type(self, texts: list[str]) -> str:
        # The first text that says anything about tokens decides: sources pass
        # the usage type / meter before looser descriptions.
        for text in texts:
            for pattern, token_type in self.token_table:
                if pattern.search(text):
                    return token_type
        return "other"


def _where(source: str, kind: str, number: int, entry: Any) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"{source}: {kind} {number}" + (f" ({name})" if name else "")


def _compile(regex: Any, where: str) -> re.Pattern[str]:
    if not isinstance(regex, str) or not regex:
        raise ValueError(f"{where}: 'match' must be a non-empty regex string")
    try:
        return re.compile(regex, _FLAGS)
    except re.error as exc:
        raise ValueError(f"{where}: bad regex {regex!r}: {exc}") from exc


def _token_entry(entry: Any, number: int, source: str) -> tuple[re.Pattern[str], str]:
    where = _where(source, "token_types entry", number, entry)
    if not isinstance(entry, dict) or set(entry) - {"match", "token_type", "note"}:
        raise ValueError(f"{where}: expected keys match, token_type")
    if entry.get("token_type") not in TOKEN_TYPES:
        raise ValueError(f"{where}: token_type {entry.get('token_type')!r} is not one of {', '.join(TOKEN_TYPES)}")
    return _compile(entry.get("match"), where), entry["token_type"]


def _rule(entry: Any, number: int, source: str) -> Rule:
    where = _where(source, "rule", number, entry)
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping")
    extra = set(entry) - _RULE_KEYS
    if extra:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(map(str, extra)))}")
    provider = str(entry.get("provider", "any")).lower()
    if provider not in PROVIDERS:
        raise ValueError(f"{where}: provider {entry.get('provider')!r} is not one of {', '.join(PROVIDERS)}")
    pattern = _compile(entry.get("match"), where)
    groups = set(pattern.groupindex)

    model = entry.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"{where}: 'model' must be a non-empty string")
    for ph in _PLACEHOLDER.finditer(model):
        if ph["group"] not in groups:
            raise ValueError(f"{where}: model {model!r} uses group {ph['group']!r} the regex does not define")
    if "{" in _PLACEHOLDER.sub("", model) or "}" in _PLACEHOLDER.sub("", model):
        raise ValueError(f"{where}: model {model!r} has a malformed placeholder (use {{g}}, {{-g}}, {{.g}}, {{g|camel}})")

    token_type = entry.get("token_type")
    if token_type is not None:
        ref = _GROUP_REF.match(str(token_type))
        if ref:
            if ref["group"] not in groups:
                raise ValueError(f"{where}: token_type {token_type!r} names a group the regex does not define")
        elif token_type not in TOKEN_TYPES:
            raise ValueError(f"{where}: token_type {token_type!r} is not one of {', '.join(TOKEN_TYPES)} or {{group}}")

    name = entry.get("name") or f"rule-{number}"
    return Rule(str(name), provider, pattern, model, token_type)


def _expand(template: str, m: re.Match[str]) -> str:
    def one(ph: re.Match[str]) -> str:
        value = m.group(ph["group"])
        if not value:
            return ""
        if ph["filter"] == "camel":
            value = _CAMEL.sub("-", value)
        return ph["sep"] + _SPACES.sub("-", value.strip())

    return _HYPHENS.sub("-", _PLACEHOLDER.sub(one, template).lower()).strip("-")


def _packaged_rules() -> Classifier:
    text = resources.files("costmon").joinpath("rules.yaml").read_text(encoding="utf-8")
    return Classifier.from_yaml(text, source="costmon/rules.yaml")


@functools.cache
def default_classifier() -> Classifier:
    """The packaged rules, or the file COSTMON_CLASSIFY_RULES names (replacing them).

    Built on first use; raises ValueError naming the file and rule when the
    override is malformed (`costmon check` can call this to fail early).
    """
    override = os.environ.get(ENV_RULES, "").strip()
    return Classifier.from_file(override) if override else _packaged_rules()


def classify(provider: str, *texts: str | None) -> Classification:
    """Classify one billing line from its provider and candidate strings (most specific first)."""
    return default_classifier().classify(provider, *texts)
