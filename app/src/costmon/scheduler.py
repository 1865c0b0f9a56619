"""Scheduled ingests: one APScheduler cron job per enabled, complete source.

Each run re-reads a restatement window (trailing days, the whole previous
month on configured days, and any gap since the last success) through the
slice-replace loader. Jobs coalesce and never overlap; a source whose last
success is older than its previous scheduled time runs at start. A
PostgreSQL advisory lock per source (held by a session of its own) keeps two
collector replicas from ingesting the same source at once. A failing source
is recorded in ingest_runs and logged; it never stops the others.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import psycopg

from . import logging as log
from .config import Settings
from .records import Window
from .sources.registry import RunPolicy, SourceSpec, run_policy, scheduled
from .store.db import connect

UTC = dt.timezone.utc
LOCK_SQL = "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))"
UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtextextended(%s, 0))"
_LOOKBACKS = (dt.timedelta(hours=1), dt.timedelta(days=1), dt.timedelta(days=32), dt.timedelta(days=367))


def lock_key(source: str) -> str:
    return f"costmon:ingest:{source}"


def plan_window(today: dt.date, policy: RunPolicy, last_covered_end: dt.date | None = None) -> Window:
    """Days to re-read on `today`: trailing days up to and including today, the previous month on
    the configured days of month, and back to where the last success ended (bounded)."""
    start = today - dt.timedelta(days=policy.restatement_days)
    if last_covered_end is not None and last_covered_end < start:
        start = max(last_covered_end, today - dt.timedelta(days=policy.max_catchup_days))
    if today.day in policy.restate_month_days:
        start = min(start, (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1))
    return Window(start, today + dt.timedelta(days=1))


def previous_fire_time(trigger, now: dt.datetime) -> dt.datetime | None:
    """The last time at or before `now` the cron trigger fired (APScheduler 3 has only 'next')."""
    for lookback in _LOOKBACKS:
        fire, last = trigger.get_next_fire_time(None, now - lookback), None
        while fire is not None and fire <= now:
            last = fire
            fire = trigger.get_next_fire_time(fire, fire + dt.timedelta(seconds=1))
        if last is not None:
            return last
    return None


def _last_success(conn: psycopg.Connection, source: str) -> tuple[dt.datetime | None, dt.date | None]:
    row = conn.execute("""SELECT max(finished_at), max(window_end) FROM ingest_runs
                          WHERE source = %s AND status = 'success'""", (source,)).fetchone()
    return row[0], row[1]


def run_once(dsn: str, spec: SourceSpec, policy: RunPolicy, *,
             now: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC)) -> str:
    """One scheduled run of one source: 'success', 'failed' or 'locked' (another replica has it)."""
    from .ingest import run
    from .store.loader import LoadError, finish_run, start_run

    logger = log.get().bind(source=spec.name)
    try:
        # The lock lives in its own autocommit session: held exactly while this run works,
        # released by unlock or, if the process dies, by the session ending.
        lock_conn = connect(dsn, autocommit=True)
    except Exception as exc:  # noqa: BLE001 - a scheduler thread must not die
        logger.error("ingest_failed", reason="database", error=str(exc))
        return "failed"
    try:
        if not lock_conn.execute(LOCK_SQL, (lock_key(spec.name),)).fetchone()[0]:
            logger.info("ingest_skipped", reason="locked by another collector")
            return "locked"
        try:
            _, covered = _last_success(lock_conn, spec.name)
            window = plan_window(now().astimezone(UTC).date(), policy, covered)
            with connect(dsn) as conn:
                try:
                    source = spec.factory()
                except Exception as exc:  # noqa: BLE001 - recorded like any failed run
                    run_id = start_run(conn, spec.name, window)
                    reason = getattr(exc, "reason", "config")
                    finish_run(conn, run_id, status="failed", error_reason=reason,
                               error=f"{spec.name}: cannot start: {exc}")
                    logger.error("ingest_failed", window=str(window), reason=reason, error=str(exc))
                    return "failed"
                result = run(conn, source, window)
            logger.info("ingest_done", window=str(window), rows=result.rows, replaced=result.deleted,
                        unclassified=result.unclassified, api_calls=source.stats.api_calls)
            return "success"
        except LoadError as exc:  # already recorded in ingest_runs
            logger.error("ingest_failed", reason=exc.reason, error=str(exc))
            return "failed"
        except Exception as exc:  # noqa: BLE001
            logger.error("ingest_failed", reason="internal", error=f"{type(exc).__name__}: {exc}")
            return "failed"
        finally:
            try:
                lock_conn.execute(UNLOCK_SQL, (lock_key(spec.name),))
            except psycopg.Error:
                pass
    finally:
        lock_conn.close()


def add_jobs(scheduler, dsn: str, specs: Iterable[SourceSpec], policy: RunPolicy, *,
             now: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC)) -> list[str]:
    """One cron job per spec; those whose last success predates their previous fire time run now.

    Returns the names that got a catch-up run.
    """
    from apscheduler.triggers.cron import CronTrigger

    caught_up = []
    current = now()
    specs = list(specs)
    try:
        with connect(dsn, autocommit=True) as conn:
            last = {s.name: _last_success(conn, s.name)[0] for s in specs}
    except Exception as exc:  # noqa: BLE001 - unknown history: run now; the run logs what is wrong
        log.get().warning("ingest_history_unavailable", error=str(exc).splitlines()[0] if str(exc) else "")
        last = {s.name: None for s in specs}
    for spec in specs:
        trigger = CronTrigger.from_crontab(spec.schedule, timezone=UTC)
        previous = previous_fire_time(trigger, current)
        extra = {}
        if last[spec.name] is None or (previous is not None and last[spec.name] < previous):
            extra["next_run_time"] = current
            caught_up.append(spec.name)
        scheduler.add_job(run_once, trigger, args=[dsn, spec, policy], kwargs={"now": now}, id=spec.name,
                          name=f"ingest {spec.name}", coalesce=True, max_instances=1,
                          misfire_grace_time=3600, replace_existing=True, **extra)
    return caught_up


def start(settings: Settings, *, scheduler=None):
    """Start the scheduled ingests of `serve` in a background scheduler; returns it (call shutdown)."""
    from apscheduler.schedulers.background import BackgroundScheduler

    logger = log.get()
    ready, incomplete = scheduled(settings)
    for spec in incomplete:
        for problem in spec.problems:
            logger.warning("source_not_scheduled", source=spec.name, problem=problem)
    scheduler = scheduler or BackgroundScheduler(timezone=UTC)
    caught_up = add_jobs(scheduler, settings.database_url, ready, run_policy(settings))
    scheduler.start()
    for spec in ready:
        logger.info("source_scheduled", source=spec.name, cron=spec.schedule, catch_up=spec.name in caught_up)
    return scheduler
