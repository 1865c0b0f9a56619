"""Assembles a dashboard from its panels and renders it as stable JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence

from grafana_foundation_sdk.builders import dashboard as dashboard_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

FOLDER_TAG = "costmon"


def board(uid: str, title: str, *, description: str, panels: Sequence, variables: Sequence = (),
          time_from: str = "now-30d/d", refresh: str = "15m", tags: Sequence[str] = ()) -> dict:
    """The dashboard as a JSON-ready dict: panel ids in order, UTC, linked to its siblings."""
    d = (dashboard_b.Dashboard(title).uid(uid).description(description)
         .tags([FOLDER_TAG, *tags]).timezone("utc").time(time_from, "now").refresh(refresh)
         .readonly().tooltip(dm.DashboardCursorSync.CROSSHAIR).week_start("monday")
         .link(dashboard_b.DashboardLink("AI Cost").type(dm.DashboardLinkType.DASHBOARDS)
               .tags([FOLDER_TAG]).as_dropdown(True).keep_time(True).include_vars(True)
               .target_blank(False).icon("external link").tooltip("").url("")))
    for v in variables:
        d = d.with_variable(v)
    for p in panels:
        d = d.with_row(p) if isinstance(p, dashboard_b.Row) else d.with_panel(p)
    out = json.loads(json.dumps(d.build(), cls=JSONEncoder))
    _layout(out.get("panels", []))
    out.setdefault("annotations", {}).setdefault("list", [])
    out.setdefault("templating", {}).setdefault("list", [])
    for v in out["templating"]["list"]:
        # SDK defaults that only mean something for interval variables.
        for key in ("id", "auto", "auto_count", "auto_min"):
            v.pop(key, None)
    return out


def _layout(panels: list[dict]) -> None:
    """Ids in order; left to right, wrapping a panel that does not fit; a row spans the width."""
    x = y = line_height = 0
    for i, panel in enumerate(panels, start=1):
        panel["id"] = i
        pos = panel.setdefault("gridPos", {})
        w, h = (24, 1) if panel.get("type") == "row" else (pos.get("w", 12), pos.get("h", 8))
        if x + w > 24 or panel.get("type") == "row":
            x, y, line_height = 0, y + line_height, 0
        panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        line_height = max(line_height, h)


def render(dashboard: dict) -> str:
    """Deterministic text: sorted keys, fixed indentation, trailing newline."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
