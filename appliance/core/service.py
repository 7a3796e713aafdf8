"""The request service: answers every request from the doors (appliance/edge/: ZeroMQ, HTTP,
LibreTranslate, Meeshy's gateway), which know it as appliance/core/ports.py's `Service`.

    respond(payload, reply) ──parse──▶ ping │ detect │ stats │ languages │ translation
    translation ──▶ retry of a known taskId? (appliance/core/dispatcher.py decides what it gets)
                ──▶ cache: each target's message key in shared memory, then (off the event
                    loop, in the cache's thread) the persistent level
                ──▶ source detection ("auto"), pair check, same-language targets
                ──▶ the dispatcher: hits and same-language targets published now, the rest run

`reply` is called exactly once per request: at once (queued, or an error), or, for a
synchronous request, when each of its targets has an outcome.

`scope` names whose taskId namespace a request is in (appliance/core/dispatcher.py, "Scopes"): the
edge passes the CURVE client's identity, compat its own scope, HTTP and anonymous 5555 clients "".
A task's events are published with its scope; who receives them is the publisher's business.

`TaskObserver` records what the dispatcher reports (metrics, cache writes); it shares the
service's Metrics. The service reads the appliance's phase from the supervisor's Lifecycle
(appliance/lifecycle/phase.py) and never changes it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Collection

import msgspec

from appliance.core import events, protocol
from appliance.core.cache import ApplianceCache, disabled_stats
from appliance.config import Settings
from appliance.core.dispatcher import (
    Dispatcher,
    Finished,
    Overloaded,
    TaskIdConflict,
    TooManyWaiters,
    content_digest,
    sync_body,
)
from appliance.core.langid import LanguageDetector
from ipc.languages import canonical
from appliance.lifecycle.phase import Lifecycle
from appliance.lifecycle.pool import SlotState, WorkerPool
from appliance.core.protocol import RequestError
from appliance.core.stats import Metrics
from appliance.core.tasks import Outcome, RequestRecord, TargetTask, detached, record_bytes
from ipc.cache_key import CachedTranslation, Detection
from ipc.events import Completed
from ipc.frames import PROTOCOL_VERSION, ModelInfo, Ready, Result

log = logging.getLogger("meeshy.service")

Reply = Callable[[dict], None]
Hit = tuple[CachedTranslation, float]  # the cached value, lookup milliseconds


class TaskObserver:
    """What the dispatcher reports about each task (its on_completed, on_coalesced, on_outcome and
    on_dispatched), recorded: the metrics' counts and timings, and each worker result written to
    the cache. Built before the dispatcher, as the service is built after it
    (appliance/lifecycle/supervisor.py, "Wiring")."""

    def __init__(self, metrics: Metrics, cache: ApplianceCache | None) -> None:
        self.metrics = metrics
        self.cache = cache

    def completed(self, unit: TargetTask, frame: Result) -> None:
        self.metrics.count_completed(frame.processing_ms)
        self.metrics.count_translation(frame.model, frame.source_language, frame.target_language)
        if self.cache is not None:
            self.cache.on_result(unit.cache_key, frame, unit.request.detection)

    def coalesced(self, unit: TargetTask, leader: TargetTask, frame: Result) -> None:
        """A target answered by an identical one's run: no cache hit or miss, no worker time. Its
        message key differs where the requests did (sourceLanguage "auto" and the detected one)."""
        self.metrics.count_translation(frame.model, frame.source_language, frame.target_language)
        if self.cache is not None and unit.cache_key != leader.cache_key:
            self.cache.store(unit.cache_key, frame, unit.request.detection)

    def outcome(self, record: RequestRecord, target: str, ok: bool) -> None:
        """A target's event went out: end-to-end latency from the request's acceptance."""
        self.metrics.observe_latency(time.monotonic() - record.accepted_at, ok)

    def dispatched(self, unit: TargetTask, now: float) -> None:
        if unit.attempt == 1:  # a dispatch again after a worker died is not queue time
            self.metrics.observe_queue_time(now - unit.request.accepted_at)


class RequestService:
    def __init__(
        self,
        settings: Settings,
        dispatcher: Dispatcher,
        pool: WorkerPool,
        cache: ApplianceCache | None,
        lifecycle: Lifecycle,
        metrics: Metrics,
        *,
        retry_dispatch: Callable[[], None],
        edge_counters: Callable[[], dict],
        compat_counters: Callable[[], dict] | None = None,
    ) -> None:
        """`lifecycle` is the supervisor's (read here, never written); `metrics` is shared with
        the TaskObserver the dispatcher reports to; `retry_dispatch` is the supervisor's "dispatch
        again shortly", for a send that found no pipe yet; `edge_counters` and `compat_counters`
        ([compat] on) are the doors' counters, for stats."""
        self.settings = settings
        self.dispatcher = dispatcher
        self.pool = pool
        self.cache = cache
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.catalog: protocol.Catalog | None = None
        self.detector: LanguageDetector | None = None
        self.models: list[ModelInfo] = []
        self.edge_counters = edge_counters
        self.compat_counters = compat_counters
        self.retry_dispatch = retry_dispatch
        self._lookups: dict[asyncio.Task, int] = {}  # requests waiting on the persistent cache: their bytes
        self._lookup_bytes = 0
        self.metrics.collect_from(self.stats)

    # ------------------------------------------------------------------ models

    def models_loaded(self, frame: Ready) -> None:
        """The first worker's Ready: what the appliance serves. Later ones are compared with it."""
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
            log.warning("worker %d loaded other models than its peers; cache keys follow the first", frame.slot)
        elif protocol.Catalog(frame.languages).pairs != self.catalog.pairs:
            log.warning("worker %d serves different languages than its peers", frame.slot)

    # ------------------------------------------------------------------ requests

    def count_request(self) -> None:
        self.metrics.count_request()

    def respond(self, payload: bytes, reply: Reply, *, force_sync: bool = False, only_type: str | None = None,
                scope: str = "", each_target: bool = False, max_text_chars: int | None = None) -> None:
        """Answer one request payload: now, or (synchronous mode) when its targets are done.
        `only_type` (HTTP routes): the one request type accepted, and the default. `scope`: the
        requester's taskId namespace. `each_target` (Meeshy's gateway): a target no model serves
        is left out, named in the queued reply's `skipped`, instead of refusing the others;
        `max_text_chars` replaces the limit."""
        limits = self.settings.limits
        req = None
        try:
            req = protocol.parse(
                payload,
                max_request_bytes=limits.max_request_bytes,
                max_text_chars=max_text_chars or limits.max_text_chars,
                max_targets=limits.max_targets,
                max_id_bytes=limits.max_id_bytes,
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
                if force_sync:
                    req = dataclasses.replace(req, sync=True)
                if each_target:
                    req = dataclasses.replace(req, skipped={})
                self.translate(req, reply, scope)
        except RequestError as exc:
            if isinstance(req, protocol.TranslateRequest):  # every error names the request's ids
                exc.message_id = exc.message_id or req.message_id
                exc.task_id = exc.task_id or req.task_id
            self._refuse(exc, reply)
        except Exception as exc:  # a bug must still get the client an answer
            log.exception("unexpected error answering a request")
            self.metrics.count_error(protocol.INTERNAL_ERROR)
            ids = (req.message_id, req.task_id) if isinstance(req, protocol.TranslateRequest) else (None, None)
            reply(protocol.error_body(protocol.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", *ids))

    def _refuse(self, exc: RequestError, reply: Reply) -> None:
        self.metrics.count_error(exc.code)
        reply(protocol.error_body(exc.code, exc.message, exc.message_id, exc.task_id))

    def translate(self, req: protocol.TranslateRequest, reply: Reply, scope: str = "") -> None:
        self._check_serving(req)
        if req.skipped is None:
            self.catalog.check(req)
        else:
            self.catalog.check(dataclasses.replace(req, targets=()))  # an unknown source refuses it whole
            req = self._servable(req, req.source_language, detected=False)
        digest = content_digest(req.text, req.source_language, req.model_type, req.format)
        if req.task_id is not None and self._retry(req, scope, digest, reply):
            return
        self._check_capacity(req)
        keys, hits = self._memory_lookup(req)
        missing = [keys[t] for t in req.targets if t in keys and t not in hits]
        if missing and self.cache is not None and self.cache.has_persistent:
            lookup = asyncio.get_running_loop().create_task(
                self._admit_after_lookup(req, scope, digest, keys, hits, missing, reply)
            )
            self._lookups[lookup] = record_bytes(req.text, req.task_id, req.message_id, req.conversation_id)
            self._lookup_bytes += self._lookups[lookup]
            lookup.add_done_callback(self._lookup_done)
            return
        self._admit(req, scope, digest, keys, hits, reply)

    def _lookup_done(self, lookup: asyncio.Task) -> None:
        self._lookup_bytes -= self._lookups.pop(lookup, 0)

    def _servable(self, req: protocol.TranslateRequest, source: str, *, detected: bool,
                  exempt: Collection[str] = ()) -> protocol.TranslateRequest:
        """`req` without the targets no model serves from `source` (a language, or "auto" before
        detection), each moved to req.skipped with the reason; `exempt` targets are answered already."""
        kept = []
        for target in req.targets:
            try:
                if target in exempt or target == source:
                    pass
                elif target not in self.catalog.languages:
                    raise RequestError(protocol.UNSUPPORTED_LANGUAGE, f"target language {target!r} is not supported")
                elif source != protocol.AUTO:
                    self.catalog.check_pair(source, target, req.message_id, detected=detected)
                kept.append(target)
            except RequestError as exc:
                req.skipped[target] = exc.message
        return req if len(kept) == len(req.targets) else dataclasses.replace(req, targets=tuple(kept))

    def _check_serving(self, req: protocol.TranslateRequest) -> None:
        if self.lifecycle.shutting_down:
            raise RequestError(protocol.SHUTTING_DOWN, "the appliance is shutting down", req.message_id, req.task_id)
        if self.catalog is None or not self.lifecycle.is_serving:
            raise RequestError(protocol.NOT_READY, "workers are still loading their models", req.message_id, req.task_id)

    def _check_capacity(self, req: protocol.TranslateRequest, *, retry: bool = False) -> None:
        """Requests waiting on the persistent cache count too: each holds its text. A retry's
        record holds its text already: only its new targets count."""
        nbytes = 0 if retry else record_bytes(req.text, req.task_id, req.message_id, req.conversation_id)
        try:
            self.dispatcher.check_capacity(len(req.targets) + len(self._lookups), nbytes + self._lookup_bytes)
        except Overloaded as exc:
            raise RequestError(protocol.OVERLOADED, f"over capacity ({exc}); retry later", req.message_id, req.task_id) from None

    def _retry(self, req: protocol.TranslateRequest, scope: str, digest: bytes, reply: Reply) -> bool:
        """A request whose taskId is known in its scope: True when answered here (the task is in flight)."""
        try:
            known = self.dispatcher.find(scope, req.task_id, digest)
        except TaskIdConflict as exc:
            raise RequestError(protocol.TASK_ID_CONFLICT, str(exc), req.message_id, req.task_id) from None
        if known is None or isinstance(known, Finished):
            return False  # new, or finished: admitted below with its recorded outcomes
        self.metrics.duplicate_requests += 1
        record = known
        # Running: nothing new. Finished: its outcome again. Failed, or not asked before: run it.
        rerun = [t for t in req.targets if t not in record.targets or (t in record.outcomes and not record.outcomes[t].ok)]
        if rerun and req.skipped is not None:
            unchecked = [t for t in rerun if t not in record.targets]
            if unchecked:
                kept = self._servable(dataclasses.replace(req, targets=tuple(unchecked)), record.source_language,
                                      detected=record.detection is not None)
                rerun = [t for t in rerun if t in record.targets or t in kept.targets]
        if rerun:
            self._check_capacity(dataclasses.replace(req, targets=tuple(rerun)), retry=True)
            for target in rerun:
                self.catalog.check_pair(record.source_language, target, req.message_id, detected=record.detection is not None)
            keys = {t: self.cache.key(req.text, req.source_language, t, req.model_type, req.format) for t in rerun} if self.cache else {}
            self.dispatcher.rerun(record, rerun, time.monotonic(), keys)
        self._answer(record, req, reply, duplicate=True)
        if not req.sync:
            self.dispatcher.republish(scope, record.outcomes, [t for t in req.targets if t not in rerun])
        if rerun:
            self._dispatch()
        return True

    def _memory_lookup(self, req: protocol.TranslateRequest) -> tuple[dict[str, bytes], dict[str, Hit]]:
        """Each target's cache key, and the targets the shared-memory table answers."""
        keys: dict[str, bytes] = {}
        hits: dict[str, Hit] = {}
        if self.cache is None:
            return keys, hits
        for target in req.targets:
            key = self.cache.key(req.text, req.source_language, target, req.model_type, req.format)
            if not key:
                continue
            keys[target] = key
            started = time.perf_counter()
            value = self.cache.lookup_memory(key)
            if value is not None:
                hits[target] = (value, (time.perf_counter() - started) * 1000.0)
        return keys, hits

    async def _admit_after_lookup(self, req, scope: str, digest, keys, hits, missing, reply) -> None:
        try:
            started = time.perf_counter()
            found = await self.cache.lookup_persistent(missing)
            ms = (time.perf_counter() - started) * 1000.0
            hits.update({t: (found[k], ms) for t, k in keys.items() if k in found and t not in hits})
            self._lookup_done(asyncio.current_task())  # no longer waiting: counted as a task below
            self._check_serving(req)
            if req.task_id is not None and self._retry(req, scope, digest, reply):
                return  # the same task arrived while this one was looking up
            self._check_capacity(req)  # again: others were admitted during the await
            self._admit(req, scope, digest, keys, hits, reply)
        except RequestError as exc:
            self._refuse(exc, reply)
        except Exception as exc:
            log.exception("unexpected error answering a request")
            self.metrics.count_error(protocol.INTERNAL_ERROR)
            reply(protocol.error_body(protocol.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", req.message_id, req.task_id))

    def _admit(self, req, scope: str, digest: bytes, keys: dict[str, bytes], hits: dict[str, Hit], reply: Reply) -> None:
        """Its caller checked the capacity with nothing awaited since."""
        task_id = req.task_id or uuid.uuid4().hex
        previous = self.dispatcher.recent.get((scope, task_id))
        answered: dict[str, Completed | Outcome] = {}
        if previous is not None:  # a retry of a finished task: what finished is answered again
            self.metrics.duplicate_requests += 1
            answered.update({t: o for t, o in previous.outcomes.items() if o.ok})
        source, detection = req.source_language, None
        if source == protocol.AUTO and any(t not in hits and t not in answered for t in req.targets):
            source, detection = self._detect_source(req.text)
        if req.skipped is not None:
            req = self._servable(req, source, detected=detection is not None, exempt=hits.keys() | answered.keys())
        for target in req.targets:
            if target not in hits and target not in answered and target != source:
                self.catalog.check_pair(source, target, req.message_id, detected=detection is not None)
        record = RequestRecord(
            task_id=task_id,
            digest=digest,
            message_id=previous.message_id if previous is not None else req.message_id,
            text=detached(req.text),  # without the UTF-8 copy the digest and cache keys left in req.text
            source_language=source,
            model_type=req.model_type,
            conversation_id=req.conversation_id,
            targets=list(dict.fromkeys([*req.targets, *answered])),
            accepted_at=time.monotonic(),
            detection=detection,
            remember=req.task_id is not None,  # a taskId we made up is retried by no one
            scope=scope,
            format=req.format,
        )
        for target in req.targets:
            if target in answered:
                continue
            if target in hits:
                answered[target] = self._hit_event(record, target, hits[target])
            elif target == source:
                answered[target] = events.same_language(record, target)
        run = [t for t in req.targets if t not in answered]
        republish = [] if req.sync else [t for t in req.targets if isinstance(answered.get(t), Outcome)]
        self.dispatcher.admit(record, answered=answered, run=run, keys=keys, now=time.monotonic(), republish=republish)
        if previous is None:
            self.metrics.translation_requests += 1
        self._answer(record, req, reply, duplicate=previous is not None, estimate=bool(run))
        if run:
            self._dispatch()

    def _answer(self, record: RequestRecord, req, reply: Reply, *, duplicate: bool, estimate: bool = True) -> None:
        targets = tuple(req.targets)
        if req.sync:
            try:
                self.dispatcher.wait(record, targets, lambda r, t: reply(sync_body(r, t)))
            except TooManyWaiters as exc:
                raise RequestError(protocol.OVERLOADED, f"{exc}; retry later", req.message_id, req.task_id) from None
        else:
            body = protocol.queued_body(record.task_id, record.message_id, self._estimate_ms() if estimate else 0.0,
                                        list(targets), duplicate)
            if req.skipped:
                body["skipped"] = [{"targetLanguage": t, "code": protocol.UNSUPPORTED_LANGUAGE, "message": m}
                                   for t, m in req.skipped.items()]
            reply(body)

    def _dispatch(self) -> None:
        if not self.dispatcher.dispatch(time.monotonic()):
            self.retry_dispatch()

    def _detect_source(self, text: str) -> tuple[str, Detection]:
        """The source of an "auto" request: the detected language, or the configured default
        below the confidence threshold."""
        ranked = self.detector.detect(text) if self.detector is not None else []
        language, confidence = ranked[0] if ranked else ("", 0.0)
        settings = self.settings.languages
        if ranked and confidence >= settings.min_detection_confidence:
            return language, Detection(language, confidence)
        return canonical(settings.default_source), Detection(language, confidence, defaulted=True)

    def _hit_event(self, record: RequestRecord, target: str, hit: Hit) -> Completed:
        value, lookup_ms = hit
        self.cache.count_edge_hit()
        self.metrics.count_translation(value.model, value.source_language, target)
        return events.from_cache(record, target, value, lookup_ms)

    def _estimate_ms(self) -> float:
        ready = max(1, self.pool.count(SlotState.READY))
        per_task = self.metrics.processing_ms_ewma or 100.0
        waves = 1 + self.dispatcher.pending() / (ready * self.settings.workers.max_batch_size)
        return per_task * waves

    # ------------------------------------------------------------------ other request types

    def detect(self, req: protocol.DetectRequest) -> dict:
        if self.detector is None:
            raise RequestError(protocol.NOT_READY, "workers are still loading their models", req.message_id)
        ranked = self.detector.detect(req.text)
        body: dict = {"type": "detection", **_with_id(req.message_id)}
        body["detectedLanguage"] = ranked[0][0] if ranked else None
        body["confidence"] = round(ranked[0][1], 4) if ranked else 0.0
        body["reliable"] = bool(ranked) and ranked[0][1] >= self.settings.languages.min_detection_confidence
        body["languages"] = [{"language": lang, "confidence": round(conf, 4)} for lang, conf in ranked]
        return body

    def ready(self) -> bool:
        return self.lifecycle.is_serving and self.pool.count(SlotState.READY) > 0

    def healthy(self) -> bool:
        return (self.lifecycle.is_serving or self.lifecycle.is_draining) and self.pool.count(
            SlotState.READY, SlotState.BOOTING, SlotState.BACKOFF
        ) > 0

    def ping(self, message_id: str | None) -> dict:
        ready = self.pool.count(SlotState.READY)
        body: dict = {"type": "pong", "status": "ok", "state": self.lifecycle.name}
        body.update(_with_id(message_id))
        body.update(
            ready=self.ready(),
            workers={"ready": ready, "total": len(self.pool.slots)},
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
        d = self.dispatcher
        return {
            "type": "stats",
            "service": self.metrics.service(self.lifecycle.name),
            "cache": self.cache.stats() if self.cache is not None else disabled_stats(),
            "workers": {
                "max_workers": len(self.pool.slots),
                "active_workers": self.pool.count(SlotState.READY),
                "slots": [s.as_json(d.table.assigned_to(s.index)) for s in self.pool.slots],
            },
            "tasks": {
                "in_flight": d.in_flight(),
                "pending": d.pending(),
                "completed": self.metrics.tasks_completed,
                "failed": self.metrics.tasks_failed,
                "redispatched": d.table.redispatched,
                "coalesced": d.coalesced,
                "following": d.table.following,
                "capacity": d.max_units,
                "in_flight_bytes": d.table.held_bytes,
                "bytes_capacity": d.max_bytes,
                "refused_for_bytes": d.refused_for_bytes,
                "recent": len(d.recent),
                "recent_bytes": d.recent_bytes,
            },
            "edge": self.edge_counters(),
        } | ({"compat": self.compat_counters()} if self.compat_counters is not None else {})

    def status_line(self) -> str:
        return (
            f"serving: {self.pool.count(SlotState.READY)}/{len(self.pool.slots)} worker(s) ready, "
            f"{self.dispatcher.in_flight()} task(s) in flight, {self.metrics.tasks_completed} done"
        )


def _with_id(message_id: str | None) -> dict:
    return {"messageId": message_id} if message_id is not None else {}
