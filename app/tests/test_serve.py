"""`costmon serve`: metrics, health and readiness over HTTP, a clean stop on SIGTERM."""

import datetime as dt
import json
import urllib.request

from costmon.records import Window
from costmon.store.loader import load
from support.procs import costmon_serve, free_port, http_get
from support.records import line


def test_serve_exposes_metrics_health_and_readiness_and_stops_on_sigterm(conn, db, tmp_path):
    today = dt.datetime.now(dt.timezone.utc).date()
    load(conn, source="t", window=Window(today, today + dt.timedelta(days=1)),
         records=[line(today.isoformat(), "12.5", customer="cust-9")])
    port = free_port()
    log_file = tmp_path / "collector.log"
    with costmon_serve(db, port, "--no-scheduler", env={"COSTMON_LOG_FILE": str(log_file)}) as proc:
        base = f"http://127.0.0.1:{port}"
        assert http_get(base + "/readyz") == (200, "ready\n")
        status, body = http_get(base + "/metrics")
        assert status == 200
        assert ('costmon_customer_effective_cost{currency="USD",customer="cust-9",period="today"} 12.5'
                in body)
        assert "costmon_database_up 1.0" in body
        assert http_get(base + "/nope")[0] == 404

        alert = {"alerts": [{"status": "firing", "labels": {"alertname": "CostSpike", "severity": "warning"},
                             "annotations": {"summary": "spend up"}}]}
        req = urllib.request.Request(base + "/alerts", data=json.dumps(alert).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        assert urllib.request.urlopen(req, timeout=5).status == 200
        bad = urllib.request.Request(base + "/alerts", data=b"not json", method="POST")
        try:
            urllib.request.urlopen(bad, timeout=5)
            raise AssertionError("a malformed webhook body must be refused")
        except urllib.error.HTTPError as e:
            assert e.code == 400
    assert proc.returncode == 0
    logged = [json.loads(ln) for ln in log_file.read_text().splitlines()]
    received = [e for e in logged if e["event"] == "alert_received"]
    assert received and received[0]["alertname"] == "CostSpike" and received[0]["level"] == "warning"


def test_readyz_fails_when_the_schema_is_missing(empty_db):
    port = free_port()
    with costmon_serve(empty_db, port, "--no-scheduler", "--no-migrate"):
        status, body = http_get(f"http://127.0.0.1:{port}/readyz")
        assert status == 503 and body.startswith("not ready:")
        status, body = http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "costmon_database_up 0.0" in body
