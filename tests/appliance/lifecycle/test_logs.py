"""appliance/lifecycle/logs.py: JSON lines off a terminal (with `extra` fields and tracebacks), the human
format on one."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest

from appliance.lifecycle import logs

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def root_logger():
    """The root logger's handlers and level, restored after the test."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield root
    root.handlers[:], level = saved
    root.setLevel(level)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_off_a_terminal(root_logger):
    stream = io.StringIO()
    logs.setup("info", stream)
    log = logging.getLogger("meeshy.test")
    log.debug("not shown")
    log.info("task %s done", "t-1", extra={"taskId": "t-1", "messageId": "m-1", "slot": 2})
    log.warning("ünïcode \"quoted\"\nsecond line")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and all(line.isascii() for line in lines)
    first, second, third = map(json.loads, lines)
    assert first["message"] == "task t-1 done" and first["level"] == "INFO" and first["logger"] == "meeshy.test"
    assert first["pid"] == os.getpid() and first["timestamp"].endswith("Z") and "T" in first["timestamp"]
    assert (first["taskId"], first["messageId"], first["slot"]) == ("t-1", "m-1", 2)
    assert second["message"] == "ünïcode \"quoted\"\nsecond line" and "taskId" not in second
    assert third["level"] == "ERROR" and "ValueError: boom" in third["exception"]


def test_values_json_cannot_hold_are_written_as_text(root_logger):
    stream = io.StringIO()
    logs.setup("INFO", stream, json_lines=True)
    logging.getLogger("meeshy.test").info("x", extra={"where": {1, 2}.__class__})
    assert json.loads(stream.getvalue())["where"] == "<class 'set'>"


def test_the_human_format_on_a_terminal(root_logger):
    stream = Tty()
    logs.setup("INFO", stream)
    logging.getLogger("meeshy.test").info("hello %s", "there", extra={"taskId": "t-2"})
    line = stream.getvalue().strip()
    assert line.endswith(f" INFO meeshy.test[{os.getpid()}] hello there") and not line.startswith("{")
