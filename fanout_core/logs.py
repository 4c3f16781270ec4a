"""The library's logs: everything through ``logging.getLogger("fanout_core")``.

The package adds only a ``NullHandler``: an application chooses handlers and levels. On
Lambda, where the handlers are the application, ``setup`` (run when ``fanout_core.handlers``
is imported) sets the level from ``FANOUT_LOG_LEVEL`` and writes JSON lines to stderr
(stdout carries only metrics), each with the invocation's route, connection id, request
id and strategy, and a fan-out's counts. No line carries a token, a query string or a
message body: fields are chosen here, never copied from events.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from fanout_core import metrics
from fanout_core.config import DEFAULT_STRATEGY

LOGGER = "fanout_core"
# What a record may carry as structured fields (``extra={...}``): counts, never text.
FIELDS = ("counts",)
# Lambda's application log levels (advanced logging controls), as Python's.
_LAMBDA_LEVELS = {
    "TRACE": "DEBUG",
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARN": "WARNING",
    "ERROR": "ERROR",
    "FATAL": "CRITICAL",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the invocation's fields."""

    def __init__(self, strategy: str | None = None) -> None:
        super().__init__()
        self.strategy = strategy

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(metrics.log_fields())
        if self.strategy is not None:
            line.setdefault("strategy", self.strategy)
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def level_from(env: dict[str, str] | os._Environ[str]) -> str | None:
    """The level ``FANOUT_LOG_LEVEL`` names; inside Lambda, else Lambda's own
    ``AWS_LAMBDA_LOG_LEVEL``, else INFO (Lambda's default WARNING hides a fan-out's line)."""
    from fanout_core.config import SETTINGS

    [setting] = [s for s in SETTINGS if s.field == "log_level"]
    found, value = setting.from_env(env)
    if found:
        return str(value)
    if env.get("AWS_LAMBDA_FUNCTION_NAME"):
        return _LAMBDA_LEVELS.get(env.get("AWS_LAMBDA_LOG_LEVEL", "").upper(), "INFO")
    return None


def setup() -> None:
    """At cold start: the level, and on Lambda JSON lines to stderr, unless the application
    gave ``fanout_core``'s logger a handler of its own. Safe to call again."""
    logger = logging.getLogger(LOGGER)
    try:
        level = level_from(os.environ)
    except Exception:  # a bad FANOUT_LOG_LEVEL: the first invocation says so, as misconfigured
        level = None
    if level is not None:
        logger.setLevel(level)
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return
    if any(not isinstance(h, logging.NullHandler) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(os.environ.get("FANOUT_STRATEGY") or DEFAULT_STRATEGY))
    logger.addHandler(handler)
    # Lambda's own handler on the root would write each line again, as text.
    logger.propagate = False
