"""Worker slots: spawn a worker into a slot, reap it, decide when (and whether) to respawn it.

A `Slot` is a worker's stable index: its tasks socket, its core, its place in stats. A worker that
dies is respawned into the same slot. Crash loops back off exponentially
(`backoff_initial_s`, doubling up to `backoff_max_s`); `max_crashes` crashes of one slot within
`crash_window_s` halt the appliance instead of looping.

Workers are `multiprocessing` children started with the `spawn` method (forking after a ZeroMQ
context exists is unsafe). The target is `ipc.entry.run` with the worker entry point's import path,
so this module needs no import of `workers/`; the start arguments are a msgpack `WorkerSpec`.
"""

from __future__ import annotations

import enum
import multiprocessing
import os
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess

import msgspec

from appliance.config import Settings, usable_cpus
from ipc import codec, entry
from ipc.endpoints import RunEndpoints
from ipc.frames import PROTOCOL_VERSION, Fatal, Stats, WorkerSpec

_spawn = multiprocessing.get_context("spawn")


class SlotState(enum.Enum):
    BOOTING = "booting"  # spawned, models loading, no Ready yet
    READY = "ready"  # takes tasks
    BACKOFF = "backoff"  # dead, waiting to respawn
    STOPPING = "stopping"  # sent Drain
    STOPPED = "stopped"  # dead, not coming back


@dataclass(eq=False)
class Slot:
    index: int
    cpu: int | None
    state: SlotState = SlotState.STOPPED
    process: BaseProcess | None = None
    pid: int | None = None
    started_at: float = 0.0
    ready_at: float = 0.0
    last_seen: float = 0.0
    restarts: int = 0
    crashes: deque[float] = field(default_factory=deque)
    last_exit: int | None = None
    last_fatal: Fatal | None = None
    respawn_at: float = 0.0
    stats: Stats | None = None

    def as_json(self, held: int) -> dict:
        return {
            "slot": self.index,
            "pid": self.pid,
            "state": self.state.value,
            "cpu": self.cpu,
            "restarts": self.restarts,
            "held": held,
            "tasks": self.stats.tasks if self.stats else 0,
            "batches": self.stats.batches if self.stats else 0,
            "rss_bytes": self.stats.rss_bytes if self.stats else 0,
        }


def make_slots(settings: Settings) -> list[Slot]:
    cpus = usable_cpus() if settings.workers.pin else []
    return [
        Slot(index=i, cpu=cpus[i % len(cpus)] if cpus else None) for i in range(settings.worker_count())
    ]


def spawn(slot: Slot, settings: Settings, endpoints: RunEndpoints, now: float, cache_name: str = "") -> BaseProcess:
    """Start a worker process for `slot` (models load in the child; Ready comes later).
    `cache_name`: the shared-memory cache table the worker attaches ("" for none)."""
    w = settings.workers
    spec = WorkerSpec(
        slot=slot.index,
        protocol_version=PROTOCOL_VERSION,
        tasks_endpoint=endpoints.tasks(slot.index),
        results_endpoint=endpoints.results,
        runtime_factory=w.runtime_factory,
        models_dir=w.models_dir,
        tiers=settings.tier_models() or None,
        threads=w.threads,
        cpu=slot.cpu,
        heartbeat_interval_s=w.heartbeat_interval_s,
        batch_token_budget=w.batch_token_budget,
        max_batch_size=w.max_batch_size,
        hwm=settings.ipc.internal_hwm,
        linger_ms=settings.ipc.linger_ms,
        supervisor_pid=os.getpid(),
        cache_name=cache_name,
        auto_tiers=msgspec.structs.asdict(settings.routing),
    )
    proc = _spawn.Process(
        target=entry.run,
        args=(w.entrypoint, codec.encode_spec(spec)),
        name=f"meeshy-worker-{slot.index}",
        daemon=True,
    )
    proc.start()
    slot.process = proc
    slot.pid = proc.pid
    slot.state = SlotState.BOOTING
    slot.started_at = now
    slot.last_seen = now
    slot.last_fatal = None
    return proc


def reap(slot: Slot) -> int | None:
    """Collect a dead worker's exit code and release its process handle."""
    proc = slot.process
    if proc is None:
        return None
    proc.join(0.5)
    code = proc.exitcode
    if code is not None:
        proc.close()
    slot.process = None
    slot.last_exit = code
    return code


def record_crash(slot: Slot, settings: Settings, now: float) -> float | None:
    """Seconds to wait before respawning `slot`, or None when it is crash-looping (halt)."""
    r = settings.respawn
    slot.crashes.append(now)
    while slot.crashes and slot.crashes[0] < now - r.crash_window_s:
        slot.crashes.popleft()
    if len(slot.crashes) >= r.max_crashes:
        return None
    return min(r.backoff_max_s, r.backoff_initial_s * 2 ** (len(slot.crashes) - 1))
