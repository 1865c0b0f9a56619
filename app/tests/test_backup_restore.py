"""Backup and restore an operator can trust: scripts/backup.sh and scripts/restore.sh run as an
operator runs them (plain connection-string mode) against a real PostgreSQL.

The compose mode (docker compose exec, volumes through a throwaway container) cannot run here:
no Docker engine. Every database step it takes is the same code as below, through `pg_tool`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import threading
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

import costmon
from costmon.records import Window
from costmon.store.loader import load
from costmon.store.migrate import migrate
from support.pgcluster import with_params
from support.records import line

REPO = Path(__file__).resolve().parents[2]
BACKUP_SH = REPO / "scripts" / "backup.sh"
RESTORE_SH = REPO / "scripts" / "restore.sh"
SECRET = "s3cret-Pa55"  # the test server trusts every login; the scripts must still never show it
MARCH = Window(dt.date(2026, 3, 1), dt.date(2026, 3, 4))


def run(script: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("COSTMON_", "BACKUP_", "PG"))}
    full.update(env or {})
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=full,
                          timeout=180)


def as_url(dsn: str, password: str = SECRET) -> str:
    p = conninfo_to_dict(dsn)
    return f"postgresql://{p['user']}:{password}@{p['host']}:{p['port']}/{p['dbname']}"


def dbname(dsn: str) -> str:
    return conninfo_to_dict(dsn)["dbname"]


def load_billing(dsn: str) -> None:
    """Real loader, three providers, two currencies, sub-cent amounts, two ingest runs, events."""
    aws = [line(f"2026-03-0{d}", cost, account=acct, customer=cust)
           for d in (1, 2, 3) for cost, acct, cust in (("12.345678901", "111", "cust-1"),
                                                       ("0.000000123", "222", None),
                                                       (f"{d}.10", "111", "cust-2"))]
    azure = [line(f"2026-03-0{d}", amount, provider="azure", account="sub-1", currency=cur,
                  service_name="Azure OpenAI", effective=f"{Decimal(amount) * Decimal('0.9')}")
             for d in (1, 2) for amount, cur in (("7.50", "EUR"), ("8.25", "USD"), ("0.01", "EUR"))]
    gcp = [line("2026-03-03", "99.999999", provider="gcp", account="proj-1", service_name="Vertex AI")]
    with psycopg.connect(dsn) as conn:
        load(conn, source="aws", window=MARCH, records=aws)
        load(conn, source="azure", window=MARCH, records=azure)
        load(conn, source="gcp", window=MARCH, records=gcp)
        conn.execute("""INSERT INTO llm_requests (ts, provider, model, customer_id, input_tokens,
                                                  output_tokens, cost, currency, latency_seconds)
                        VALUES ('2026-03-02 10:00Z', 'openai', 'gpt-4o', 'cust-1', 1200, 300, 0.0105, 'USD', 1.5),
                               ('2026-03-02 10:01Z', 'openai', 'gpt-4o', NULL, 80, 20, 0.0007, 'USD', 0.4)""")


def state(dsn: str) -> dict:
    """What must survive: rows of every public table, exact sums per provider, UTC day, currency."""
    with psycopg.connect(dsn) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1")]
        rows = {t: conn.execute(f'SELECT count(*) FROM public."{t}"').fetchone()[0] for t in tables}
        costs = {(p, d, c): (b, e, n) for p, d, c, b, e, n in conn.execute(
            """SELECT provider, (charge_period_start AT TIME ZONE 'UTC')::date, billing_currency,
                      sum(billed_cost), sum(effective_cost), count(*)
               FROM billing_line_items GROUP BY 1, 2, 3""")}
    return {"rows": rows, "costs": costs}


def databases(server: str) -> set[str]:
    with psycopg.connect(server) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def drop_database(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def only_backup(root: Path) -> Path:
    found = [p for p in root.iterdir() if p.name.startswith("costmon-")]
    assert len(found) == 1, found
    return found[0]


def backup(dsn: str, root: Path, *args: str, env: dict[str, str] | None = None) -> Path:
    proc = run(BACKUP_SH, "--root", str(root), *args, env={"COSTMON_DATABASE_URL": dsn, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return Path(re.search(r"complete: (\S+)", proc.stdout)[1])


def rewrite_manifest(bdir: Path, edit) -> None:
    """Change the manifest and re-seal SHA256SUMS: a backup whose dump no longer matches its counts."""
    manifest = bdir / "manifest.json"
    manifest.write_text(edit(manifest.read_text()))
    sums = [ln for ln in (bdir / "SHA256SUMS").read_text().splitlines() if not ln.endswith("manifest.json")]
    sums.append(f"{hashlib.sha256(manifest.read_bytes()).hexdigest()}  manifest.json")
    (bdir / "SHA256SUMS").write_text("\n".join(sums) + "\n")


@pytest.fixture
def billing_db(db) -> str:
    load_billing(db)
    return db


# ---- round trip ---------------------------------------------------------------------------

def test_round_trip_restores_identical_counts_and_sums_per_provider_and_day(billing_db, pg_server, tmp_path):
    before = state(billing_db)
    url = as_url(billing_db)
    made = run(BACKUP_SH, "--database-url", url, "--root", str(tmp_path))
    assert made.returncode == 0, made.stderr
    bdir = only_backup(tmp_path)

    drop_database(pg_server, dbname(billing_db))
    restored = run(RESTORE_SH, "--database-url", url, str(bdir))

    assert restored.returncode == 0, restored.stderr
    assert "restored data matches the manifest" in restored.stdout
    after = state(billing_db)
    assert after == before
    assert after["costs"][("azure", dt.date(2026, 3, 1), "EUR")] == (Decimal("7.51"), Decimal("6.759"), 2)
    assert after["costs"][("aws", dt.date(2026, 3, 2), "USD")][0] == Decimal("14.445679024")
    with psycopg.connect(billing_db) as conn:  # grants to the collector's and Grafana's roles came back
        assert conn.execute("SELECT has_table_privilege('costmon_reader', 'billing_line_items', 'SELECT')"
                            ).fetchone()[0]
    assert not any(d.startswith("costmon_restore_") for d in databases(pg_server))
    for out in (made.stdout, made.stderr, restored.stdout, restored.stderr, (bdir / "manifest.json").read_text()):
        assert SECRET not in out


def test_manifest_records_files_checksums_counts_exact_sums_and_versions(billing_db, tmp_path):
    before = state(billing_db)
    bdir = backup(billing_db, tmp_path)
    manifest = json.loads((bdir / "manifest.json").read_text())

    assert bdir.name == "costmon-" + manifest["created_at"].replace("-", "").replace(":", "")
    assert [f["name"] for f in manifest["files"]] == ["database.dump"]
    for f in manifest["files"]:
        data = (bdir / f["name"]).read_bytes()
        assert f["bytes"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["database"]["row_counts"] == {f"public.{t}": n for t, n in before["rows"].items()}
    assert manifest["database"]["row_counts"]["public.billing_line_items"] == 16
    costs = {(c["provider"], c["day"], c["currency"]): (c["billed_cost"], c["effective_cost"], c["line_items"])
             for c in manifest["database"]["costs"]}
    assert costs == {(p, d.isoformat(), c): (str(b), str(e), n) for (p, d, c), (b, e, n) in before["costs"].items()}
    assert costs[("aws", "2026-03-01", "USD")] == ("13.445679024", "13.445679024", 3)  # exact, as strings
    assert {c for (_, _, c) in costs} == {"EUR", "USD"}
    with psycopg.connect(billing_db) as conn:
        server = conn.execute("SELECT current_setting('server_version')").fetchone()[0]
        tsdb = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    assert manifest["versions"]["postgresql"] == server
    assert manifest["versions"]["timescaledb"] == (tsdb[0] if tsdb else None)
    assert manifest["versions"]["app"] == costmon.__version__
    assert "costmon_reader" in manifest["database"]["roles"]
    sums = (bdir / "SHA256SUMS").read_text().split()
    assert sums[1::2] == ["database.dump", "manifest.json"]


def test_writes_during_the_backup_do_not_split_the_dump_from_its_manifest(billing_db, pg_server, tmp_path):
    """Counts and sums are taken in the snapshot pg_dump uses, so a collector writing meanwhile
    cannot make a good backup fail its own restore check."""
    stop = threading.Event()
    written = []

    def collector():
        with psycopg.connect(billing_db, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO llm_requests (ts, provider, model, cost) "
                             "VALUES (now(), 'openai', 'gpt-4o', 0.001)")
                written.append(1)

    writer = threading.Thread(target=collector)
    writer.start()
    try:
        bdir = backup(billing_db, tmp_path)
    finally:
        stop.set()
        writer.join(timeout=30)
    during = json.loads((bdir / "manifest.json").read_text())["database"]["row_counts"]["public.llm_requests"]
    assert state(billing_db)["rows"]["llm_requests"] > during > 2  # rows landed before, during and after
    drop_database(pg_server, dbname(billing_db))

    proc = run(RESTORE_SH, str(bdir), env={"COSTMON_DATABASE_URL": billing_db})

    assert proc.returncode == 0, proc.stderr
    assert state(billing_db)["rows"]["llm_requests"] == during


def test_restore_into_a_migrated_but_empty_database_needs_no_force(billing_db, pg_server, tmp_path):
    bdir = backup(billing_db, tmp_path)
    before = state(billing_db)
    drop_database(pg_server, dbname(billing_db))
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname(billing_db)}"')
    with psycopg.connect(billing_db) as conn:  # a fresh stack's collector migrated it: no data yet
        migrate(conn)

    proc = run(RESTORE_SH, str(bdir), env={"COSTMON_DATABASE_URL": billing_db})

    assert proc.returncode == 0, proc.stderr
    assert state(billing_db) == before


def test_a_restore_drill_into_another_database_leaves_production_alone(billing_db, pg_server, tmp_path):
    backed_up = state(billing_db)
    bdir = backup(billing_db, tmp_path)
    with psycopg.connect(billing_db) as conn:  # production moves on after the backup
        load(conn, source="gcp", window=MARCH, records=[line("2026-03-02", "5", provider="gcp")])
    production = state(billing_db)

    proc = run(RESTORE_SH, "--database", "costmon_drill", str(bdir), env={"COSTMON_DATABASE_URL": billing_db})

    assert proc.returncode == 0, proc.stderr
    assert state(billing_db) == production
    assert state(with_params(billing_db, dbname="costmon_drill")) == backed_up
    drop_database(pg_server, "costmon_drill")


def test_a_role_the_new_server_lacks_is_created_without_login(billing_db, pg_server, tmp_path):
    role = f"costmon_analyst_{os.getpid()}"
    with psycopg.connect(billing_db, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        conn.execute(f'GRANT SELECT ON billing_line_items TO "{role}"')
    bdir = backup(billing_db, tmp_path)
    assert role in json.loads((bdir / "manifest.json").read_text())["database"]["roles"]
    drop_database(pg_server, dbname(billing_db))  # a new server: the database and the role are gone
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f'DROP ROLE "{role}"')

    proc = run(RESTORE_SH, str(bdir), env={"COSTMON_DATABASE_URL": billing_db})

    assert proc.returncode == 0, proc.stderr
    assert f"created missing role {role} (NOLOGIN" in proc.stdout
    with psycopg.connect(billing_db, autocommit=True) as conn:
        assert conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,)).fetchone() == (False,)
        assert conn.execute("SELECT has_table_privilege(%s, 'billing_line_items', 'SELECT')", (role,)).fetchone()[0]
        conn.execute(f'DROP OWNED BY "{role}"')
        conn.execute(f'DROP ROLE "{role}"')


# ---- refusals: nothing is touched -----------------------------------------------------------

def flip_a_byte(bdir: Path) -> None:
    dump = bdir / "database.dump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0x01
    dump.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, expected", [
    (flip_a_byte, "checksum mismatch in .*: database.dump; nothing was restored"),
    (lambda b: (b / "database.dump").unlink(), "database.dump"),
    (lambda b: (b / "manifest.json").unlink(), "no manifest.json or SHA256SUMS: not a complete backup"),
    (lambda b: (b / "extra.sql").write_text("DROP TABLE billing_line_items;"),
     "extra.sql is in the backup but not in SHA256SUMS"),
], ids=["flipped-byte", "dump-missing", "manifest-missing", "unlisted-file"])
def test_a_damaged_backup_is_refused_before_anything_is_touched(billing_db, pg_server, tmp_path,
                                                                 damage, expected):
    bdir = backup(billing_db, tmp_path)
    with psycopg.connect(billing_db) as conn:  # new data since the backup: --force would lose it
        load(conn, source="gcp", window=MARCH, records=[line("2026-03-02", "5", provider="gcp")])
    before, dbs = state(billing_db), databases(pg_server)
    damage(bdir)

    proc = run(RESTORE_SH, "--force", str(bdir), env={"COSTMON_DATABASE_URL": billing_db})

    assert proc.returncode == 4, proc.stderr
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == 1 and re.search(expected, errors[0]), errors
    assert state(billing_db) == before
    assert databases(pg_server) == dbs


def test_restore_refuses_a_database_with_data_unless_forced(billing_db, tmp_path):
    backed_up = state(billing_db)
    bdir = backup(billing_db, tmp_path)
    with psycopg.connect(billing_db) as conn:
        load(conn, source="gcp", window=MARCH, records=[line("2026-03-02", "5", provider="gcp")])
    newer = state(billing_db)

    refused = run(RESTORE_SH, str(bdir), env={"COSTMON_DATABASE_URL": with_params(billing_db, password=SECRET)})

    assert refused.returncode == 3
    [error] = refused.stderr.strip().splitlines()
    assert error.startswith(f"restore: error: refusing: database {dbname(billing_db)} has data (")
    assert "public.billing_line_items, public.ingest_runs, public.llm_requests" in error
    assert error.endswith("; pass --force (make restore FORCE=1) to replace it")
    assert state(billing_db) == newer

    forced = run(RESTORE_SH, "--force", str(bdir),
                 env={"COSTMON_DATABASE_URL": with_params(billing_db, password=SECRET)})

    assert forced.returncode == 0, forced.stderr
    assert state(billing_db) == backed_up
    assert SECRET not in forced.stdout + forced.stderr + refused.stderr


def test_a_backup_that_needs_another_timescaledb_version_is_refused(billing_db, pg_server, tmp_path):
    bdir = backup(billing_db, tmp_path)
    rewrite_manifest(bdir, lambda text: re.sub(r'"timescaledb": [^,]+,', '"timescaledb": "9.9.9",', text, count=1))
    drop_database(pg_server, dbname(billing_db))
    dbs = databases(pg_server)

    proc = run(RESTORE_SH, str(bdir), env={"COSTMON_DATABASE_URL": billing_db})

    assert proc.returncode == 3
    assert "the backup needs TimescaleDB 9.9.9; this server offers:" in proc.stderr
    assert databases(pg_server) == dbs


# ---- after restoring: counts and sums must equal the manifest --------------------------------

def test_restored_data_that_differs_from_the_manifest_fails_loudly_and_keeps_the_target(
        billing_db, pg_server, tmp_path):
    bdir = backup(billing_db, tmp_path)

    def tamper(text):
        text = text.replace('"public.billing_line_items": 16', '"public.billing_line_items": 17')
        return text.replace('"provider" : "gcp", "day" : "2026-03-03", "currency" : "USD", "billed_cost" : "99.999999"',
                            '"provider" : "gcp", "day" : "2026-03-03", "currency" : "USD", "billed_cost" : "99.999998"')
    rewrite_manifest(bdir, tamper)
    before, dbs = state(billing_db), databases(pg_server)

    proc = run(RESTORE_SH, "--force", str(bdir), env={"COSTMON_DATABASE_URL": billing_db})

    assert proc.returncode == 5
    assert proc.stderr.strip().splitlines() == [
        "restore: mismatch: rows differ in public.billing_line_items: backup 17, restored 16",
        "restore: mismatch: costs differ for gcp 2026-03-03 USD: backup billed 99.999998 effective 99.999999 "
        "in 1 lines, restored billed 99.999999 effective 99.999999 in 1 lines",
        f"restore: error: restored data differs from the manifest in 2 place(s); {dbname(billing_db)} was not touched",
    ]
    assert state(billing_db) == before
    assert databases(pg_server) == dbs  # the staging database is gone too


# ---- a failing backup leaves nothing that looks complete -----------------------------------

def test_an_unreachable_database_fails_the_backup_and_leaves_no_directory(tmp_path):
    proc = run(BACKUP_SH, "--root", str(tmp_path),
               env={"COSTMON_DATABASE_URL": f"postgresql://costmon:{SECRET}@127.0.0.1:1/costmon"})

    assert proc.returncode != 0
    assert "backup: error: database: cannot open a snapshot: " in proc.stderr
    assert "Connection refused" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_failure_after_the_dump_removes_the_partial_backup(billing_db, tmp_path):
    root = tmp_path / "backups"
    proc = run(BACKUP_SH, "--root", str(root), "--grafana-dir", str(tmp_path / "no-such-grafana"),
               env={"COSTMON_DATABASE_URL": billing_db})

    assert proc.returncode != 0
    assert "grafana: " in proc.stderr and "is not a directory" in proc.stderr
    assert "pg_dump" in proc.stdout  # it got that far
    assert list(root.iterdir()) == []


# ---- retention and naming ------------------------------------------------------------------

def test_retention_keeps_the_newest_n_complete_backups_and_nothing_incomplete_is_deleted(billing_db, tmp_path):
    for stamp in ("20250101T000000Z", "20250102T000000Z", "20250103T000000Z"):
        old = tmp_path / f"costmon-{stamp}"
        old.mkdir()
        (old / "manifest.json").write_text("{}")
        (old / "SHA256SUMS").write_text("")
    (tmp_path / "costmon-20240101T000000Z").mkdir()  # incomplete: no manifest
    (tmp_path / ".tmp-20250104T000000Z-1").mkdir()  # another run in progress
    (tmp_path / "operator-notes").mkdir()

    made = backup(billing_db, tmp_path, env={"BACKUP_KEEP": "2"})

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([
        ".tmp-20250104T000000Z-1", "costmon-20240101T000000Z", "costmon-20250103T000000Z",
        made.name, "operator-notes"])


def test_two_backups_in_one_second_get_distinct_complete_directories(billing_db, tmp_path):
    first = backup(billing_db, tmp_path)
    second = backup(billing_db, tmp_path)
    assert first != second
    assert all((d / "manifest.json").is_file() for d in (first, second))


# ---- Grafana's data directory (url mode) -----------------------------------------------------

def test_grafana_data_round_trips_and_a_non_empty_directory_needs_force(billing_db, tmp_path):
    grafana = tmp_path / "grafana"
    (grafana / "plugins" / "x").mkdir(parents=True)
    (grafana / "grafana.db").write_bytes(os.urandom(4096))
    (grafana / "plugins" / "x" / "plugin.json").write_text('{"id": "x"}')
    bdir = backup(billing_db, tmp_path / "b", "--grafana-dir", str(grafana))
    files = [f["name"] for f in json.loads((bdir / "manifest.json").read_text())["files"]]
    assert files == ["database.dump", "grafana-data.tar.gz"]

    target = tmp_path / "restored-grafana"
    target.mkdir()
    (target / "stale.txt").write_text("from a previous install")
    forced = run(RESTORE_SH, "--force", str(bdir), "--grafana-dir", str(target),
                 env={"COSTMON_DATABASE_URL": billing_db})
    assert forced.returncode == 0, forced.stderr  # --force covers the directory as well
    assert (target / "grafana.db").read_bytes() == (grafana / "grafana.db").read_bytes()
    assert (target / "plugins" / "x" / "plugin.json").read_text() == '{"id": "x"}'
    assert not (target / "stale.txt").exists()

    (target / "stale.txt").write_text("again")
    proc = run(RESTORE_SH, str(bdir), "--grafana-dir", str(target), env={"COSTMON_DATABASE_URL": billing_db})
    assert proc.returncode == 3
    assert "has data" in proc.stderr  # the database check comes first; nothing was touched
    assert (target / "stale.txt").read_text() == "again"


# ---- TimescaleDB --------------------------------------------------------------------------

@pytest.mark.timescaledb
def test_timescaledb_round_trip_keeps_compressed_chunks_and_the_continuous_aggregate(
        billing_db, pg_server, tmp_path, timescale):
    timescale.close()  # the marker's probe connection; the database is dropped below
    with psycopg.connect(billing_db, autocommit=True) as conn:
        compressed = conn.execute("SELECT count(compress_chunk(c)) FROM show_chunks('billing_line_items') c"
                                  ).fetchone()[0]
        daily_before = conn.execute("SELECT day, provider, billing_currency, sum(billed_cost) FROM billing_daily "
                                    "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall()
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()[0]
    assert compressed > 0
    before = state(billing_db)
    bdir = backup(billing_db, tmp_path)
    assert json.loads((bdir / "manifest.json").read_text())["versions"]["timescaledb"] == version
    drop_database(pg_server, dbname(billing_db))

    proc = run(RESTORE_SH, str(bdir), env={"COSTMON_DATABASE_URL": billing_db})

    assert proc.returncode == 0, proc.stderr
    assert f"(TimescaleDB {version})" in proc.stdout
    assert state(billing_db) == before
    with psycopg.connect(billing_db) as conn:
        assert conn.execute("SELECT count(*) FROM timescaledb_information.chunks WHERE is_compressed"
                            ).fetchone()[0] == compressed
        assert conn.execute("SELECT day, provider, billing_currency, sum(billed_cost) FROM billing_daily "
                            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3").fetchall() == daily_before
        assert conn.execute("SELECT current_setting('timescaledb.restoring')").fetchone()[0] == "off"
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
                            ).fetchone()[0] == version
