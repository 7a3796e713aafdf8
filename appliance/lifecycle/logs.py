"""Logging setup for the supervisor: one JSON object per line when stderr is not a terminal
(journald, a container runtime, a log shipper), the human format when it is.

    {"timestamp": "2026-11-29T01:46:15.123Z", "level": "WARNING", "logger": "meeshy.supervisor",
     "pid": 4242, "message": "worker 1 (pid 4250) ...", "taskId": "t-17"}

Every key a log call passes through `extra` is added under its own name, so task ids reach the
log as fields a shipper can index: log.warning("...", extra={"taskId": t, "messageId": m}).
A traceback (`log.exception`) is the "exception" field, a stack (`stack_info=True`) "stack".
Values JSON cannot hold are written as their str(); the line is ASCII (json's escapes), so no
stderr encoding can fail it.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import TextIO

HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s"

# Attributes every LogRecord has: anything else on a record came through `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def setup(level: str | int = "INFO", stream: TextIO | None = None, json_lines: bool | None = None) -> logging.Handler:
    """Send the root logger's records to `stream` (stderr): JSON lines unless it is a terminal
    (`json_lines` forces one or the other). Replaces the root's handlers; returns the new one."""
    stream = sys.stderr if stream is None else stream
    if json_lines is None:
        try:
            json_lines = not stream.isatty()
        except (AttributeError, ValueError):  # no isatty, or a closed stream
            json_lines = True
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(HUMAN_FORMAT))
    logging.basicConfig(level=level.upper() if isinstance(level, str) else level, handlers=[handler], force=True)
    return handler
