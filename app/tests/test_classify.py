"""Classification of billing strings into model and token type (issue 2, part 3)."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

from costmon import classify as cl
from costmon.classify import Classification, Classifier, classify
from costmon.records import TOKEN_TYPES

FIXTURE = Path(__file__).parent / "fixtures" / "sku_strings.csv"


def _fixture_rows() -> list[dict[str, str]]:
    with FIXTURE.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


ROWS = _fixture_rows()

TOKENS = [{"match": r"cache[-_ ]?read|(?<![a-z])cached(?![a-z])", "token_type": "cached_input"},
          {"match": r"(?<![a-z])input(?![a-z])", "token_type": "input"},
          {"match": r"(?<![a-z])output(?![a-z])", "token_type": "output"}]


def _rules_yaml(rules: str) -> str:
    return ("token_types:\n"
            "  - {match: 'input', token_type: input}\n"
            "  - {match: 'output', token_type: output}\n"
            "rules:\n" + rules)


@pytest.fixture
def fresh_default(monkeypatch):
    """The default classifier rebuilt from the environment this test sets, and forgotten after."""
    monkeypatch.delenv(cl.ENV_RULES, raising=False)
    cl.default_classifier.cache_clear()
    yield monkeypatch
    cl.default_classifier.cache_clear()


# --- the real strings ---------------------------------------------------------

@pytest.mark.parametrize("row", ROWS, ids=[f"{r['provider']}:{r['text']}" for r in ROWS])
def test_every_fixture_string_gets_its_model_and_token_type(row):
    got = classify(row["provider"], row["text"], row["other_text"] or None)
    assert (got.model, got.token_type) == (row["model"], row["token_type"]), row["about"]
    assert (got.rule is None) == (row["model"] == "unknown")


def test_fixture_table_is_broad():
    assert len(ROWS) >= 40
    assert {r["provider"] for r in ROWS} >= {"aws", "azure", "gcp", "openai", "anthropic"}
    assert {r["token_type"] for r in ROWS} == set(TOKEN_TYPES)
    assert sum(r["model"] == "unknown" for r in ROWS) >= 8


@pytest.mark.parametrize("model", [
    "claude-3-haiku", "claude-3-sonnet", "claude-3.5-sonnet", "claude-3.7-sonnet", "claude-sonnet-4",
    "claude-opus-4", "llama-3.1-70b", "nova-lite", "nova-pro", "mistral-large", "titan-embed-text-v2",
    "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.5-preview", "o3-mini", "text-embedding-3-large",
    "gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-pro", "text-embedding-005"])
def test_canonical_model_ids_classify_as_themselves(model):
    # Sources that already know the model id (demo, vendor APIs) can pass it through.
    for provider in ("aws", "azure", "gcp", "openai", "anthropic"):
        assert classify(provider, model).model == model


def test_provider_specific_rules_stay_with_their_provider():
    assert classify("aws", "USE1-gpt-oss-120b-output-tokens").model == "gpt-oss-120b"
    assert classify("azure", "USE1-gpt-oss-120b-output-tokens").model == "unknown"
    assert classify("gcp", "1127-99B9-1860").model == "gemini-2.0-flash"
    assert classify("aws", "1127-99B9-1860").model == "unknown"


def test_token_wording_is_read_from_the_first_string_that_has_any():
    # The usage type says output; a looser description passed after it says input.
    got = classify("aws", "USE1-MP:USE1_OutputTokenCount-Units",
                   "Claude 3 Haiku (Amazon Bedrock Edition)", "per million input tokens")
    assert (got.model, got.token_type) == ("claude-3-haiku", "output")


def test_missing_or_blank_strings_are_unknown_not_an_error():
    for texts in ((), (None,), ("",), ("  ", None)):
        assert classify("aws", *texts) == Classification("unknown", "other", None)


def test_classification_is_immutable():
    got = classify("aws", "USE1-NovaLite-input-tokens")
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.model = "x"  # type: ignore[misc]


# --- rule semantics -----------------------------------------------------------

def test_first_matching_rule_wins_and_order_is_the_files():
    specific = {"name": "specific", "match": r"gpt[- ]4o[- ]mini", "model": "gpt-4o-mini"}
    general = {"name": "general", "match": r"gpt[- ]4o", "model": "gpt-4o"}
    text = "gpt 4o mini 0718 Input global Tokens"
    assert Classifier([specific, general], TOKENS).classify("azure", text) == \
        Classification("gpt-4o-mini", "input", "specific")
    assert Classifier([general, specific], TOKENS).classify("azure", text) == \
        Classification("gpt-4o", "input", "general")


def test_templates_fill_groups_and_optional_separators():
    rules = [{"name": "claude", "match": r"claude[- ]?(?P<maj>\d)(?:\.(?P<min>\d))?(?P<fam>sonnet|haiku)",
              "model": "claude-{maj}{.min}-{fam}"},
             {"name": "gpt", "match": r"gpt (?P<ver>4o)(?: (?P<size>mini))?", "model": "gpt-{ver}{-size}"},
             {"name": "bedrock", "match": r"^(?-i:[A-Z]+\d)-(?P<name>\w+)-input", "model": "{name|camel}"}]
    c = Classifier(rules, TOKENS)
    assert c.classify("aws", "USE1-Claude3.5Sonnet-input-tokens").model == "claude-3.5-sonnet"
    assert c.classify("aws", "USE1-Claude3Haiku-input-tokens").model == "claude-3-haiku"
    assert c.classify("azure", "GPT 4o Input global Tokens").model == "gpt-4o"
    assert c.classify("azure", "gpt 4o mini Input global Tokens").model == "gpt-4o-mini"
    assert c.classify("aws", "USE1-CohereCommandLight-input-tokens").model == "cohere-command-light"


def test_token_type_can_come_from_a_group_or_be_fixed():
    rules = [{"match": r"embed", "model": "embedder", "token_type": "input"},
             {"match": r"^(?P<model>\w+)-(?P<tok>cache-read|input|output)-tokens", "model": "{model}",
              "token_type": "{tok}"}]
    c = Classifier(rules, TOKENS)
    assert c.classify("aws", "embed something output").token_type == "input"
    # The group decides, not the rest of the text (the table would read "cached" first).
    assert c.classify("aws", "m1-output-tokens cached").token_type == "output"
    assert c.classify("aws", "m1-cache-read-tokens", "output").token_type == "cached_input"
    assert c.classify("aws", "m1-input-tokens").token_type == "input"


def test_anchors_and_dot_stay_within_one_string():
    c = Classifier([{"match": r"^gpt 4o.*global$", "model": "gpt-4o"}], TOKENS)
    assert c.classify("azure", "Azure OpenAI", "gpt 4o Input global").model == "gpt-4o"
    assert c.classify("azure", "gpt 4o Input", "global").model == "unknown"


def test_results_are_memoised_per_distinct_strings():
    c = Classifier([{"match": "nova", "model": "nova-lite"}], TOKENS)
    first = c.classify("aws", "USE1-NovaLite-input-tokens")
    again = c.classify("aws", "USE1-NovaLite-input-tokens")
    assert again is first
    info = c.cache_info()
    assert (info.hits, info.misses) == (1, 1)


# --- rule files: validation and override -------------------------------------

@pytest.mark.parametrize("rules, expected", [
    ("  - {name: ok, match: 'a', model: m}\n  - {name: broken, match: 'gpt(4o', model: m}\n",
     r"rule 2 \(broken\): bad regex"),
    ("  - {match: 'a', model: m, token_type: prompt}\n", r"rule 1: token_type 'prompt' is not one of"),
    ("  - {match: 'a', model: m}\n  - {match: 'b', model: m}\n  - {match: 'c', model: 'gpt-{ver}'}\n",
     r"rule 3: model 'gpt-\{ver\}' uses group 'ver'"),
    ("  - {match: '(?P<v>a)', model: 'x-{v'}\n", r"rule 1: model 'x-\{v' has a malformed placeholder"),
    ("  - {match: 'a', model: m, token_type: '{tok}'}\n", r"rule 1: token_type '\{tok\}' names a group"),
    ("  - {match: 'a', model: m, provider: oracle}\n", r"rule 1: provider 'oracle' is not one of"),
    ("  - {match: 'a', modle: m}\n", r"rule 1: unknown key\(s\) modle"),
    ("  - {match: 'a'}\n", r"rule 1: 'model' must be a non-empty string"),
    ("  - {name: x, match: 'a', model: m}\n  - {name: x, match: 'b', model: m}\n",
     r"rule 2: name 'x' is already used by rule 1"),
])
def test_bad_rules_are_refused_naming_the_rule(rules, expected):
    with pytest.raises(ValueError, match=expected):
        Classifier.from_yaml(_rules_yaml(rules), source="custom.yaml")


@pytest.mark.parametrize("text, expected", [
    ("rules: [{match: a, model: m}]\n", r"'token_types' must be a non-empty list"),
    ("token_types: [{match: a, token_type: typo}]\nrules: [{match: a, model: m}]\n",
     r"token_types entry 1: token_type 'typo'"),
    ("token_types: [{match: '[', token_type: input}]\nrules: [{match: a, model: m}]\n",
     r"token_types entry 1: bad regex"),
    ("token_types: [{match: a, token_type: input}]\nrules: [{match: a, model: m}]\nextra: 1\n",
     r"unknown top-level key\(s\) extra"),
    ("- just\n- a list\n", r"expected a mapping"),
    ("rules: [unclosed\n", r"not valid YAML"),
])
def test_malformed_rule_files_are_refused(text, expected):
    with pytest.raises(ValueError, match=expected):
        Classifier.from_yaml(text, source="custom.yaml")


def test_packaged_rules_load_and_name_every_rule():
    c = cl.default_classifier()
    names = [r.name for r in c.rules]
    assert len(names) >= 30 and not any(n.startswith("rule-") for n in names)


def test_override_file_replaces_packaged_rules(tmp_path, fresh_default):
    path = tmp_path / "rules.yaml"
    path.write_text(_rules_yaml("  - {name: house, match: 'inhouse-(?P<m>\\w+)', model: 'house-{m}'}\n"))
    fresh_default.setenv(cl.ENV_RULES, str(path))
    assert classify("aws", "inhouse-llm input") == Classification("house-llm", "input", "house")
    # Replaced, not merged: the packaged Bedrock rules are gone.
    assert classify("aws", "USE1-NovaLite-input-tokens").model == "unknown"


def test_bad_override_fails_naming_file_and_rule(tmp_path, fresh_default):
    path = tmp_path / "broken.yaml"
    path.write_text(_rules_yaml("  - {match: 'a', model: m}\n  - {match: 'x(', model: m}\n"))
    fresh_default.setenv(cl.ENV_RULES, str(path))
    with pytest.raises(ValueError, match=rf"{path}: rule 2: bad regex"):
        classify("aws", "anything")


def test_missing_override_file_fails_naming_it(tmp_path, fresh_default):
    fresh_default.setenv(cl.ENV_RULES, str(tmp_path / "absent.yaml"))
    with pytest.raises(ValueError, match=r"absent.yaml: cannot be read"):
        cl.default_classifier()
