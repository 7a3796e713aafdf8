"""The worker process: a thin host around the pure runtime, speaking the ipc/ frame protocol.

Lifecycle (entry point `main`, started by the supervisor with the `spawn` method):

    decode WorkerSpec ─▶ pin to core ─▶ connect sockets ─▶ load runtime ──ok──▶ Ready ─▶ serve
                                                               └─fails─▶ Fatal, exit EXIT_BOOT_ERROR
    serve: drain queued Task frames ─▶ plan a batch (workers.batching)
           ─▶ runtime.translate(batch, cache=the shared table) ─▶ one Result / TaskFailed per task
           ─▶ repeat; Heartbeat when idle, Stats every few.
    Drain frame: answer everything received, exit EXIT_OK.

The shared cache (`spec.cache_name`, attached, never created: the supervisor owns it) is the
runtime's segment cache: the runtime looks each segment up by the token ids its model would
receive and puts every fresh segment translation into it. Whole-message entries are the
supervisor's (it answers them at the edge). A table that fails is dropped with a warning; the
worker keeps translating.

The runtime comes through a seam: `spec.runtime_factory` is an import path called as
`factory(models_dir, tiers, threads)`; production uses `workers.runtime:Runtime.load`, tests a
fake. Errors are data: a bad task, or a runtime that raises on a batch, yields TaskFailed frames
and the worker keeps serving. SIGINT is ignored (a terminal's Ctrl-C reaches the whole process
group; the supervisor coordinates shutdown), and the worker dies with its supervisor
(PR_SET_PDEATHSIG, plus a parent-pid check on every heartbeat).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import Protocol

import msgspec
import zmq

from ipc import codec
from ipc.cache_key import CachedTranslation, Segments
from ipc.entry import resolve
from ipc.exitcodes import EXIT_BAD_SPEC, EXIT_BOOT_ERROR, EXIT_OK, EXIT_ORPHANED
from ipc.frames import (
    PROTOCOL_VERSION,
    Drain,
    Fatal,
    Heartbeat,
    ModelInfo,
    Ready,
    Result,
    Stats,
    Task,
    TaskFailed,
    WorkerSpec,
)
from ipc.heap import trim_heap
from ipc.shm_cache import ShmCache
from ipc.sockets import Role, make_socket
from workers import batching
from workers.jobs import Translation, TranslationError, TranslationJob
from workers.registry import AutoTiers

log = logging.getLogger("meeshy.worker")

STATS_EVERY_HEARTBEATS = 5
DRAIN_MAX_FRAMES = 1024  # frames read per drain, so a flood cannot starve decoding
CLOSE_LINGER_MS = 2000  # the last frames (answers to a Drain, Fatal) must reach the supervisor
PR_SET_PDEATHSIG = 1
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 1 << 20


def unmap_large_buffers() -> None:
    """Allocations of 1 MiB and more (a decode's key/value and logits buffers) get a mapping of
    their own, returned to the system when freed. Left alone, glibc raises its threshold to the
    largest block freed so far (up to 32 MiB) and serves later ones from the heap, which keeps
    them mapped after the batch until the idle release trims it (in-process, 32-sentence batches:
    20-40 MB of a worker's memory right after traffic). A decode reuses its buffers from step to
    step, so a mapping is made a few times per batch, not per step."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


class Runtime(Protocol):
    def languages(self) -> dict[str, list[tuple[str, str]]]: ...
    def models(self) -> list[dict]: ...
    def translate(self, jobs: list[TranslationJob], cache=None) -> list[Translation | TranslationError]: ...


class Orphaned(Exception):
    pass


def main(spec_bytes: bytes) -> None:
    """Spawn target (through ipc.entry.run): never returns, exits with a named code."""
    logging.basicConfig(
        level=os.environ.get("MEESHY_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s",
    )
    try:
        spec = codec.decode_spec(spec_bytes)
    except codec.FrameError as exc:
        log.error("%s", exc)
        sys.exit(EXIT_BAD_SPEC)
    sys.exit(WorkerProcess(spec).run())


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the heartbeat's parent-pid check still catches it


def _model_info(model: dict) -> ModelInfo:
    langs = model.get("languages") or []
    return ModelInfo(
        name=str(model.get("name", "")),
        family=str(model.get("family", "")),
        tier=str(model.get("tier", "")),
        quantization=str(model.get("quantization") or "none"),
        languages=[
            lang if isinstance(lang, str) else "-".join(str(part) for part in lang) for lang in langs
        ],
        revision=str(model.get("revision") or ""),
    )


class WorkerProcess:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.pid = os.getpid()
        self.queued: deque[Task] = deque()
        self.draining = False
        self.tasks_done = 0
        self.failures = 0
        self.batches = 0
        self.batches_since_release = 0
        self.busy_s = 0.0
        self.heartbeats = 0
        self.last_sent = 0.0
        self.cache: ShmCache | None = None
        self.cache_hits = 0

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> int:
        spec = self.spec
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _die_with_parent()
        if spec.supervisor_pid and os.getppid() != spec.supervisor_pid:
            return EXIT_ORPHANED
        if spec.cpu is not None:
            try:
                os.sched_setaffinity(0, {spec.cpu})
            except (OSError, AttributeError) as exc:
                log.warning("worker %d: cannot pin to cpu %d: %s", spec.slot, spec.cpu, exc)
        os.environ["MEESHY_WORKER_SLOT"] = str(spec.slot)

        ctx = zmq.Context()
        self.tasks = make_socket(
            ctx, Role.TASKS_IN, spec.tasks_endpoint, hwm=spec.hwm, linger_ms=spec.linger_ms
        )
        self.results = make_socket(
            ctx, Role.RESULTS_OUT, spec.results_endpoint, hwm=spec.hwm, linger_ms=CLOSE_LINGER_MS
        )
        # A bounded wait per send, so a vanished supervisor is noticed instead of blocking forever.
        self.results.setsockopt(zmq.SNDTIMEO, 1000)
        self._attach_cache()
        try:
            runtime = self._load()
            if runtime is None:
                return EXIT_BOOT_ERROR
            trim_heap()  # what loading the graphs freed (ipc/heap.py)
            unmap_large_buffers()
            self._send(
                Ready(
                    protocol_version=PROTOCOL_VERSION,
                    slot=spec.slot,
                    pid=self.pid,
                    languages={
                        tier: [(str(s), str(t)) for s, t in pairs]
                        for tier, pairs in runtime.languages().items()
                    },
                    models=[_model_info(m) for m in runtime.models()],
                )
            )
            self._serve(runtime)
            return EXIT_OK
        except Orphaned:
            return EXIT_ORPHANED
        finally:
            if self.cache is not None:
                self.cache.close()
            self.tasks.close(linger=0)
            self.results.close()
            ctx.term()

    def _attach_cache(self) -> None:
        if not self.spec.cache_name:
            return
        try:
            self.cache = ShmCache.attach(self.spec.cache_name)
        except Exception as exc:  # the cache is an optimization: translate without it
            log.warning("worker %d: cannot attach cache %s (%s): running without it",
                        self.spec.slot, self.spec.cache_name, exc)

    def _cache_failed(self, exc: Exception) -> None:
        log.warning("worker %d: cache failed (%s: %s): running without it", self.spec.slot, type(exc).__name__, exc)
        cache, self.cache = self.cache, None
        try:
            cache.close()
        except Exception:
            pass

    def _load(self) -> Runtime | None:
        spec = self.spec
        try:
            factory = resolve(spec.runtime_factory)
            tiers = dict(spec.tiers) if spec.tiers else None
            routing = {"auto_tiers": AutoTiers(**spec.auto_tiers)} if spec.auto_tiers else {}
            if spec.packed_weights_dir:
                routing["packed_dir"] = Path(spec.packed_weights_dir)
            if spec.vocabulary_shortlist:
                routing["shortlist"] = True
            return factory(Path(spec.models_dir), tiers, spec.threads, **routing)
        except Exception as exc:  # any load failure ends this worker with a clear Fatal
            message = f"{type(exc).__name__}: {exc}"
            log.error("worker %d: cannot load models from %s: %s", spec.slot, spec.models_dir, message)
            self._send(
                Fatal(
                    slot=spec.slot,
                    pid=self.pid,
                    code="model_load_error",
                    message=message,
                    exit_code=EXIT_BOOT_ERROR,
                )
            )
            return None

    # ------------------------------------------------------------------ serving

    def _serve(self, runtime: Runtime) -> None:
        spec = self.spec
        interval_ms = max(1, int(spec.heartbeat_interval_s * 1000))
        while True:
            if not self.queued and self.draining:
                return
            if not self.queued:
                if self.tasks.poll(interval_ms, zmq.POLLIN):
                    self._drain_socket()
                elif self.batches_since_release:
                    self._release_memory(runtime)
            else:
                self._drain_socket()
            if self.queued:
                self._run_batch(runtime)
            self._heartbeat_if_due()

    def _release_memory(self, runtime: Runtime) -> None:
        """Idle for a heartbeat interval after work: give the batches' working set back (a batch of
        32 long sentences held 210 MB of key/value caches and logits). It takes 2-15 ms, so it
        waits for idleness rather than following every batch, where the next message could be
        waiting for it; growing the arena again cost nothing measurable."""
        release = getattr(runtime, "release_memory", None)  # test runtimes have none
        if release is not None:
            release()
        trim_heap()
        self.batches_since_release = 0

    def _drain_socket(self) -> None:
        for _ in range(DRAIN_MAX_FRAMES):
            try:
                data = self.tasks.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                frame = codec.decode_to_worker(data)
            except codec.FrameError as exc:
                log.error("worker %d: dropped a frame: %s", self.spec.slot, exc)
                continue
            if isinstance(frame, Task):
                self.queued.append(frame)
            elif isinstance(frame, Drain):
                self.draining = True

    def _run_batch(self, runtime: Runtime) -> None:
        spec = self.spec
        batch = batching.plan(self.queued, spec.batch_token_budget, spec.max_batch_size)
        chosen = {id(t) for t in batch}
        self.queued = deque(t for t in self.queued if id(t) not in chosen)
        jobs = [
            TranslationJob(
                text=t.text,
                target_language=t.target_language,
                source_language=t.source_language,
                tier=t.tier,
                beam_size=t.beam_size,
                format=t.format,
            )
            for t in batch
        ]
        started = time.perf_counter()
        try:
            outcomes: list[Translation | TranslationError] = runtime.translate(jobs, cache=self._segment_cache())
            if len(outcomes) != len(jobs):
                raise RuntimeError(f"runtime answered {len(outcomes)} of {len(jobs)} jobs")
        except Exception as exc:  # a runtime bug fails this batch, not the worker
            log.exception("worker %d: batch of %d failed", spec.slot, len(jobs))
            outcomes = [TranslationError("internal_error", f"{type(exc).__name__}: {exc}")] * len(jobs)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        self.busy_s += elapsed_ms / 1000.0
        self.batches += 1
        self.batches_since_release += 1
        for task, out in zip(batch, outcomes):
            if isinstance(out, Translation):
                self._send_result(task, out, elapsed_ms)
                continue
            code, message = (
                (out.code, out.message)
                if isinstance(out, TranslationError)
                else ("internal_error", f"runtime returned {type(out).__name__}")
            )
            self.failures += 1
            self._send(TaskFailed(uid=task.uid, attempt=task.attempt, slot=spec.slot, pid=self.pid, code=code, message=message))

    def _segment_cache(self) -> "_GuardedCache | None":
        return _GuardedCache(self) if self.cache is not None else None

    def _send_result(self, task: Task, out: Translation, processing_ms: float) -> None:
        self.tasks_done += 1
        # Every segment from the cache (or none to translate): nothing was decoded for this task.
        from_cache = out.cached_segments == out.segments
        self.cache_hits += from_cache
        self._send(
            Result(
                uid=task.uid,
                attempt=task.attempt,
                slot=self.spec.slot,
                pid=self.pid,
                text=out.text,
                source_language=out.source_language,
                target_language=task.target_language,
                confidence=out.confidence,
                model=out.model,
                tier=out.tier,
                processing_ms=processing_ms,
                from_cache=from_cache,
                segments=Segments(
                    count=out.segments,
                    truncated=out.truncated_segments,
                    retried=out.retried_segments,
                    cached=out.cached_segments,
                    fallback=out.fallback,
                    pivot=out.pivot,
                    engine=out.engine,
                    unknown_words=out.unknown_words,
                    untranslated=out.untranslated_segments,
                ),
                cacheable=out.cacheable,
            )
        )

    def _heartbeat_if_due(self) -> None:
        spec = self.spec
        if time.monotonic() - self.last_sent < spec.heartbeat_interval_s:
            return
        if spec.supervisor_pid and os.getppid() != spec.supervisor_pid:
            raise Orphaned
        self._send(Heartbeat(slot=spec.slot, pid=self.pid))
        self.heartbeats += 1
        if self.heartbeats % STATS_EVERY_HEARTBEATS == 0:
            self._send(
                Stats(
                    slot=spec.slot,
                    pid=self.pid,
                    tasks=self.tasks_done,
                    failures=self.failures,
                    batches=self.batches,
                    busy_s=self.busy_s,
                    rss_bytes=_rss_bytes(),
                )
            )

    def _send(self, frame: msgspec.Struct) -> None:
        data = codec.encode(frame)
        while True:
            try:
                self.results.send(data)
                self.last_sent = time.monotonic()
                return
            except zmq.Again:
                # The supervisor is not reading (busy, or gone): wait, unless it is gone.
                if self.spec.supervisor_pid and os.getppid() != self.spec.supervisor_pid:
                    raise Orphaned from None


class _GuardedCache:
    """The shared table as the runtime's segment cache: a table that fails is dropped with a
    warning and the worker translates on without it."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker

    def get(self, key: bytes) -> CachedTranslation | None:
        cache = self.worker.cache
        if cache is None:
            return None
        try:
            return cache.get(key)
        except Exception as exc:
            self.worker._cache_failed(exc)
            return None

    def put(self, key: bytes, value: CachedTranslation) -> None:
        cache = self.worker.cache
        if cache is None:
            return
        try:
            cache.put(key, value)
        except Exception as exc:
            self.worker._cache_failed(exc)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
