"""Shared fixtures: one throwaway PostgreSQL server per test session, a fresh database per test."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from support import pgcluster  # noqa: E402

from costmon.store.db import has_timescaledb  # noqa: E402
from costmon.store.migrate import migrate  # noqa: E402

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    with pgcluster.server() as dsn:
        pgcluster.wait_ready(dsn)
        yield dsn


@pytest.fixture
def empty_db(pg_server) -> str:
    """DSN of a new, empty database (no migrations)."""
    return pgcluster.fresh_database(pg_server, f"costmon_test_{next(_counter)}")


@pytest.fixture
def db(empty_db) -> str:
    """DSN of a new database with every migration applied."""
    with psycopg.connect(empty_db) as conn:
        migrate(conn)
    return empty_db


@pytest.fixture
def conn(db):
    with psycopg.connect(db) as c:
        yield c


@pytest.fixture
def timescale(conn):
    if not has_timescaledb(conn):
        pytest.skip("TimescaleDB extension not available on this server")
    return conn


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("timescaledb") and "timescale" not in item.fixturenames:
            item.fixturenames.append("timescale")
