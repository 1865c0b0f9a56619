"""The collector's HTTP endpoints: /metrics, /healthz, /readyz and the /alerts webhook.

/healthz says the process serves; /readyz says the database answers and the
schema is migrated (what a compose healthcheck or a load balancer should use).
/alerts accepts Alertmanager webhook posts and logs each alert, so alerts are
visible in the logs (and Loki) even before any receiver is configured.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from . import logging as log

_MAX_ALERT_BODY = 1 << 20


def make_server(host: str, port: int, registry: CollectorRegistry,
                ready: Callable[[], tuple[bool, str]]) -> ThreadingHTTPServer:
    logger = log.get("costmon.http")

    class Handler(BaseHTTPRequestHandler):
        server_version = "costmon"

        def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(200, b"ok\n")
            elif path == "/readyz":
                ok, why = ready()
                self._send(200 if ok else 503, (why + "\n").encode())
            else:
                self._send(404, b"not found\n")

        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?", 1)[0] != "/alerts":
                self._send(404, b"not found\n")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > _MAX_ALERT_BODY:
                self._send(400, b"expected an Alertmanager webhook JSON body\n")
                return
            try:
                payload = json.loads(self.rfile.read(length))
                alerts = payload["alerts"]
            except (ValueError, KeyError, TypeError):
                self._send(400, b"expected an Alertmanager webhook JSON body\n")
                return
            for alert in alerts:
                labels = alert.get("labels", {})
                logger.warning("alert_received", status=alert.get("status"),
                               alertname=labels.get("alertname"), severity=labels.get("severity"),
                               labels=labels, summary=alert.get("annotations", {}).get("summary"))
            self._send(200, b"ok\n")

        def log_message(self, fmt: str, *args: object) -> None:
            pass  # scrapes every 15 s would drown the useful lines

    return ThreadingHTTPServer((host, port), Handler)


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return thread
