"""Scheduled ingests and the source registry: windows, catch-up, advisory locks, isolation of failures."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from costmon import scheduler
from costmon.config import ConfigError, load_settings
from costmon.records import Window
from costmon.sources import registry
from costmon.sources.base import SourceError
from costmon.sources.gcp import GcpBillingExportSource
from costmon.sources.registry import RunPolicy, SourceSpec
from fakes.sources import DailySource
from support.procs import wait_for

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
POLICY = RunPolicy(restatement_days=3, restate_month_days=frozenset({5}), max_catchup_days=31)


def spec(name: str, factory, schedule: str = "0 3 * * *") -> SourceSpec:
    return SourceSpec(name, schedule, True, [], factory)


def runs(conn, source: str | None = None) -> list[tuple]:
    return conn.execute("""SELECT source, status, window_start, window_end, error_reason FROM ingest_runs
                           WHERE %s::text IS NULL OR source = %s ORDER BY id""", (source, source)).fetchall()


# ---- the window each run re-reads -------------------------------------------------------------

def test_a_run_rereads_the_trailing_restatement_days_and_today():
    assert scheduler.plan_window(dt.date(2026, 3, 10), POLICY) == Window(dt.date(2026, 3, 7), dt.date(2026, 3, 11))


def test_on_a_configured_day_the_whole_previous_month_is_reread():
    assert scheduler.plan_window(dt.date(2026, 3, 5), POLICY) == Window(dt.date(2026, 2, 1), dt.date(2026, 3, 6))
    january = scheduler.plan_window(dt.date(2026, 1, 5), POLICY)
    assert january.start == dt.date(2025, 12, 1)


def test_a_gap_since_the_last_success_is_filled_but_bounded():
    assert scheduler.plan_window(dt.date(2026, 3, 10), POLICY, dt.date(2026, 3, 1)).start == dt.date(2026, 3, 1)
    assert scheduler.plan_window(dt.date(2026, 3, 10), POLICY, dt.date(2025, 6, 1)).start == dt.date(2026, 2, 7)
    assert scheduler.plan_window(dt.date(2026, 3, 10), POLICY, dt.date(2026, 3, 9)).start == dt.date(2026, 3, 7)


def test_previous_fire_time_of_daily_and_six_hourly_crons():
    daily = CronTrigger.from_crontab("0 3 * * *", timezone=UTC)
    assert scheduler.previous_fire_time(daily, NOW) == dt.datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
    assert scheduler.previous_fire_time(daily, NOW.replace(hour=2)) == dt.datetime(2026, 3, 9, 3, 0, tzinfo=UTC)
    six = CronTrigger.from_crontab("0 */6 * * *", timezone=UTC)
    assert scheduler.previous_fire_time(six, NOW) == dt.datetime(2026, 3, 10, 6, 0, tzinfo=UTC)
    monthly = CronTrigger.from_crontab("0 0 1 * *", timezone=UTC)
    assert scheduler.previous_fire_time(monthly, NOW) == dt.datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


# ---- one run ---------------------------------------------------------------------------------

def test_a_run_loads_its_window_and_records_it(db, conn):
    src = DailySource("aws")
    assert scheduler.run_once(db, spec("aws", lambda: src), POLICY, now=lambda: NOW) == "success"
    assert src.windows == [Window(dt.date(2026, 3, 7), dt.date(2026, 3, 11))]
    assert runs(conn) == [("aws", "success", dt.date(2026, 3, 7), dt.date(2026, 3, 11), None)]
    assert conn.execute("SELECT count(*) FROM billing_line_items").fetchone() == (4,)


def test_a_run_after_downtime_rereads_from_where_the_last_success_ended(db, conn):
    first = DailySource("aws")
    scheduler.run_once(db, spec("aws", lambda: first), POLICY, now=lambda: NOW - dt.timedelta(days=6))
    later = DailySource("aws")
    scheduler.run_once(db, spec("aws", lambda: later), POLICY, now=lambda: NOW)
    assert later.windows == [Window(dt.date(2026, 3, 5), dt.date(2026, 3, 11))]


def test_a_source_locked_by_another_replica_is_skipped_then_runs_when_released(db, conn):
    other = psycopg.connect(db, autocommit=True)  # the other collector replica, mid-ingest
    try:
        assert other.execute(scheduler.LOCK_SQL, (scheduler.lock_key("aws"),)).fetchone() == (True,)
        src = DailySource("aws")
        assert scheduler.run_once(db, spec("aws", lambda: src), POLICY, now=lambda: NOW) == "locked"
        assert src.windows == [] and runs(conn) == []
        # Another source is not blocked by that lock.
        assert scheduler.run_once(db, spec("gcp", lambda: DailySource("gcp")), POLICY, now=lambda: NOW) == "success"
        other.execute(scheduler.UNLOCK_SQL, (scheduler.lock_key("aws"),))
        assert scheduler.run_once(db, spec("aws", lambda: src), POLICY, now=lambda: NOW) == "success"
    finally:
        other.close()
    # The lock is released after a run: the other replica can take it now.
    with psycopg.connect(db, autocommit=True) as again:
        assert again.execute(scheduler.LOCK_SQL, (scheduler.lock_key("aws"),)).fetchone() == (True,)


def test_a_source_that_cannot_be_built_is_a_failed_run_not_a_crash(db, conn):
    def broken():
        raise SourceError("auth", "azure: cannot authenticate: no token")
    assert scheduler.run_once(db, spec("azure", broken), POLICY, now=lambda: NOW) == "failed"
    assert runs(conn) == [("azure", "failed", dt.date(2026, 3, 7), dt.date(2026, 3, 11), "auth")]


# ---- the scheduler -----------------------------------------------------------------------------

def test_a_failing_source_never_stops_the_others(db, conn):
    today = dt.datetime.now(UTC).date()  # a real scheduler runs on the real clock
    bad = DailySource("aws", fail_on={today - dt.timedelta(days=1)})
    good = DailySource("gcp")

    def unbuildable():
        raise ValueError("COSTMON_AZURE_SCOPE is not set")

    sched = BackgroundScheduler(timezone=UTC)
    caught_up = scheduler.add_jobs(sched, db, [spec("aws", lambda: bad), spec("azure", unbuildable),
                                               spec("gcp", lambda: good, "0 */6 * * *")], POLICY)
    assert caught_up == ["aws", "azure", "gcp"]  # never succeeded: all run at start
    sched.start()
    try:
        done = wait_for(lambda: len([r for r in runs(conn) if r[1] != "running"]) == 3 and runs(conn))
    finally:
        sched.shutdown(wait=True)
    assert {(r[0], r[1], r[4]) for r in done} == {("aws", "failed", "throttled"), ("azure", "failed", "config"),
                                                  ("gcp", "success", None)}
    assert good.windows == [Window(today - dt.timedelta(days=3), today + dt.timedelta(days=1))]
    # The failed aws run replaced nothing; the gcp rows are all there.
    assert conn.execute("SELECT source, count(*) FROM billing_line_items GROUP BY 1").fetchall() == [("gcp", 4)]


def test_jobs_coalesce_never_overlap_and_catch_up_only_when_a_run_was_missed(db, conn):
    # aws succeeded after today's 03:00 run time; azure's last success was yesterday, before it.
    for source, finished in (("aws", NOW - dt.timedelta(hours=1)), ("azure", NOW - dt.timedelta(hours=32))):
        conn.execute("""INSERT INTO ingest_runs (source, window_start, window_end, started_at, finished_at, status)
                        VALUES (%s, '2026-03-01', '2026-03-02', %s, %s, 'success')""", (source, finished, finished))
    conn.commit()
    sched = BackgroundScheduler(timezone=UTC)
    caught_up = scheduler.add_jobs(sched, db, [spec("aws", DailySource), spec("azure", DailySource, "0 4 * * *")],
                                   POLICY, now=lambda: NOW)
    sched.start(paused=True)
    try:
        jobs = {j.id: j for j in sched.get_jobs()}
    finally:
        sched.shutdown(wait=False)
    assert caught_up == ["azure"]
    assert jobs["azure"].next_run_time == NOW
    assert jobs["aws"].next_run_time > NOW and jobs["aws"].next_run_time.hour == 3
    for job in jobs.values():
        assert job.coalesce is True and job.max_instances == 1
    assert str(jobs["azure"].trigger) == "cron[month='*', day='*', day_of_week='*', hour='4', minute='0']"


def test_serve_schedules_the_enabled_complete_sources_and_runs_them_at_start(db, conn):
    settings = load_settings({"COSTMON_DATABASE_URL": db, "COSTMON_SOURCES": "demo,azure",
                              "COSTMON_RESTATEMENT_DAYS": "1"})
    sched = scheduler.start(settings)
    try:
        assert [j.id for j in sched.get_jobs()] == ["demo"]  # azure lacks COSTMON_AZURE_SCOPE: reported, not run
        done = wait_for(lambda: [r for r in runs(conn, "demo") if r[1] == "success"])
    finally:
        sched.shutdown(wait=True)
    today = dt.datetime.now(UTC).date()
    assert done[0][2:4] == (today - dt.timedelta(days=1), today + dt.timedelta(days=1))


# ---- the registry: which sources, from which settings -----------------------------------------

def settings_with(**env):
    return load_settings({"COSTMON_DATABASE_URL": "postgresql://localhost/x", **env})


def test_check_names_each_missing_variable_of_each_enabled_source():
    problems = registry.problems(settings_with(
        COSTMON_SOURCES="aws,azure,gcp,billing9", AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
        COSTMON_AZURE_CLIENT_ID="00000000-0000-0000-0000-00000000000a", COSTMON_GCP_SCHEDULE="every hour"))
    assert problems == [
        "COSTMON_SOURCES names unknown source 'billing9' (known: aws, azure, gcp, demo)",
        "source aws: AWS_SECRET_ACCESS_KEY is not set (AWS_ACCESS_KEY_ID is)",
        "source azure: COSTMON_AZURE_SCOPE is not set: the Cost Management scope, e.g. subscriptions/<id>",
        "source azure: COSTMON_AZURE_TENANT_ID is not set (a service principal needs tenant, client id and secret)",
        "source azure: COSTMON_AZURE_CLIENT_SECRET is not set (a service principal needs tenant, client id and secret)",
        "source gcp: COSTMON_GCP_SCHEDULE='every hour' is invalid: Wrong number of fields; got 2, expected 5",
        "source gcp: COSTMON_GCP_BILLING_TABLE is not set: the billing export table, "
        "project.dataset.gcp_billing_export_v1_<ACCOUNT>",
    ]
    assert not any("secret" in p.lower() and "AKIA" in p for p in problems)


def test_cloud_sources_not_asked_for_are_neither_checked_nor_scheduled_and_demo_is_the_default():
    settings = settings_with(AWS_ACCESS_KEY_ID="AKIAEXAMPLE")
    assert registry.problems(settings) == []
    ready, incomplete = registry.scheduled(settings)
    assert [s.name for s in ready] == ["demo"] and incomplete == []


def test_demo_is_not_scheduled_once_a_cloud_source_is_enabled():
    for env in ({"COSTMON_SOURCES": "aws"}, {"COSTMON_AWS_ENABLED": "true"}):
        ready, incomplete = registry.scheduled(settings_with(**env))
        assert "demo" not in [s.name for s in ready + incomplete]


def test_serve_gets_the_complete_sources_and_the_incomplete_ones_with_their_problems():
    ready, incomplete = registry.scheduled(settings_with(
        COSTMON_SOURCES="gcp,azure", COSTMON_AZURE_ENABLED="true",
        COSTMON_GCP_BILLING_TABLE="acme-billing.billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9"))
    assert [(s.name, s.schedule) for s in ready] == [("gcp", "0 */6 * * *")]
    assert [s.name for s in incomplete] == ["azure"] and "COSTMON_AZURE_SCOPE" in incomplete[0].problems[0]


def test_build_source_reads_the_settings_of_that_source():
    src = registry.build_source(settings_with(
        COSTMON_GCP_BILLING_TABLE="acme-billing.billing_export.gcp_billing_export_v1_01A2B3_C4D5E6_F7A8B9",
        COSTMON_GCP_SERVICES="Vertex AI", COSTMON_GCP_CUSTOMER_LABEL="tenant",
        COSTMON_GCP_PARTITION_COLUMN="usage_start_time", COSTMON_BIGQUERY_ENDPOINT="http://127.0.0.1:9"), "gcp")
    assert isinstance(src, GcpBillingExportSource)
    assert (src.name, src.services, src.customer_label, src.partition_column, src.project, src.endpoint) == (
        "gcp", ("Vertex AI",), "tenant", "usage_start_time", "acme-billing", "http://127.0.0.1:9")


def test_build_source_says_what_is_missing_or_unknown():
    with pytest.raises(ConfigError) as exc:
        registry.build_source(settings_with(), "azure")
    assert exc.value.problems == [
        "source azure: COSTMON_AZURE_SCOPE is not set: the Cost Management scope, e.g. subscriptions/<id>"]
    with pytest.raises(ConfigError, match="unknown source 'oracle'"):
        registry.build_source(settings_with(), "oracle")


def test_restatement_settings_are_validated():
    problems = registry.problems(settings_with(COSTMON_RESTATE_MONTH_DAYS="5,31", COSTMON_CATCHUP_MAX_DAYS="0"))
    assert problems == ["COSTMON_RESTATE_MONTH_DAYS='5,31' is invalid: expected days of month 1-28, comma separated",
                        "COSTMON_CATCHUP_MAX_DAYS='0' is invalid: must be >= 1"]
    policy = registry.run_policy(settings_with(COSTMON_RESTATE_MONTH_DAYS="3,10", COSTMON_RESTATEMENT_DAYS="2"))
    assert policy == RunPolicy(restatement_days=2, restate_month_days=frozenset({3, 10}), max_catchup_days=31)
