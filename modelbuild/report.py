"""What an export tells its user: `ExportError` (a failure, with a message that says what to
do), `[export]` log lines, and numbered steps with elapsed time."""

from __future__ import annotations

import time


class ExportError(Exception):
    """A failed export, with a message that says what to do."""


def log(message: str) -> None:
    print(f"[export] {message}", flush=True)


class Steps:
    """Numbered progress lines with elapsed time, for steps that take minutes on big models."""

    def __init__(self, name: str, total: int):
        self.name, self.total, self.done, self.started = name, total, 0, time.monotonic()

    def next(self, what: str) -> None:
        self.done += 1
        log(f"{self.name} [{self.done}/{self.total}] {what} ({time.monotonic() - self.started:.0f}s)")
