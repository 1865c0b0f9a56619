"""A local BigQuery REST endpoint that really runs the query it is sent.

It holds one billing export table (rows in the export's nested JSON shape, a
fixture file) in DuckDB, with the export's column types (STRUCTs, ARRAYs of
STRUCTs, FLOAT64 cost). The SQL a client sends is BigQuery standard SQL: named
parameters are bound as BigQuery literals, sqlglot translates it to DuckDB and
DuckDB executes it, so the source's own query text is what is tested.
NUMERIC becomes DECIMAL(38, 9), its BigQuery precision.

Endpoints, as google-cloud-bigquery calls them: jobs.query (POST
/projects/{p}/queries), jobs.get (GET /projects/{p}/jobs/{id}) and
jobs.getQueryResults (GET /projects/{p}/queries/{id}) with pageToken paging.
Partition pruning is modelled: bytes processed count only the rows in the
partitions a `_PARTITIONTIME` filter selects (all rows without one).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from decimal import Decimal
from typing import Any

import duckdb
import sqlglot

from .server import PAYLOADS, FakeServer, Reply, Request

BYTES_PER_ROW = 1024
_SCHEMA = """
    billing_account_id VARCHAR,
    service STRUCT(id VARCHAR, description VARCHAR),
    sku STRUCT(id VARCHAR, description VARCHAR),
    usage_start_time TIMESTAMPTZ,
    usage_end_time TIMESTAMPTZ,
    project STRUCT(id VARCHAR, number VARCHAR, name VARCHAR),
    labels STRUCT(key VARCHAR, value VARCHAR)[],
    location STRUCT(location VARCHAR, country VARCHAR, region VARCHAR, zone VARCHAR),
    export_time TIMESTAMPTZ,
    cost DOUBLE,
    currency VARCHAR,
    currency_conversion_rate DOUBLE,
    usage STRUCT(amount DOUBLE, unit VARCHAR, amount_in_pricing_units DOUBLE, pricing_unit VARCHAR),
    credits STRUCT(name VARCHAR, amount DOUBLE, full_name VARCHAR, id VARCHAR, type VARCHAR)[],
    invoice STRUCT(month VARCHAR),
    cost_type VARCHAR,
    _PARTITIONTIME TIMESTAMPTZ
"""
_COLUMNS = [line.strip().split()[0] for line in _SCHEMA.strip().splitlines()]
_PATH = re.compile(r"^/bigquery/v2/projects/(?P<project>[^/]+)/(?P<kind>queries|jobs)(?:/(?P<job>[^/]+))?$")


def export_rows(relative: str, key: str = "rows") -> list[dict[str, Any]]:
    return json.loads((PAYLOADS / relative).read_text(), parse_float=Decimal)[key]


class BigQueryFake:
    def __init__(self, table: str, rows: list[dict[str, Any]], *, incomplete_first: bool = False):
        project, dataset, name = table.rsplit(".", 2)
        self.table = table
        self.db = duckdb.connect()
        self.db.execute("SET TimeZone = 'UTC'")
        self.db.execute(f'ATTACH \':memory:\' AS "{project}"')
        self.db.execute(f'CREATE SCHEMA "{project}"."{dataset}"')
        self.qualified = f'"{project}"."{dataset}"."{name}"'
        self.db.execute(f"CREATE TABLE {self.qualified} ({_SCHEMA})")
        self.partitions: list[str] = []
        self.add(rows)
        self.incomplete_first = incomplete_first
        self.errors: list[Reply] = []  # answered, in order, before anything else
        self.queries: list[dict[str, Any]] = []  # every jobs.query body
        self.results: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self.server = FakeServer(self)

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Rows the export appends (late arrivals land in later partitions)."""
        marks = ", ".join("?" for _ in _COLUMNS)
        for row in rows:
            self.db.execute(f"INSERT INTO {self.qualified} VALUES ({marks})", [_plain(row.get(c)) for c in _COLUMNS])
            self.partitions.append(row["_PARTITIONTIME"])

    # ---- HTTP -----------------------------------------------------------------------------

    def __call__(self, req: Request) -> Reply:
        m = _PATH.match(req.path)
        if not m:
            return _error(404, "notFound", f"no route {req.method} {req.path}")
        if self.errors:
            return self.errors.pop(0)
        project, kind, job = m["project"], m["kind"], m["job"]
        if req.method == "POST" and kind == "queries" and not job:
            return self._query(project, req.json())
        if req.method == "GET" and kind == "jobs" and job in self.results:
            return Reply(200, self._job(project, job))
        if req.method == "GET" and kind == "queries" and job in self.results:
            offset = int(req.query.get("pageToken", ["0"])[0])
            size = int(req.query.get("maxResults", ["100000"])[0])
            return Reply(200, self._page(project, job, offset, size, complete=True))
        return _error(404, "notFound", f"Not found: Job {project}:{job}")

    def _query(self, project: str, body: dict[str, Any]) -> Reply:
        self.queries.append(body)
        if body.get("useLegacySql", True) is not False:
            return _error(400, "invalidQuery", "expected standard SQL (useLegacySql: false)")
        try:
            sql = _bind(body["query"], body.get("queryParameters", []))
            duck = sqlglot.transpile(sql, read="bigquery", write="duckdb")[0]
            duck = re.sub(r"\bDECIMAL\b(?!\s*\()", "DECIMAL(38, 9)", duck)
            cursor = self.db.execute(duck)
            names = [d[0] for d in cursor.description]
            types = [str(d[1]) for d in cursor.description]
            rows = cursor.fetchall()
        except (duckdb.Error, sqlglot.errors.SqlglotError, KeyError, ValueError) as exc:
            return _error(400, "invalidQuery", f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        job = f"job_{next(self._ids)}"
        self.results[job] = {
            "schema": {"fields": [{"name": n, "type": _bq_type(t), "mode": "NULLABLE"} for n, t in zip(names, types)]},
            "rows": [{"f": [{"v": _cell(v)} for v in row]} for row in rows],
            "bytes": BYTES_PER_ROW * self._scanned(sql),
            "query": body["query"],
        }
        size = int(body.get("maxResults") or 100000)
        return Reply(200, self._page(project, job, 0, size, complete=not self.incomplete_first,
                                     kind="bigquery#queryResponse"))

    def _page(self, project: str, job: str, offset: int, size: int, *, complete: bool,
              kind: str = "bigquery#getQueryResultsResponse") -> dict[str, Any]:
        res = self.results[job]
        ref = {"projectId": project, "jobId": job, "location": "US"}
        if not complete:
            return {"kind": kind, "jobReference": ref, "jobComplete": False}
        page = {"kind": kind, "jobReference": ref, "jobComplete": True, "schema": res["schema"],
                "totalRows": str(len(res["rows"])), "rows": res["rows"][offset:offset + size],
                "totalBytesProcessed": str(res["bytes"]), "cacheHit": False}
        if offset + size < len(res["rows"]):
            page["pageToken"] = str(offset + size)
        return page

    def _job(self, project: str, job: str) -> dict[str, Any]:
        res = self.results[job]
        return {"kind": "bigquery#job", "id": f"{project}:US.{job}",
                "jobReference": {"projectId": project, "jobId": job, "location": "US"},
                "configuration": {"query": {"query": res["query"], "useLegacySql": False}, "jobType": "QUERY"},
                "status": {"state": "DONE"},
                "statistics": {"creationTime": "1772323200000", "startTime": "1772323200100",
                               "endTime": "1772323201000", "totalBytesProcessed": str(res["bytes"]),
                               "query": {"totalBytesProcessed": str(res["bytes"]),
                                         "totalBytesBilled": str(res["bytes"]), "statementType": "SELECT",
                                         "cacheHit": False}}}

    def _scanned(self, bound_sql: str) -> int:
        lo = re.search(r"_PARTITIONTIME\s*>=\s*TIMESTAMP\(DATE '([\d-]+)'\)", bound_sql)
        hi = re.search(r"_PARTITIONTIME\s*<\s*TIMESTAMP\(DATE '([\d-]+)'\)", bound_sql)
        if not (lo and hi):
            return len(self.partitions)
        start, end = (dt.datetime.fromisoformat(x[1] + "T00:00:00+00:00") for x in (lo, hi))
        return sum(start <= dt.datetime.fromisoformat(p) < end for p in self.partitions)

    def calls(self) -> list[tuple[str, str]]:
        """(method, 'queries' | 'jobs') of every request received."""
        return [(r.method, m["kind"] if (m := _PATH.match(r.path)) else r.path) for r in self.server.requests]

    # ---- failures -------------------------------------------------------------------------

    def rate_limit(self, times: int) -> None:
        message = "Exceeded rate limits: too many concurrent queries for this project_and_region."
        self.errors.extend(_error(403, "rateLimitExceeded", message, domain="usageLimits") for _ in range(times))

    def deny(self) -> None:
        self.errors.append(_error(403, "accessDenied", f"Access Denied: Table {self.table}: User does not have "
                                  "permission to query table, or perhaps it does not exist."))

    def __enter__(self) -> "BigQueryFake":
        self.server.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.__exit__(*exc)
        self.db.close()

    @property
    def url(self) -> str:
        return self.server.url


def _error(code: int, reason: str, message: str, domain: str = "global") -> Reply:
    status = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}.get(code, "UNKNOWN")
    return Reply(code, {"error": {"code": code, "message": message, "status": status,
                                  "errors": [{"message": message, "domain": domain, "reason": reason}]}})


def _plain(value: Any) -> Any:
    """Fixture JSON -> values DuckDB binds (Decimal -> float: the export column is FLOAT64)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _literal(ptype: dict[str, Any], pvalue: dict[str, Any]) -> str:
    kind = ptype["type"]
    if kind == "ARRAY":
        return "[" + ", ".join(_literal(ptype["arrayType"], v) for v in pvalue.get("arrayValues", [])) + "]"
    value = pvalue.get("value")
    if value is None:
        return "NULL"
    if kind in ("INT64", "INTEGER", "NUMERIC", "FLOAT64", "BIGNUMERIC"):
        return str(Decimal(value))
    quoted = "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return quoted if kind == "STRING" else f"{kind} {quoted}"


def _bind(sql: str, parameters: list[dict[str, Any]]) -> str:
    values = {p["name"]: _literal(p["parameterType"], p["parameterValue"]) for p in parameters}
    return re.sub(r"@(\w+)", lambda m: values[m.group(1)], sql)


def _bq_type(duck: str) -> str:
    if duck.startswith("DECIMAL"):
        return "NUMERIC"
    return {"VARCHAR": "STRING", "DATE": "DATE", "BIGINT": "INTEGER", "INTEGER": "INTEGER", "DOUBLE": "FLOAT",
            "TIMESTAMP WITH TIME ZONE": "TIMESTAMP", "BOOLEAN": "BOOLEAN"}.get(duck, "STRING")


def _cell(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)
