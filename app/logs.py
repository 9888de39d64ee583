"""Logging: one configuration for Flask, the CLI and gunicorn.

``logging_config`` returns a ``dictConfig`` mapping: JSON lines (time,
level, logger, message, request id, and an audit event's fields under
``audit``), or plain text for development (``LOG_FORMAT=text``). gunicorn applies
it through ``logconfig_dict`` in ``gunicorn.conf.py`` (stdout); ``init_app`` applies it
only when nothing has configured logging yet (the CLI, a bare WSGI server), so
a host's own configuration (gunicorn's, a test runner's) is never replaced.

This module imports no Flask at import time: gunicorn's master reads it before
any app exists.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter", "RequestIdFilter", "TextFormatter", "init_app", "logging_config"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("json", "text")


class RequestIdFilter(logging.Filter):
    """Stamp each record with the current request's id (``-`` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _current_request_id()
        return True


def _current_request_id() -> str | None:
    try:
        from flask import g, has_request_context
    except ImportError:  # gunicorn's master may log before Flask is importable
        return None
    if not has_request_context():
        return None
    rid = g.get("request_id")
    return rid if isinstance(rid, str) else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line; an audit record's fields go under ``audit``."""

    def format(self, record: logging.LogRecord) -> str:
        audit = getattr(record, "audit", None)
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            # The audit payload is the message of record; here it is split into fields.
            "message": audit["event"] if isinstance(audit, dict) else record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            line["request_id"] = rid
        if isinstance(audit, dict):
            line["audit"] = audit
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``time level logger [request id] message`` for a developer's terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not getattr(record, "request_id", None):
            record.request_id = "-"
        return super().format(record)


def logging_config(level: str = "INFO", fmt: str = "json",
                   stream: str = "ext://sys.stdout") -> dict[str, Any]:
    """The ``dictConfig`` mapping for ``level`` and ``fmt`` (``json`` or ``text``)."""
    if level.upper() not in LEVELS:
        raise ValueError(f"expected one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"expected one of {', '.join(FORMATS)}, got {fmt!r}")
    # By this module's own name: `app.logs` in a checkout, `tessera.logs` installed.
    formatter = f"{__name__}.{'JsonFormatter' if fmt == 'json' else 'TextFormatter'}"
    handler = {"class": "logging.StreamHandler", "stream": stream,
               "formatter": "default", "filters": ["request_id"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"default": {"()": formatter}},
        "handlers": {"stdout": handler},
        "root": {"level": level.upper(), "handlers": ["stdout"]},
        # gunicorn's own loggers print through the same handler, and only there.
        "loggers": {name: {"level": level.upper(), "handlers": ["stdout"], "propagate": False}
                    for name in ("gunicorn.error", "gunicorn.access")},
    }


def init_app(level: str, fmt: str) -> None:
    """Apply the configuration unless logging is configured already (gunicorn, tests)."""
    if logging.getLogger().handlers:
        return
    # Outside gunicorn this is the CLI (or a bare WSGI server): its stdout is the
    # command's output, which log lines must not interleave.
    logging.config.dictConfig(logging_config(level, fmt, stream="ext://sys.stderr"))
