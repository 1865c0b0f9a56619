"""Applies timescaledb/NNN_name[.tsdb|.pg].sql in order and records each one.

A migration is one id (NNN_name). `.tsdb.sql` variants apply only where the
TimescaleDB extension is loadable, `.pg.sql` variants only where it is not,
and plain `.sql` files everywhere, so the same table and view names exist on
both. Each migration runs in its own transaction; running twice is a no-op.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from .db import has_timescaledb, timescaledb_loadable

_NAME = re.compile(r"^(?P<id>\d{3}_[a-z0-9_]+)(?:\.(?P<variant>tsdb|pg))?\.sql$")
_LOCK_KEY = 7_215_001  # advisory lock: two collectors never migrate at once


def default_migrations_dir() -> Path:
    """timescaledb/ at the repository root, or the copy baked into the image."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "timescaledb"
        if candidate.is_dir() and any(candidate.glob("0*.sql")):
            return candidate
    return Path("/app/timescaledb")


@dataclass(frozen=True)
class Migration:
    id: str
    path: Path


def plan(directory: Path, timescale: bool) -> list[Migration]:
    chosen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ValueError(f"migration file name {path.name!r} is not NNN_name[.tsdb|.pg].sql")
        variant = m["variant"]
        if variant == "tsdb" and not timescale or variant == "pg" and timescale:
            continue
        if m["id"] in chosen:
            raise ValueError(f"two migrations share id {m['id']}: {chosen[m['id']].name}, {path.name}")
        chosen[m["id"]] = path
    return [Migration(i, p) for i, p in sorted(chosen.items())]


def migrate(conn: psycopg.Connection, directory: Path | None = None) -> list[str]:
    """Apply pending migrations; return the ids applied (empty when up to date)."""
    directory = directory or default_migrations_dir()
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                            id text PRIMARY KEY,
                            variant text NOT NULL,
                            applied_at timestamptz NOT NULL DEFAULT now())""")
        timescale = has_timescaledb(conn) or timescaledb_loadable(conn)
        done = {r[0] for r in conn.execute("SELECT id FROM schema_migrations")}
        applied = []
        for mig in plan(directory, timescale):
            if mig.id in done:
                continue
            with conn.transaction():
                conn.execute(mig.path.read_text())
                conn.execute("INSERT INTO schema_migrations (id, variant) VALUES (%s, %s)",
                             (mig.id, "timescaledb" if timescale else "postgresql"))
            applied.append(mig.id)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def apply_policies(conn: psycopg.Connection, *, raw_retention_days: int,
                   compress_after_days: int) -> list[str]:
    """Retention and compression from config (idempotent). Plain PostgreSQL has none."""
    stmts = [
        ("SELECT remove_retention_policy('billing_line_items', if_exists => true)", ()),
        ("SELECT add_retention_policy('billing_line_items', make_interval(days => %s))",
         (raw_retention_days,)),
        ("SELECT remove_compression_policy('billing_line_items', if_exists => true)", ()),
        ("SELECT add_compression_policy('billing_line_items', make_interval(days => %s))",
         (compress_after_days,)),
    ]
    # One transaction (no autocommit switch, which fails on a connection already in one):
    # the old policy is never gone without its replacement.
    with conn.transaction():
        if not has_timescaledb(conn):
            return []
        for q, params in stmts:
            conn.execute(q, params)
    return [f"retention {raw_retention_days}d", f"compression after {compress_after_days}d"]


def ensure_reader_login(conn: psycopg.Connection, user: str, password: str) -> None:
    """Create (or re-password) Grafana's login role and make it a member of costmon_reader."""
    conn.autocommit = True
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
    verb = sql.SQL("ALTER ROLE") if exists else sql.SQL("CREATE ROLE")
    conn.execute(sql.SQL("{} {} LOGIN PASSWORD {}").format(
        verb, sql.Identifier(user), sql.Literal(password)))
    conn.execute(sql.SQL("GRANT costmon_reader TO {}").format(sql.Identifier(user)))
