"""JSON logs, one object per line, carrying the service name and the current trace/partition context."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

#: Fields bound to the current task (trace id, topic, partition, offset...); copied into every log line.
_context: ContextVar[dict[str, Any] | None] = ContextVar("pulse_log_context", default=None)

_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
    # uvicorn's copy of the message with terminal colour codes: noise (and escape bytes) in a JSON line.
    | {"color_message"}
)


def bind(**fields: Any) -> None:
    """Add fields to every log line written by the current task (and tasks it starts)."""
    current = _context.get() or {}
    _context.set({**current, **fields})


def unbind(*names: str) -> None:
    """Remove fields previously bound with :func:`bind`."""
    current = _context.get() or {}
    _context.set({k: v for k, v in current.items() if k not in names})


def bound() -> dict[str, Any]:
    """The fields currently bound to this task."""
    return dict(_context.get() or {})


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, context and extra fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_context.get() or {})
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger's output to stderr as JSON lines; quiet the chattiest libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka", "uvicorn.access", "httpx", "httpcore", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
