"""Structured logs: one line per record, JSON (``ESB_LOG_FORMAT=json``) or readable console text.

Every record of the process goes through the standard library (Faust, mode, aiokafka and our
modules all log there); structlog's :class:`~structlog.stdlib.ProcessorFormatter` renders it,
adding time, level, logger, worker id, the task's context (:mod:`esb.observability.context`)
and, when tracing is on, the current trace and span ids. Redaction runs on the rendered line as a
second line of defence: credentials in URLs, ``password=``-style pairs, bearer tokens, JWTs and
webhook secrets never reach a log even if a message quotes one. Event payloads are never logged.

Configured once per process: the worker hands :func:`logging_config` to Faust (it sets up
logging itself at start), the CLI calls :func:`configure`.
"""

from __future__ import annotations

import logging
import logging.config
import re
import sys
from typing import Any

import structlog

from esb.errors import redact as redact_credentials
from esb.observability import context

__all__ = ["build_formatter", "configure", "logging_config", "redact", "worker_id"]

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}

_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?P<scheme>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_WEBHOOK_SECRET = re.compile(r"\bwhsec_[A-Za-z0-9+/=]+")
# PostgreSQL quotes the data it refused: the JSON up to the bad token, the bound parameters,
# a duplicate key's value, a failing row. Values of events, never ours to log.
_DATABASE_QUOTES = re.compile(r"(?P<lead>JSON data, line \d+: |parameter \$\d+ = |"
                              r"Key \([^)\n]*\)=|Failing row contains )[^\n]*")


def redact(text: str) -> str:
    """``text`` without anything that looks like a credential or a quoted data value."""
    text = _DATABASE_QUOTES.sub(r"\g<lead><redacted>", redact_tokens(text))
    return redact_credentials(text)


def redact_tokens(text: str) -> str:
    """Tokens and webhook secrets only: patterns that never reach past a quote, so they are
    safe on a rendered JSON line too."""
    text = _BEARER.sub(r"\g<scheme>***", text)
    text = _JWT.sub("<jwt>", text)
    return _WEBHOOK_SECRET.sub("whsec_***", text)


def worker_id(port: int | None = None) -> str:
    """``host:port`` for a worker replica, ``host:pid`` for other processes."""
    import os
    import socket

    return f"{socket.gethostname()}:{port if port is not None else os.getpid()}"


def _add_context(worker: str) -> Any:
    def add(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        event["worker"] = worker
        event.update(context.current())
        from esb.observability import tracing

        if tracing.ENABLED:
            ids = tracing.current_ids()
            if ids is not None:
                event["trace_id"], event["span_id"] = ids
        return event
    return add


def _redact_values(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Before rendering: each text field (message, exception) on its own, raw newlines intact."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
    return event


def _redact_line(_logger: Any, _name: str, line: Any) -> Any:
    """After rendering: the whole line once more (a credential split across fields)."""
    return redact_tokens(line) if isinstance(line, str) else line


def build_formatter(fmt: str, worker: str) -> logging.Formatter:
    """The formatter for ``fmt`` (``json`` or ``console``)."""
    pre_chain: list[Any] = [
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _add_context(worker),
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        tail: list[Any] = [structlog.processors.EventRenamer("message")]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False, timestamp_key="time")
        tail = []
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, _redact_values, *tail,
                    renderer, _redact_line])


def logging_config(level: str, fmt: str, worker: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document: one stream handler on stderr, our formatter.
    Faust's worker takes it as its ``logging_config`` setting."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"esb": {"()": build_formatter, "fmt": fmt, "worker": worker}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "esb",
                                 "stream": "ext://sys.stderr", "level": LEVELS[level]}},
        "root": {"level": LEVELS[level], "handlers": ["default"]},
    }


def configure(level: str, fmt: str, worker: str | None = None) -> None:
    """Set up logging for this process (the CLI; the worker goes through Faust)."""
    logging.config.dictConfig(logging_config(level, fmt, worker or worker_id()))
    logging.captureWarnings(True)
    if fmt == "json":
        sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    logging.getLogger("esb").critical("uncaught exception", exc_info=(kind, exc, tb))
