"""A clock the test moves by hand (`clock.now += 60`), so TTLs are tested without sleeping."""

from __future__ import annotations

class Clock:
    def __init__(self, now: float | None = None) -> None:
        self.now = 1_000_000.0 if now is None else now

    def __call__(self) -> float:
        return self.now
