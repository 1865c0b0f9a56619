"""structlog JSON logs to stdout and, when COSTMON_LOG_FILE is set, to a file Promtail tails.

Secrets never reach a log line: values of secret-looking keys are replaced and
passwords inside connection strings are masked.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from typing import Any

import structlog

from .config import is_secret

_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]*@")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)\S+", re.I)


def redact_text(text: str) -> str:
    return _KV_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def _redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event.items()):
        if is_secret(key) and key != "event":
            event[key] = "<redacted>"
        elif isinstance(value, str):
            event[key] = redact_text(value)
    return event


def configure(level: str = "info", log_file: str | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_file:
        # Rotation bounded so a chatty collector never fills the shared volume.
        handlers.append(logging.handlers.RotatingFileHandler(log_file, maxBytes=20_000_000,
                                                             backupCount=3))
    root = logging.getLogger()
    root.handlers.clear()
    for h in handlers:
        h.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(h)
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "azure", "urllib3", "botocore", "google"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


def get(name: str = "costmon") -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
