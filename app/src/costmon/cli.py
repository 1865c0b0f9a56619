"""costmon migrate | demo | ingest | backfill | serve | check | report.

Every failure an operator can cause (a missing setting, the database down, a
bad payload) ends in one line on stderr naming the cause and a non-zero exit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
import threading
from collections.abc import Callable, Sequence

import psycopg

from . import __version__
from . import logging as log
from .config import ConfigError, Settings, load_settings
from .records import Window
from .store.db import DatabaseUnavailable, connect
from .store.loader import LoadError

EXIT_PROBLEM = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A problem to report as one line; the command exits non-zero."""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _instant(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO timestamp, got {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _window(start: dt.date, end: dt.date) -> Window:
    try:
        return Window(start, end)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


# ---- source resolution --------------------------------------------------------------------

def build_source(settings: Settings, name: str, *, now: dt.datetime | None = None):
    """The Source called `name`: the demo, or a configured cloud source."""
    if name == "demo":
        from .sources.demo import DemoSource
        return DemoSource(name="demo", now=now or _utc_now())
    try:
        from .sources import registry
    except ImportError:
        raise CommandError(f"unknown source {name!r}: only 'demo' is available in this build") from None
    return registry.build_source(settings, name)


# ---- commands -----------------------------------------------------------------------------

def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from .store.migrate import apply_policies, ensure_reader_login, migrate

    with connect(settings.database_url) as conn:
        applied = migrate(conn)
        policies = apply_policies(conn, raw_retention_days=settings.raw_retention_days,
                                  compress_after_days=settings.compress_after_days)
        if settings.grafana_db_password:
            ensure_reader_login(conn, settings.grafana_db_user, settings.grafana_db_password)
        for hook in _sync_hooks():
            hook(conn, settings)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else
                                                   " (schema already current)"))
    if policies:
        print("policies: " + ", ".join(policies))
    return 0


def _load(settings: Settings, source, window: Window) -> int:
    from .ingest import run
    from .progress import Progress

    progress = Progress(f"{source.name} {window}")
    with connect(settings.database_url) as conn:
        result = run(conn, source, window, on_row=lambda n: progress.update(rows=n))
    progress.close()
    print(f"{source.name}: loaded {result.rows} line items for {window} "
          f"(replaced {result.deleted}; {result.unclassified} unclassified)")
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    now = args.now or _utc_now()
    today = now.astimezone(dt.timezone.utc).date()
    window = _window(today - dt.timedelta(days=args.days - 1), today + dt.timedelta(days=1))
    return _load(settings, build_source(settings, "demo", now=now), window)


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    window = _window(args.start, args.end)
    return _load(settings, build_source(settings, args.source), window)


def cmd_backfill(settings: Settings, args: argparse.Namespace) -> int:
    from .backfill import backfill
    from .progress import Progress

    window = _window(args.start, args.end)
    source = build_source(settings, args.source)
    progress = Progress(f"{source.name} backfill {window}", total=len(window.chunks(args.chunk_days)))
    rows = [0]

    def step(done: int, total: int, chunk: Window, outcome: str, loaded: int) -> None:
        rows[0] += loaded
        progress.update(done=done, rows=rows[0])

    with connect(settings.database_url) as conn:
        result = backfill(conn, source, window, chunk_days=args.chunk_days, force=args.force, progress=step)
    progress.close()
    print(f"{source.name}: backfilled {window}: {len(result.loaded)} chunk(s) loaded ({result.rows} line items), "
          f"{len(result.skipped)} already loaded and skipped; {result.api_calls} upstream call(s)")
    return 0


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    from . import report

    try:
        dims = report.parse_dimensions(args.by)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    today = _utc_now().date()
    start = args.start or today.replace(day=1)
    end = args.end or today + dt.timedelta(days=1)
    _window(start, end)
    with connect(settings.database_url) as conn:
        rows = report.query(conn, start, end, dims)
    sys.stdout.write(report.render(rows, dims, args.format))
    return 0


def _sync_hooks() -> list[Callable]:
    """Config that lives in tables (budgets, customers), synced at migrate and serve start."""
    hooks = []
    try:
        from . import budgets
        hooks.append(budgets.sync)
    except ImportError:
        pass
    return hooks


def _problem_hooks() -> list[Callable[[Settings], list[str]]]:
    hooks = []
    for module in ("sources.registry", "budgets"):
        try:
            mod = __import__(f"{__package__}.{module}", fromlist=["problems"])
            hooks.append(mod.problems)
        except (ImportError, AttributeError):
            pass
    return hooks


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from .store.migrate import default_migrations_dir, plan
    from .store.db import has_timescaledb, timescaledb_loadable

    from .classify import default_classifier

    problems: list[str] = []
    try:
        default_classifier()  # a malformed COSTMON_CLASSIFY_RULES fails here, not mid-ingest
    except ValueError as exc:
        problems.append(f"COSTMON_CLASSIFY_RULES: {exc}")
    for hook in _problem_hooks():
        problems.extend(hook(settings))
    if not args.offline:
        try:
            with connect(settings.database_url, connect_timeout=5) as conn:
                timescale = has_timescaledb(conn) or timescaledb_loadable(conn)
                wanted = {m.id for m in plan(default_migrations_dir(), timescale)}
                try:
                    done = {r[0] for r in conn.execute("SELECT id FROM schema_migrations")}
                except psycopg.errors.UndefinedTable:
                    done = set()
                missing = sorted(wanted - done)
                if missing:
                    problems.append(f"database schema is {len(missing)} migration(s) behind "
                                    f"(first: {missing[0]}): run `costmon migrate`")
        except DatabaseUnavailable as exc:
            problems.append(str(exc))
    for p in problems:
        print(f"costmon check: {p}", file=sys.stderr)
    if problems:
        return EXIT_PROBLEM
    print("costmon check: settings valid" + ("" if args.offline else ", database reachable, schema current"))
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry

    from .metrics import CostCollector
    from .server import make_server, serve_in_thread
    from .store.migrate import migrate

    logger = log.get()
    with connect(settings.database_url) as conn:
        if not args.no_migrate:
            logger.info("migrations_applied", count=len(migrate(conn)))
        # Budgets and customers from the config file, also when another process migrates.
        try:
            for hook in _sync_hooks():
                hook(conn, settings)
        except psycopg.errors.UndefinedTable:
            conn.rollback()
            logger.warning("config_sync_skipped", reason="schema not migrated yet: run costmon migrate")

    def db() -> psycopg.Connection:
        return connect(settings.database_url, connect_timeout=5)

    registry = CollectorRegistry()
    registry.register(CostCollector(
        db, cache_seconds=settings.metrics_cache_seconds, top_customers=settings.metrics_top_customers,
        top_models=settings.metrics_top_models, max_series=settings.metrics_max_series,
        thresholds=settings.alert_thresholds,
        on_error=lambda exc: logger.error("metrics_query_failed", error=str(exc).splitlines()[0]
                                          if str(exc) else type(exc).__name__)))
    for extra in _extra_collectors(settings, db):
        registry.register(extra)

    def ready() -> tuple[bool, str]:
        try:
            with db() as conn:
                conn.execute("SELECT 1 FROM billing_line_items LIMIT 1")
            return True, "ready"
        except (DatabaseUnavailable, psycopg.Error) as exc:
            return False, f"not ready: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"

    server = make_server(settings.http_host, settings.http_port, registry, ready)
    serve_in_thread(server)
    logger.info("serving", host=settings.http_host, port=server.server_address[1])
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    scheduler = None if args.no_scheduler else _start_scheduler(settings)
    stop.wait()
    logger.info("stopping")
    if scheduler is not None:
        scheduler.shutdown(wait=False)
    server.shutdown()
    return 0


def _extra_collectors(settings: Settings, db) -> list:
    try:
        from .budget_metrics import collectors
    except ImportError:
        return []
    return collectors(settings, db)


def _start_scheduler(settings: Settings):
    try:
        from .scheduler import start
    except ImportError:
        log.get().warning("scheduler_unavailable", detail="no scheduler module in this build")
        return None
    return start(settings)


# ---- entry point ----------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="costmon", description="AI cost monitoring collector")
    p.add_argument("--version", action="version", version=f"costmon {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply database migrations and retention/compression policies")

    d = sub.add_parser("demo", help="load deterministic demo billing (accounts named demo-*)")
    d.add_argument("--days", type=int, default=None, help="days up to and including today (default 90)")
    d.add_argument("--now", type=_instant, default=None, help=argparse.SUPPRESS)

    i = sub.add_parser("ingest", help="replace one source's billing for a window of days")
    i.add_argument("--source", required=True)
    i.add_argument("--start", required=True, type=_date, help="first day, YYYY-MM-DD")
    i.add_argument("--end", required=True, type=_date, help="day after the last, YYYY-MM-DD")

    b = sub.add_parser("backfill", help="load a source over a long window in chunks; resumable")
    b.add_argument("--source", required=True)
    b.add_argument("--start", required=True, type=_date, help="first day, YYYY-MM-DD")
    b.add_argument("--end", required=True, type=_date, help="day after the last, YYYY-MM-DD")
    b.add_argument("--chunk-days", type=_positive, default=7, help="days per ingest run (default 7)")
    b.add_argument("--force", action="store_true", help="reload chunks already loaded")

    s = sub.add_parser("serve", help="serve /metrics and run the scheduled ingests")
    s.add_argument("--no-migrate", action="store_true", help="do not apply migrations at start")
    s.add_argument("--no-scheduler", action="store_true", help="serve metrics only")

    c = sub.add_parser("check", help="validate settings; one line per problem")
    c.add_argument("--offline", action="store_true", help="do not contact the database")

    r = sub.add_parser("report", help="totals per group, from the database")
    r.add_argument("--start", type=_date, help="first day (default: first of this month)")
    r.add_argument("--end", type=_date, help="day after the last (default: tomorrow)")
    r.add_argument("--by", default="provider", help="comma list, e.g. provider,day (default provider)")
    r.add_argument("--format", choices=("table", "csv", "json"), default="table")
    return p


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "migrate": cmd_migrate, "demo": cmd_demo, "ingest": cmd_ingest, "serve": cmd_serve,
    "check": cmd_check, "report": cmd_report, "backfill": cmd_backfill,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    offline = args.command == "check" and args.offline
    try:
        settings = load_settings(need_database=not offline)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"costmon {args.command}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "demo" and args.days is None:
        args.days = settings.demo_days
    if args.command == "demo" and args.days < 1:
        print("costmon demo: --days must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    log.configure(settings.log_level, settings.log_file)
    try:
        return COMMANDS[args.command](settings, args)
    except (CommandError, DatabaseUnavailable, LoadError, ConfigError) as exc:
        print(f"costmon {args.command}: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except psycopg.OperationalError as exc:
        first = (str(exc).strip().splitlines() or ["database error"])[-1]
        print(f"costmon {args.command}: database unavailable: {first}", file=sys.stderr)
        return EXIT_PROBLEM
    except psycopg.errors.UndefinedTable as exc:
        print(f"costmon {args.command}: database schema missing ({str(exc).splitlines()[0]}): "
              "run `costmon migrate`", file=sys.stderr)
        return EXIT_PROBLEM


if __name__ == "__main__":
    sys.exit(main())
