"""Grafana dashboards as code (grafana-foundation-sdk).

One module per dashboard, each with UID, TITLE, `panels()` (a list of panel
helper calls from `panels.py`) and `build()`. `python -m costmon.dashboards`
writes grafana/dashboards/<uid>.json; a test fails when the committed files
differ from what this code generates.
"""

from __future__ import annotations

from pathlib import Path

from . import anomalies, collector, customers, executive, explorer, infrastructure, models
from .board import render

DASHBOARDS = (executive, explorer, models, customers, anomalies, collector, infrastructure)


def generate() -> dict[str, str]:
    """File name -> rendered JSON, for every dashboard."""
    return {f"{m.UID}.json": render(m.build()) for m in DASHBOARDS}


def default_output_dir() -> Path:
    """grafana/dashboards at the repository root (next to app/)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "app").is_dir() and (parent / "timescaledb").is_dir():
            return parent / "grafana" / "dashboards"
    return Path("grafana/dashboards")


def write(out_dir: Path) -> list[Path]:
    """Write every dashboard and remove stale generated files; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = generate()
    for stale in out_dir.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    written = []
    for name, text in files.items():
        path = out_dir / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written
