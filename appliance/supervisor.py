"""The supervisor: the appliance's main process (asyncio + uvloop).

It owns everything long-lived: the edge sockets, the task table, the worker slots. One lifecycle
queue carries what happens (signals, worker exits, readiness, respawn timers, halts); signal
handlers and sentinel callbacks only enqueue, the main loop acts:

    bind ─▶ spawn every slot ─▶ wait: all Ready │ a child exits │ bad version │ timeout │ signal
                                    │ (exit/version/timeout fail the start at once, with the
                                    │  worker's exit code and the setting to change)
                                    ▼
         serving: READY=1, WATCHDOG=1 while healthy, dispatch, respawn crashed slots with backoff
                                    │ SIGTERM/SIGINT            │ a slot crash-loops
                                    ▼                           ▼
         draining: new requests get shutting_down;      halt: error events for every
         finish in-flight tasks until drain_timeout_s,  unfinished task, exit EXIT_CRASH_LOOP
         error events for the rest, Drain the workers,
         exit 0

Internal channels (ipc/): one PUSH per slot (tasks-<slot>.ipc), one PULL for every worker's
answers (results.ipc). Dispatch sends a slot at most `queue_depth` unanswered tasks, least-loaded
slot first; the rest wait in the task table, which bounds everything (`overloaded` beyond it).

The translation cache (appliance/cache.py) is created before the first spawn and unlinked on
every way out of `run`: a target found in it is answered here, without a worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import logging
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import msgspec
import zmq
import zmq.asyncio

from appliance import exitcodes, pool, protocol
from appliance.cache import ApplianceCache, disabled_stats
from appliance.config import Settings
from appliance.edge import Edge
from appliance.langid import LanguageDetector
from appliance.languages import canonical
from appliance.pool import Slot, SlotState
from appliance.protocol import RequestError
from appliance.sdnotify import Notifier
from appliance.stats import Metrics
from appliance.tasks import Overloaded, RequestRecord, TaskTable, Unit
from ipc import codec, exitcodes as worker_exits
from ipc.cache_key import Detection
from ipc.endpoints import EndpointError, RunEndpoints, tcp
from ipc.frames import (
    PROTOCOL_VERSION,
    Drain,
    Fatal,
    Heartbeat,
    ModelInfo,
    Ready,
    Result,
    Stats,
    Stopped,
    Task,
    TaskFailed,
)
from ipc.sockets import Role, bound_endpoint, make_socket

log = logging.getLogger("meeshy.supervisor")

TICK_S = 0.25
STATUS_EVERY_S = 5.0
RETRY_SEND_S = 0.02

STARTING, SERVING, DRAINING, STOPPED = "starting", "serving", "draining", "stopped"


class Supervisor:
    def __init__(self, settings: Settings, notifier: Notifier | None = None) -> None:
        self.s = settings
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        limits = settings.limits
        self.table = TaskTable(
            max_units=limits.max_inflight_tasks,
            max_attempts=limits.max_attempts,
            task_timeout_s=limits.task_timeout_s,
            recent_ids=limits.recent_task_ids,
        )
        self.slots: list[Slot] = pool.make_slots(settings)
        self.state = STARTING
        self.catalog: protocol.Catalog | None = None
        self.detector: LanguageDetector | None = None
        self.models: list[ModelInfo] = []
        self.endpoints_info: dict[str, str | int | None] = {}
        self.cache: ApplianceCache | None = None
        self._retry_scheduled = False
        self._drain_deadline = 0.0
        self._last_status = ""

    # ================================================================== lifecycle

    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[tuple] = asyncio.Queue()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.events.put_nowait, ("signal", sig))
        self.ctx = zmq.asyncio.Context()
        self.sockets: list[zmq.Socket] = []
        self.background: list[asyncio.Task] = []
        self.http_server: asyncio.AbstractServer | None = None
        self._run_dir_owned = False
        self._lock_fd: int | None = None
        try:
            try:
                self._open()
                await self._open_http()
            except (zmq.ZMQError, OSError, EndpointError) as exc:
                log.error("cannot bind: %s", exc)
                return exitcodes.EXIT_BIND_ERROR
            self._write_endpoints()
            self._open_cache()
            self.background += [
                asyncio.create_task(self._results_loop(), name="results"),
                asyncio.create_task(self.edge.serve(), name="edge"),
                asyncio.create_task(self._ticker(), name="ticker"),
            ]
            if self.notifier.watchdog_s:
                self.background.append(asyncio.create_task(self._watchdog(), name="watchdog"))
            code = await self._start()
            if code != exitcodes.EXIT_OK:
                self.state = STOPPED
                return code
            return await self._serve()
        finally:
            await self._close()

    def _open(self) -> None:
        srv, ipc = self.s.server, self.s.ipc
        run_dir = self._make_run_dir()
        self.endpoints = RunEndpoints(run_dir)
        self.results = self._socket(Role.RESULTS_IN, self.endpoints.results, ipc.internal_hwm, ipc.linger_ms)
        self.task_socks = [
            self._socket(Role.TASKS_OUT, self.endpoints.tasks(slot.index), ipc.internal_hwm, ipc.linger_ms)
            for slot in self.slots
        ]
        router = self._socket(
            Role.REQUESTS,
            tcp(srv.bind_address, srv.zmq_port),
            ipc.edge_hwm,
            ipc.edge_linger_ms,
            max_msg_size=2 * self.s.limits.max_request_bytes,
        )
        pub = self._socket(Role.EVENTS, tcp(srv.bind_address, srv.zmq_pub_port), ipc.pub_hwm, ipc.edge_linger_ms)
        self.edge = Edge(self, router, pub)
        self.endpoints_info.update(
            requests=bound_endpoint(router), events=bound_endpoint(pub), run_dir=str(run_dir), pid=os.getpid()
        )
        log.info("requests on %s, events on %s", self.endpoints_info["requests"], self.endpoints_info["events"])

    def _open_cache(self) -> None:
        if not self.s.cache.enabled:
            return
        try:
            self.cache = ApplianceCache(self.s, str(self.run_dir))
        except (OSError, ValueError) as exc:
            log.error("cannot create the shared-memory cache (%s): running without a cache", exc)

    def _socket(self, role: Role, endpoint: str, hwm: int, linger_ms: int, **kw: int) -> zmq.asyncio.Socket:
        sock = make_socket(self.ctx, role, endpoint, hwm=hwm, linger_ms=linger_ms, **kw)
        self.sockets.append(sock)
        return sock

    async def _open_http(self) -> None:
        srv = self.s.server
        self.endpoints_info["http"] = None
        if not srv.http_enabled:
            return
        from appliance.http_api import HttpApi

        try:
            self.http_server = await HttpApi(self).start(srv.bind_address, srv.api_port)
        except OSError as exc:
            raise OSError(f"cannot bind HTTP on {srv.bind_address}:{srv.api_port}: {exc.strerror} (change API_PORT)") from None
        host, port = self.http_server.sockets[0].getsockname()[:2]
        self.endpoints_info["http"] = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        log.info("HTTP on %s", self.endpoints_info["http"])

    def _make_run_dir(self) -> Path:
        configured = self.s.server.run_dir or os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
        if configured:
            run_dir = Path(configured)
            run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        else:
            run_dir = Path(tempfile.mkdtemp(prefix="meeshy-"))
            self._run_dir_owned = True
        fd = os.open(run_dir / "supervisor.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OSError(f"another appliance is using run directory {run_dir} (set a different run_dir)") from None
        self._lock_fd = fd
        self.run_dir = run_dir  # only now ours to clean up
        return run_dir

    def _write_endpoints(self) -> None:
        """run_dir/endpoints.json: where this instance listens (useful with ephemeral ports)."""
        path = self.run_dir / "endpoints.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.encode(self.endpoints_info))
        tmp.rename(path)

    async def _close(self) -> None:
        for task in self.background:
            task.cancel()
        for task in self.background:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self.http_server is not None:
            self.http_server.close()
        for slot in self.slots:
            self._kill(slot)
            if slot.process is not None:
                self.loop.remove_reader(slot.process.sentinel)
                pool.reap(slot)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.remove_signal_handler(sig)
        for sock in self.sockets:
            sock.close()
        self.ctx.term()
        self.notifier.close()
        if self.cache is not None:
            self.cache.close()
        if self._run_dir_owned:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        elif hasattr(self, "run_dir"):
            for name in ["results.ipc", "endpoints.json", *(f"tasks-{s.index}.ipc" for s in self.slots)]:
                try:
                    (self.run_dir / name).unlink()
                except OSError:
                    pass
        if self._lock_fd is not None:
            os.close(self._lock_fd)

    # ------------------------------------------------------------------ startup

    async def _start(self) -> int:
        n = len(self.slots)
        timeout = self.s.workers.startup_timeout_s
        self.notifier.extend_timeout(timeout + 30)
        self._status(f"starting {n} worker(s), loading models from {self.s.workers.models_dir}")
        for slot in self.slots:
            self._spawn(slot)
        deadline = time.monotonic() + timeout
        while not all(slot.state is SlotState.READY for slot in self.slots):
            try:
                event = await asyncio.wait_for(self.events.get(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                booting = [s.index for s in self.slots if s.state is SlotState.BOOTING]
                log.error(
                    "workers %s did not report ready within %.0fs; raise [workers] startup_timeout_s "
                    "if loading the models legitimately takes longer",
                    booting,
                    timeout,
                )
                return exitcodes.EXIT_STARTUP_TIMEOUT
            kind = event[0]
            if kind == "signal":
                log.info("%s during startup: stopping", signal.Signals(event[1]).name)
                return exitcodes.EXIT_OK
            if kind == "exit":
                slot = self.slots[event[1]]
                if slot.process is None or slot.process.pid != event[2]:
                    continue
                await self._await_fatal(slot)
                code = self._reap(slot)
                log.error("%s", self._boot_failure(slot, code))
                self._status(f"failed: worker {slot.index} {worker_exits.describe(code)} while loading models")
                return exitcodes.EXIT_BOOT_ERROR
            if kind == "mismatch":
                return exitcodes.EXIT_PROTOCOL_MISMATCH
            if kind == "ready":
                ready = sum(s.state is SlotState.READY for s in self.slots)
                self._status(f"{ready}/{n} worker(s) ready")
        self.state = SERVING
        self.notifier.ready(self._serving_status())
        log.info("ready: %d worker(s), tiers %s", n, ", ".join(sorted(self.catalog.pairs)) if self.catalog else "-")
        return exitcodes.EXIT_OK

    async def _await_fatal(self, slot: Slot) -> None:
        """A dying worker's Fatal frame may still be in flight behind its exit: give it a moment."""
        deadline = time.monotonic() + 0.5
        while slot.last_fatal is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def _boot_failure(self, slot: Slot, code: int | None) -> str:
        what = worker_exits.describe(code)
        detail = f": {slot.last_fatal.message}" if slot.last_fatal else ""
        w = self.s.workers
        if code == worker_exits.EXIT_BOOT_ERROR:
            hint = (
                f"check the models directory {w.models_dir} ([workers] models_dir or MEESHY_MODELS_DIR; "
                f"build the built-in models with `python export_models.py --builtin`) and [workers] tiers"
            )
        elif code is not None and code < 0:
            hint = "it was killed; if the kernel killed it for memory (see `dmesg`), lower TRANSLATION_WORKERS"
        elif code == worker_exits.EXIT_BAD_SPEC:
            hint = "the worker and supervisor code are out of step: reinstall, then restart"
        else:
            hint = f"see the worker's log above; the entry point is [workers] entrypoint = {w.entrypoint!r}"
        return f"worker {slot.index} (pid {slot.pid}) {what} while loading models{detail}; {hint}"

    # ------------------------------------------------------------------ serving

    async def _serve(self) -> int:
        while True:
            timeout = None
            if self.state == DRAINING:
                timeout = max(0.0, self._drain_deadline - time.monotonic())
            try:
                event = await asyncio.wait_for(self.events.get(), timeout)
            except TimeoutError:
                event = ("drain_deadline",)
            kind = event[0]
            if kind == "signal":
                if self.state == DRAINING:
                    log.warning("second %s: giving up on in-flight tasks", signal.Signals(event[1]).name)
                    return await self._finish_drain()
                self._begin_drain(signal.Signals(event[1]).name)
            elif kind == "exit":
                slot = self.slots[event[1]]
                if slot.process is not None and slot.process.pid == event[2]:
                    halted = self._on_exit(slot)
                    if halted is not None:
                        return halted
            elif kind == "respawn":
                slot = self.slots[event[1]]
                if self.state == SERVING and slot.state is SlotState.BACKOFF:
                    slot.restarts += 1
                    self._spawn(slot)
            elif kind == "mismatch":
                return self._halt(
                    exitcodes.EXIT_PROTOCOL_MISMATCH,
                    f"worker {event[1]} speaks protocol {event[2]}, this supervisor {PROTOCOL_VERSION}: "
                    "the code on disk changed under a running appliance; restart it",
                )
            elif kind == "halt":
                return self._halt(event[1], event[2])
            if self.state == DRAINING and (
                self.table.in_flight() == 0
                or time.monotonic() >= self._drain_deadline
                or not any(s.state in (SlotState.READY, SlotState.BOOTING) for s in self.slots)
            ):
                return await self._finish_drain()

    def _on_exit(self, slot: Slot) -> int | None:
        """Reap a dead worker; requeue what it held; respawn it (with backoff) or halt."""
        was = slot.state
        pid = slot.pid
        code = self._reap(slot)
        requeued, exhausted = self.table.slot_died(slot.index)
        for unit in exhausted:
            self._fail_unit(
                unit,
                protocol.WORKER_CRASHED,
                f"the worker died each of the {unit.attempt} times this task was dispatched",
            )
        if self.state != SERVING:
            slot.state = SlotState.STOPPED
            self._pump()
            return None
        now = time.monotonic()
        delay = pool.record_crash(slot, self.s, now)
        reason = worker_exits.describe(code) + (f" ({slot.last_fatal.message})" if slot.last_fatal else "")
        if delay is None:
            r = self.s.respawn
            return self._halt(
                exitcodes.EXIT_CRASH_LOOP,
                f"worker slot {slot.index} crashed {len(slot.crashes)} times within {r.crash_window_s:.0f}s "
                f"(last: {reason}); halting instead of looping. "
                + ("It dies while loading: " + self._boot_failure(slot, code) if was is SlotState.BOOTING else
                   "Check the worker log above; [respawn] max_crashes and crash_window_s set the limit"),
            )
        log.warning(
            "worker %d (pid %s) %s; %d task(s) dispatched again; respawning in %.2fs",
            slot.index, pid, reason, len(requeued), delay,
        )
        slot.state = SlotState.BACKOFF
        slot.respawn_at = now + delay
        self.loop.call_later(delay, self.events.put_nowait, ("respawn", slot.index))
        self._pump()
        return None

    def _spawn(self, slot: Slot) -> None:
        proc = pool.spawn(slot, self.s, self.endpoints, time.monotonic(), self.cache.name if self.cache else "")
        self.loop.add_reader(proc.sentinel, self._on_sentinel, slot.index, proc.pid)

    def _on_sentinel(self, index: int, pid: int) -> None:
        slot = self.slots[index]
        if slot.process is not None and slot.process.pid == pid:
            self.loop.remove_reader(slot.process.sentinel)
        self.events.put_nowait(("exit", index, pid))

    def _reap(self, slot: Slot) -> int | None:
        if slot.process is not None:
            self.loop.remove_reader(slot.process.sentinel)
        code = pool.reap(slot)
        slot.state = SlotState.STOPPED
        return code

    def _kill(self, slot: Slot) -> None:
        proc = slot.process
        if proc is not None and proc.exitcode is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # ------------------------------------------------------------------ drain and halt

    def _begin_drain(self, why: str) -> None:
        self.state = DRAINING
        self._drain_deadline = time.monotonic() + self.s.shutdown.drain_timeout_s
        n = self.table.in_flight()
        log.info("%s: draining %d task(s) within %.0fs", why, n, self.s.shutdown.drain_timeout_s)
        self.notifier.stopping(f"draining {n} task(s)")

    async def _finish_drain(self) -> int:
        left = list(self.table.units.values())
        if left:
            log.warning("drain deadline: %d task(s) could not finish; publishing errors", len(left))
        for unit in left:
            self._fail_unit(
                unit,
                protocol.SHUTTING_DOWN,
                "the appliance is shutting down and could not finish this task in time",
            )
        self.state = STOPPED
        self.notifier.status("stopping workers")
        for slot in self.slots:
            if slot.state is SlotState.READY:
                slot.state = SlotState.STOPPING
                sent = self.task_socks[slot.index].send(codec.encode(Drain()), flags=zmq.DONTWAIT)
                if sent.exception() is not None:
                    self._kill(slot)
            elif slot.state is SlotState.BOOTING:
                self._kill(slot)
        deadline = time.monotonic() + self.s.shutdown.worker_exit_timeout_s
        while any(s.process is not None for s in self.slots):
            try:
                event = await asyncio.wait_for(self.events.get(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                for slot in self.slots:
                    self._kill(slot)
                deadline = time.monotonic() + 5.0
                continue
            if event[0] == "exit":
                slot = self.slots[event[1]]
                if slot.process is not None and slot.process.pid == event[2]:
                    self._reap(slot)
        log.info("stopped")
        return exitcodes.EXIT_OK

    def _halt(self, code: int, message: str) -> int:
        log.critical("halting: %s", message)
        self.state = STOPPED
        self.notifier.status(f"halted: {message}"[:1000])
        for unit in list(self.table.units.values()):
            self._fail_unit(unit, protocol.WORKER_CRASHED, f"the appliance halted: {message}")
        for slot in self.slots:
            self._kill(slot)
        return code

    # ================================================================== workers' answers

    async def _results_loop(self) -> None:
        while True:
            data = await self.results.recv()
            try:
                frame = codec.decode_from_worker(data)
            except codec.FrameError as exc:
                log.error("dropped a frame: %s", exc)
                continue
            try:
                self._on_frame(frame)
            except Exception:
                log.exception("unexpected error handling %s", type(frame).__name__)

    def _on_frame(self, frame: Ready | Result | TaskFailed | Heartbeat | Stats | Fatal | Stopped) -> None:
        if not 0 <= frame.slot < len(self.slots):
            log.error("frame from unknown slot %d", frame.slot)
            return
        slot = self.slots[frame.slot]
        live = slot.pid == frame.pid and slot.process is not None
        if live:
            slot.last_seen = time.monotonic()
        if isinstance(frame, Result):
            if live:
                self.table.release(slot.index, frame.uid)
            unit = self.table.finish(frame.uid)
            if unit is not None:
                self._complete_unit(unit, frame)
            self._pump()
        elif isinstance(frame, TaskFailed):
            if live:
                self.table.release(slot.index, frame.uid)
            unit = self.table.finish(frame.uid)
            if unit is not None:
                self._publish_failure(unit, frame.code, frame.message)
            self._pump()
        elif isinstance(frame, Stats):
            if live:
                slot.stats = frame
        elif isinstance(frame, Ready):
            if live and slot.state is SlotState.BOOTING:
                self._on_ready(slot, frame)
        elif isinstance(frame, Fatal):
            if live:
                slot.last_fatal = frame
                log.error("worker %d: %s: %s", slot.index, frame.code, frame.message)

    def _on_ready(self, slot: Slot, frame: Ready) -> None:
        if frame.protocol_version != PROTOCOL_VERSION:
            log.error(
                "worker %d speaks internal protocol %d, this supervisor %d: refusing it; "
                "reinstall so both come from the same release",
                slot.index, frame.protocol_version, PROTOCOL_VERSION,
            )
            self._kill(slot)
            self.events.put_nowait(("mismatch", slot.index, frame.protocol_version))
            return
        if self.catalog is None:
            self.catalog = protocol.Catalog(frame.languages)
            self.detector = LanguageDetector(sorted(self.catalog.languages))
            if self.detector.unsupported:
                log.warning("language detection cannot recognize %s: give sourceLanguage for them",
                            ", ".join(self.detector.unsupported))
            self.models = list(frame.models)
            if self.cache is not None:
                self.cache.set_models(frame.models)
        elif [(m.name, m.revision) for m in frame.models] != [(m.name, m.revision) for m in self.models]:
            log.warning("worker %d loaded other models than its peers; cache keys follow the first", slot.index)
        elif protocol.Catalog(frame.languages).pairs != self.catalog.pairs:
            log.warning("worker %d serves different languages than its peers", slot.index)
        slot.state = SlotState.READY
        slot.ready_at = time.monotonic()
        log.info("worker %d ready (pid %d, cpu %s)", slot.index, frame.pid, slot.cpu)
        self.events.put_nowait(("ready", slot.index))
        self._pump()

    # ================================================================== dispatch and outcomes

    def _pump(self) -> None:
        """Hand pending units to the least-loaded ready slots, up to each slot's credit."""
        ready = [s.index for s in self.slots if s.state is SlotState.READY]
        depth = self.s.workers.queue_depth
        now = time.monotonic()
        while (pick := self.table.next_assignment(ready, depth)) is not None:
            unit, index = pick
            self.table.assign(unit, index, now)
            record = unit.request
            frame = Task(
                uid=unit.uid,
                attempt=unit.attempt,
                text=record.text,
                source_language=record.source_language,
                target_language=unit.target,
                tier=record.model_type,
            )
            future = self.task_socks[index].send(codec.encode(frame), flags=zmq.DONTWAIT)
            if future.exception() is not None:
                # No pipe to that worker yet (its connect is still in progress): retry shortly.
                self.table.unassign(unit)
                if not self._retry_scheduled:
                    self._retry_scheduled = True
                    self.loop.call_later(RETRY_SEND_S, self._retry_pump)
                return

    def _retry_pump(self) -> None:
        self._retry_scheduled = False
        self._pump()

    def _complete_unit(self, unit: Unit, frame: Result) -> None:
        record = unit.request
        self.metrics.count_completed(frame.processing_ms)
        if self.cache is not None:
            self.cache.on_result(unit.cache_key, frame, record.detection)
        event = protocol.completed_event(
            task_id=record.task_id,
            message_id=record.message_id,
            target=unit.target,
            text=frame.text,
            source=frame.source_language,
            confidence=frame.confidence,
            processing_ms=frame.processing_ms,
            tier=frame.tier,
            model=frame.model,
            slot=frame.slot,
            conversation_id=record.conversation_id,
            attempts=unit.attempt,
            queued_ms=(unit.dispatched_at - record.accepted_at) * 1000.0,
            from_cache=frame.from_cache,
            requested_model_type=record.model_type,
            segments=frame.segments,
            detection=record.detection,
        )
        self._publish(record, unit.target, event)

    def _fail_unit(self, unit: Unit, code: str, message: str) -> None:
        """Take a unit out of the table with an error (timeout, crash, shutdown)."""
        if self.table.finish(unit.uid) is not None:
            self._publish_failure(unit, code, message)

    def _publish_failure(self, unit: Unit, code: str, message: str) -> None:
        self.metrics.tasks_failed += 1
        record = unit.request
        event = protocol.error_event(
            task_id=record.task_id,
            message_id=record.message_id,
            target=unit.target,
            code=code,
            message=message,
            conversation_id=record.conversation_id,
        )
        self._publish(record, unit.target, event)

    def _publish(self, record: RequestRecord, target: str, event: dict) -> None:
        self.edge.publish(event)
        record.outcomes[target] = event
        if record.remaining == 0:
            self._finished(record)

    def _finished(self, record: RequestRecord) -> None:
        for waiter in record.waiters:
            waiter(record)
        record.waiters.clear()
        if self.state == DRAINING and self.table.in_flight() == 0:
            self.events.put_nowait(("drained",))

    # ================================================================== timers

    async def _ticker(self) -> None:
        last_status = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            for unit in self.table.expired(time.monotonic()):
                self._fail_unit(
                    unit, protocol.TIMEOUT, f"not translated within {self.s.limits.task_timeout_s:g}s"
                )
            for slot in self.slots:
                self._check_stall(slot, now)
            if self.state == SERVING and now - last_status >= STATUS_EVERY_S:
                last_status = now
                self._status(self._serving_status())

    def _check_stall(self, slot: Slot, now: float) -> None:
        w = self.s.workers
        if slot.process is None or slot.process.exitcode is not None:
            return
        if slot.state is SlotState.READY and self.table.load(slot.index) and now - slot.last_seen > w.stall_timeout_s:
            log.error(
                "worker %d (pid %s) holds %d task(s) and has said nothing for %.0fs: killing it "
                "([workers] stall_timeout_s)",
                slot.index, slot.pid, self.table.load(slot.index), now - slot.last_seen,
            )
            self._kill(slot)
        elif slot.state is SlotState.BOOTING and self.state == SERVING and now - slot.started_at > w.startup_timeout_s:
            log.error("respawned worker %d did not get ready within %.0fs: killing it", slot.index, w.startup_timeout_s)
            self._kill(slot)

    def healthy(self) -> bool:
        return self.state in (SERVING, DRAINING) and any(
            s.state in (SlotState.READY, SlotState.BOOTING, SlotState.BACKOFF) for s in self.slots
        )

    async def _watchdog(self) -> None:
        assert self.notifier.watchdog_s
        interval = self.notifier.watchdog_s / 2
        while True:
            if self.state == STARTING or self.healthy():
                self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _serving_status(self) -> str:
        ready = sum(s.state is SlotState.READY for s in self.slots)
        return (
            f"serving: {ready}/{len(self.slots)} worker(s) ready, {self.table.in_flight()} task(s) in flight, "
            f"{self.metrics.tasks_completed} done"
        )

    def _status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.notifier.status(text)

    # ================================================================== requests (edge and HTTP)

    def count_request(self) -> None:
        self.metrics.count_request()

    def respond(
        self, payload: bytes, reply: Callable[[dict], None], *, force_sync: bool = False, only_type: str | None = None
    ) -> None:
        """Answer one request payload: now, or (synchronous mode) when its targets are done.
        `only_type` (HTTP routes): the one request type accepted, and the default."""
        limits = self.s.limits
        try:
            req = protocol.parse(
                payload,
                max_request_bytes=limits.max_request_bytes,
                max_text_chars=limits.max_text_chars,
                max_targets=limits.max_targets,
                default_type=only_type or "translation",
                only_type=only_type,
            )
            if isinstance(req, protocol.Ping):
                reply(self.ping(req.message_id))
            elif isinstance(req, protocol.DetectRequest):
                reply(self.detect(req))
            elif isinstance(req, protocol.StatsRequest):
                reply(self.stats() | _with_id(req.message_id))
            elif isinstance(req, protocol.LanguagesRequest):
                reply(self.languages() | _with_id(req.message_id))
            else:
                self.translate(dataclasses.replace(req, sync=True) if force_sync else req, reply)
        except RequestError as exc:
            self.metrics.request_errors += 1
            reply(protocol.error_body(exc.code, exc.message, exc.message_id))
        except Exception as exc:  # a bug must still get the client an answer
            log.exception("unexpected error answering a request")
            self.metrics.request_errors += 1
            reply(protocol.error_body(protocol.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"))

    def translate(self, req: protocol.TranslateRequest, reply: Callable[[dict], None]) -> None:
        if req.task_id is not None:
            record = self.table.lookup(req.task_id)
            if record is not None:
                self.metrics.duplicate_requests += 1
                if req.sync:
                    record.waiters.append(lambda r: reply(_sync_body(r)))
                else:
                    reply(protocol.queued_body(record.task_id, record.message_id, self._estimate_ms(), list(record.targets), True))
                return
            if self.table.recently_finished(req.task_id):
                self.metrics.duplicate_requests += 1
                reply({"taskId": req.task_id, "messageId": req.message_id, "status": "completed", "duplicate": True})
                return
        if self.state in (DRAINING, STOPPED):
            raise RequestError(protocol.SHUTTING_DOWN, "the appliance is shutting down", req.message_id)
        if self.catalog is None or self.state != SERVING:
            raise RequestError(protocol.NOT_READY, "workers are still loading their models", req.message_id)
        self.catalog.check(req)
        keys, hits = self._cache_lookup(req)
        source, detection = req.source_language, None
        if source == protocol.AUTO and len(hits) < len(req.targets):
            source, detection = self._detect_source(req.text)
        same = {t for t in req.targets if t == source and t not in hits}
        for target in req.targets:
            if target not in hits:
                self.catalog.check_pair(source, target, req.message_id, detected=detection is not None)
        try:
            record = self.table.admit(
                task_id=req.task_id or uuid.uuid4().hex,
                message_id=req.message_id,
                text=req.text,
                source_language=source,
                model_type=req.model_type,
                conversation_id=req.conversation_id,
                targets=req.targets,
                now=time.monotonic(),
                done=set(hits) | same,
                keys=keys,
            )
        except Overloaded as exc:
            raise RequestError(protocol.OVERLOADED, f"over capacity ({exc}); retry later", req.message_id) from None
        record.detection = detection
        self.metrics.translation_requests += 1
        if req.sync:
            record.waiters.append(lambda r: reply(_sync_body(r)))
        else:
            estimate = self._estimate_ms() if record.remaining else 0.0
            reply(protocol.queued_body(record.task_id, record.message_id, estimate, list(record.targets), False))
        for target, hit in hits.items():
            self._publish_hit(record, target, hit)
        for target in same:
            self._publish_same_language(record, target)
        if record.remaining:
            self._pump()
        elif len(record.outcomes) == len(record.targets):
            self._finished(record)

    def _detect_source(self, text: str) -> tuple[str, Detection]:
        """The source of an "auto" request: the detected language, or the configured default
        below the confidence threshold."""
        ranked = self.detector.detect(text) if self.detector is not None else []
        language, confidence = ranked[0] if ranked else ("", 0.0)
        settings = self.s.languages
        if ranked and confidence >= settings.min_detection_confidence:
            return language, Detection(language, confidence)
        return canonical(settings.default_source), Detection(language, confidence, defaulted=True)

    def detect(self, req: protocol.DetectRequest) -> dict:
        if self.detector is None:
            raise RequestError(protocol.NOT_READY, "workers are still loading their models", req.message_id)
        ranked = self.detector.detect(req.text)
        body: dict = {"type": "detection", **_with_id(req.message_id)}
        body["detectedLanguage"] = ranked[0][0] if ranked else None
        body["confidence"] = round(ranked[0][1], 4) if ranked else 0.0
        body["reliable"] = bool(ranked) and ranked[0][1] >= self.s.languages.min_detection_confidence
        body["languages"] = [{"language": lang, "confidence": round(conf, 4)} for lang, conf in ranked]
        return body

    def _cache_lookup(self, req: protocol.TranslateRequest) -> tuple[dict[str, bytes], dict]:
        """Each target's cache key, and the targets the cache answers (target -> value)."""
        keys: dict[str, bytes] = {}
        hits: dict = {}
        cache = self.cache
        if cache is None:
            return keys, hits
        for target in req.targets:
            key = cache.key(req.text, req.source_language, target, req.model_type)
            if not key:
                continue
            keys[target] = key
            started = time.perf_counter()
            value = cache.lookup(key)
            if value is not None:
                hits[target] = (value, (time.perf_counter() - started) * 1000.0)
        return keys, hits

    def _publish_hit(self, record: RequestRecord, target: str, hit: tuple) -> None:
        value, lookup_ms = hit
        self.cache.count_edge_hit()
        event = protocol.completed_event(
            task_id=record.task_id,
            message_id=record.message_id,
            target=target,
            text=value.translated_text,
            source=value.source_language,
            confidence=value.confidence,
            processing_ms=lookup_ms,
            tier=value.tier,
            model=value.model,
            slot=None,
            conversation_id=record.conversation_id,
            attempts=0,
            queued_ms=0.0,
            from_cache=True,
            requested_model_type=record.model_type,
            segments=value.segments,
            detection=value.detection,
        )
        # Not _publish: a request's hits are all published before its waiters run.
        self.edge.publish(event)
        record.outcomes[target] = event

    def _publish_same_language(self, record: RequestRecord, target: str) -> None:
        """A message already in the target language comes back unchanged, without a worker."""
        event = protocol.completed_event(
            task_id=record.task_id,
            message_id=record.message_id,
            target=target,
            text=record.text,
            source=target,
            confidence=1.0,
            processing_ms=0.0,
            tier="",
            model="",
            slot=None,
            conversation_id=record.conversation_id,
            attempts=0,
            queued_ms=0.0,
            requested_model_type=record.model_type,
            detection=record.detection,
            same_language=True,
        )
        self.edge.publish(event)
        record.outcomes[target] = event

    def _estimate_ms(self) -> float:
        ready = max(1, sum(s.state is SlotState.READY for s in self.slots))
        per_task = self.metrics.processing_ms_ewma or 100.0
        waves = 1 + len(self.table.pending) / (ready * self.s.workers.max_batch_size)
        return per_task * waves

    def ping(self, message_id: str | None) -> dict:
        ready = sum(s.state is SlotState.READY for s in self.slots)
        body: dict = {"type": "pong", "status": "ok", "state": self.state}
        body.update(_with_id(message_id))
        body.update(
            ready=self.state == SERVING and ready > 0,
            workers={"ready": ready, "total": len(self.slots)},
            protocolVersion=PROTOCOL_VERSION,
            timestamp=time.time(),
        )
        return body

    def languages(self) -> dict:
        return {
            "type": "languages",
            "languages": self.catalog.as_json() if self.catalog else {},
            "pivot": self.catalog.pivot_json() if self.catalog else {"via": "en", "pairs": []},
            "models": [msgspec.structs.asdict(m) for m in self.models],
        }

    def stats(self) -> dict:
        slots = [s.as_json(self.table.assigned_to(s.index)) for s in self.slots]
        return {
            "type": "stats",
            "service": self.metrics.service(self.state),
            "cache": self.cache.stats() if self.cache is not None else disabled_stats(),
            "workers": {
                "max_workers": len(self.slots),
                "active_workers": sum(s.state is SlotState.READY for s in self.slots),
                "slots": slots,
            },
            "tasks": {
                "in_flight": self.table.in_flight(),
                "pending": len(self.table.pending),
                "completed": self.metrics.tasks_completed,
                "failed": self.metrics.tasks_failed,
                "redispatched": self.table.redispatched,
                "capacity": self.table.max_units,
            },
            "edge": {"dropped_replies": self.edge.dropped_replies, "dropped_events": self.edge.dropped_events},
        }


def _with_id(message_id: str | None) -> dict:
    return {"messageId": message_id} if message_id is not None else {}


def _sync_body(record: RequestRecord) -> dict:
    results = []
    errors = []
    for target in record.targets:
        event = record.outcomes.get(target)
        if event is None:
            continue
        if event["type"] == "translation_completed":
            results.append(event["result"])
        else:
            errors.append({"targetLanguage": target, "error": event["error"]})
    status = "completed" if not errors else ("error" if not results else "partial")
    return {
        "taskId": record.task_id,
        "messageId": record.message_id,
        "status": status,
        "targetLanguages": list(record.targets),
        "results": results,
        "errors": errors,
    }


def serve(settings: Settings) -> int:
    """Run the appliance until it drains or halts; the process exit code."""
    import uvloop

    return uvloop.run(Supervisor(settings).run())
