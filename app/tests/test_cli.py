"""The operator's CLI: one clear line per problem, non-zero exits, exact reports."""

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from costmon.cli import main
from costmon.records import Window
from costmon.store.loader import load
from support.records import line


def run_cli(*args, env=None):
    """The real console entry point in a subprocess, with a controlled environment."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("COSTMON_")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "costmon.cli", *args], capture_output=True,
                          text=True, env=full, timeout=120)


def test_missing_database_url_is_one_line_naming_the_variable():
    proc = run_cli("migrate")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "costmon migrate: COSTMON_DATABASE_URL is not set: the PostgreSQL/TimescaleDB connection URL"]


def test_every_malformed_setting_is_reported_at_once():
    proc = run_cli("check", env={"COSTMON_DATABASE_URL": "mysql://x", "COSTMON_HTTP_PORT": "99999",
                                 "COSTMON_LOG_LEVEL": "loud"})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 3
    assert any("COSTMON_DATABASE_URL=<redacted> is invalid" in ln for ln in lines)  # never echo a DSN
    assert any("COSTMON_HTTP_PORT='99999' is invalid" in ln for ln in lines)


def test_database_down_is_one_line_without_the_password():
    proc = run_cli("report", env={"COSTMON_DATABASE_URL": "postgresql://u:hunter2@127.0.0.1:1/x"})
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "database unreachable" in lines[0]
    assert "hunter2" not in proc.stderr and "***" in lines[0]


def test_migrate_twice_then_check_reports_a_current_schema(empty_db):
    env = {"COSTMON_DATABASE_URL": empty_db}
    first = run_cli("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout and "already current" not in first.stdout
    second = run_cli("migrate", env=env)
    assert "applied 0 migration(s) (schema already current)" in second.stdout
    check = run_cli("check", env=env)
    assert check.returncode == 0, check.stderr
    assert "schema current" in check.stdout


def test_check_names_a_schema_that_is_behind(empty_db):
    proc = run_cli("check", env={"COSTMON_DATABASE_URL": empty_db})
    assert proc.returncode == 1
    assert "run `costmon migrate`" in proc.stderr


def test_report_before_migrate_says_so(empty_db):
    proc = run_cli("report", env={"COSTMON_DATABASE_URL": empty_db})
    assert proc.returncode == 1 and "run `costmon migrate`" in proc.stderr


@pytest.fixture
def billed(conn, db):
    load(conn, source="t", window=Window(dt.date(2026, 3, 1), dt.date(2026, 3, 3)), records=[
        line("2026-03-01", "1.10"), line("2026-03-01", "2.20", provider="gcp"),
        line("2026-03-02", "0.000004"), line("2026-03-02", "5", provider="azure", currency="EUR"),
        line("2026-03-02", "3", customer=None)])
    return db


def test_report_json_gives_exact_totals_per_group_and_currency(billed, monkeypatch, capsys):
    monkeypatch.setenv("COSTMON_DATABASE_URL", billed)
    assert main(["report", "--start", "2026-03-01", "--end", "2026-03-03", "--by", "provider",
                 "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    got = {(r["provider"], r["currency"]): Decimal(r["effective_cost"]) for r in rows}
    assert got == {("aws", "USD"): Decimal("4.100004"), ("azure", "EUR"): Decimal("5"),
                   ("gcp", "USD"): Decimal("2.20")}


def test_report_table_totals_each_currency_separately(billed, monkeypatch, capsys):
    monkeypatch.setenv("COSTMON_DATABASE_URL", billed)
    assert main(["report", "--start", "2026-03-01", "--end", "2026-03-03", "--by", "customer,day"]) == 0
    out = capsys.readouterr().out
    totals = [ln.split() for ln in out.splitlines() if ln.startswith("TOTAL")]
    assert totals == [["TOTAL", "EUR", "5.00", "5.00", "1"], ["TOTAL", "USD", "6.30", "6.30", "4"]]
    assert "untagged" in out


def test_report_csv_and_bad_dimension(billed, monkeypatch, capsys):
    monkeypatch.setenv("COSTMON_DATABASE_URL", billed)
    assert main(["report", "--start", "2026-03-01", "--end", "2026-03-03", "--by", "day",
                 "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "day,currency,effective_cost,billed_cost,line_items"
    assert "2026-03-02,USD,3.000004,3.000004,2" in out
    assert main(["report", "--by", "colour"]) == 1
    assert "unknown --by colour" in capsys.readouterr().err


def test_ingest_of_an_unknown_source_and_a_backwards_window(db, monkeypatch, capsys):
    monkeypatch.setenv("COSTMON_DATABASE_URL", db)
    assert main(["ingest", "--source", "nosuch", "--start", "2026-03-01", "--end", "2026-03-02"]) == 1
    assert "nosuch" in capsys.readouterr().err
    assert main(["ingest", "--source", "demo", "--start", "2026-03-02", "--end", "2026-03-01"]) == 1
    assert "must be after start" in capsys.readouterr().err


def test_check_rejects_a_malformed_classification_rules_file(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: broken\n    match: '(unclosed'\n    model: x\n")
    proc = run_cli("check", "--offline", env={"COSTMON_CLASSIFY_RULES": str(rules)})
    assert proc.returncode == 1
    assert proc.stderr.startswith("costmon check: COSTMON_CLASSIFY_RULES: ")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_migrate_demo_report_on_a_fresh_database_matches_the_demo_records(empty_db):
    from costmon.sources.demo import DemoSource

    env = {"COSTMON_DATABASE_URL": empty_db}
    now = "2026-03-18T10:00:00+00:00"
    assert run_cli("migrate", env=env).returncode == 0
    for _ in range(2):  # loading twice must not double anything
        demo = run_cli("demo", "--days", "90", "--now", now, env=env)
        assert demo.returncode == 0, demo.stderr
    assert "replaced" in demo.stdout
    proc = run_cli("report", "--start", "2025-12-01", "--end", "2026-03-19", "--by", "provider",
                   "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    got = {(r["provider"], r["currency"]): Decimal(r["effective_cost"]) for r in json.loads(proc.stdout)}

    source = DemoSource(now=dt.datetime.fromisoformat(now))
    expected: dict = {}
    for rec in source.fetch(Window(dt.date(2025, 12, 19), dt.date(2026, 3, 19))):
        key = (rec.provider, rec.billing_currency)
        expected[key] = expected.get(key, Decimal(0)) + rec.effective_cost
    assert got == expected and len(got) == 3
