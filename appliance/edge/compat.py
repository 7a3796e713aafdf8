"""Drop-in mode for Meeshy's gateway: its PUSH/SUB protocol, served on two ports of its own.

Wire contract (Meeshy's gateway's, not ours; docs/operations.md, "Meeshy's gateway"):

    gateway PUSH ──tcp compat.meeshy_pull_port──▶ PULL  [json, *binary frames]; no replies exist
    gateway SUB  ◀──tcp compat.meeshy_pub_port─── PUB   one JSON frame per event, gateway-shaped

    request (type)                      what the gateway gets on its SUB
    translation                         translation_completed / translation_error, per target
    ping                                pong (also unprompted, every pong_interval_s)
    story_text_object_translation       story_text_object_translation_completed, per target
    audio_process, audio_*              audio_process_error       (no audio pipeline here)
    transcription_only, transcription_* transcription_error
    voice_profile_analyze|verify|compare voice_profile_error
    other voice_*                       voice_api_error
    unreadable JSON                     the error event of the type it seems to be, when a taskId
                                        or messageId can be read; else only a log line

A translation becomes a native request (docs/protocol.md) and goes through
`RequestService.respond`: the same validation, limits, tiers, cache and taskId deduplication as
on 5555, texts up to [compat] max_text_chars. Its immediate reply has nowhere to go (PUSH has no
reply channel); an error reply (the request refused whole) becomes one `translation_error`
(`overloaded` as "translation pool full", which the gateway counts as an overload rejection).

What the gateway's client does with events decides the rest (docs/operations.md, "Retries,
languages and pace"): it reads one event per 100 ms tick, re-pushes the missing languages after
30 s (4 times), and a `translation_error` fails its whole message and feeds its circuit breaker.

    Retries     a re-push of a (taskId, content) gets nothing for a language whose event was
                sent within retry_window_s or that still runs; the rest (failed, or dropped
                before it went out) goes to the service, which runs it again or re-sends its
                recorded result
    Per language  the service leaves out a target no model serves (`each_target`) and names it
                in its reply: answered with a translation_completed whose result.messageId is
                "unserved:<messageId>" (settled, no failure counted, stored by no gateway
                pipeline); a target that fails is not published (the gateway's re-push reruns
                it); a story gets one event with every language that succeeded
    Pace        the PUB is an XPUB with ZMQ_XPUB_NODROP: an event a pipe cannot take waits in
                the outbox (bounded by event_buffer_bytes; past it dropped and counted); a new
                translation whose events the gateways (counted from their subscriptions, each
                reading gateway_read_rate events/s) would read later than max_delivery_delay_s
                is refused at once with "translation pool full"

Events: the dispatcher publishes every outcome through `CompatFront.publish` (the supervisor
wires it in place of the native PUB), as its typed value (ipc/events.py) and its JSON; a compat
task's event is mapped from the value, never decoded again. The gateway de-duplicates on taskId + targetLanguage, so
the first event of a target must already be in its shape (`processingTime` in seconds); a
compat task's events therefore go to the compat PUB only, converted, and never to 5556. Which
tasks are compat tasks: those in the compat scope (`SCOPE`): every gateway request is made in
it, so its taskIds are a namespace of their own (appliance/core/dispatcher.py, "Scopes"): a gateway
request naming a native task's taskId is another task, and no native event ever reaches the
gateway nor a compat event 5556. Within the scope, every compat request marks its taskId with
the targets it names (in the gateway's own spelling, echoed back); each event published for the
task settles one target, and the mark goes with the last one. A retry arrives through compat too
and marks the taskId again before the service re-sends what it needs, so those events find the
gateway as well. The marks are bounded in count (oldest dropped, with a log line; an event of a
forgotten task is dropped and counted, and the gateway's retry marks it again), and so is the
memory of what was sent (MAX_REMEMBERED_TASKS).

Bytes in, bounded before anything is parsed or queued: the pull port is served by
appliance/edge/zmtp_pull.py, the appliance's own ZMTP 3 reader (a libzmq PULL holds every frame of a
multipart message until the last arrives, and can bound neither frames per message nor bytes per
connection). It keeps only the first (JSON) frame's first limits.max_request_bytes bytes; binary
frames are counted and discarded as they stream. Then, per message, on sizes alone:

    more than max_frames_per_message frames, a binary frame over max_frame_bytes,
    or binary frames over max_message_bytes in all            dropped whole, one log line
    a JSON frame over limits.max_request_bytes                 never decoded: answered from the ids
                                                               readable in its kept prefix, like
                                                               unreadable JSON (invalid_request)
    else                                                       decoded and handled

The connection survives all of these: only a peer that breaks ZMTP itself is disconnected. At
most max_connections connections; each holds at most connection_buffer_bytes read ahead of what
was handled, then stops being read (its PUSH blocks, as at a libzmq high-water mark). The
gateway has no CurveZMQ: these ports are never secured.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import socket
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import msgspec
import zmq

from appliance.core import protocol
from appliance.core.ports import Service
from appliance.config import Settings
from ipc.events import Completed, Event
from ipc.languages import canonical
from appliance.edge.zmtp_pull import Message, ZmtpPullServer
from ipc.tiers import MODEL_TYPES

log = logging.getLogger("meeshy.compat")

POOL_FULL = "translation pool full"  # the string the gateway counts as an overload rejection
UNSUPPORTED = "unsupported_request"
VOICE_PROFILE_TYPES = frozenset({"voice_profile_analyze", "voice_profile_verify", "voice_profile_compare"})
GATEWAY_MODEL_TYPES = ("basic", "medium", "premium")  # what the gateway sends and stores
DEFAULT_MODEL_TYPE = "basic"  # the gateway's own fallback; reported for answers no tier made
SCOPE = "compat"  # the gateway's taskId scope: no native scope ("" or a CURVE client's) is spelled so
UNSERVED_PREFIX = "unserved:"  # result.messageId of a language no model serves (module docstring)
WHOLE_TASK = ""  # the sent-memory's key for an error event that answered a whole task
FLUSH_INTERVAL_S = 0.01  # how often the outbox retries a gateway pipe that was full
# Tasks whose sent events are remembered for retry_window_s; beyond, the oldest are forgotten
# (counted). A gateway reading 10 events/s sends at most 3,000 in a 300 s window.
MAX_REMEMBERED_TASKS = 32768

# Fields of a native result that are replaced or dropped in the gateway's result.
_NATIVE_ONLY = frozenset({"processingTime", "workerId", "targetLanguage", "modelType"})


@dataclass(slots=True, eq=False)
class Tracked:
    """A compat task: the targets still owed an event, and what converting its events needs."""

    pending: set[str]  # canonical targets
    spelling: dict[str, str]  # canonical target -> the gateway's spelling of it
    conversation_id: str
    model_type: str
    story: tuple[str, int] | None = None  # (postId, textObjectIndex) of a story text object
    digest: bytes = b""  # of the request's content (content_digest): the sent-memory's key with the taskId
    asked_again: set[str] = field(default_factory=set)  # targets a re-push asked for (counted when sent)
    translations: dict[str, str] = field(default_factory=dict)  # a story's, sent as one event


@dataclass(slots=True)
class Counters:
    requests: int = 0  # gateway messages read (every type)
    refused: int = 0  # translation requests answered with a translation_error (pool full included)
    pool_full: int = 0  # of which "translation pool full" at the door: the gateway could not read more in time
    dropped_messages: int = 0  # over a frame, message or frame-count bound
    oversized: int = 0  # JSON frames over limits.max_request_bytes, refused undecoded
    dropped_events: int = 0  # over event_buffer_bytes: never sent
    republished: int = 0  # events sent for a language a re-push asked for again
    suppressed_repeats: int = 0  # re-pushed languages already sent (within retry_window_s) or running
    withheld_failures: int = 0  # failed languages not published: the gateway's re-push runs them again
    unserved: int = 0  # languages no model serves, settled with an "unserved:" event
    unreadable: int = 0
    forgotten_tasks: int = 0  # marks or sent-memory entries dropped at their count bound
    forgotten_events: int = 0  # events of compat tasks whose mark was dropped


class CompatFront:
    def __init__(
        self,
        settings: Settings,
        pull: socket.socket,
        pub: zmq.Socket,
        native_publish: Callable[[str, bytes], None],
        pull_endpoint: str,
        pub_endpoint: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.service: Service | None = None  # the one serve() answers with
        c = settings.compat
        self.puller = ZmtpPullServer(
            pull, self.on_message, keep_bytes=settings.limits.max_request_bytes, buffer_bytes=c.connection_buffer_bytes,
            max_connections=c.max_connections, handshake_timeout_s=c.handshake_timeout_s,
        )
        self._xpub = pub  # asyncio socket: its subscription messages count the gateways
        # A plain socket sharing the (asyncio) socket's underlying ZeroMQ socket (same thread).
        self._pub = zmq.Socket.shadow(pub.underlying)
        self._native_publish = native_publish
        self.pull_endpoint = pull_endpoint
        self.pub_endpoint = pub_endpoint
        self.pull_port = port_of(pull_endpoint)
        self.pub_port = port_of(pub_endpoint)
        self.max_tracked = max(1024, settings.limits.max_inflight_tasks)
        self.tracked: OrderedDict[str, Tracked] = OrderedDict()
        self.owed = 0  # targets of tracked tasks still owed an event (sum of their pending)
        # (taskId, content digest) -> {canonical target (or WHOLE_TASK): when its event was sent},
        # oldest first. The digest: a taskId reused for other content is the service's to refuse.
        self.sent: OrderedDict[tuple[str, bytes], dict[str, float]] = OrderedDict()
        self.outbox: deque[bytes] = deque()  # events the XPUB could not take yet, in order
        self.outbox_bytes = 0
        self.gateways = 0  # subscriptions minus unsubscriptions seen on the XPUB
        self.unread = 0.0  # events sent that the gateways have not read yet (estimated)
        self._unread_at = clock()
        self._clock = clock
        self._flushing = False
        self.counters = Counters()

    # ================================================================== events out

    def publish(self, scope: str, event: Event, data: bytes) -> None:
        """The dispatcher's publish: a compat task's event goes to the gateway in its shape, mapped
        from the typed value; any other event to the native PUB as encoded, whatever its taskId."""
        if scope != SCOPE:
            self._native_publish(scope, data)
            return
        tracked = self.tracked.get(event.task_id)
        if tracked is None:
            self.counters.forgotten_events += 1
            return
        target = event.target_language
        if target in tracked.pending:
            tracked.pending.discard(target)
            self.owed -= 1
        if not tracked.pending:
            del self.tracked[event.task_id]
        try:
            self._deliver(event, tracked)
        except Exception:  # a bug must not break the dispatcher's bookkeeping
            log.exception("cannot convert an event of task %s for the gateway", event.task_id[:64])

    def _deliver(self, event: Event, tracked: Tracked) -> None:
        """One outcome of a compat task, as the gateway can take it (module docstring, Per language)."""
        target, task_id = event.target_language, event.task_id
        if tracked.story is not None:
            post_id, index = tracked.story
            if isinstance(event, Completed):
                tracked.translations[tracked.spelling.get(target, target)] = event.result.translated_text
            else:
                log.warning("story %s text object %d: %s not translated: %s", post_id[:64], index, target,
                            event.error.message[:300])
            if not tracked.pending:
                self._send(story_completed(post_id, index, tracked.translations))
            return
        if not isinstance(event, Completed):
            # Published, a translation_error would settle the gateway's whole task, feed its circuit
            # breaker and tell the conversation the message failed. Withheld, the gateway re-pushes
            # this language at its timeout and it runs again.
            self.counters.withheld_failures += 1
            log.info("task %s: %s failed (%s), not published: the gateway's re-push runs it again",
                     task_id[:64], target, event.error.code)
            return
        gateway = gateway_completed(event, tracked.spelling.get(target, target), tracked.model_type)
        if self._send(gateway, (task_id, tracked.digest), target) and target in tracked.asked_again:
            self.counters.republished += 1

    def _send(self, event: dict, key: tuple[str, bytes] | None = None, target: str = "") -> bool:
        """Queue one event for the gateways; False when it was dropped (event_buffer_bytes full).
        An event of the task `key` names that went out is remembered: a re-push never sends it again."""
        data = protocol.encode(event)
        if self.outbox or not self._try_send(data):
            if self.outbox_bytes + len(data) > self.settings.compat.event_buffer_bytes:
                self.counters.dropped_events += 1
                log.warning("gateway event dropped: %d events (%d bytes) already wait for the gateways to read "
                            "([compat] event_buffer_bytes %d)", len(self.outbox), self.outbox_bytes,
                            self.settings.compat.event_buffer_bytes)
                return False
            self.outbox.append(data)
            self.outbox_bytes += len(data)
            self._schedule_flush()
        if key is not None:
            self._remember(key, target)
        return True

    def _try_send(self, data: bytes) -> bool:
        """Hand one event to the XPUB; False when a gateway's pipe is full (ZMQ_XPUB_NODROP)."""
        try:
            self._pub.send(data, zmq.NOBLOCK)
        except zmq.Again:
            return False
        except zmq.ZMQError as exc:  # closing: nothing more can be delivered
            log.debug("gateway event not sent: %s", exc)
            return True
        self._drain_unread()
        self.unread += 1.0
        return True

    def _schedule_flush(self) -> None:
        if not self._flushing:
            self._flushing = True
            try:
                asyncio.get_running_loop().call_later(FLUSH_INTERVAL_S, self._flush)
            except RuntimeError:  # no loop (in-process use): left for the next send
                self._flushing = False

    def _flush(self) -> None:
        self._flushing = False
        while self.outbox and self._try_send(self.outbox[0]):
            self.outbox_bytes -= len(self.outbox.popleft())
        if self.outbox:
            self._schedule_flush()

    def _drain_unread(self) -> None:
        now = self._clock()
        self.unread = max(0.0, self.unread - (now - self._unread_at) * self.read_rate())
        self._unread_at = now

    def read_rate(self) -> float:
        """Events per second the connected gateways read together ([compat] gateway_read_rate each)."""
        return self.settings.compat.gateway_read_rate * max(1, self.gateways)

    def delivery_delay_s(self, more: int = 0) -> float:
        """Seconds until the gateways would read an event owed now, `more` events later: what waits
        unread, what waits in the outbox, what tracked tasks still owe."""
        self._drain_unread()
        return (self.unread + len(self.outbox) + self.owed + more) / self.read_rate()

    def _remember(self, key: tuple[str, bytes], target: str) -> None:
        now = self._clock()
        window = self.settings.compat.retry_window_s
        targets = self.sent.get(key)
        if targets is None:
            targets = self.sent[key] = {}
        else:
            self.sent.move_to_end(key)
        targets[target] = now
        while self.sent:
            oldest = next(iter(self.sent.values()))
            if len(self.sent) > MAX_REMEMBERED_TASKS:
                self.counters.forgotten_tasks += 1
            elif max(oldest.values()) >= now - window:
                break
            self.sent.popitem(last=False)

    def already_sent(self, key: tuple[str, bytes]) -> dict[str, float]:
        """The targets of a task sent within retry_window_s (WHOLE_TASK: an error for all of it)."""
        targets = self.sent.get(key)
        if not targets:
            return {}
        horizon = self._clock() - self.settings.compat.retry_window_s
        return {t: at for t, at in targets.items() if at >= horizon}

    async def watch_subscriptions(self) -> None:
        """Count the gateways from the XPUB's (un)subscription messages (ZMQ_XPUB_VERBOSER: one per
        subscriber, and one unsubscription each when a subscriber leaves)."""
        while True:
            message = await self._xpub.recv()
            if message[:1] == b"\x01":
                self.gateways += 1
            elif message[:1] == b"\x00":
                self.gateways = max(0, self.gateways - 1)

    def stats(self) -> dict:
        """The `compat` section of `stats` (appliance/core/stats.py exports it to /metrics)."""
        return {
            **asdict(self.counters),
            "refused_connections": self.puller.refused_connections,
            "protocol_errors": self.puller.protocol_errors,
            "gateways": self.gateways,
            "tasks_awaiting_events": len(self.tracked),
            "events_owed": self.owed,
            "events_buffered": len(self.outbox),
            "events_buffered_bytes": self.outbox_bytes,
            "delivery_delay_s": round(self.delivery_delay_s(), 3),
        }

    def pong(self) -> dict:
        return {
            "type": "pong",
            "timestamp": time.time(),
            "translator_status": self._status(),
            "translator_port_pub": self.pub_port,
            "translator_port_pull": self.pull_port,
            "audio_pipeline_available": False,
        }

    def _status(self) -> str:
        service = self.service
        if service.ready():
            return "healthy"
        return "degraded" if service.lifecycle.is_serving else service.lifecycle.name

    # ================================================================== requests in

    async def serve(self, service: Service) -> None:
        """Read the gateway's requests and answer them with `service`, read the XPUB's
        subscriptions, and publish a pong every pong_interval_s, until cancelled. Events may be
        published before (appliance/lifecycle/supervisor.py, "Wiring")."""
        self.service = service
        await self.puller.start()
        watcher = asyncio.get_running_loop().create_task(self.watch_subscriptions(), name="compat-subscriptions")
        try:
            while True:
                await asyncio.sleep(self.settings.compat.pong_interval_s)
                self._send(self.pong())
        finally:
            watcher.cancel()
            await self.puller.close()

    def on_message(self, message: Message) -> None:
        """One message off the pull port, bounded on its sizes before anything of it is decoded."""
        c = self.settings.compat
        if (message.frames > c.max_frames_per_message or message.largest > c.max_frame_bytes
                or message.binary_bytes > c.max_message_bytes):
            self.counters.dropped_messages += 1
            log.warning(
                "dropped a gateway message of %d frames, %d bytes after its JSON (largest frame %d): over the "
                "bound ([compat] max_frames_per_message %d, max_frame_bytes %d, max_message_bytes %d)",
                message.frames, message.binary_bytes, message.largest, c.max_frames_per_message,
                c.max_frame_bytes, c.max_message_bytes,
            )
            return
        self.handle(message.first, message.first_size)

    def handle(self, payload: bytes, size: int | None = None) -> None:
        """One request's JSON frame (any binary frames after it are already discarded); `payload`
        is its first max_request_bytes bytes when `size`, its real size, is larger."""
        self.counters.requests += 1
        self.service.count_request()
        size = len(payload) if size is None else size
        limit = self.settings.limits.max_request_bytes
        if size > limit:  # never decoded: seconds of the loop for a 16 MiB list, to refuse it anyway
            self.counters.oversized += 1
            self._unreadable(payload, f"request is {size} bytes; the limit is {limit}", protocol.INVALID_REQUEST)
            return
        try:
            obj = msgspec.json.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            self._unreadable(payload, f"request is not valid UTF-8 JSON: {exc}")
            return
        if not isinstance(obj, dict):
            self._unreadable(payload, f"request must be a JSON object, got {type(obj).__name__}")
            return
        kind = obj.get("type", "translation")
        if kind == "translation":
            self.translate(obj)
        elif kind == "ping":
            self._send(self.pong())
        elif kind == "story_text_object_translation":
            self.translate_story(obj)
        else:
            event = unsupported_event(kind if isinstance(kind, str) else "", self._ids(obj))
            if event is None:
                log.warning("gateway request of unknown type %r ignored", kind)
            else:
                self._send(event)

    def _ids(self, obj: dict) -> dict[str, str]:
        """The ids of a request that are fit to echo (strings within max_id_bytes)."""
        limit = self.settings.limits.max_id_bytes
        return {
            name: value
            for name in ("type", "taskId", "messageId", "attachmentId", "conversationId", "request_id", "user_id")
            if isinstance(value := obj.get(name), str) and len(value.encode("utf-8", "surrogatepass")) <= limit
        }

    def _unreadable(self, payload: bytes, why: str, code: str = protocol.INVALID_JSON) -> None:
        """Not a JSON object, or too large to decode: answered on its path only when it names
        something to answer."""
        self.counters.unreadable += 1
        limits = self.settings.limits
        ids = salvage_ids(payload[: limits.max_request_bytes], limits.max_id_bytes)
        kind = ids.get("type", "translation")
        event = None
        if kind == "translation":
            if "taskId" in ids or "messageId" in ids:
                event = gateway_error(ids.get("taskId", ""), ids.get("messageId", ""), code, why,
                                      ids.get("conversationId", ""))
        elif ids.keys() & {"taskId", "messageId", "attachmentId", "request_id"}:
            event = unsupported_event(kind, ids, code, why)
        if event is not None:
            self._send(event)
        log.warning("unreadable gateway request (%d bytes, %s): %s", len(payload),
                    f"answered with {event['type']}" if event else "nothing to answer it with", why[:200])

    # ------------------------------------------------------------------ translation

    def translate(self, obj: dict) -> None:
        """A gateway translation, as a native request (same checks, limits, tiers and dedup), for
        the languages that need work: a re-push gets nothing for a language sent or running."""
        task_id = obj.get("taskId")
        if task_id is None:
            task_id = uuid.uuid4().hex  # the gateway always names one; a task needs an id to be tracked
        message_id = obj.get("messageId")
        conversation_id = obj.get("conversationId")
        conversation = conversation_id if isinstance(conversation_id, str) else ""
        requested = obj.get("modelType")
        model_type = requested.strip().lower() if isinstance(requested, str) else requested
        if isinstance(model_type, str) and model_type not in MODEL_TYPES:
            model_type = protocol.AUTO  # a preference, never a reason to refuse (docs/protocol.md, tiers)
        gateway_model = model_type if model_type in GATEWAY_MODEL_TYPES else DEFAULT_MODEL_TYPE
        named = self._spellings(obj)
        spelling, repeat = named, False
        digest = request_digest(obj)
        key = (task_id, digest) if isinstance(task_id, str) else None
        if key is not None and named:
            repeat = key in self.sent or task_id in self.tracked
            spelling = self._not_repeated(key, named)
            if not spelling:
                return  # each language named was sent already, runs, or its task was refused: nothing new
        native = {"type": "translation", "taskId": task_id, "messageId": message_id, "text": obj.get("text")}
        for name in ("sourceLanguage", "conversationId") if spelling else (
                "sourceLanguage", "targetLanguage", "targetLanguages", "conversationId"):
            if obj.get(name) is not None:
                native[name] = obj[name]
        if spelling:
            native["targetLanguages"] = list(spelling.values())
        if model_type is not None:
            native["modelType"] = model_type
        ids = (task_id if isinstance(task_id, str) else "", message_id if isinstance(message_id, str) else "")
        if spelling and self.delivery_delay_s(len(spelling)) > self.settings.compat.max_delivery_delay_s:
            self.counters.pool_full += 1
            self._refuse(key, ids, protocol.OVERLOADED, (
                f"the gateways would read this task's events in {self.delivery_delay_s(len(spelling)):.0f}s; "
                f"the limit is {self.settings.compat.max_delivery_delay_s:g}s ([compat] max_delivery_delay_s, "
                f"{self.settings.compat.gateway_read_rate:g} events/s per gateway)"), conversation)
            return
        added: list[str] = []
        if isinstance(task_id, str):
            added = self._mark(task_id, spelling, conversation, gateway_model, digest=digest)
            if repeat and added:
                self.tracked[task_id].asked_again.update(added)

        def reply(body: dict) -> None:
            if body.get("status") == "error":  # the whole request: one error event, as the gateway expects
                if isinstance(task_id, str):
                    self._unmark(task_id, added)
                error = body["error"]
                self._refuse(key, (ids[0], ids[1] or body.get("messageId", "")), error["code"], error["message"],
                             conversation)
                return
            for skipped in body.get("skipped", ()):
                target = skipped["targetLanguage"]
                self._unmark(task_id, [target])
                self.counters.unserved += 1
                self._send(gateway_unserved(task_id, ids[1], spelling.get(target, target), obj, skipped["message"],
                                            conversation, gateway_model), key, target)

        self._respond(native, reply)

    def _not_repeated(self, key: tuple[str, bytes], spelling: dict[str, str]) -> dict[str, str]:
        """The targets of a (perhaps re-pushed) task that need work: not sent within
        retry_window_s, not running; none when an error answered the whole task."""
        sent = self.already_sent(key)
        tracked = self.tracked.get(key[0])
        running = tracked.pending if tracked is not None else set()
        fresh = {} if WHOLE_TASK in sent and tracked is None else {
            t: w for t, w in spelling.items() if t not in sent and t not in running}
        self.counters.suppressed_repeats += len(spelling) - len(fresh)
        return fresh

    def _refuse(self, key: tuple[str, bytes] | None, ids: tuple[str, str], code: str, message: str,
                conversation: str) -> None:
        self.counters.refused += 1
        self._send(gateway_error(ids[0], ids[1], code, message, conversation), key, WHOLE_TASK)

    def translate_story(self, obj: dict) -> None:
        """A story's text object: translated like a message, answered with one event holding every
        language that succeeded (sent even when none did, as Meeshy's translator does). The gateway
        has no error event and no retry for these: failures are logged only."""
        post_id, index = obj.get("postId"), obj.get("textObjectIndex")
        if not isinstance(post_id, str) or not isinstance(index, int) or isinstance(index, bool):
            log.warning("story_text_object_translation without a string postId and an integer textObjectIndex: ignored")
            return
        task_id = uuid.uuid4().hex
        native = {"type": "translation", "taskId": task_id, "messageId": f"story:{post_id}:{index}",
                  "text": obj.get("text"), "modelType": protocol.AUTO}
        for name in ("sourceLanguage", "targetLanguages"):
            if obj.get(name) is not None:
                native[name] = obj[name]
        added = self._mark(task_id, self._spellings(obj), "", DEFAULT_MODEL_TYPE, story=(post_id, index))

        def reply(body: dict) -> None:
            if body.get("status") == "error":
                self._unmark(task_id, added)
                log.warning("story %s text object %d not translated: %s: %s", post_id[:64], index,
                            body["error"]["code"], body["error"]["message"][:300])
                return
            for skipped in body.get("skipped", ()):
                log.info("story %s text object %d: %s not served: %s", post_id[:64], index,
                         skipped["targetLanguage"], skipped["message"][:300])
                self.counters.unserved += 1
                done = self._unmark(task_id, [skipped["targetLanguage"]])
                if done is not None:  # the others were answered already (cache, same language)
                    self._send(story_completed(post_id, index, done.translations))

        self._respond(native, reply)

    def _respond(self, native: dict, reply: Callable[[dict], None]) -> None:
        self.service.respond(protocol.encode(native), reply, scope=SCOPE, each_target=True,
                             max_text_chars=self.settings.compat.max_text_chars)

    def _spellings(self, obj: dict) -> dict[str, str]:
        """canonical target -> the gateway's spelling, for up to max_targets targets (a request
        naming more is refused by the service, so nothing of it needs tracking)."""
        named = obj.get("targetLanguages")
        codes = [c for c in (named if isinstance(named, list) else []) if isinstance(c, str)]
        single = obj.get("targetLanguage")
        if isinstance(single, str):
            codes.insert(0, single)
        spelling: dict[str, str] = {}
        for code in codes:
            if len(code) <= 64:
                spelling.setdefault(canonical(code), code)
            if len(spelling) > self.settings.limits.max_targets:
                return {}
        return spelling

    def _mark(self, task_id: str, spelling: dict[str, str], conversation_id: str, model_type: str,
              story: tuple[str, int] | None = None, digest: bytes = b"") -> list[str]:
        """Route the task's next events for `spelling`'s targets to the gateway; the targets
        this request added (to forget again if it is refused)."""
        if not spelling:
            return []
        tracked = self.tracked.get(task_id)
        if tracked is None:
            tracked = self.tracked[task_id] = Tracked(set(), {}, conversation_id, model_type, story, digest)
            while len(self.tracked) > self.max_tracked:
                old, forgotten = self.tracked.popitem(last=False)
                self.owed -= len(forgotten.pending)
                self.counters.forgotten_tasks += 1
                log.warning("more than %d gateway tasks awaiting events: task %s is forgotten (its events "
                            "are dropped; a retry marks it again)", self.max_tracked, old[:64])
        else:
            self.tracked.move_to_end(task_id)
            tracked.model_type = model_type
        added = [t for t in spelling if t not in tracked.pending]
        tracked.pending.update(added)
        self.owed += len(added)
        for target, written in spelling.items():
            tracked.spelling.setdefault(target, written)
        return added

    def _unmark(self, task_id: str, added: list[str]) -> Tracked | None:
        """Forget `added` targets of a task; the task when that was the last of them."""
        tracked = self.tracked.get(task_id)
        if tracked is None:
            return None
        for target in added:
            if target in tracked.pending:
                tracked.pending.discard(target)
                self.owed -= 1
        if tracked.pending:
            return None
        del self.tracked[task_id]
        return tracked


# ====================================================================== the gateway's shapes


def gateway_completed(native: Completed, target: str, model_type: str) -> dict:
    """A native translation_completed (docs/protocol.md) in the gateway's shape: `processingTime`
    in seconds, `workerId` a string, `targetLanguage` as the gateway wrote it; the native result's
    other fields are kept, in their order."""
    r = native.result
    result = {
        "messageId": r.message_id,
        "translatedText": r.translated_text,
        "sourceLanguage": r.source_language,
        "targetLanguage": target,
        "confidenceScore": r.confidence_score,
        "processingTime": round(r.processing_time / 1000.0, 6),
        "modelType": r.model_type or model_type,  # "" when no tier made it (same language)
        "translatorModel": r.translator_model,
        "workerId": "edge" if r.worker_id is None else f"worker-{r.worker_id}",
        "segmentsCount": r.segments_count,
    }
    result.update((k, v) for k, v in msgspec.to_builtins(r).items() if k not in result and k not in _NATIVE_ONLY)
    metadata = msgspec.to_builtins(native.metadata)
    metadata["queueTimeMs"] = metadata.pop("queueTime")  # ms, unlike processingTime: say so
    return {
        "type": "translation_completed",
        "taskId": native.task_id,
        "targetLanguage": target,
        "timestamp": native.timestamp,
        "result": result,
        "metadata": metadata,
    }


def gateway_error(task_id: str, message_id: str, code: str, message: str, conversation_id: str, **metadata) -> dict:
    """The gateway forwards only these fields, so the code travels in metadata.errorCode."""
    return {
        "type": "translation_error",
        "taskId": task_id,
        "messageId": message_id,
        "error": POOL_FULL if code == protocol.OVERLOADED else message,
        "conversationId": conversation_id,
        "metadata": {"errorCode": code, "message": message, **metadata},
    }


def gateway_unserved(task_id: str, message_id: str, target: str, request: dict, reason: str, conversation_id: str,
                     model_type: str) -> dict:
    """A language no model serves, settled without a failure (module docstring, Per language): a
    completed event, so the gateway stops waiting for it and its circuit breaker counts no error,
    whose result.messageId is namespaced, so no gateway pipeline stores it as the message's
    translation. The text comes back unchanged, like the gateway's own fallback result."""
    text = request.get("text")
    source = request.get("sourceLanguage")
    return {
        "type": "translation_completed",
        "taskId": task_id,
        "targetLanguage": target,
        "timestamp": time.time(),
        "result": {
            "messageId": UNSERVED_PREFIX + message_id,
            "translatedText": text if isinstance(text, str) else "",
            "sourceLanguage": source if isinstance(source, str) else "auto",
            "targetLanguage": target,
            "confidenceScore": 0.0,
            "processingTime": 0.0,
            "modelType": model_type,
            "translatorModel": "none",
            "workerId": "edge",
            "segmentsCount": 0,
        },
        "metadata": {"unserved": True, "errorCode": protocol.UNSUPPORTED_LANGUAGE, "message": reason,
                     "messageId": message_id, "conversationId": conversation_id},
    }


def story_completed(post_id: str, index: int, translations: dict[str, str]) -> dict:
    """Every language of a story text object that succeeded, in one event (ms timestamp, as upstream)."""
    return {
        "type": "story_text_object_translation_completed",
        "postId": post_id,
        "textObjectIndex": index,
        "translations": dict(translations),
        "timestamp": int(time.time() * 1000),
    }


def unsupported_event(kind: str, ids: dict[str, str], code: str = UNSUPPORTED, message: str = "") -> dict | None:
    """The error event the gateway listens for on the path of a request we do not serve; None
    for a type that has no such path."""
    now = time.time()
    if kind.startswith("audio_") or kind.startswith("transcription"):
        audio = kind.startswith("audio_")
        return {
            "type": "audio_process_error" if audio else "transcription_error",
            "taskId": ids.get("taskId", ""),
            "messageId": ids.get("messageId", ""),
            "attachmentId": ids.get("attachmentId", ""),
            "error": message or f"{kind} is not served: this translator (Meeshy Appliance) has no audio pipeline",
            "errorCode": code,
            "timestamp": now,
        }
    profile = kind.startswith("voice_profile_") and "request_id" in ids and "taskId" not in ids
    if kind in VOICE_PROFILE_TYPES or profile:
        event = {"type": "voice_profile_error", "request_id": ids.get("request_id", "")}
        if "user_id" in ids:
            event["user_id"] = ids["user_id"]
        event.update(error=message or f"{kind} is not served: this translator (Meeshy Appliance) has no voice pipeline",
                     success=False, timestamp=now)
        return event
    if kind.startswith("voice_"):
        return {
            "type": "voice_api_error",
            "taskId": ids.get("taskId", ""),
            "requestType": kind,
            "error": message or f"{kind} is not served: this translator (Meeshy Appliance) has no voice pipeline",
            "errorCode": code,
            "timestamp": now,
        }
    return None


_SALVAGE = {
    name: re.compile(rb'"' + name.encode() + rb'"\s*:\s*"([^"\\]{1,1024})"')
    for name in ("type", "taskId", "messageId", "attachmentId", "conversationId", "request_id", "user_id")
}


def salvage_ids(payload: bytes, max_id_bytes: int) -> dict[str, str]:
    """Ids readable in a payload that is not valid JSON, to answer it on the right path."""
    ids = {}
    for name, pattern in _SALVAGE.items():
        found = pattern.search(payload)
        if found is not None and len(found.group(1)) <= max_id_bytes:
            ids[name] = found.group(1).decode("utf-8", "replace")
    return ids


def request_digest(obj: dict) -> bytes:
    """What a gateway taskId is bound to, as the service binds it: text, source, model type."""
    material = msgspec.msgpack.encode([repr(obj.get(name)) for name in ("text", "sourceLanguage", "modelType")])
    return hashlib.blake2b(material, digest_size=16).digest()


def port_of(endpoint: str) -> int:
    """'tcp://127.0.0.1:5557' -> 5557."""
    return int(endpoint.rsplit(":", 1)[1])
