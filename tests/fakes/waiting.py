"""Waiting in tests: poll a predicate until it holds or a deadline passes; never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(predicate: Callable[[], T], deadline: float, interval: float = 0.02, what: str = "") -> T:
    """Return the predicate's first truthy value; fail once `deadline` (seconds from now) passes."""
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline}s waiting for {what or predicate}")
        time.sleep(interval)
