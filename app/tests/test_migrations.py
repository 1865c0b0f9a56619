"""Schema migrations: ordered, recorded, idempotent, same names on PostgreSQL and TimescaleDB."""

import psycopg
import pytest
from support import pgcluster

from costmon.store.migrate import default_migrations_dir, migrate, plan


def test_first_run_applies_every_migration_and_second_run_is_a_no_op(empty_db):
    with psycopg.connect(empty_db) as conn:
        first = migrate(conn)
        second = migrate(conn)
        recorded = [r[0] for r in conn.execute("SELECT id FROM schema_migrations ORDER BY id")]
    assert first, "a fresh database must get migrations"
    assert first == sorted(first)
    assert second == []
    assert recorded == first


@pytest.mark.parametrize("timescale", [True, False])
def test_both_variants_define_the_same_objects(timescale):
    ids = [m.id for m in plan(default_migrations_dir(), timescale)]
    assert "005_billing_daily" in ids and "007_llm_requests_hourly" in ids
    assert ("001_extension" in ids) is timescale


def test_the_tables_and_views_every_query_relies_on_exist(conn):
    names = {r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema='public' "
        "UNION SELECT viewname FROM pg_views WHERE schemaname='public' "
        "UNION SELECT matviewname FROM pg_matviews WHERE schemaname='public'")}
    tsdb = conn.execute("SELECT 1 FROM pg_extension WHERE extname='timescaledb'").fetchone()
    if tsdb:  # continuous aggregates show up as views in timescaledb_information
        names |= {r[0] for r in conn.execute(
            "SELECT view_name FROM timescaledb_information.continuous_aggregates")}
    for expected in ("billing_line_items", "billing_daily", "ingest_runs", "llm_requests",
                     "llm_requests_hourly", "schema_migrations"):
        assert expected in names


def test_reader_role_can_select_but_not_write(conn, db):
    from costmon.store.migrate import ensure_reader_login

    ensure_reader_login(conn, "grafana_test_reader", "s3cret-test")
    reader_dsn = pgcluster.with_params(db, user="grafana_test_reader", password="s3cret-test")
    with psycopg.connect(reader_dsn) as reader:
        assert reader.execute("SELECT count(*) FROM billing_daily").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("DELETE FROM billing_line_items")


@pytest.mark.timescaledb
def test_billing_line_items_is_a_hypertable_with_policies(timescale):
    from costmon.store.migrate import apply_policies

    applied = apply_policies(timescale, raw_retention_days=365, compress_after_days=30)
    assert applied
    hyper = {r[0] for r in timescale.execute(
        "SELECT hypertable_name FROM timescaledb_information.hypertables")}
    assert {"billing_line_items", "llm_requests"} <= hyper
    jobs = {r[0] for r in timescale.execute(
        "SELECT proc_name FROM timescaledb_information.jobs WHERE hypertable_name IN "
        "('billing_line_items', 'billing_daily') OR proc_name = 'policy_refresh_continuous_aggregate'")}
    assert {"policy_retention", "policy_compression", "policy_refresh_continuous_aggregate"} <= jobs
    cagg = timescale.execute(
        "SELECT materialized_only FROM timescaledb_information.continuous_aggregates "
        "WHERE view_name = 'billing_daily'").fetchone()
    assert cagg == (False,)
