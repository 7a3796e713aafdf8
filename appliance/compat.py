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
on 5555. Its immediate reply has nowhere to go (PUSH has no reply channel); an error reply
becomes a `translation_error` (`overloaded` as "translation pool full", which the gateway counts
as an overload rejection).

Events: the dispatcher publishes every outcome through `CompatFront.publish` (the supervisor
wires it in place of the native PUB). The gateway de-duplicates on taskId + targetLanguage, so
the first event of a target must already be in its shape (`processingTime` in seconds); a
compat task's events therefore go to the compat PUB only, converted, and never to 5556. Which
tasks are compat tasks: those in the compat scope (`SCOPE`): every gateway request is made in
it, so its taskIds are a namespace of their own (appliance/dispatcher.py, "Scopes"): a gateway
request naming a native task's taskId is another task, and no native event ever reaches the
gateway nor a compat event 5556. Within the scope, every compat request marks its taskId with
the targets it names (in the gateway's own spelling, echoed back); each event published for the
task settles one target, and the mark goes with the last one. A retry arrives through compat too
and marks the taskId again before the service re-publishes what finished, so those events find
the gateway as well. The marks are bounded in count (oldest dropped, with a log line; an event
of a forgotten task is dropped and counted, and the gateway's retry marks it again).

Bytes in, bounded before anything is parsed or queued: the pull port is served by
appliance/zmtp_pull.py, the appliance's own ZMTP 3 reader (a libzmq PULL holds every frame of a
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
import logging
import re
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import zmq

from appliance import protocol
from appliance.config import Settings
from appliance.languages import canonical
from appliance.zmtp_pull import Message, ZmtpPullServer
from ipc.tiers import MODEL_TYPES

log = logging.getLogger("meeshy.compat")

POOL_FULL = "translation pool full"  # the string the gateway counts as an overload rejection
UNSUPPORTED = "unsupported_request"
VOICE_PROFILE_TYPES = frozenset({"voice_profile_analyze", "voice_profile_verify", "voice_profile_compare"})
GATEWAY_MODEL_TYPES = ("basic", "medium", "premium")  # what the gateway sends and stores
DEFAULT_MODEL_TYPE = "basic"  # the gateway's own fallback; reported for answers no tier made
SCOPE = "compat"  # the gateway's taskId scope: no native scope ("" or a CURVE client's) is spelled so

# Fields of a native result that are replaced or dropped in the gateway's result.
_NATIVE_ONLY = frozenset({"processingTime", "workerId", "targetLanguage", "modelType"})


class _EventHead(msgspec.Struct):
    type: str
    taskId: str = ""
    targetLanguage: str = ""


_event_head = msgspec.json.Decoder(_EventHead)


@dataclass(slots=True, eq=False)
class Tracked:
    """A compat task: the targets still owed an event, and what converting its events needs."""

    pending: set[str]  # canonical targets
    spelling: dict[str, str]  # canonical target -> the gateway's spelling of it
    conversation_id: str
    model_type: str
    story: tuple[str, int] | None = None  # (postId, textObjectIndex) of a story text object


@dataclass(slots=True)
class Counters:
    requests: int = 0
    dropped_messages: int = 0  # over a frame, message or frame-count bound
    oversized: int = 0  # JSON frames over limits.max_request_bytes, refused undecoded
    dropped_events: int = 0  # beyond the gateway's HWM
    unreadable: int = 0
    forgotten_tasks: int = 0  # marks dropped at the bound
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
    ) -> None:
        self.settings = settings
        self.service = None  # the RequestService; set by the supervisor once it exists
        c = settings.compat
        self.puller = ZmtpPullServer(
            pull, self.on_message, keep_bytes=settings.limits.max_request_bytes, buffer_bytes=c.connection_buffer_bytes,
            max_connections=c.max_connections, handshake_timeout_s=c.handshake_timeout_s,
        )
        # A plain socket sharing the (asyncio) socket's underlying ZeroMQ socket (same thread).
        self._pub = zmq.Socket.shadow(pub.underlying)
        self._native_publish = native_publish
        self.pull_endpoint = pull_endpoint
        self.pub_endpoint = pub_endpoint
        self.pull_port = port_of(pull_endpoint)
        self.pub_port = port_of(pub_endpoint)
        self.max_tracked = max(1024, settings.limits.max_inflight_tasks)
        self.tracked: OrderedDict[str, Tracked] = OrderedDict()
        self.counters = Counters()

    # ================================================================== events out

    def publish(self, scope: str, data: bytes) -> None:
        """The dispatcher's publish: a compat task's event goes to the gateway in its shape, any
        other event to the native PUB unchanged, whatever its taskId."""
        if scope != SCOPE:
            self._native_publish(scope, data)
            return
        head = _event_head.decode(data)
        tracked = self.tracked.get(head.taskId)
        if tracked is None:
            self.counters.forgotten_events += 1
            return
        target = head.targetLanguage
        tracked.pending.discard(target)
        if not tracked.pending:
            del self.tracked[head.taskId]
        try:
            event = self._convert(msgspec.json.decode(data), tracked, tracked.spelling.get(target, target))
        except Exception:  # a bug must not break the dispatcher's bookkeeping
            log.exception("cannot convert an event of task %s for the gateway", head.taskId[:64])
            return
        if event is not None:
            self._send(event)

    def _convert(self, native: dict, tracked: Tracked, target: str) -> dict | None:
        if tracked.story is not None:
            post_id, index = tracked.story
            if native["type"] != "translation_completed":
                log.warning("story %s text object %d: %s not translated: %s", post_id[:64], index, target,
                            native["error"]["message"][:300])
                return None
            return story_completed(post_id, index, target, native["result"]["translatedText"])
        if native["type"] == "translation_completed":
            return gateway_completed(native, target, tracked.model_type)
        error = native["error"]
        return gateway_error(
            native["taskId"], native["messageId"], error["code"], error["message"],
            native.get("conversationId") or tracked.conversation_id, targetLanguage=target,
        )

    def _send(self, event: dict) -> None:
        try:
            self._pub.send(protocol.encode(event), zmq.NOBLOCK)
        except zmq.ZMQError:  # beyond the gateway's HWM: dropped, as on 5556
            self.counters.dropped_events += 1

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
        if service is None:
            return "starting"
        if service.ready():
            return "healthy"
        return "degraded" if service.state == "serving" else service.state

    # ================================================================== requests in

    async def serve(self) -> None:
        """Read the gateway's requests, and publish a pong every pong_interval_s, until cancelled."""
        await self.puller.start()
        try:
            while True:
                await asyncio.sleep(self.settings.compat.pong_interval_s)
                self._send(self.pong())
        finally:
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
        """A gateway translation, as a native request: same checks, limits, tiers and dedup."""
        task_id = obj.get("taskId")
        if task_id is None:
            task_id = uuid.uuid4().hex  # the gateway always names one; a task needs an id to be tracked
        message_id = obj.get("messageId")
        conversation_id = obj.get("conversationId")
        requested = obj.get("modelType")
        model_type = requested.strip().lower() if isinstance(requested, str) else requested
        if isinstance(model_type, str) and model_type not in MODEL_TYPES:
            model_type = protocol.AUTO  # a preference, never a reason to refuse (docs/protocol.md, tiers)
        native = {"type": "translation", "taskId": task_id, "messageId": message_id, "text": obj.get("text")}
        for name in ("sourceLanguage", "targetLanguage", "targetLanguages", "conversationId"):
            if obj.get(name) is not None:
                native[name] = obj[name]
        if model_type is not None:
            native["modelType"] = model_type
        added: list[str] = []
        if isinstance(task_id, str):
            added = self._mark(
                task_id,
                self._spellings(obj),
                conversation_id if isinstance(conversation_id, str) else "",
                model_type if model_type in GATEWAY_MODEL_TYPES else DEFAULT_MODEL_TYPE,
            )

        def reply(body: dict) -> None:
            if body.get("status") != "error":
                return  # queued, or a duplicate: the events say the rest
            if isinstance(task_id, str):
                self._unmark(task_id, added)
            error = body["error"]
            self._send(gateway_error(
                task_id if isinstance(task_id, str) else "",
                message_id if isinstance(message_id, str) else body.get("messageId", ""),
                error["code"], error["message"],
                conversation_id if isinstance(conversation_id, str) else "",
            ))

        self._respond(native, reply)

    def translate_story(self, obj: dict) -> None:
        """A story's text object: translated like a message; one completed event per language,
        which the gateway merges into the post. It has no error event for these: failures are
        logged only."""
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

        self._respond(native, reply)

    def _respond(self, native: dict, reply: Callable[[dict], None]) -> None:
        self.service.respond(protocol.encode(native), reply, scope=SCOPE)

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
              story: tuple[str, int] | None = None) -> list[str]:
        """Route the task's next events for `spelling`'s targets to the gateway; the targets
        this request added (to forget again if it is refused)."""
        if not spelling:
            return []
        tracked = self.tracked.get(task_id)
        if tracked is None:
            tracked = self.tracked[task_id] = Tracked(set(), {}, conversation_id, model_type, story)
            while len(self.tracked) > self.max_tracked:
                old, _ = self.tracked.popitem(last=False)
                self.counters.forgotten_tasks += 1
                log.warning("more than %d gateway tasks awaiting events: task %s is forgotten (its events "
                            "are dropped; a retry marks it again)", self.max_tracked, old[:64])
        else:
            self.tracked.move_to_end(task_id)
            tracked.model_type = model_type
        added = [t for t in spelling if t not in tracked.pending]
        tracked.pending.update(added)
        for target, written in spelling.items():
            tracked.spelling.setdefault(target, written)
        return added

    def _unmark(self, task_id: str, added: list[str]) -> None:
        tracked = self.tracked.get(task_id)
        if tracked is None:
            return
        tracked.pending.difference_update(added)
        if not tracked.pending:
            del self.tracked[task_id]


# ====================================================================== the gateway's shapes


def gateway_completed(native: dict, target: str, model_type: str) -> dict:
    """A native translation_completed (docs/protocol.md) in the gateway's shape: `processingTime`
    in seconds, `workerId` a string, `targetLanguage` as the gateway wrote it; the native result's
    other fields are kept."""
    r = native["result"]
    result = {
        "messageId": r["messageId"],
        "translatedText": r["translatedText"],
        "sourceLanguage": r["sourceLanguage"],
        "targetLanguage": target,
        "confidenceScore": r["confidenceScore"],
        "processingTime": round(r["processingTime"] / 1000.0, 6),
        "modelType": r["modelType"] or model_type,  # "" when no tier made it (same language)
        "translatorModel": r["translatorModel"],
        "workerId": "edge" if r.get("workerId") is None else f"worker-{r['workerId']}",
        "segmentsCount": r.get("segmentsCount", 0),
    }
    result.update((k, v) for k, v in r.items() if k not in result and k not in _NATIVE_ONLY)
    metadata = dict(native.get("metadata") or {})
    if "queueTime" in metadata:
        metadata["queueTimeMs"] = metadata.pop("queueTime")  # ms, unlike processingTime: say so
    return {
        "type": "translation_completed",
        "taskId": native["taskId"],
        "targetLanguage": target,
        "timestamp": native["timestamp"],
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


def story_completed(post_id: str, index: int, target: str, text: str) -> dict:
    return {
        "type": "story_text_object_translation_completed",
        "postId": post_id,
        "textObjectIndex": index,
        "translations": {target: text},
        "timestamp": time.time(),
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


def port_of(endpoint: str) -> int:
    """'tcp://127.0.0.1:5557' -> 5557."""
    return int(endpoint.rsplit(":", 1)[1])
