"""The supervisor: the appliance's main process (asyncio + uvloop), as a lifecycle arbiter.

It composes the parts and runs their lifecycle; each part has one role:

    rundir.RunDir          the private run directory, its lock, endpoints.json
    pool.WorkerPool        worker slots: spawn, reap, kill, respawn backoff, task sockets
    phase.Lifecycle        the appliance's phase (starting, serving, draining, stopped)
    dispatcher.Dispatcher  the task table and outcomes, with no sockets (tested in-process)
    service.RequestService answers every door's requests (ports.Service)
    service.TaskObserver   records what the dispatcher reports (metrics, cache writes)
    cache.ApplianceCache   the translation cache's tiers
    the doors              zmq_edge.Edge (5555/5556), compat.CompatFront ([compat]), HttpApi

Wiring. Every part gets what it needs as constructor arguments, and nothing is assigned into a
part from outside afterwards. One cycle remains, and it is cut in time rather than by a setter:
a door's requests go to the service, and the service's events (through the dispatcher) go out
of the doors. So the parts are built in this order, in `_open`:

    Lifecycle            (the supervisor's own: only it calls start_serving, drain, stop)
    ApplianceCache, WorkerPool(..., cache_name = the cache table's name)
    Edge(router, pub), CompatFront(..., native publish = edge.publish_bytes)
                         built with their sockets only: they can publish at once
    Metrics, TaskObserver(metrics, cache)
    Dispatcher(send = pool.send, publish = compat.publish or edge.publish_event,
               on_idle = the supervisor's, on_completed/on_outcome/... = the observer's)
    RequestService(dispatcher, pool, cache, lifecycle, metrics, retry_dispatch = the
                   supervisor's, the doors' counters for stats)
    HttpApi(service)
    edge.serve(service), compat.serve(service)
                         the doors read requests only from here on, answered by the service

The service, HTTP and compat read the phase from the Lifecycle (is_serving, shutting_down ...);
none of them writes it.

One lifecycle queue carries what happens, as small typed events; signal handlers, process
sentinels and timers only enqueue, the main loop acts (gunicorn's arbiter):

    bind ─▶ spawn every slot ─▶ wait: all Ready │ a child exits │ bad version │ timeout │ signal
                                    │ (exit/version/timeout fail the start at once, with the
                                    │  worker's exit code and the setting to change; a signal
                                    │  stops the workers and exits 0)
                                    ▼
         serving: READY=1, WATCHDOG=1 while healthy, dispatch, respawn crashed slots with backoff
                                    │ SIGTERM/SIGINT            │ a slot crash-loops
                                    ▼                           ▼
         draining: new requests get shutting_down;      halt: error events for every
         finish in-flight tasks until drain_timeout_s,  unfinished task, exit EXIT_CRASH_LOOP
         error events for the rest, Drain the workers,
         exit 0

Internal channels (ipc/): one PUSH per slot (tasks-<slot>.ipc), one PULL for every worker's
answers (results.ipc), both in the run directory. A worker's frame counts only when it comes from
the process now in its slot, and a result only from the slot its task was assigned to.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass

import zmq
import zmq.asyncio

from appliance.lifecycle import pool
from appliance.core import protocol
from appliance.core.cache import ApplianceCache
from appliance.edge.compat import CompatFront
from appliance.config import Settings, is_loopback
from appliance.edge.curve import SUBSCRIPTION_MAX_BYTES, CurveError, EdgeCurve
from appliance.core.dispatcher import Dispatcher
from appliance.edge.zmq_edge import Edge, buffer_hwm
from appliance.edge.http_api import HttpApi
from appliance.lifecycle.pool import Slot, SlotState, WorkerPool
from appliance.lifecycle.rundir import RunDir, RunDirError
from appliance.lifecycle.sdnotify import Notifier
from appliance.core.service import RequestService, TaskObserver
from appliance.core.stats import Metrics
from appliance.lifecycle.phase import Lifecycle
from appliance.edge.zmtp_pull import listen
from ipc import codec, exitcodes
from ipc.endpoints import EndpointError, RunEndpoints, tcp
from ipc.frames import PROTOCOL_VERSION, Drain, Fatal, Ready, Result, Stats, TaskFailed
from ipc.heap import trim_heap
from ipc.sockets import Role, bound_endpoint, make_socket

log = logging.getLogger("meeshy.supervisor")

TICK_S = 0.25
STATUS_EVERY_S = 5.0
TRIM_EVERY_S = 10.0
RETRY_SEND_S = 0.02
RESULTS_BATCH = 256  # worker frames handled per wakeup before yielding to the rest of the loop


# ---------------------------------------------------------------- lifecycle events


@dataclass(frozen=True, slots=True)
class SignalReceived:
    signum: int


@dataclass(frozen=True, slots=True)
class WorkerExited:
    slot: int
    pid: int


@dataclass(frozen=True, slots=True)
class _SlotEvent:
    slot: int


class WorkerReady(_SlotEvent):
    __slots__ = ()


class RespawnDue(_SlotEvent):
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class ProtocolMismatch(_SlotEvent):
    version: int


@dataclass(frozen=True, slots=True)
class Idle:
    """The last task in flight finished (a drain may end)."""


@dataclass(frozen=True, slots=True)
class DrainDeadline:
    pass


LifecycleEvent = SignalReceived | WorkerExited | WorkerReady | RespawnDue | ProtocolMismatch | Idle | DrainDeadline


class Supervisor:
    def __init__(self, settings: Settings, notifier: Notifier | None = None) -> None:
        self.settings = settings
        self.notifier = notifier or Notifier()
        self._drain_deadline = 0.0
        self._last_status = ""
        self._retry_scheduled = False
        self.lifecycle = Lifecycle()  # written here only, through its verbs; read by the service and doors

    # ================================================================== run

    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[LifecycleEvent] = asyncio.Queue()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, self.events.put_nowait, SignalReceived(sig))
        self.ctx = zmq.asyncio.Context()
        self.sockets: list[zmq.Socket] = []
        self.background: list[asyncio.Task] = []
        self.http_server: HttpApi | None = None
        self.run_dir: RunDir | None = None
        self.cache: ApplianceCache | None = None
        self.pool: WorkerPool | None = None
        self.curve: EdgeCurve | None = None
        try:
            if self.settings.security.curve:
                try:
                    self.curve = EdgeCurve.load(self.settings.security)
                except CurveError as exc:
                    log.error("%s", exc)
                    return exitcodes.EXIT_CONFIG
                self.curve.start(self.ctx)
            elif not is_loopback(self.settings.server.bind_address):
                log.warning(
                    "requests and events on %s are open to anyone who can reach it: enable [security] curve "
                    "(docs/operations.md, Security)", self.settings.server.bind_address,
                )
            try:
                self._open()
                await self._open_http()
            except (zmq.ZMQError, OSError, EndpointError) as exc:
                log.error("cannot bind: %s", exc)
                return exitcodes.EXIT_BIND_ERROR
            self.run_dir.write_endpoints(self.endpoints_info)
            self.background += [
                asyncio.create_task(self._results_loop(), name="results"),
                asyncio.create_task(self.edge.serve(self.service), name="edge"),
                asyncio.create_task(self._ticker(), name="ticker"),
            ]
            if self.compat is not None:
                self.background.append(asyncio.create_task(self.compat.serve(self.service), name="compat"))
            if self.notifier.watchdog_s:
                self.background.append(asyncio.create_task(self._watchdog(), name="watchdog"))
            code = await self._start()
            if code is not None:
                return code
            return await self._serve()
        finally:
            await self._close()

    def _open(self) -> None:
        """Run directory, sockets, cache and the parts that use them; raises on a bind failure."""
        s = self.settings
        configured = s.server.run_dir or os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
        try:
            self.run_dir = RunDir(configured)
        except RunDirError as exc:
            raise OSError(str(exc)) from None
        endpoints = RunEndpoints(self.run_dir.path)
        ipc = s.ipc
        self.results = self._socket(Role.RESULTS_IN, endpoints.results, ipc.internal_hwm, ipc.linger_ms)
        n = s.worker_count()
        task_socks = [
            zmq.Socket.shadow(self._socket(Role.TASKS_OUT, endpoints.tasks(i), ipc.internal_hwm, ipc.linger_ms).underlying)
            for i in range(n)
        ]
        router_hwm, pub_hwm = buffer_hwm(s)
        secure = self.curve.secure if self.curve is not None else None
        router = self._socket(
            Role.REQUESTS,
            tcp(s.server.bind_address, s.server.zmq_port),
            router_hwm,
            ipc.edge_linger_ms,
            max_msg_size=2 * s.limits.max_request_bytes,
            configure=secure,
        )
        # Under CURVE, an XPUB whose subscriptions the edge checks against each subscriber's key.
        pub = self._socket(
            Role.SCOPED_EVENTS if self.curve is not None else Role.EVENTS,
            tcp(s.server.bind_address, s.server.zmq_pub_port),
            pub_hwm,
            ipc.edge_linger_ms,
            max_msg_size=SUBSCRIPTION_MAX_BYTES if self.curve is not None else None,
            configure=secure,
        )
        self._open_cache()
        self.pool = WorkerPool(s, endpoints, task_socks, lambda slot, pid: self.events.put_nowait(WorkerExited(slot, pid)),
                               cache_name=self.cache.name if self.cache else "")
        # Wiring (module docstring): the doors, then the core with their publish and counters.
        self.edge = Edge(router, pub, scoped=self.curve is not None)
        # Drop-in mode: a compat task's events go to Meeshy's gateway in its shape, the rest to 5556.
        self.compat = self._open_compat(pub_hwm) if s.compat.enabled else None
        publish = self.compat.publish if self.compat is not None else self.edge.publish_event
        # A compat text may be longer than [limits] max_text_chars; so may its translation.
        longest_text = max(s.limits.max_text_chars, s.compat.max_text_chars if self.compat is not None else 0)
        metrics = Metrics()
        observer = TaskObserver(metrics, self.cache)
        self.dispatcher = Dispatcher(
            s.limits, s.workers.queue_depth, self.pool.send, publish, max_output_chars=2 * longest_text,
            on_idle=self._on_idle, on_completed=observer.completed, on_coalesced=observer.coalesced,
            on_failed=metrics.count_failed,
            on_outcome=observer.outcome, on_dispatched=observer.dispatched,
        )
        self.service = RequestService(
            s, self.dispatcher, self.pool, self.cache, self.lifecycle, metrics,
            retry_dispatch=self._schedule_dispatch, edge_counters=self.edge.counters,
            compat_counters=self.compat.stats if self.compat is not None else None,
        )
        self.endpoints_info = {
            "requests": bound_endpoint(router),
            "events": bound_endpoint(pub),
            "http": None,
            "run_dir": str(self.run_dir.path),
            "pid": os.getpid(),
        }
        log.info("requests on %s, events on %s", self.endpoints_info["requests"], self.endpoints_info["events"])
        if self.compat is not None:
            self.endpoints_info.update(compat_pull=self.compat.pull_endpoint, compat_events=self.compat.pub_endpoint)
            log.info("Meeshy gateway drop-in: requests on %s, events on %s (no CurveZMQ: keep them on a private "
                     "network)", self.compat.pull_endpoint, self.compat.pub_endpoint)

    def _open_compat(self, pub_hwm: int) -> CompatFront:
        """[compat]: the gateway's PULL and PUB. Never secured: the gateway has no CurveZMQ."""
        s = self.settings
        c = s.compat
        address = c.address(s.server)
        linger = s.ipc.edge_linger_ms
        # The pull port speaks ZMTP through the appliance's own bounded reader (appliance/edge/zmtp_pull.py).
        pull = listen(address, c.meeshy_pull_port)
        # Events a gateway's pipe cannot take wait in the compat outbox (counted when it overflows),
        # never dropped silently; every (un)subscription is seen, to count the gateways.
        # pub_hwm is the byte budget over the largest native event; a compat event may be larger.
        hwm = max(16, pub_hwm * s.limits.max_text_chars // max(s.limits.max_text_chars, c.max_text_chars))
        pub = self._socket(Role.GATEWAY_EVENTS, tcp(address, c.meeshy_pub_port), hwm, linger,
                           configure=lambda sock: (sock.setsockopt(zmq.XPUB_NODROP, 1),
                                                   sock.setsockopt(zmq.XPUB_VERBOSER, 1)))
        pull_endpoint = tcp(pull.getsockname()[0], pull.getsockname()[1])
        return CompatFront(s, pull, pub, self.edge.publish_bytes, pull_endpoint, bound_endpoint(pub))

    def _open_cache(self) -> None:
        if not self.settings.cache.enabled:
            return
        try:
            self.cache = ApplianceCache(self.settings, str(self.run_dir.path))
        except (OSError, ValueError) as exc:
            log.error("cannot create the shared-memory cache (%s): running without a cache", exc)

    def _socket(self, role: Role, endpoint: str, hwm: int, linger_ms: int, **kw) -> zmq.asyncio.Socket:
        sock = make_socket(self.ctx, role, endpoint, hwm=hwm, linger_ms=linger_ms, **kw)
        self.sockets.append(sock)
        return sock

    async def _open_http(self) -> None:
        srv = self.settings.server
        if not srv.http_enabled:
            return
        api = HttpApi(self.service)
        try:
            await api.start(srv.bind_address, srv.api_port)
        except OSError as exc:
            raise OSError(f"cannot bind HTTP on {srv.bind_address}:{srv.api_port}: {exc.strerror} (change API_PORT)") from None
        self.http_server = api
        host, port = api.address
        self.endpoints_info["http"] = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
        log.info("HTTP on %s", self.endpoints_info["http"])

    async def _close(self) -> None:
        for task in self.background:
            task.cancel()
        for task in self.background:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self.http_server is not None:
            await self.http_server.close()
        if self.pool is not None:
            self.pool.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.remove_signal_handler(sig)
        for sock in self.sockets:
            sock.close()
        if self.curve is not None:
            self.curve.stop()
        self.ctx.term()
        self.notifier.close()
        if self.cache is not None:
            self.cache.close()
        if self.run_dir is not None:
            self.run_dir.close(self.settings.worker_count())

    # ================================================================== startup

    async def _start(self) -> int | None:
        """Spawn every slot and wait for all to be ready: None when serving, else the exit code."""
        slots = self.pool.slots
        timeout = self.settings.workers.startup_timeout_s
        self.notifier.extend_timeout(timeout + 30)
        self._status(f"starting {len(slots)} worker(s), loading models from {self.settings.workers.models_dir}")
        for slot in slots:
            self.pool.spawn(slot, time.monotonic())
        deadline = time.monotonic() + timeout
        while not all(slot.state is SlotState.READY for slot in slots):
            try:
                event = await asyncio.wait_for(self.events.get(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                booting = [s.index for s in slots if s.state is SlotState.BOOTING]
                log.error(
                    "workers %s did not report ready within %.0fs; raise [workers] startup_timeout_s "
                    "if loading the models legitimately takes longer",
                    booting,
                    timeout,
                )
                return exitcodes.EXIT_STARTUP_TIMEOUT
            match event:
                case SignalReceived(signum):
                    log.info("%s during startup: stopping the workers", signal.Signals(signum).name)
                    self.lifecycle.stop()
                    await self._stop_workers()
                    return exitcodes.EXIT_OK
                case WorkerExited(index, pid) if self.pool.is_current(index, pid):
                    slot = slots[index]
                    await self._await_fatal(slot)
                    code = self.pool.reap(slot)
                    log.error("%s", self._boot_failure(slot, code))
                    self._status(f"failed: worker {slot.index} {exitcodes.describe(code)} while loading models")
                    return exitcodes.EXIT_BOOT_ERROR
                case ProtocolMismatch():
                    return exitcodes.EXIT_PROTOCOL_MISMATCH
                case WorkerReady():
                    ready = self.pool.count(SlotState.READY)
                    self._status(f"{ready}/{len(slots)} worker(s) ready")
        self.lifecycle.start_serving()
        self.notifier.ready(self.service.status_line())
        catalog = self.service.catalog
        log.info("ready: %d worker(s), tiers %s", len(slots), ", ".join(sorted(catalog.pairs)) if catalog else "-")
        return None

    async def _await_fatal(self, slot: Slot) -> None:
        """A dying worker's Fatal frame may still be in flight behind its exit: give it a moment."""
        deadline = time.monotonic() + 0.5
        while slot.last_fatal is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def _boot_failure(self, slot: Slot, code: int | None) -> str:
        what = exitcodes.describe(code)
        detail = f": {slot.last_fatal.message}" if slot.last_fatal else ""
        w = self.settings.workers
        if code == exitcodes.EXIT_BOOT_ERROR:
            hint = (
                f"check the models directory {w.models_dir} ([workers] models_dir or MEESHY_MODELS_DIR; "
                f"build the built-in models with `python export_models.py --builtin`) and [workers] tiers"
            )
        elif code is not None and code < 0:
            hint = "it was killed; if the kernel killed it for memory (see `dmesg`), lower TRANSLATION_WORKERS"
        elif code == exitcodes.EXIT_BAD_SPEC:
            hint = "the worker and supervisor code are out of step: reinstall, then restart"
        else:
            hint = f"see the worker's log above; the entry point is [workers] entrypoint = {w.entrypoint!r}"
        return f"worker {slot.index} (pid {slot.pid}) {what} while loading models{detail}; {hint}"

    # ================================================================== serving

    async def _serve(self) -> int:
        while True:
            timeout = None
            if self.lifecycle.is_draining:
                timeout = max(0.0, self._drain_deadline - time.monotonic())
            try:
                event = await asyncio.wait_for(self.events.get(), timeout)
            except TimeoutError:
                event = DrainDeadline()
            match event:
                case SignalReceived(signum):
                    if self.lifecycle.is_draining:
                        log.warning("second %s: giving up on in-flight tasks", signal.Signals(signum).name)
                        return await self._finish_drain()
                    self._begin_drain(signal.Signals(signum).name)
                case WorkerExited(index, pid) if self.pool.is_current(index, pid):
                    halted = self._on_worker_exit(self.pool.slots[index])
                    if halted is not None:
                        return halted
                case RespawnDue(index):
                    slot = self.pool.slots[index]
                    if self.lifecycle.is_serving and slot.state is SlotState.BACKOFF:
                        slot.restarts += 1
                        self.pool.spawn(slot, time.monotonic())
                case ProtocolMismatch(index, version):
                    return self._halt(
                        exitcodes.EXIT_PROTOCOL_MISMATCH,
                        f"worker {index} speaks protocol {version}, this supervisor {PROTOCOL_VERSION}: "
                        "the code on disk changed under a running appliance; restart it",
                    )
            if self.lifecycle.is_draining and (
                self.dispatcher.in_flight() == 0
                or time.monotonic() >= self._drain_deadline
                or self.pool.count(SlotState.READY, SlotState.BOOTING) == 0
            ):
                return await self._finish_drain()

    def _on_worker_exit(self, slot: Slot) -> int | None:
        """Reap a dead worker; requeue what it held; respawn it (with backoff) or halt."""
        was = slot.state
        pid = slot.pid
        code = self.pool.reap(slot)
        self._sync_ready()
        requeued = self.dispatcher.worker_died(slot.index)
        if not self.lifecycle.is_serving:
            self._dispatch()
            return None
        now = time.monotonic()
        delay = pool.record_crash(slot, self.settings, now)
        reason = exitcodes.describe(code) + (f" ({slot.last_fatal.message})" if slot.last_fatal else "")
        if delay is None:
            r = self.settings.respawn
            return self._halt(
                exitcodes.EXIT_CRASH_LOOP,
                f"worker slot {slot.index} crashed {len(slot.crashes)} times within {r.crash_window_s:.0f}s "
                f"(last: {reason}); halting instead of looping. "
                + ("It dies while loading: " + self._boot_failure(slot, code) if was is SlotState.BOOTING else
                   "Check the worker log above; [respawn] max_crashes and crash_window_s set the limit"),
            )
        log.warning(
            "worker %d (pid %s) %s; %d task(s) dispatched again; respawning in %.2fs",
            slot.index, pid, reason, requeued, delay,
        )
        slot.state = SlotState.BACKOFF
        self.loop.call_later(delay, self.events.put_nowait, RespawnDue(slot.index))
        self._dispatch()
        return None

    # ================================================================== drain, stop and halt

    def _begin_drain(self, why: str) -> None:
        self.lifecycle.drain()
        self._drain_deadline = time.monotonic() + self.settings.shutdown.drain_timeout_s
        n = self.dispatcher.in_flight()
        log.info("%s: draining %d task(s) within %.0fs", why, n, self.settings.shutdown.drain_timeout_s)
        self.notifier.stopping(f"draining {n} task(s)")

    async def _finish_drain(self) -> int:
        left = self.dispatcher.fail_all(
            protocol.SHUTTING_DOWN, "the appliance is shutting down and could not finish this task in time"
        )
        if left:
            log.warning("drain deadline: %d task(s) could not finish; published errors", left)
        self.lifecycle.stop()
        await self._stop_workers()
        log.info("stopped")
        return exitcodes.EXIT_OK

    async def _stop_workers(self) -> None:
        """Drain the ready workers, kill the others; wait for every exit (killing stragglers)."""
        self.notifier.status("stopping workers")
        for slot in self.pool.slots:
            if slot.state is SlotState.READY:
                slot.state = SlotState.STOPPING
                if not self.pool.send(slot.index, Drain()):
                    self.pool.kill(slot)
            elif slot.process is not None:
                self.pool.kill(slot)
        self._sync_ready()
        deadline = time.monotonic() + self.settings.shutdown.worker_exit_timeout_s
        while self.pool.running():
            try:
                event = await asyncio.wait_for(self.events.get(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                self.pool.kill_all()
                deadline = time.monotonic() + 5.0
                continue
            if isinstance(event, WorkerExited) and self.pool.is_current(event.slot, event.pid):
                self.pool.reap(self.pool.slots[event.slot])

    def _halt(self, code: int, message: str) -> int:
        log.critical("halting: %s", message)
        self.lifecycle.stop()
        self.notifier.status(f"halted: {message}"[:1000])
        self.dispatcher.fail_all(protocol.WORKER_CRASHED, f"the appliance halted: {message}")
        self.pool.kill_all()
        return code

    # ================================================================== workers' frames

    async def _results_loop(self) -> None:
        """Workers' frames, read by a callback on the results socket's descriptor with a plain
        socket (no asyncio future per frame: a result is on every message's path). The
        descriptor is edge-triggered, as on the edge (appliance/edge/zmq_edge.py): each pass
        receives until EAGAIN, or takes RESULTS_BATCH frames and goes on after the loop's other
        callbacks. Nothing is sent on this socket, so no send consumes its signal."""
        sock = zmq.Socket.shadow(self.results.underlying)
        fd = sock.getsockopt(zmq.FD)
        self.loop.add_reader(fd, self._read_results, sock)
        try:
            self._read_results(sock)  # whatever came before the reader was added
            await self.loop.create_future()
        finally:
            self.loop.remove_reader(fd)

    def _read_results(self, sock: zmq.Socket) -> None:
        for _ in range(RESULTS_BATCH):
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.ZMQError:  # EAGAIN: nothing more; else closed (shutting down) after this pass was scheduled
                return
            try:
                frame = codec.decode_from_worker(data)
            except codec.FrameError as exc:
                log.error("dropped a frame: %s", exc)
                continue
            try:
                self._on_frame(frame)
            except Exception:
                log.exception("unexpected error handling %s", type(frame).__name__)
        self.loop.call_soon(self._read_results, sock)

    def _on_frame(self, frame) -> None:
        slot = self.pool.live(frame.slot, frame.pid)
        if slot is None:
            return  # from an earlier incarnation of the slot, or from no worker of ours
        slot.last_seen = time.monotonic()
        match frame:
            case Result():
                self.dispatcher.on_result(slot.index, frame)
                self._dispatch()
            case TaskFailed():
                self.dispatcher.on_failure(slot.index, frame)
                self._dispatch()
            case Stats():
                slot.stats = frame
            case Ready() if slot.state is SlotState.BOOTING:
                self._on_ready(slot, frame)
            case Fatal():
                slot.last_fatal = frame
                log.error("worker %d: %s: %s", slot.index, frame.code, frame.message)

    def _on_ready(self, slot: Slot, frame: Ready) -> None:
        if frame.protocol_version != PROTOCOL_VERSION:
            log.error(
                "worker %d speaks internal protocol %d, this supervisor %d: refusing it; "
                "reinstall so both come from the same release",
                slot.index, frame.protocol_version, PROTOCOL_VERSION,
            )
            self.pool.kill(slot)
            self.events.put_nowait(ProtocolMismatch(slot.index, frame.protocol_version))
            return
        self.service.models_loaded(frame)
        slot.state = SlotState.READY
        slot.ready_at = time.monotonic()
        log.info("worker %d ready (pid %d, cpu %s)", slot.index, frame.pid, slot.cpu)
        self.events.put_nowait(WorkerReady(slot.index))
        self._sync_ready()
        self._dispatch()

    # ================================================================== dispatch

    def _on_idle(self) -> None:
        """The dispatcher's: its last unit finished; a drain may end."""
        if self.lifecycle.is_draining:
            self.events.put_nowait(Idle())

    def _sync_ready(self) -> None:
        self.dispatcher.set_ready(self.pool.ready())

    def _dispatch(self) -> None:
        if not self.dispatcher.dispatch(time.monotonic()):
            self._schedule_dispatch()

    def _schedule_dispatch(self) -> None:
        """A send found no pipe to a worker yet (its connect is in progress): try again shortly."""
        if not self._retry_scheduled:
            self._retry_scheduled = True
            self.loop.call_later(RETRY_SEND_S, self._retry_dispatch)

    def _retry_dispatch(self) -> None:
        self._retry_scheduled = False
        self._dispatch()

    # ================================================================== timers

    async def _ticker(self) -> None:
        last_status = last_trim = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            self.dispatcher.expire(now)
            for slot in self.pool.slots:
                self._check_stall(slot, now)
            if self.lifecycle.is_serving and now - last_status >= STATUS_EVERY_S:
                last_status = now
                self._status(self.service.status_line())
            if now - last_trim >= TRIM_EVERY_S:
                last_trim = now
                trim_heap()

    def _check_stall(self, slot: Slot, now: float) -> None:
        w = self.settings.workers
        if slot.process is None or slot.process.exitcode is not None:
            return
        held = self.dispatcher.table.load(slot.index)
        if slot.state is SlotState.READY and held and now - slot.last_seen > w.stall_timeout_s:
            log.error(
                "worker %d (pid %s) holds %d task(s) and has said nothing for %.0fs: killing it "
                "([workers] stall_timeout_s)",
                slot.index, slot.pid, held, now - slot.last_seen,
            )
            self.pool.kill(slot)
        elif slot.state is SlotState.BOOTING and self.lifecycle.is_serving and now - slot.started_at > w.startup_timeout_s:
            log.error("respawned worker %d did not get ready within %.0fs: killing it", slot.index, w.startup_timeout_s)
            self.pool.kill(slot)

    async def _watchdog(self) -> None:
        assert self.notifier.watchdog_s
        interval = self.notifier.watchdog_s / 2
        while True:
            if self.lifecycle.is_starting or self.service.healthy():
                self.notifier.watchdog()
            await asyncio.sleep(interval)

    def _status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.notifier.status(text)


def serve(settings: Settings) -> int:
    """Run the appliance until it drains or halts; the process exit code."""
    import uvloop

    return uvloop.run(Supervisor(settings).run())
