"""A scripted Cost Explorer endpoint (AWS JSON 1.1 protocol) for what moto cannot do:
throttling and access-denied answers. moto serves the data; this serves the errors.

Each GetCostAndUsage call takes the next scripted answer: a response dict
(200) or an error ("LimitExceededException", "message"). The error body is the
real wire shape: HTTP 400 with {"__type": code, "message": text}.
"""

from __future__ import annotations

from typing import Any

from .server import FakeServer, Reply, Request

TARGET = "AWSInsightsIndexService.GetCostAndUsage"


class CostExplorerScript:
    def __init__(self, answers: list[Any]):
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, req: Request) -> Reply:
        if req.method != "POST" or req.headers.get("x-amz-target") != TARGET:
            return Reply(400, {"__type": "UnknownOperationException", "message": "not scripted"})
        self.calls.append(req.json())
        if not self.answers:
            return Reply(500, {"__type": "InternalServerException", "message": "script exhausted"})
        answer = self.answers.pop(0)
        if isinstance(answer, tuple):
            code, message = answer
            return Reply(400, {"__type": code, "message": message},
                         {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code})
        return Reply(200, answer, {"Content-Type": "application/x-amz-json-1.1"})


def server(answers: list[Any]) -> tuple[FakeServer, CostExplorerScript]:
    script = CostExplorerScript(answers)
    return FakeServer(script), script
