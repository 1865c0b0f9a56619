"""Start a server process for a test, wait for it by polling, always stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(predicate, timeout: float = 30, interval: float = 0.2, what: str = "condition",
             errors: tuple[type[Exception], ...] = (OSError, urllib.error.URLError)):
    """Poll `predicate` until it returns a truthy value or the deadline passes.

    `errors` raised by the predicate count as "not yet" (a server still starting);
    the interval only spaces the checks, the deadline bounds the wait.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except errors as exc:
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}" + (f": {last_exc}" if last_exc else ""))


@contextlib.contextmanager
def costmon_serve(database_url: str, port: int, *extra: str, env: dict | None = None,
                  log_path: str | None = None) -> Iterator[subprocess.Popen]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("COSTMON_")}
    full.update({"COSTMON_DATABASE_URL": database_url, "COSTMON_HTTP_HOST": "127.0.0.1",
                 "COSTMON_HTTP_PORT": str(port), "COSTMON_METRICS_CACHE_SECONDS": "0"})
    full.update(env or {})
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "costmon.cli", "serve", *extra], env=full,
                            stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: proc.poll() is not None or http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200,
                 what="costmon serve /healthz")
        if proc.poll() is not None:
            raise RuntimeError(f"costmon serve exited with {proc.returncode}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log_path:
            out.close()
