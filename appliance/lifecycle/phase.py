"""The appliance's phase, in one object: the supervisor owns it and is its only writer; the
request service and the doors (HTTP, Meeshy's gateway) read it.

    starting ──start_serving──▶ serving ──drain──▶ draining ──stop──▶ stopped
        └──────────────────────stop─────────┴───────────────────────────▲
        (a signal while loading)          (a halt)

Each verb checks that it is a step of this graph, so a phase can neither be skipped nor go
back: a supervisor bug that tried would raise instead of, say, serving again after a drain.
"""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    STARTING = "starting"  # workers loading their models
    SERVING = "serving"
    DRAINING = "draining"  # new translations refused, in-flight ones finishing
    STOPPED = "stopped"  # after the drain or a halt: nothing more is served


_NEXT = {
    Phase.STARTING: {Phase.SERVING, Phase.STOPPED},
    Phase.SERVING: {Phase.DRAINING, Phase.STOPPED},
    Phase.DRAINING: {Phase.STOPPED},
    Phase.STOPPED: set(),
}


class Lifecycle:
    def __init__(self) -> None:
        self._phase = Phase.STARTING

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def name(self) -> str:
        """What pings, /health and stats report: "starting", "serving", "draining" or "stopped"."""
        return self._phase.value

    @property
    def is_starting(self) -> bool:
        return self._phase is Phase.STARTING

    @property
    def is_serving(self) -> bool:
        return self._phase is Phase.SERVING

    @property
    def is_draining(self) -> bool:
        return self._phase is Phase.DRAINING

    @property
    def shutting_down(self) -> bool:
        """Draining or stopped: a new translation gets `shutting_down`, never `not_ready`."""
        return self._phase in (Phase.DRAINING, Phase.STOPPED)

    # The supervisor's verbs.

    def start_serving(self) -> None:
        self._go(Phase.SERVING)

    def drain(self) -> None:
        self._go(Phase.DRAINING)

    def stop(self) -> None:
        self._go(Phase.STOPPED)

    def _go(self, phase: Phase) -> None:
        if phase not in _NEXT[self._phase]:
            raise RuntimeError(f"the appliance cannot go from {self._phase.value} to {phase.value}")
        self._phase = phase

    def __repr__(self) -> str:
        return f"Lifecycle({self._phase.value})"
