"""The appliance's configuration, checked by the real tools: docker-compose config,
promtool (check config, check rules, test rules), amtool (check-config, routes,
template rendering), the `make init` script, and the TimescaleDB init script
against a real PostgreSQL. Nothing here starts the stack."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "compose" / ".env.example"
PROM = ROOT / "prometheus"
AM = ROOT / "alertmanager"
SECRETS = ("POSTGRES_PASSWORD", "COSTMON_DB_PASSWORD", "GRAFANA_DB_READER_PASSWORD", "GRAFANA_ADMIN_PASSWORD")
SEVERITIES = {"critical", "warning", "info"}
ANNOTATIONS = {"summary", "amount", "scope", "dashboard"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (make deps installs it)")
    return path


def run(*cmd: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def env_file(tmp_path: Path, **overrides: str) -> Path:
    """compose/.env.example with placeholder secrets (what `make init` would fill)."""
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        key = line.split("=", 1)[0]
        if key in overrides:
            line = f"{key}={overrides.pop(key)}"
        elif key in SECRETS:
            line = f"{key}=placeholder-{key.lower()}"
        lines.append(line)
    lines += [f"{k}={v}" for k, v in overrides.items()]
    path = tmp_path / "test.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def host_ip(port) -> str:
    """The address a published port binds: compose 1.29 prints "ip:host:container", v2 a mapping."""
    return port["host_ip"] if isinstance(port, dict) else str(port).rsplit(":", 2)[0]


def volume(v) -> tuple[str, str, bool]:
    """(source, target, read-only) of a volume: compose 1.29 prints "src:dst[:mode]", v2 a mapping."""
    if isinstance(v, dict):
        return v["source"], v["target"], bool(v.get("read_only"))
    source, target, *mode = v.split(":")
    return source, target, "ro" in (mode[0].split(",") if mode else [])


def costmon_bin() -> str:
    return shutil.which("costmon") or str(Path(sys.executable).with_name("costmon"))


def compose_config(env: Path) -> subprocess.CompletedProcess:
    return run(tool("docker-compose"), "--project-directory", str(ROOT / "compose"), "-f", str(COMPOSE_FILE),
               "--env-file", str(env), "config")


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict:
    result = compose_config(env_file(tmp_path_factory.mktemp("compose")))
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


# ---- compose ------------------------------------------------------------------------------

def test_compose_refuses_to_start_without_the_secrets_make_init_writes(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = compose_config(empty)
    assert result.returncode != 0
    assert "is not set - run make init" in result.stderr


def test_compose_has_every_service_of_the_appliance(resolved):
    assert set(resolved["services"]) == {
        "timescaledb", "collector-init", "collector", "prometheus", "alertmanager", "loki", "promtail",
        "cadvisor", "node-exporter", "grafana"}
    assert set(resolved["volumes"]) >= {"timescaledb-data", "prometheus-data", "loki-data", "grafana-data",
                                        "collector-logs"}


def test_every_image_tag_is_pinned_to_an_exact_version(resolved):
    for name, svc in resolved["services"].items():
        image = svc["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert re.fullmatch(r"v?\d+\.\d+\.\d+(-[a-z0-9]+)?", tag), f"{name}: {image} is not an exact version"
    assert resolved["services"]["timescaledb"]["image"] == "timescale/timescaledb:2.17.2-pg16"


def test_every_long_running_service_has_healthcheck_restart_memory_limit_and_log_rotation(resolved):
    for name, svc in resolved["services"].items():
        assert svc.get("mem_limit"), f"{name} has no memory limit"
        assert svc["logging"]["driver"] == "json-file" and svc["logging"]["options"]["max-size"], name
        if name == "collector-init":
            assert svc["restart"] == "no"  # one-shot: migrate, then demo data
            continue
        assert svc.get("restart") == "unless-stopped", name
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_services_wait_for_what_they_need_to_be_healthy(resolved):
    svc = resolved["services"]
    assert svc["collector-init"]["depends_on"]["timescaledb"]["condition"] == "service_healthy"
    assert svc["collector"]["depends_on"]["collector-init"]["condition"] == "service_completed_successfully"
    # Prometheus must run when the collector does not: it is what pages about it.
    assert "collector" not in svc["prometheus"].get("depends_on", {})
    assert svc["grafana"]["depends_on"]["timescaledb"]["condition"] == "service_healthy"


def test_only_grafana_is_published_beyond_localhost(resolved):
    published = {name: svc.get("ports", []) for name, svc in resolved["services"].items()}
    for name, ports in published.items():
        for port in ports:
            if name == "grafana":
                assert host_ip(port) == "0.0.0.0"  # GRAFANA_BIND's default
            else:
                assert host_ip(port) == "127.0.0.1", f"{name} publishes {port}"
    assert published["grafana"]


def test_grafana_bind_address_is_configurable(tmp_path):
    result = compose_config(env_file(tmp_path, GRAFANA_BIND="127.0.0.1"))
    assert result.returncode == 0, result.stderr
    ports = yaml.safe_load(result.stdout)["services"]["grafana"]["ports"]
    assert [host_ip(p) for p in ports] == ["127.0.0.1"]


def test_retention_settings_come_from_env(tmp_path):
    result = compose_config(env_file(tmp_path, PROMETHEUS_RETENTION="30d", LOKI_RETENTION="1440h",
                                     COST_RETENTION_DAYS="365"))
    assert result.returncode == 0, result.stderr
    svc = yaml.safe_load(result.stdout)["services"]
    assert "--storage.tsdb.retention.time=30d" in svc["prometheus"]["command"]
    assert svc["loki"]["environment"]["LOKI_RETENTION"] == "1440h"
    assert svc["collector"]["environment"]["COSTMON_RAW_RETENTION_DAYS"] == "365"


def test_grafana_is_locked_down_and_gets_the_reader_password_for_provisioning(resolved):
    env = resolved["services"]["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_ANALYTICS_REPORTING_ENABLED"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "placeholder-grafana_admin_password"
    # grafana/provisioning/datasources expands exactly these.
    provisioning = (ROOT / "grafana/provisioning/datasources/costmon.yml").read_text()
    uncommented = "\n".join(line.split("#", 1)[0] for line in provisioning.splitlines())
    for var in re.findall(r"\$\{(\w+)\}", uncommented):
        assert var in env, f"provisioning needs {var}"


def test_promtail_reads_the_collector_log_volume_and_docker_socket_read_only(resolved):
    by_target = {target: (source, read_only)
                 for source, target, read_only in map(volume, resolved["services"]["promtail"]["volumes"])}
    assert by_target["/var/run/docker.sock"] == ("/var/run/docker.sock", True)
    assert by_target["/var/log/costmon"] == ("collector-logs", True)
    collector_env = resolved["services"]["collector"]["environment"]
    assert collector_env["COSTMON_LOG_FILE"].startswith("/var/log/costmon/")


def test_collector_image_is_slim_pinned_non_root_with_a_readiness_healthcheck():
    dockerfile = (ROOT / "app/Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", b) for b in bases)
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "/readyz" in dockerfile.split("HEALTHCHECK", 1)[1]
    assert re.search(r"^COPY timescaledb/ /app/timescaledb/", dockerfile, re.M)


# ---- make init ----------------------------------------------------------------------------

def init(tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, COSTMON_ENV_FILE=str(tmp_path / ".env"), COSTMON_SECRETS_DIR=str(tmp_path / "secrets"))
    return run("bash", str(ROOT / "scripts/init.sh"), env=env)


def parse_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if re.match(r"^[A-Z]", line))


def test_init_writes_env_with_fresh_secrets_that_compose_accepts(tmp_path):
    result = init(tmp_path)
    assert result.returncode == 0, result.stderr
    written = parse_env(tmp_path / ".env")
    for key in SECRETS:
        assert re.fullmatch(r"[A-Za-z0-9]{32}", written[key]), key
    assert len({written[k] for k in SECRETS}) == len(SECRETS)  # four different secrets
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0
    for name in ("slack_api_url", "pagerduty_routing_key", "smtp_auth_password"):
        assert (tmp_path / "secrets" / name).is_file()
    assert compose_config(tmp_path / ".env").returncode == 0


def test_init_never_overwrites_and_only_appends_settings_new_in_the_example(tmp_path):
    assert init(tmp_path).returncode == 0
    env_path = tmp_path / ".env"
    edited = re.sub(r"(?m)^GRAFANA_PORT=.*$", "GRAFANA_PORT=4000", env_path.read_text())
    edited = re.sub(r"(?m)^COSTMON_DB_PASSWORD=.*\n", "", edited)
    env_path.write_text(edited)
    (tmp_path / "secrets" / "slack_api_url").write_text("https://hooks.slack.example/T000\n")

    result = init(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "appended new settings: COSTMON_DB_PASSWORD" in result.stdout
    after = env_path.read_text()
    assert after.startswith(edited)  # every existing line kept, in place
    assert parse_env(env_path)["GRAFANA_PORT"] == "4000"
    assert (tmp_path / "secrets" / "slack_api_url").read_text() == "https://hooks.slack.example/T000\n"
    assert "nothing changed" in init(tmp_path).stdout


# ---- TimescaleDB init script against a real PostgreSQL ----------------------------------

def test_initdb_script_creates_the_collector_login_and_a_read_only_grafana_login(pg_server, tmp_path):
    psql = shutil.which("psql") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))), None)
    if psql is None:
        pytest.skip("psql is not installed (postgresql-client)")
    server = conninfo_to_dict(pg_server)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS initdb_test")
        conn.execute("CREATE DATABASE initdb_test")
    env = dict(os.environ, PATH=f"{Path(psql).parent}:{os.environ['PATH']}", PGHOST=server["host"],
               PGPORT=str(server["port"]), POSTGRES_USER=server["user"], POSTGRES_DB="initdb_test",
               COSTMON_DB_USER="initdb_collector", COSTMON_DB_PASSWORD="collector-secret",
               COSTMON_GRAFANA_DB_USER="initdb_grafana", GRAFANA_DB_READER_PASSWORD="reader-secret")
    script = str(ROOT / "compose/initdb/10-costmon-roles.sh")
    for _ in range(2):  # a second run (or existing roles) is harmless
        result = run("bash", script, env=env)
        assert result.returncode == 0, result.stderr
        assert "secret" not in result.stdout + result.stderr

    writer = make_conninfo(pg_server, user="initdb_collector", password="collector-secret", dbname="initdb_test")
    migrate = run(costmon_bin(), "migrate", env=dict(os.environ, COSTMON_DATABASE_URL=writer))
    assert migrate.returncode == 0, migrate.stderr

    reader = make_conninfo(pg_server, user="initdb_grafana", password="reader-secret", dbname="initdb_test")
    with psycopg.connect(reader) as conn:
        assert conn.execute("SELECT count(*) FROM billing_daily").fetchone() == (0,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM billing_line_items")
        conn.rollback()
        conn.autocommit = True  # so the next statement starts a transaction with the new default
        conn.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO ingest_runs DEFAULT VALUES")


# ---- Prometheus ---------------------------------------------------------------------------

def rule_files() -> list[Path]:
    return sorted((PROM / "rules").glob("*.yml"))


def alerts() -> list[dict]:
    return [rule for f in rule_files() for g in yaml.safe_load(f.read_text())["groups"]
            for rule in g["rules"] if "alert" in rule]


def test_prometheus_config_is_valid_and_loads_every_rule_file():
    result = run(tool("promtool"), "check", "config", str(PROM / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rule_files())} rule files found" in result.stdout
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    jobs = {j["job_name"] for j in config["scrape_configs"]}
    assert jobs == {"costmon", "prometheus", "alertmanager", "cadvisor", "node", "loki", "promtail", "grafana"}
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


def test_rule_files_are_valid():
    result = run(tool("promtool"), "check", "rules", *map(str, rule_files()))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass():
    tests = sorted((PROM / "tests").glob("*_test.yml"))
    assert tests
    result = run(tool("promtool"), "test", "rules", *map(str, tests))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_silent_promtool_case():
    fires, silent = set(), set()
    for f in (PROM / "tests").glob("*_test.yml"):
        for case in yaml.safe_load(f.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - fires == set(), "alerts without a firing test"
    assert names - silent == set(), "alerts without a silent test"


def test_every_alert_has_a_severity_and_says_what_how_much_for_whom_and_where():
    for alert in alerts():
        severity = alert.get("labels", {}).get("severity")
        # A rule may take severity from its series (budget thresholds set it in config).
        assert severity in SEVERITIES or (severity is None and "severity" in alert["expr"]), alert["alert"]
        assert ANNOTATIONS <= set(alert.get("annotations", {})), alert["alert"]
        assert alert["annotations"]["dashboard"].lstrip().startswith(("/d/", "{{")), alert["alert"]


def test_cost_alerts_compare_money_per_period_never_a_per_second_rate():
    for alert in alerts():
        if "costmon_billing" in alert["expr"] or "costmon_customer" in alert["expr"]:
            assert "rate(" not in alert["expr"], alert["alert"]


# ---- Alertmanager -------------------------------------------------------------------------

AM_CONFIGS = (AM / "alertmanager.yml", AM / "alertmanager.log-only.yml")


def test_alertmanager_configs_are_valid():
    result = run(tool("amtool"), "check-config", *map(str, AM_CONFIGS))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("severity, receivers", [
    ("critical", "collector-log,critical"),
    ("warning", "collector-log,warning"),
    ("info", "collector-log,info"),
    ("none", "collector-log"),
])
def test_alerts_route_by_severity_and_are_always_logged_by_the_collector(severity, receivers):
    for config in AM_CONFIGS:
        result = run(tool("amtool"), "config", "routes", "test", f"--config.file={config}",
                     "alertname=CostAnomaly", f"severity={severity}")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == receivers


def test_channel_receivers_use_secret_files_only():
    config = yaml.safe_load((AM / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["critical"]["pagerduty_configs"][0]["routing_key_file"].startswith("/run/secrets/")
    assert "slack_configs" in receivers["critical"] and "slack_configs" in receivers["warning"]
    assert "email_configs" in receivers["info"]
    assert config["global"]["slack_api_url_file"].startswith("/run/secrets/")
    assert config["global"]["smtp_auth_password_file"].startswith("/run/secrets/")
    text = (AM / "alertmanager.yml").read_text()
    for field in ("api_url:", "routing_key:", "service_key:", "auth_password:", "slack_api_url:"):
        assert not re.search(rf"^\s*{field}", text, re.M), f"{field} would hold a secret in the YAML"
    assert receivers["collector-log"]["webhook_configs"][0]["url"] == "http://collector:8080/alerts"


def test_log_only_config_routes_and_inhibits_exactly_like_the_channel_config():
    full, log_only = (yaml.safe_load(p.read_text()) for p in AM_CONFIGS)
    assert full["route"] == log_only["route"]
    assert full["inhibit_rules"] == log_only["inhibit_rules"]
    assert {r["name"] for r in full["receivers"]} == {r["name"] for r in log_only["receivers"]}


def test_warnings_are_inhibited_by_a_critical_of_the_same_alert():
    (rule,) = yaml.safe_load((AM / "alertmanager.yml").read_text())["inhibit_rules"]
    assert rule["source_matchers"] == ['severity="critical"']
    assert rule["target_matchers"] == ['severity="warning"']
    assert "alertname" in rule["equal"]


def test_notification_templates_say_what_how_much_for_whom_and_link_the_dashboard(tmp_path):
    alert = {"status": "firing", "labels": {"alertname": "CostAnomaly", "severity": "warning",
                                            "dimension": "customer", "name": "cust-007", "period": "yesterday",
                                            "currency": "USD", "grafana_url": "https://grafana.example.com"},
             "annotations": {"summary": "customer cust-007 spent 5.3x its usual daily AI cost yesterday",
                             "amount": "1.45 USD yesterday",
                             "budget": "usual: a daily mean of 0.27 USD over the 7 days before",
                             "scope": "customer cust-007",
                             "dashboard": "/d/costmon-anomalies?var-customer=cust-007&var-currency=USD"},
             "startsAt": "2026-01-02T03:04:05Z", "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "http://prometheus:9090/graph", "fingerprint": "1"}
    data = {"receiver": "warning", "status": "firing", "alerts": [alert],
            "groupLabels": {"alertname": "CostAnomaly", "severity": "warning"},
            "commonLabels": alert["labels"], "commonAnnotations": alert["annotations"],
            "externalURL": "http://127.0.0.1:9093"}
    (tmp_path / "data.json").write_text(json.dumps(data))
    url = "https://grafana.example.com/d/costmon-anomalies?var-customer=cust-007&var-currency=USD"
    for name in ("costmon.text", "costmon.slack.text", "costmon.email.html"):
        result = run(tool("amtool"), "template", "render", f"--template.glob={AM}/templates/*.tmpl",
                     f"--template.data={tmp_path / 'data.json'}",
                     "--template.type=" + ("html" if "html" in name else "text"),
                     f'--template.text={{{{ template "{name}" . }}}}')
        assert result.returncode == 0, result.stderr
        out = result.stdout.replace("&amp;", "&")
        assert "5.3x its usual daily AI cost" in out
        assert "1.45 USD" in out and "customer cust-007" in out
        assert url in out, name
    title = run(tool("amtool"), "template", "render", f"--template.glob={AM}/templates/*.tmpl",
                f"--template.data={tmp_path / 'data.json'}", '--template.text={{ template "costmon.title" . }}')
    assert title.stdout.strip() == "[FIRING:1] CostAnomaly (warning)"


# ---- Loki and Promtail (no binaries here: structure of the files the pinned images read) --

def test_loki_uses_schema_v13_tsdb_filesystem_and_compactor_retention():
    loki = yaml.safe_load((ROOT / "loki/loki.yml").read_text())
    (schema,) = loki["schema_config"]["configs"]
    assert (schema["schema"], schema["store"], schema["object_store"]) == ("v13", "tsdb", "filesystem")
    assert loki["compactor"]["retention_enabled"] is True
    assert loki["compactor"]["delete_request_store"] == "filesystem"
    assert loki["limits_config"]["retention_period"] == "${LOKI_RETENTION:-720h}"


def test_promtail_tails_the_collector_json_log_and_lifts_level_and_event():
    promtail = yaml.safe_load((ROOT / "promtail/promtail.yml").read_text())
    jobs = {j["job_name"]: j for j in promtail["scrape_configs"]}
    collector = jobs["costmon-collector"]
    assert collector["static_configs"][0]["labels"]["__path__"].startswith("/var/log/costmon/")
    stages = {next(iter(s)): s[next(iter(s))] for s in collector["pipeline_stages"]}
    assert {"level", "event"} <= set(stages["json"]["expressions"])
    assert {"level", "event"} <= set(stages["labels"])
    assert jobs["docker"]["docker_sd_configs"][0]["host"] == "unix:///var/run/docker.sock"
    assert promtail["clients"][0]["url"] == "http://loki:3100/loki/api/v1/push"


# ---- make check ---------------------------------------------------------------------------

def test_make_check_script_runs_every_validation():
    for name in ("docker-compose", "promtool", "amtool"):
        tool(name)
    result = run("bash", str(ROOT / "scripts/check.sh"), env=dict(os.environ, COSTMON_BIN=costmon_bin()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok") == 6
