"""Connections, with one clear error line when the database cannot be reached."""

from __future__ import annotations

import re

import psycopg


class DatabaseUnavailable(Exception):
    """The database could not be reached or refused us; the message is one line, no secrets."""


def redact_dsn(dsn: str) -> str:
    """Hide the password in a URL or key=value DSN so it can be logged."""
    dsn = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)(\S+)", r"\1***", dsn, flags=re.I)


def connect(dsn: str, *, autocommit: bool = False, connect_timeout: int = 10) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=connect_timeout,
                               application_name="costmon")
    except psycopg.OperationalError as exc:
        first = (str(exc).strip().splitlines() or ["connection failed"])[-1]
        raise DatabaseUnavailable(f"database unreachable at {redact_dsn(dsn)}: {first}") from None


def has_timescaledb(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return row is not None


def timescaledb_loadable(conn: psycopg.Connection) -> bool:
    """True when CREATE EXTENSION timescaledb would work (installed and preloaded)."""
    available = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    if not available:
        return False
    try:
        with conn.transaction():
            preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0]
    except psycopg.errors.InsufficientPrivilege:
        # Only superusers (or pg_read_all_settings) may read it. A server that ships the
        # extension normally preloads it; if not, migration 001 fails naming the cause.
        return True
    return "timescaledb" in preload
