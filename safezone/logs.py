"""Structured logs of the control plane and the CLI: one JSON object a line.

Every line has ``time``, ``level``, ``logger`` and ``message``; access lines (uvicorn's
access logger) also carry ``request_id``, ``method``, ``route`` (the route template, never
the raw path or its query string), ``status``, ``duration_ms`` and ``client``. The values
come from :data:`ACCESS`, which the request middleware (``api/metrics.py``) fills before
the response starts, when uvicorn writes its access line.

The main guarantee is that no code logs a secret. :func:`redact` is the last line of
defence: the formatter runs it over every finished line and replaces anything that looks
like a credential (``key=value`` pairs named like secrets, ``Bearer``/``token`` headers,
long random strings) with ``[redacted]``.
"""

from __future__ import annotations

import contextvars
import logging
import logging.config
import os
import re
import sys
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

REDACTED = "[redacted]"
# name=value / name: value where the name says it is a credential; the value stops at
# whitespace, quotes, backslashes (JSON escapes) and separators, so a line stays valid JSON
_NAMED = re.compile(
    r"(?i)\b([\w-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|signature|"
    r"credential|cookie|authorization|session[_-]?key|xsrf|csrf)[\w-]*)"
    r"(\s*[=:]\s*|\"\s*:\s*\")([^\s\"'\\,;&)}\]]+)")
# the words _NAMED and _SCHEME look for, found fast in the lower-cased line (ten times
# faster than ignoring case): most lines have none, and _NAMED's scan is slow
_NAME_WORDS = re.compile(r"password|passwd|secret|token|api[_-]?key|access[_-]?key|"
                         r"signature|credential|cookie|authorization|session[_-]?key|xsrf|"
                         r"csrf|bearer|basic")
# "Authorization: token abc" / "Bearer abc"
_SCHEME = re.compile(r"(?i)\b(bearer|token|basic)\s+([A-Za-z0-9._~+/=-]{8,})")
# a long run of a random alphabet (redacted when it has a digit and a capital: keys and
# tokens made by secrets.token_urlsafe, MinIO access and secret keys; Safezone's own names
# are lowercase)
_RUN = re.compile(r"(?<![A-Za-z0-9_+/=-])[A-Za-z0-9_+/=-]{20,}(?![A-Za-z0-9_+/=-])")
_DIGIT, _CAPITAL = re.compile(r"\d"), re.compile(r"[A-Z]")
# hex runs of 32 or more (hub tokens are uuid4 hex; service tokens token_hex)
_HEX = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{32,}(?![0-9A-Fa-f])")

# what the access line of the current request carries (set by the request middleware)
ACCESS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "safezone_access", default=None)


def redact(text: str) -> str:
    """``text`` with every credential-looking value replaced by ``[redacted]``."""
    if _NAME_WORDS.search(text.lower()):
        text = _NAMED.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
        text = _SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _HEX.sub(REDACTED, text)
    return _RUN.sub(_random_run, text)


def _random_run(found: re.Match[str]) -> str:
    run = found.group(0)
    return REDACTED if _DIGIT.search(run) and _CAPITAL.search(run) else run


class Formatter(JsonFormatter):
    """python-json-logger's formatter with our field names, then :func:`redact`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level",
                                            "name": "logger"})
        kwargs.setdefault("datefmt", "%Y-%m-%dT%H:%M:%S%z")
        kwargs.setdefault("json_ensure_ascii", False)
        # uvicorn adds the message again with terminal colours
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "color_message"])
        super().__init__(*args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class AccessFields(logging.Filter):
    """Turn uvicorn's access line (client, method, path with query, version, status) into
    fields: the route template instead of the path, and no query string ever."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) != 5:
            return True
        client, method, _path, _version, status = args
        seen = ACCESS.get() or {}
        route = seen.get("route", "<unmatched>")
        record.msg, record.args = "%s %s %s", (method, route, status)
        fields = {"client": client, "method": method, "route": route, "status": status,
                  "request_id": seen.get("request_id"),
                  "duration_ms": seen.get("duration_ms")}
        for key, value in fields.items():
            setattr(record, key, value)
        return True


class RedactFilter(logging.Filter):
    """:func:`redact` on a record's message, for loggers this module does not format (the
    hub's: JupyterHub and tornado keep their own format)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def protect_loggers(*names: str) -> None:
    """Put :class:`RedactFilter` on the named loggers (their own records)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactFilter) for f in logger.filters):
            logger.addFilter(RedactFilter())


def dict_config(level: str | None = None, levels: dict[str, str] | None = None
                ) -> dict[str, Any]:
    """The logging configuration (``logging.config.dictConfig``): pass it to uvicorn as
    ``log_config`` so every worker process logs the same way. ``levels``: loggers whose
    level differs from ``level``."""
    level = (level or os.environ.get("SAFEZONE_LOG_LEVEL", "INFO")).upper()
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"access": {"()": AccessFields}},
        "formatters": {"json": {"()": Formatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                                "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's loggers go through the root handler (uvicorn's defaults would give
            # them handlers of their own, in its own format)
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": level, "handlers": [], "propagate": True,
                               "filters": ["access"]},
            # httpx logs every request's URL at INFO (hub API URLs name users and tokens'
            # owners); warnings only
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }
    for name, wanted in (levels or {}).items():
        config["loggers"][name] = {"level": wanted.upper()}
    return config


def configure(level: str | None = None, levels: dict[str, str] | None = None) -> None:
    """JSON lines on stderr for this process (the control plane and the CLI)."""
    logging.config.dictConfig(dict_config(level, levels))
    logging.captureWarnings(True)


def json_handler(stream: Any = sys.stderr) -> logging.Handler:
    """A handler writing this module's JSON lines to ``stream`` (tests attach one)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(Formatter())
    return handler
