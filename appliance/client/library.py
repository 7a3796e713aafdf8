"""The client library: translate through one appliance or several (docs/protocol.md).

    async with Client([("tcp://10.0.0.5:5555", "tcp://10.0.0.5:5556"),
                       ("tcp://10.0.0.6:5555", "tcp://10.0.0.6:5556")]) as client:
        result = await client.translate("Hello!", "fr")              # TranslationResult, or raises
        outcomes = await client.translate_many("Hello!", ["fr", "es"])
        # {"fr": TranslationResult, "es": TranslationResult | TranslationFailure}

    with SyncClient(Endpoint.from_file("/run/meeshy-appliance/endpoints.json")) as client:
        print(client.translate("Hello!", "fr").translated_text)

    request("tcp://127.0.0.1:5555", {"type": "ping"}, timeout=5.0)    # one REQ round trip -> dict

Wire contract, as this client uses it:

    REQ  -> 5555  {"type": "translation", "messageId", "taskId", "text", "sourceLanguage",
                   "targetLanguages": [...], "modelType", "conversationId"?}
         <-       {"status": "queued", "taskId", "targetLanguages", "duplicate"?}  (the ack)
                  | {"status": "error", "error": {"code", "message"}}  (fails every target asked)
    SUB  <- 5556  {"type": "translation_completed", "taskId", "targetLanguage", "result": {...}}
                  {"type": "translation_error", "taskId", "targetLanguage", "error": {...}}
                  under CURVE: two frames, [this client's public key (Z85), json]
                  decoded into the appliance's own event types (ipc/events.py)

A target is done when its event arrives, not at the ack. Events are matched by the client's own
`taskId` (uuid4 hex) and the target language; an event for no pending task (another client's,
or a late duplicate after a retry elsewhere) is ignored.

Design:

- Requests go over a pool of REQ sockets per appliance (`pool_size`, 5), not one pipelining
  DEALER. The appliance answers a translation at once with its ack and reports the work on the
  PUB, so a REQ is held for one quick round trip only: five sustain thousands of requests/s, and
  what bounds the work in flight is the `max_in_flight` semaphore over tasks awaiting their
  events. A REQ's reply is that request's reply whatever it holds (`stats` and `languages`
  replies carry no id a DEALER could match them by), and a lost reply costs one socket, closed
  and reopened (a REQ that missed its reply is stuck), never a stream of late replies to sort
  out. A DEALER connected to several appliances would also hand requests out blindly, dead ones
  included; a pool per appliance lets the client choose.
- One SUB per appliance, subscribed before anything is sent: to `{"type":"translation_` (every
  client's events; the appliance broadcasts) or, under CURVE, to this client's own public key,
  the only subscription a CURVE appliance applies, which brings this client's events only
  (appliance/edge/curve.py, "Events under CURVE"). An
  appliance counts as up only once it answered `ping` as ready and a probe proved its events
  reach this client: a same-language translation (answered by its edge, no worker, no cache)
  whose event must arrive. ZMTP heartbeats on every socket notice a peer gone without a word.
- Every translation call is one task with a fresh `taskId`. Each attempt has `timeout` seconds
  for the ack and every event. When they do not all come, the targets still missing are asked
  again with the same `taskId` (up to `retries` times): the appliance then starts no duplicate
  work, re-publishes what already finished and re-runs what failed. The retry goes to the same
  appliance while it is up (it holds the task), else to another one.
- Several appliances: requests go round-robin over those that are up. One whose request got no
  ack in time, or that misses a ping (every `ping_interval` s, each with `ping_timeout` s), is
  skipped until it answers a ping as ready again and its events are confirmed again. With none
  up, requests go round-robin over all of them (something may still answer).
- An LRU of the last `cache_size` results, keyed by (text, source, target, modelType), answers
  repeats without a request (`from_client_cache`). Failures are never cached.
- CurveZMQ: `server_key` (the appliance's public key: Z85 bytes or its `.key` file) and
  `client_secret_key` (this client's `.key_secret` file) are applied to every socket
  (`ipc.curve_keys.client_options`); an `Endpoint` may name its own `server_key`.

`Client` is asyncio code, uvloop included; `SyncClient` runs one on its own event-loop thread for
plain scripts. The `on_result` hook runs on the client's loop for every outcome a request
produced (results and failures alike, not client-cache hits); a coroutine it returns is
scheduled, an exception it raises is logged.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import itertools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Union

import msgspec
import zmq
import zmq.asyncio
from zmq.utils.monitor import recv_monitor_message

from ipc import curve_keys, events
from ipc.languages import AUTO, canonical
from ipc.sockets import Role, make_socket

log = logging.getLogger("meeshy.client")

EVENT_PREFIX = b'{"type":"translation_'
REQ_HWM = 4  # a REQ holds one request at a time
SUB_HWM = 10_000  # without CURVE, events of every client of the appliance arrive here, not only ours
PROBE_WAIT_S = 0.5  # how long one probe's event is awaited before another probe is sent
# Error replies after which another appliance may serve the request; the first two also mark the
# appliance down until it answers a ping as ready again.
MARK_DOWN = frozenset({"shutting_down", "not_ready"})
TRY_ELSEWHERE = MARK_DOWN | {"overloaded"}


class ClientError(Exception):
    """Base of this module's exceptions."""


class NoAnswer(ClientError):
    """Nothing answered in time, or the appliance refused the handshake (the message says which)."""


class TranslationFailed(ClientError):
    """`Client.translate`'s one target failed; `failure` says how."""

    def __init__(self, failure: TranslationFailure) -> None:
        super().__init__(f"{failure.target_language}: {failure.code}: {failure.message}")
        self.failure = failure


# ----------------------------------------------------------------------------- outcomes


class TranslationResult(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One target's translation: the event's `result` object (docs/protocol.md, "Events on
    5556"; attributes in snake_case, camelCase on the wire), then what the client adds."""

    ok: ClassVar[bool] = True
    translated_text: str
    target_language: str
    source_language: str = ""
    confidence_score: float = 0.0
    processing_time: float = 0.0  # ms: the worker's batch, or the cache lookup
    model_type: str = ""
    translator_model: str = ""
    from_cache: bool = False  # the appliance's cache answered
    worker_id: int | None = None
    segments_count: int = 0
    truncated_segments: list[int] = []
    retried_segments: list[int] = []
    fallback: bool = False
    requested_model_type: str | None = None
    pivot: str | None = None
    detected_language: str | None = None
    detection_confidence: float | None = None
    default_source_used: bool = False
    same_language: bool = False
    message_id: str = ""
    # filled in by the client
    task_id: str = ""
    conversation_id: str | None = None
    endpoint: str = ""  # the requests endpoint of the appliance whose event this is
    attempts: int = 0  # requests sent for this task when it completed (more than 1: retried)
    from_client_cache: bool = False  # answered by this client's LRU, without a request


class TranslationFailure(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One target that failed: the appliance's error event or error reply, or the client's own
    `no_answer` (no appliance acknowledged), `client_timeout` (acknowledged, no event in time),
    `client_closed` or `bad_event` (an event this client could not read)."""

    ok: ClassVar[bool] = False
    target_language: str
    code: str
    message: str
    task_id: str = ""
    endpoint: str = ""
    attempts: int = 0


Outcome = Union[TranslationResult, TranslationFailure]


class _ErrorBody(msgspec.Struct):
    code: str = "unknown"
    message: str = ""


def _unset(value: Any, default: Any) -> Any:
    return default if value is events.UNSET else value


def _result_of(event: events.Completed, **client: Any) -> TranslationResult:
    """The event's typed result (ipc/events.py, the appliance's own type) as this client's
    TranslationResult, with what the client adds (`client`)."""
    r = event.result
    return TranslationResult(
        translated_text=r.translated_text, target_language=r.target_language, source_language=r.source_language,
        confidence_score=r.confidence_score, processing_time=r.processing_time, model_type=r.model_type,
        translator_model=r.translator_model, from_cache=r.from_cache, worker_id=r.worker_id,
        segments_count=r.segments_count, truncated_segments=_unset(r.truncated_segments, []),
        retried_segments=_unset(r.retried_segments, []), fallback=_unset(r.fallback, False),
        requested_model_type=_unset(r.requested_model_type, None), pivot=_unset(r.pivot, None),
        detected_language=_unset(r.detected_language, None),
        detection_confidence=_unset(r.detection_confidence, None),
        default_source_used=_unset(r.default_source_used, False), same_language=_unset(r.same_language, False),
        message_id=r.message_id, conversation_id=_unset(event.conversation_id, None), **client,
    )


_json = msgspec.json.Encoder()


def sync_outcomes(reply: Mapping) -> dict[str, Outcome]:
    """The outcomes in a synchronous-mode reply (`"sync": true`), per target as the appliance
    spells it; an error reply gives nothing (read its `error`)."""
    task_id = str(reply.get("taskId", ""))
    out: dict[str, Outcome] = {}
    for result in reply.get("results") or []:
        r = msgspec.convert(result, TranslationResult)
        out[r.target_language] = msgspec.structs.replace(r, task_id=task_id, attempts=1)
    for error in reply.get("errors") or []:
        e = msgspec.convert(error.get("error") or {}, _ErrorBody)
        target = str(error.get("targetLanguage", ""))
        out[target] = TranslationFailure(target_language=target, code=e.code, message=e.message, task_id=task_id,
                                         attempts=1)
    return out


# ----------------------------------------------------------------------------- endpoints


@dataclass(frozen=True)
class Endpoint:
    """One appliance: its requests (5555) and events (5556) endpoints, and its server key when it
    differs from the client's `server_key`."""

    requests: str
    events: str
    server_key: bytes | str | os.PathLike | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Endpoint:
        """From an appliance's `<run_dir>/endpoints.json`."""
        info = json.loads(Path(path).read_text())
        return cls(info["requests"], info["events"])

    @classmethod
    def parse(cls, spec: Any) -> Endpoint:
        """An Endpoint; a (requests, events) pair; a {"requests", "events"} mapping; or the path
        of an endpoints.json file."""
        if isinstance(spec, Endpoint):
            return spec
        if isinstance(spec, Mapping):
            return cls(spec["requests"], spec["events"], spec.get("server_key"))
        if _is_pair(spec):
            return cls(spec[0], spec[1])
        if isinstance(spec, (str, os.PathLike)) and "://" not in str(spec):
            return cls.from_file(spec)
        raise ValueError(
            f"an appliance is a (requests, events) pair such as ('tcp://host:5555', 'tcp://host:5556'), "
            f"a mapping with those keys, or an endpoints.json path; got {spec!r}"
        )


def _is_pair(spec: Any) -> bool:
    return isinstance(spec, (tuple, list)) and len(spec) == 2 and all(isinstance(s, str) and "://" in s for s in spec)


def _endpoints(spec: Any) -> list[Endpoint]:
    single = isinstance(spec, (Endpoint, Mapping, str, os.PathLike)) or _is_pair(spec)
    endpoints = [Endpoint.parse(spec)] if single else [Endpoint.parse(s) for s in spec]
    if not endpoints:
        raise ValueError("no appliance endpoints given")
    return endpoints


# ----------------------------------------------------------------------------- one-shot request


_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)
_MECHANISM_MISMATCH = 0x11000002  # ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH


def request(
    endpoint: str,
    body: dict | bytes,
    timeout: float,
    keys: tuple[bytes | str | os.PathLike, str | os.PathLike] | None = None,
    *,
    ctx: zmq.Context | None = None,
) -> dict:
    """One REQ round trip on a fresh socket: `body` (a dict, or bytes sent as they are) to
    `endpoint`, the decoded reply back. `keys` = (server public key, client secret key file) for
    CURVE. `ctx`: a plain zmq.Context to make the socket in (default: a private one).

    Raises NoAnswer when nothing answered within `timeout`, at once when the appliance refused
    this client's key. A monitor watches the handshake only to explain a silence: libzmq retries
    a failed handshake quietly.
    """
    if isinstance(ctx, zmq.asyncio.Context):
        raise TypeError("request() blocks: give it a plain zmq.Context (an asyncio Client has call())")
    own = ctx is None
    context = zmq.Context() if own else ctx
    monitor: zmq.Socket | None = None

    def configure(sock: zmq.Socket) -> None:
        nonlocal monitor
        if keys:
            curve_keys.client_options(sock, *keys)
        monitor = sock.get_monitor_socket(_HANDSHAKE_FAILED)  # before connect: no event missed
        monitor.setsockopt(zmq.LINGER, 0)

    try:
        sock = make_socket(context, Role.CLIENT, endpoint, hwm=REQ_HWM, linger_ms=0, configure=configure)
    except BaseException:
        if monitor is not None:
            monitor.close(linger=0)
        if own:
            context.destroy(linger=0)
        raise
    assert monitor is not None
    try:
        sock.send(body if isinstance(body, bytes) else _json.encode(body))
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        end = time.monotonic() + timeout
        failures: list[dict] = []
        while (left := end - time.monotonic()) > 0:
            ready = dict(poller.poll(int(left * 1000) + 1))
            if sock in ready:
                return _reply(sock.recv())
            if monitor in ready:
                event = recv_monitor_message(monitor)
                if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                    raise NoAnswer(
                        f"{endpoint} refused this client's key (ZAP status {event['value']}): its public .key "
                        "must be in the appliance's security.client_keys_dir"
                    )
                failures.append(event)
        hint = handshake_hint(failures, curve_on=bool(keys))
        raise NoAnswer(f"no answer from {endpoint} within {timeout:g}s" + (f" ({hint})" if hint else ""))
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)
        if own:
            context.term()


def handshake_hint(failures: list[dict], curve_on: bool) -> str:
    """Why the handshakes failed, best guess. Which side notices a CURVE/NULL mismatch first
    varies: the other side then just sees the connection close."""
    if not failures:
        return ""
    if any(e["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and e["value"] == _MECHANISM_MISMATCH for e in failures):
        if curve_on:
            return "this endpoint does not use CURVE: drop --server-key and --client-key"
        return "the appliance requires CURVE: pass --server-key and --client-key"
    if curve_on:
        return "the CURVE handshake failed: is --server-key this appliance's public key?"
    return "the handshake failed: does the appliance require CURVE (--server-key, --client-key)?"


def _reply(raw: bytes) -> dict:
    try:
        answer = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        answer = None
    if not isinstance(answer, dict):
        return {"status": "error", "error": {"code": "bad_reply", "message": f"not a JSON object: {raw[:200]!r}"}}
    return answer


# ----------------------------------------------------------------------------- the client


class _Appliance:
    """One appliance as the client sees it: its REQ pool, its SUB, whether it is up."""

    def __init__(self, endpoint: Endpoint, keys: tuple | None, pool_size: int) -> None:
        self.endpoint = endpoint
        self.name = endpoint.requests
        self.keys = keys
        self.slots = asyncio.Semaphore(pool_size)
        self.idle: list[zmq.asyncio.Socket] = []
        self.sub: zmq.asyncio.Socket | None = None
        self.up = False
        self.reason = "not checked yet"
        self.language: str | None = None  # one it serves, for probes
        self.requests = 0  # translation requests sent to it
        self.timeouts = 0  # of those, unanswered
        self.events = 0  # events read from it
        self.tasks: list[asyncio.Task] = []

    def state(self) -> dict:
        return {"requests": self.endpoint.requests, "events": self.endpoint.events, "up": self.up,
                "reason": "" if self.up else self.reason, "sent": self.requests, "timeouts": self.timeouts,
                "eventsReceived": self.events}


class _Task:
    """One translation request awaiting its events: a future per target (the client's spelling
    after `canonical`), and the appliance's spellings of them (`alias`), from its ack."""

    __slots__ = ("task_id", "key", "waiting", "alias", "attempts", "started")

    def __init__(self, task_id: str, key: tuple, targets: list[str], loop: asyncio.AbstractEventLoop) -> None:
        self.task_id = task_id
        self.key = key  # (text, source, model_type): the cache key without the target
        self.waiting: dict[str, asyncio.Future] = {t: loop.create_future() for t in targets}
        self.alias: dict[str, str] = {}
        self.attempts = 0
        self.started = time.monotonic()


class Client:
    """An asyncio client of one or several appliances (see the module docstring).

    `endpoints`: one appliance or a list (each an `Endpoint`, a (requests, events) pair, a mapping
    with those keys, or an endpoints.json path). `timeout`: seconds per attempt (ack and events);
    `retries`: further attempts with the same taskId; `max_in_flight`: tasks awaiting events at
    once (more wait); `pool_size`: REQ sockets per appliance; `cache_size`: results kept (0: no
    cache); `ping_interval`/`ping_timeout`: the health check of every appliance.
    """

    def __init__(
        self,
        endpoints: Any,
        *,
        server_key: bytes | str | os.PathLike | None = None,
        client_secret_key: str | os.PathLike | None = None,
        timeout: float = 30.0,
        retries: int = 2,
        max_in_flight: int = 100,
        pool_size: int = 5,
        cache_size: int = 1000,
        ping_interval: float = 2.0,
        ping_timeout: float = 3.0,
        on_result: Callable[[Outcome], Any] | None = None,
    ) -> None:
        if (server_key is None) != (client_secret_key is None):
            raise ValueError("server_key and client_secret_key go together (CurveZMQ needs both)")
        if timeout <= 0 or ping_interval <= 0 or ping_timeout <= 0:
            raise ValueError("timeout, ping_interval and ping_timeout must be positive")
        if retries < 0 or max_in_flight < 1 or pool_size < 1 or cache_size < 0:
            raise ValueError("retries >= 0, max_in_flight >= 1, pool_size >= 1, cache_size >= 0")
        self.timeout = timeout
        self.retries = retries
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.on_result = on_result
        self._apps: list[_Appliance] = []
        for ep in _endpoints(endpoints):
            keys = None
            if client_secret_key is not None:
                keys = (ep.server_key if ep.server_key is not None else server_key, client_secret_key)
            elif ep.server_key is not None:
                raise ValueError(f"{ep.requests} names a server_key: give the client_secret_key too")
            self._apps.append(_Appliance(ep, keys, pool_size))
        # Under CURVE the SUB subscribes to this client's own key: the appliance applies no other.
        self._topic = curve_keys.client_topic(client_secret_key) if client_secret_key is not None else EVENT_PREFIX
        self._ctx: zmq.asyncio.Context | None = None
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._any_up = asyncio.Event()
        self._start_lock = asyncio.Lock()
        self._started = self._closed = False
        self._turn = itertools.count()
        self._pending: dict[str, _Task] = {}
        self._probes: dict[str, asyncio.Future] = {}
        self._cache: collections.OrderedDict[tuple, TranslationResult] = collections.OrderedDict()
        self._cache_size = cache_size
        self._hook_tasks: set[asyncio.Task] = set()
        self._counts = collections.Counter()
        self._processing_ms = 0.0
        self._latency_ms = 0.0
        self._bad_event_logged = False

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def start(self, timeout: float | None = None) -> None:
        """Subscribe to every appliance, then wait (up to `timeout`, default the request
        timeout) until one is up: it answered `ping` as ready and its events reach us. The others
        are checked in the background. Raises NoAnswer when none came up in time."""
        async with self._start_lock:
            if self._closed:
                raise ClientError("this client is closed")
            if self._started:
                return
            self._ctx = zmq.asyncio.Context()
            try:
                for app in self._apps:
                    app.sub = self._socket(app, Role.SUBSCRIBER, app.endpoint.events, SUB_HWM)
                for app in self._apps:
                    app.tasks = [asyncio.create_task(self._read_events(app)), asyncio.create_task(self._watch(app))]
                self._started = True
                wait = self.timeout if timeout is None else timeout
                try:
                    await asyncio.wait_for(self._any_up.wait(), wait)
                except TimeoutError:
                    reasons = "; ".join(f"{a.name}: {a.reason}" for a in self._apps)
                    raise NoAnswer(f"no appliance came up within {wait:g}s ({reasons})") from None
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        """Stop the background tasks, settle what is pending as `client_closed`, close every
        socket. Idempotent."""
        if self._closed:
            return
        self._closed = True
        tasks = [t for app in self._apps for t in app.tasks] + list(self._hook_tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in list(self._pending.values()):
            for target in list(task.waiting):
                self._settle(task, target, self._failure(task, target, "client_closed", "the client was closed", ""))
        for probe in self._probes.values():
            probe.cancel()
        for app in self._apps:
            for sock in app.idle:
                sock.close(linger=0)
            app.idle.clear()
            if app.sub is not None:
                app.sub.close(linger=0)
        if self._ctx is not None:
            self._ctx.destroy(linger=0)

    def _socket(self, app: _Appliance, role: Role, endpoint: str, hwm: int) -> zmq.asyncio.Socket:
        heartbeat_ms = max(1000, int(self.ping_interval * 1000))

        def configure(sock: zmq.Socket) -> None:
            if app.keys is not None:
                curve_keys.client_options(sock, *app.keys)
            # A peer gone without a word (host down, cable cut) is noticed, and reconnected to.
            sock.setsockopt(zmq.HEARTBEAT_IVL, heartbeat_ms)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * heartbeat_ms)
            if role is Role.SUBSCRIBER:
                sock.setsockopt(zmq.UNSUBSCRIBE, b"")
                sock.setsockopt(zmq.SUBSCRIBE, self._topic)

        assert self._ctx is not None
        return make_socket(self._ctx, role, endpoint, hwm=hwm, linger_ms=0, configure=configure)

    # ------------------------------------------------------------------ translation

    async def translate(
        self,
        text: str,
        target: str,
        *,
        source: str = AUTO,
        model_type: str = AUTO,
        conversation_id: str | None = None,
        message_id: str | None = None,
    ) -> TranslationResult:
        """`text` in `target`; raises TranslationFailed when that target failed."""
        outcomes = await self.translate_many(
            text, [target], source=source, model_type=model_type, conversation_id=conversation_id, message_id=message_id
        )
        outcome = outcomes[target]
        if isinstance(outcome, TranslationFailure):
            raise TranslationFailed(outcome)
        return outcome

    async def translate_many(
        self,
        text: str,
        targets: Iterable[str],
        *,
        source: str = AUTO,
        model_type: str = AUTO,
        conversation_id: str | None = None,
        message_id: str | None = None,
    ) -> dict[str, Outcome]:
        """`text` in every target: one outcome per target as given, each settled on its own (a
        failure is a TranslationFailure value, never an exception). Targets that fold onto one
        code (`fr`, `fr-FR`) are asked once and share the outcome."""
        if self._closed:
            raise ClientError("this client is closed")
        if isinstance(targets, str):
            raise TypeError("targets is a list of language codes (translate() takes one)")
        if not self._started:
            await self.start()
        targets = list(dict.fromkeys(targets))
        self._counts["totalRequests"] += 1
        src = canonical(source) or AUTO
        spellings: dict[str, list[str]] = {}
        for t in targets:
            spellings.setdefault(canonical(t), []).append(t)
        out: dict[str, Outcome] = {}
        ask = []
        for code, given in spellings.items():
            hit = self._cache_get((text, src, code, model_type))
            if hit is None:
                self._counts["cacheMisses"] += 1
                ask.append(code)
                continue
            self._counts["cacheHits"] += 1
            for t in given:
                out[t] = hit
        if ask:
            body = {"type": "translation", "text": text, "sourceLanguage": source, "modelType": model_type}
            if conversation_id is not None:
                body["conversationId"] = conversation_id
            outcomes = await self._run_task(body, message_id, (text, src, model_type), ask)
            for code, outcome in outcomes.items():
                for t in spellings[code]:
                    out[t] = outcome
        return {t: out[t] for t in targets}

    async def _run_task(self, body: dict, message_id: str | None, key: tuple, targets: list[str]) -> dict[str, Outcome]:
        loop = asyncio.get_running_loop()
        async with self._in_flight:
            task_id = uuid.uuid4().hex
            body["messageId"] = message_id or task_id
            body["taskId"] = task_id
            task = _Task(task_id, key, targets, loop)
            self._pending[task_id] = task
            try:
                if not self._closed:
                    await self._attempts(task, body)
            except (zmq.ZMQError, asyncio.CancelledError):
                # close() cancels what its sockets were waiting for: that is not our caller's
                # cancellation, which goes on up.
                current = asyncio.current_task()
                if not self._closed or (current is not None and current.cancelling()):
                    raise
            finally:
                if self._closed:
                    for target in self._missing(task):
                        self._settle(task, target, self._failure(task, target, "client_closed", "the client was closed", ""))
                self._pending.pop(task_id, None)
            return {t: f.result() for t, f in task.waiting.items()}

    async def _attempts(self, task: _Task, body: dict) -> None:
        loop = asyncio.get_running_loop()
        prefer: _Appliance | None = None
        acked_by: _Appliance | None = None
        for attempt in range(self.retries + 1):
            missing = self._missing(task)
            if not missing:
                return
            app = self._pick(prefer)
            task.attempts = attempt + 1
            body["targetLanguages"] = missing
            self._counts["zmqRequests"] += 1
            self._counts["retries"] += attempt > 0
            app.requests += 1
            deadline = loop.time() + self.timeout
            reply = await self._roundtrip(app, _json.encode(body), self.timeout)
            if reply is None:
                app.timeouts += 1
                self._counts["timeouts"] += 1
                self._mark_down(app, f"no reply to a request within {self.timeout:g}s")
                prefer = None
                continue
            if reply.get("status") == "error":
                error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
                code, message = str(error.get("code", "unknown")), str(error.get("message", ""))
                if code in MARK_DOWN:
                    self._mark_down(app, f"answered {code}")
                if code in TRY_ELSEWHERE and attempt < self.retries and any(a.up and a is not app for a in self._apps):
                    prefer = None
                    continue
                for target in missing:
                    self._settle(task, target, self._failure(task, target, code, message, app.name))
                return
            acked_by = prefer = app
            theirs = reply.get("targetLanguages")
            if isinstance(theirs, list) and len(theirs) == len(missing):
                task.alias.update({str(t): m for t, m in zip(theirs, missing) if t != m})
            futures = [task.waiting[t] for t in missing]
            await asyncio.wait(futures, timeout=max(0.0, deadline - loop.time()))
            if any(not f.done() for f in futures):
                self._counts["timeouts"] += 1
        for target in self._missing(task):
            if acked_by is None:
                code, message = "no_answer", f"no appliance answered within {self.timeout:g}s ({task.attempts} attempt(s))"
            else:
                code = "client_timeout"
                message = f"accepted, but no event within {self.timeout:g}s ({task.attempts} attempt(s))"
            self._settle(task, target, self._failure(task, target, code, message, acked_by.name if acked_by else ""))

    @staticmethod
    def _missing(task: _Task) -> list[str]:
        return [t for t, f in task.waiting.items() if not f.done()]

    def _failure(self, task: _Task, target: str, code: str, message: str, endpoint: str) -> TranslationFailure:
        return TranslationFailure(target_language=target, code=code, message=message, task_id=task.task_id,
                                  endpoint=endpoint, attempts=task.attempts)

    def _pick(self, prefer: _Appliance | None) -> _Appliance:
        if prefer is not None and prefer.up:
            return prefer
        candidates = [a for a in self._apps if a.up] or self._apps
        return candidates[next(self._turn) % len(candidates)]

    def _settle(self, task: _Task, target: str, outcome: Outcome) -> None:
        future = task.waiting[target]
        if future.done():
            return
        future.set_result(outcome)
        if isinstance(outcome, TranslationResult):
            self._counts["results"] += 1
            self._processing_ms += outcome.processing_time
            self._latency_ms += (time.monotonic() - task.started) * 1000.0
            self._cache_put((task.key[0], task.key[1], target, task.key[2]), outcome)
        else:
            self._counts["failures"] += 1
        if self.on_result is not None:
            try:
                ret = self.on_result(outcome)
                if inspect.isawaitable(ret):
                    hook = asyncio.ensure_future(ret)
                    self._hook_tasks.add(hook)
                    hook.add_done_callback(self._hook_done)
            except Exception:
                log.exception("the on_result hook raised")

    def _hook_done(self, hook: asyncio.Future) -> None:
        self._hook_tasks.discard(hook)
        if not hook.cancelled() and hook.exception() is not None:
            log.error("the on_result hook raised", exc_info=hook.exception())

    # ------------------------------------------------------------------ cache

    def _cache_get(self, key: tuple) -> TranslationResult | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        self._cache.move_to_end(key)
        return msgspec.structs.replace(hit, from_client_cache=True)

    def _cache_put(self, key: tuple, result: TranslationResult) -> None:
        if self._cache_size == 0:
            return
        self._cache[key] = result
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    # ------------------------------------------------------------------ events

    async def _read_events(self, app: _Appliance) -> None:
        assert app.sub is not None
        while True:
            raw = (await app.sub.recv_multipart())[-1]  # under CURVE, [topic, json]
            try:
                self._on_event(app, raw)
            except Exception:
                log.exception("could not handle an event from %s", app.name)

    def _on_event(self, app: _Appliance, raw: bytes) -> None:
        app.events += 1
        try:
            event = events.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            self._on_bad_event(app, raw, exc)
            return
        probe = self._probes.get(event.task_id)
        if probe is not None:
            if not probe.done():
                probe.set_result(True)
            return
        task = self._pending.get(event.task_id)
        if task is None:
            return  # another client's, or a late one of a task already settled
        target = task.alias.get(event.target_language, event.target_language)
        if target not in task.waiting or task.waiting[target].done():
            return  # a finished target re-published by a retry
        if isinstance(event, events.Completed):
            outcome: Outcome = _result_of(event, task_id=task.task_id, endpoint=app.name, attempts=task.attempts)
        else:
            outcome = self._failure(task, target, event.error.code, event.error.message, app.name)
        self._settle(task, target, outcome)

    def _on_bad_event(self, app: _Appliance, raw: bytes, exc: Exception) -> None:
        """An event this client cannot read fails its target at once, if it is ours, rather than
        letting it time out."""
        if not self._bad_event_logged:
            self._bad_event_logged = True
            log.warning("unreadable event from %s (%s): %r", app.name, exc, raw[:300])
        try:
            loose = msgspec.json.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            return
        if not isinstance(loose, dict):
            return
        task = self._pending.get(str(loose.get("taskId")))
        if task is None:
            return
        target = task.alias.get(str(loose.get("targetLanguage")), str(loose.get("targetLanguage")))
        if target in task.waiting:
            self._settle(task, target, self._failure(task, target, "bad_event", f"unreadable event: {exc}", app.name))

    # ------------------------------------------------------------------ health

    async def _roundtrip(self, app: _Appliance, body: bytes, timeout: float) -> dict | None:
        """One request on one of `app`'s REQ sockets; None when no reply came within `timeout`
        (waiting for a free socket included). A socket whose request got no reply is closed: a
        REQ that missed its reply is stuck."""
        try:
            async with asyncio.timeout(timeout):
                async with app.slots:
                    sock = app.idle.pop() if app.idle else self._socket(app, Role.CLIENT, app.endpoint.requests, REQ_HWM)
                    done = False
                    try:
                        await sock.send(body)
                        raw = await sock.recv()
                        done = True
                    finally:
                        if done and not self._closed:
                            app.idle.append(sock)
                        else:
                            sock.close(linger=0)
        except TimeoutError:
            return None
        return _reply(raw)

    async def _watch(self, app: _Appliance) -> None:
        """Every `ping_interval`: ping an appliance that is up; re-check one that is down."""
        while True:
            try:
                if app.up:
                    pong = await self._roundtrip(app, b'{"type":"ping"}', self.ping_timeout)
                    if pong is None:
                        self._mark_down(app, f"no answer to a ping within {self.ping_timeout:g}s")
                    elif not pong.get("ready"):
                        self._mark_down(app, f"not ready (state {pong.get('state')!r})")
                elif await self._confirm(app):
                    self._mark_up(app)
            except Exception as exc:  # a bug or a socket error: keep watching, skip it meanwhile
                log.exception("checking appliance %s failed", app.name)
                self._mark_down(app, f"checking it failed: {type(exc).__name__}: {exc}")
            await asyncio.sleep(self.ping_interval)

    async def _confirm(self, app: _Appliance) -> bool:
        """Whether `app` answers a ping as ready and a probe's event reaches our SUB."""
        loop = asyncio.get_running_loop()
        pong = await self._roundtrip(app, b'{"type":"ping"}', self.ping_timeout)
        if pong is None:
            app.reason = f"no answer to a ping within {self.ping_timeout:g}s"
            return False
        if not pong.get("ready"):
            app.reason = f"not ready (state {pong.get('state')!r})"
            return False
        deadline = loop.time() + self.timeout
        if app.language is None:
            langs = await self._roundtrip(app, b'{"type":"languages"}', self.timeout)
            app.language = _a_served_language(langs)
            if app.language is None:
                app.reason = f"no served language in its languages reply: {str(langs)[:200]}"
                return False
        while (left := deadline - loop.time()) > 0:
            probe_id = f"probe-{uuid.uuid4().hex}"
            arrived = self._probes[probe_id] = loop.create_future()
            try:
                # Source = target: answered by the appliance's edge, no worker, no cache.
                body = {"type": "translation", "messageId": probe_id, "taskId": probe_id, "text": "probe",
                        "sourceLanguage": app.language, "targetLanguage": app.language}
                reply = await self._roundtrip(app, _json.encode(body), left)
                if reply is None or reply.get("status") == "error":
                    app.reason = f"the subscription probe got {reply and reply.get('error')!r}"
                    app.language = None  # ask again next time: it may have restarted with other models
                    return False
                try:
                    await asyncio.wait_for(arrived, min(PROBE_WAIT_S, max(0.0, deadline - loop.time())))
                    return True
                except TimeoutError:
                    continue
            finally:
                self._probes.pop(probe_id, None)
        app.reason = f"no probe event arrived within {self.timeout:g}s"
        return False

    def _mark_up(self, app: _Appliance) -> None:
        if not app.up:
            log.info("appliance %s is up", app.name)
        app.up = True
        app.reason = ""
        self._any_up.set()

    def _mark_down(self, app: _Appliance, reason: str) -> None:
        if app.up:
            log.warning("appliance %s skipped: %s", app.name, reason)
        app.up = False
        app.reason = reason
        if not any(a.up for a in self._apps):
            self._any_up.clear()

    # ------------------------------------------------------------------ other requests

    async def call(self, body: dict, *, endpoint: str | None = None, timeout: float | None = None) -> dict:
        """One request (`ping`, `stats`, `languages`, `detect`, ...) to the appliance whose
        requests endpoint is `endpoint`, else to the next one up; its reply. Raises NoAnswer."""
        if not self._started:
            await self.start()
        if endpoint is None:
            app = self._pick(None)
        else:
            app = next((a for a in self._apps if a.name == endpoint), None)
            if app is None:
                raise ValueError(f"{endpoint} is not one of this client's appliances")
        wait = self.timeout if timeout is None else timeout
        reply = await self._roundtrip(app, _json.encode(body), wait)
        if reply is None:
            raise NoAnswer(f"no answer from {app.name} within {wait:g}s")
        return reply

    async def ping(self, endpoint: str | None = None) -> dict:
        return await self.call({"type": "ping"}, endpoint=endpoint)

    async def languages(self, endpoint: str | None = None) -> dict:
        return await self.call({"type": "languages"}, endpoint=endpoint)

    async def appliance_stats(self, endpoint: str | None = None) -> dict:
        """The appliance's own metrics document (the `stats` request)."""
        return await self.call({"type": "stats"}, endpoint=endpoint)

    def stats(self) -> dict:
        """This client's counters. `totalRequests`: translate/translate_many calls; `cacheHits`,
        `cacheMisses`: targets answered by the client's LRU or not; `zmqRequests`: translation
        requests sent (retries included; pings and probes not); `avgProcessingTime`: mean of the
        results' `processingTime` (the appliance's ms); `avgLatency`: mean ms from the task's
        first send to its result; `pendingTasks`: tasks awaiting events; `appliances`: each one's
        state."""
        c = self._counts
        results = c["results"]
        return {
            "totalRequests": c["totalRequests"],
            "cacheHits": c["cacheHits"],
            "cacheMisses": c["cacheMisses"],
            "zmqRequests": c["zmqRequests"],
            "avgProcessingTime": self._processing_ms / results if results else 0.0,
            "pendingTasks": len(self._pending),
            "avgLatency": self._latency_ms / results if results else 0.0,
            "results": results,
            "failures": c["failures"],
            "retries": c["retries"],
            "timeouts": c["timeouts"],
            "cacheSize": len(self._cache),
            "appliances": [a.state() for a in self._apps],
        }


def _a_served_language(langs: dict | None) -> str | None:
    if not langs:
        return None
    for pairs in (langs.get("languages") or {}).values():
        for pair in pairs or []:
            if pair:
                return str(pair[0])
    return None


# ----------------------------------------------------------------------------- synchronous wrapper


class SyncClient:
    """A `Client` on its own event-loop thread (uvloop when installed), for plain scripts and
    tests: the same options, blocking methods. Safe to call from several threads; never from the
    client's own thread (an `on_result` hook), which would wait for itself."""

    def __init__(self, endpoints: Any, *, start_timeout: float | None = None, **options: Any) -> None:
        try:
            import uvloop

            self._loop = uvloop.new_event_loop()
        except ImportError:
            self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="meeshy-client", daemon=True)
        self._thread.start()
        self._closed = False
        try:
            self._client: Client = self._call(self._make(endpoints, options))
            self._call(self._client.start(start_timeout))
        except BaseException:
            self._stop_loop()
            raise

    @staticmethod
    async def _make(endpoints: Any, options: dict) -> Client:
        return Client(endpoints, **options)

    def _call(self, coro, timeout: float | None = None):
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("SyncClient called from its own loop thread (an on_result hook?): use its async Client")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def client(self) -> Client:
        """The asyncio client underneath (its coroutines run on this wrapper's loop only)."""
        return self._client

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def translate(self, text: str, target: str, **kw: Any) -> TranslationResult:
        return self._call(self._client.translate(text, target, **kw))

    def translate_many(self, text: str, targets: Iterable[str], **kw: Any) -> dict[str, Outcome]:
        return self._call(self._client.translate_many(text, targets, **kw))

    def call(self, body: dict, **kw: Any) -> dict:
        return self._call(self._client.call(body, **kw))

    def ping(self, endpoint: str | None = None) -> dict:
        return self._call(self._client.ping(endpoint))

    def languages(self, endpoint: str | None = None) -> dict:
        return self._call(self._client.languages(endpoint))

    def appliance_stats(self, endpoint: str | None = None) -> dict:
        return self._call(self._client.appliance_stats(endpoint))

    def stats(self) -> dict:
        return self._call(self._stats())

    async def _stats(self) -> dict:
        return self._client.stats()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._call(self._client.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
