"""A local Cost Management Query API: POST /{scope}/providers/Microsoft.CostManagement/query.

It holds one query result per cost type (fixture files in the real response
shape), answers only the rows whose UsageDate falls in the request's
timePeriod, pages them `page_size` at a time through `nextLink` (the client
POSTs the same body to it), and can answer 429 with the real throttling
headers, or 401/403, a scripted number of times. Requests are recorded.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

from .server import PAYLOADS, FakeServer, Reply, Request

PATH = re.compile(r"^/(?P<scope>.+)/providers/Microsoft\.CostManagement/query$", re.I)


def load_result(relative: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / relative).read_text(), parse_float=Decimal)


def _json_default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return float(o)  # the wire carries JSON numbers, as Azure does
    raise TypeError(type(o).__name__)


class CostManagementFake:
    def __init__(self, results: dict[str, dict[str, Any]], *, page_size: int = 3):
        self.results = results  # cost type -> query result body
        self.page_size = page_size
        self.errors: list[Reply] = []  # answered, in order, before any data
        self.bodies: list[dict[str, Any]] = []
        self.server = FakeServer(self)

    def __call__(self, req: Request) -> Reply:
        m = PATH.match(req.path)
        if req.method != "POST" or not m or not req.query.get("api-version"):
            return Reply(404, {"error": {"code": "NotFound", "message": f"no route {req.method} {req.path}"}})
        body = req.json()
        self.bodies.append(body)
        if self.errors:
            return self.errors.pop(0)
        problem = self._invalid(body)
        if problem:
            return Reply(400, {"error": {"code": "BadRequest", "message": f"Invalid query definition: {problem}"}})
        result = self.results.get(body["type"])
        if result is None:
            return Reply(204)
        rows = self._in_period(result, body["timePeriod"])
        offset = int(_decode(req.query["$skiptoken"][0])["offset"]) if "$skiptoken" in req.query else 0
        page = rows[offset:offset + self.page_size]
        next_link = None
        if offset + self.page_size < len(rows):
            token = _encode({"offset": offset + self.page_size})
            next_link = (f"{self.server.url}/{m['scope']}/providers/Microsoft.CostManagement/query"
                         f"?api-version={req.query['api-version'][0]}&$skiptoken={token}")
        answer = {**result, "properties": {**result["properties"], "rows": page, "nextLink": next_link}}
        return Reply(200, json.dumps(answer, default=_json_default), {"Content-Type": "application/json"})

    @staticmethod
    def _invalid(body: dict[str, Any]) -> str | None:
        dataset = body.get("dataset") or {}
        if body.get("type") not in ("ActualCost", "AmortizedCost", "Usage"):
            return f"type {body.get('type')!r}"
        if body.get("timeframe") != "Custom" or "timePeriod" not in body:
            return "expected a Custom timeframe with a timePeriod"
        if dataset.get("granularity") != "Daily":
            return "expected Daily granularity"
        if len(dataset.get("grouping") or []) > 2:
            return "grouping supports at most 2 clauses"
        return None

    @staticmethod
    def _in_period(result: dict[str, Any], period: dict[str, str]) -> list[list[Any]]:
        names = [c["name"] for c in result["properties"]["columns"]]
        at = names.index("UsageDate")
        lo = int(dt.datetime.fromisoformat(period["from"]).strftime("%Y%m%d"))
        hi = int(dt.datetime.fromisoformat(period["to"]).strftime("%Y%m%d"))
        return [r for r in result["properties"]["rows"] if lo <= int(r[at]) <= hi]

    def throttle(self, times: int, headers: dict[str, str]) -> None:
        body = {"error": {"code": "429", "message": "Too many requests. Please retry."}}
        self.errors.extend(Reply(429, body, dict(headers)) for _ in range(times))

    def deny(self, status: int, code: str, message: str) -> None:
        self.errors.append(Reply(status, {"error": {"code": code, "message": message}}))

    def __enter__(self) -> "CostManagementFake":
        self.server.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.__exit__(*exc)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> list[Request]:
        return self.server.requests


def _encode(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode()


def _decode(token: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(token.encode()))
