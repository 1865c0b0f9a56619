"""A throwaway PostgreSQL for tests and benchmarks, started and stopped by us.

Order of preference: COSTMON_TEST_DSN (an external server we may create
databases on), a local initdb cluster from Debian's postgresql-15 binaries on
a free 127.0.0.1 port, or a pinned TimescaleDB container via testcontainers
where a Docker engine answers. Nothing is required that we do not start.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

TIMESCALEDB_IMAGE = "timescale/timescaledb:2.17.2-pg16"


def _pg_bindir() -> Path | None:
    explicit = os.environ.get("COSTMON_PG_BINDIR")
    if explicit:
        return Path(explicit)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    # initdb refuses to run as root; CI runs as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


def _timescaledb_installed(bindir: Path) -> bool:
    try:
        libdir = subprocess.run([str(bindir / "pg_config"), "--pkglibdir"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return False
    return bool(glob.glob(os.path.join(libdir, "timescaledb*.so")))


@contextlib.contextmanager
def local_cluster(bindir: Path) -> Iterator[str]:
    """initdb into a temp dir, start on 127.0.0.1:<free port>, yield a superuser DSN, stop."""
    tmp = Path(tempfile.mkdtemp(prefix="costmon-pg-"))
    data, sock = tmp / "data", tmp / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for p in (tmp, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", user, "-A", "trust",
                                 "-E", "UTF8", "--no-locale"]), check=True, capture_output=True)
    port = _free_port()
    opts = [f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sock}",
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            "-c max_connections=50 -c shared_buffers=128MB"]
    # Opt-in: a developer who built TimescaleDB into this PostgreSQL runs the suite both ways.
    if os.environ.get("COSTMON_TEST_TIMESCALEDB") == "1" and _timescaledb_installed(bindir):
        opts.append("-c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off")
    log = tmp / "server.log"
    subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                                 "-t", "60", "-o", " ".join(opts), "start"]),
                   check=True, capture_output=True)
    try:
        yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                     "-w", "stop"]), capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def _docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def container_cluster() -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer(TIMESCALEDB_IMAGE, username="postgres", password="test",
                           dbname="postgres", driver=None) as pg:
        yield pg.get_connection_url()


@contextlib.contextmanager
def server() -> Iterator[str]:
    """Yield a superuser DSN to a server that lives as long as the context."""
    external = os.environ.get("COSTMON_TEST_DSN")
    if external:
        yield external
        return
    bindir = _pg_bindir()
    if bindir and (bindir / "initdb").exists():
        with local_cluster(bindir) as dsn:
            yield dsn
        return
    if _docker_available():
        with container_cluster() as dsn:
            yield dsn
        return
    raise RuntimeError("no PostgreSQL for tests: install postgresql-15 (apt-get install postgresql-15), "
                       "or run Docker, or set COSTMON_TEST_DSN")


def with_params(dsn: str, **params: str) -> str:
    """The same DSN with some connection parameters replaced (dbname, user, password...)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    merged = conninfo_to_dict(dsn)
    merged.update(params)
    return make_conninfo(**merged)


def with_database(dsn: str, dbname: str) -> str:
    return with_params(dsn, dbname=dbname)


def fresh_database(server_dsn: str, name: str) -> str:
    """(Re)create an empty database `name` on the server; return its DSN."""
    import psycopg

    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(server_dsn, name)


def wait_ready(dsn: str, timeout: float = 30) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(dsn, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
