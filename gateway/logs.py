"""Structured logs: one JSON object per line on standard error."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

FIELDS = "fields"


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON, merging the mapping passed as ``extra={"fields": ...}``."""

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as one line of JSON."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, FIELDS, {}))
        if record.exc_info:
            entry["trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _JsonHandler(logging.Handler):
    """Writes to whatever `sys.stderr` is when a record is emitted.

    A second `configure` replaces it rather than adding another.
    """

    def emit(self, record: logging.LogRecord) -> None:
        """Write `record` as one line."""
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            self.handleError(record)


def configure(level: int = logging.INFO) -> None:
    """Send every log record of the process to standard error as JSON."""
    handler = _JsonHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for previous in [h for h in root.handlers if isinstance(h, _JsonHandler)]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level)
    # Their info lines (each migration's name, each model load's device) say nothing an
    # operator acts on.
    for chatty in ("alembic", "fast_plate_ocr"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def fields(**values: object) -> dict[str, dict[str, object]]:
    """The `extra` argument that attaches `values` to a log record."""
    return {FIELDS: values}
