"""The worker pool: the slots, their processes and task sockets. Spawn a worker into a slot, reap
it, kill it, decide when (and whether) to respawn it, and tell a live worker's frame from a stale one.

A `Slot` is a worker's stable index: its tasks socket, its core, its place in stats. A worker that
dies is respawned into the same slot. Crash loops back off exponentially
(`backoff_initial_s`, doubling up to `backoff_max_s`); `max_crashes` crashes of one slot within
`crash_window_s` halt the appliance instead of looping.

Workers are `multiprocessing` children started with the `spawn` method (forking after a ZeroMQ
context exists is unsafe). The target is `ipc.entry.run` with the worker entry point's import path,
so this module needs no import of `workers/`; the start arguments are a msgpack `WorkerSpec`.
"""

from __future__ import annotations

import asyncio
import enum
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess

import msgspec
import zmq

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
            "failures": self.stats.failures if self.stats else 0,
            "busy_s": round(self.stats.busy_s, 3) if self.stats else 0.0,
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
        packed_weights_dir=settings.packed_weights_dir(),
        vocabulary_shortlist=w.vocabulary_shortlist,
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


class WorkerPool:
    """The slots and what the supervisor does to their workers. A worker's exit is noticed on its
    process sentinel and reported through `on_exit(slot, pid)` (the lifecycle queue)."""

    def __init__(
        self,
        settings: Settings,
        endpoints: RunEndpoints,
        task_sockets: list[zmq.Socket],
        on_exit: Callable[[int, int], None],
        cache_name: str = "",
    ) -> None:
        """`cache_name`: the shared-memory cache table every worker attaches ("" for none)."""
        self.settings = settings
        self.endpoints = endpoints
        self.task_sockets = task_sockets
        self.slots = make_slots(settings)
        self.cache_name = cache_name
        self._on_exit = on_exit
        self._loop = asyncio.get_running_loop()

    def spawn(self, slot: Slot, now: float) -> None:
        proc = spawn(slot, self.settings, self.endpoints, now, self.cache_name)
        self._loop.add_reader(proc.sentinel, self._on_sentinel, slot.index, proc.pid)

    def _on_sentinel(self, index: int, pid: int) -> None:
        slot = self.slots[index]
        if slot.process is not None and slot.process.pid == pid:
            self._loop.remove_reader(slot.process.sentinel)
        self._on_exit(index, pid)

    def is_current(self, index: int, pid: int) -> bool:
        """Whether `pid` is the process now in slot `index` (not an earlier incarnation)."""
        slot = self.slots[index]
        return slot.process is not None and slot.process.pid == pid

    def live(self, index: int, pid: int) -> Slot | None:
        """The slot a frame claims to come from, if that worker is the one running there now."""
        if 0 <= index < len(self.slots) and self.is_current(index, pid):
            return self.slots[index]
        return None

    def reap(self, slot: Slot) -> int | None:
        if slot.process is not None:
            self._loop.remove_reader(slot.process.sentinel)
        code = reap(slot)
        slot.state = SlotState.STOPPED
        return code

    def kill(self, slot: Slot) -> None:
        proc = slot.process
        if proc is not None and proc.exitcode is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def kill_all(self) -> None:
        for slot in self.slots:
            self.kill(slot)

    def send(self, index: int, frame) -> bool:
        """Send a frame to the worker in slot `index` without blocking; False if it did not go out
        (no pipe to that worker yet: its connect is still in progress)."""
        try:
            self.task_sockets[index].send(codec.encode(frame), flags=zmq.DONTWAIT)
        except zmq.ZMQError:
            return False
        return True

    def ready(self) -> list[int]:
        return [s.index for s in self.slots if s.state is SlotState.READY]

    def count(self, *states: SlotState) -> int:
        return sum(s.state in states for s in self.slots)

    def running(self) -> bool:
        return any(s.process is not None for s in self.slots)

    def close(self) -> None:
        """Kill and reap every worker (the last step of every way out)."""
        for slot in self.slots:
            self.kill(slot)
            if slot.process is not None:
                self.reap(slot)
