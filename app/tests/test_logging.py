"""Logs are JSON lines on stdout and in the file Promtail tails; secrets never reach them."""

import json

import pytest

from costmon import logging as log


@pytest.fixture(autouse=True)
def plain_logging_afterwards():
    yield
    log.configure("info", None)  # detach the temp file handler from the root logger


def test_json_lines_with_secrets_redacted(tmp_path, capsys):
    path = tmp_path / "collector.log"
    log.configure("info", str(path))
    log.get().warning("source_failed", source="azure", client_secret="s3cr3t-value",
                      detail="connect to postgresql://costmon:hunter2@db:5432/costmon failed",
                      dsn_text="host=db password=hunter2 dbname=x")
    log.get().debug("not shown at info")
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["event"] == "source_failed" and event["level"] == "warning" and event["source"] == "azure"
    assert event["client_secret"] == "<redacted>"
    assert event["detail"] == "connect to postgresql://costmon:***@db:5432/costmon failed"
    assert "hunter2" not in lines[0] and "s3cr3t" not in lines[0]
    assert json.loads(capsys.readouterr().out.splitlines()[0]) == event  # stdout carries the same line
