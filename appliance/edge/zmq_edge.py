"""The ZeroMQ edge: ROUTER on 5555 (requests and replies), PUB on 5556 (events).

Scopes (appliance/core/dispatcher.py, "Scopes"). Without CURVE every request is in the anonymous
scope "" and every event is one JSON frame to every subscriber. With CURVE (`scoped`), each
request is in its client's scope, read from the ZAP User-Id libzmq attaches to the message
(frames received with copy=False carry it), and the events socket is an XPUB in manual mode:

    received  [identity, *envelope, body]   + User-Id (the client's Z85 public key) -> its scope
    published [topic, json]                 topic = the public key of the task's client
    XPUB      subscription messages read here; applied only for the subscriber's own key
              (appliance/edge/curve.py, "Events under CURVE"); others are counted, never applied

A task of a scope that is no CURVE client (HTTP's) has no topic: its events are not published
on a CURVE appliance (counted in withheld_events).

Envelope handling, so plain REQ clients see REQ/REP and DEALER clients may pipeline:

    received  [identity, *envelope, body]   envelope = every frame up to and including the first
                                            empty frame (a REQ client's delimiter); none for a
                                            DEALER that sends the JSON frame alone
    replied   [identity, *envelope, json]

The body must be exactly one frame; anything else is answered with `invalid_request`. Replies and
events are sent without blocking: a vanished client's reply, or an event beyond a slow
subscriber's HWM, is dropped by ZeroMQ rather than buffered without bound. ZeroMQ counts
messages, so `buffer_hwm` turns the byte budgets ([ipc] edge_buffer_bytes, pub_buffer_bytes) into
high-water marks using the largest reply and event the limits allow.

Hot path: cache hits are answered entirely here, so the per-message cost matters, and no asyncio
future is made per message. The edge uses plain (shadow) sockets on the event loop's thread and
watches the ROUTER's ZMQ_FD itself. That descriptor is edge-triggered: it signals a change, and
any operation on the socket (a send included) may consume the signal. So the reader callback
receives until EAGAIN (at most `RECV_BATCH` per turn, then it yields and continues), and a
send on the ROUTER schedules another pass. Replies and events made while a pass reads are held
and sent in bursts (every `SEND_BATCH` replies and at the end of the pass), replies first:
each message sent to an idle pipe wakes libzmq's I/O thread, and on a loaded machine that
wakeup costs more than everything else a cache hit does; in a burst most messages find it awake.
"""

from __future__ import annotations

import asyncio
import logging

import zmq
import zmq.asyncio

from appliance.edge import curve
from appliance.core import protocol
from appliance.core.ports import Service
from appliance.config import Settings
from ipc.events import Event

log = logging.getLogger("meeshy.edge")

RECV_BATCH = 256  # messages taken per wakeup before yielding to the rest of the loop
SEND_BATCH = 64  # replies held before a burst, so the first request read waits for few others


EVENT_OVERHEAD_BYTES = 2048  # every field of an event but its text and ids, generously


def largest_event_bytes(settings: Settings) -> int:
    """An event's size bound: a translation of at most 2 x max_text_chars characters (the
    dispatcher fails a longer one), 4 UTF-8 bytes each, three echoed ids, the other fields."""
    limits = settings.limits
    return 8 * limits.max_text_chars + 3 * limits.max_id_bytes + EVENT_OVERHEAD_BYTES


def buffer_hwm(settings: Settings) -> tuple[int, int]:
    """(ROUTER, PUB) high-water marks: the per-client byte budgets over the largest reply (a
    synchronous body holding max_targets results) and the largest event."""
    event = largest_event_bytes(settings)
    reply = settings.limits.max_targets * event
    return max(16, settings.ipc.edge_buffer_bytes // reply), max(16, settings.ipc.pub_buffer_bytes // event)


def split_envelope(frames: list[bytes]) -> tuple[bytes, list[bytes], list[bytes]]:
    identity, rest = frames[0], frames[1:]
    for i, frame in enumerate(rest):
        if not frame:
            return identity, rest[: i + 1], rest[i + 1 :]
    return identity, [], rest


class Edge:
    def __init__(self, router: zmq.asyncio.Socket, pub: zmq.asyncio.Socket, *, scoped: bool = False) -> None:
        """Events may be published as soon as it is built; requests are read only while
        `serve(service)` runs (appliance/lifecycle/supervisor.py, "Wiring")."""
        self.service: Service | None = None  # the one serve() answers with
        self.router = router
        self.pub = pub
        self.scoped = scoped  # CURVE: per-client scopes, `pub` an XPUB secured by EdgeCurve
        # Plain sockets sharing the asyncio sockets' underlying ZeroMQ sockets (same thread).
        self._router = zmq.Socket.shadow(router.underlying)
        self._pub = zmq.Socket.shadow(pub.underlying)
        # A reply that cannot be queued (the client's budget is full, or it is gone) raises
        # instead of vanishing, so it is counted in dropped_replies.
        self._router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.dropped_replies = 0
        self.dropped_events = 0
        self.withheld_events = 0  # scoped: events of tasks with no CURVE client (HTTP's)
        self.refused_subscriptions = 0  # scoped: subscriptions to anything but the subscriber's own key
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False
        self._read_scheduled = False
        self._replies: list[list[bytes]] = []  # answered while reading: sent by _flush
        self._events: list[tuple[str, bytes]] = []
        self._subs_scheduled = False

    async def serve(self, service: Service) -> None:
        """Receive requests and answer them with `service` until cancelled."""
        self.service = service
        self._loop = asyncio.get_running_loop()
        fd = self._router.getsockopt(zmq.FD)
        self._loop.add_reader(fd, self._read_requests)
        subs_fd = self._pub.getsockopt(zmq.FD) if self.scoped else None
        if subs_fd is not None:
            self._loop.add_reader(subs_fd, self._read_subscriptions)
        try:
            self._read_requests()  # whatever arrived before the reader was added
            if subs_fd is not None:
                self._read_subscriptions()
            await asyncio.get_running_loop().create_future()
        finally:
            self._loop.remove_reader(fd)
            if subs_fd is not None:
                self._loop.remove_reader(subs_fd)
            self._loop = None

    def _read_requests(self) -> None:
        self._read_scheduled = False
        if self._loop is None:
            return  # scheduled before the edge stopped: its sockets may be closed
        recv = self._router.recv_multipart
        copy = not self.scoped  # a Frame carries the message's User-Id
        self._reading = True
        try:
            for _ in range(RECV_BATCH):
                try:
                    frames = recv(zmq.NOBLOCK, copy=copy)
                except zmq.Again:
                    if not self._replies and not self._events:
                        return
                    # Nothing more to read: send what was answered, then look again (the
                    # sends may have consumed the FD's signal, and more may have come).
                    self._flush()
                    continue
                try:
                    self.handle(frames)
                except Exception:  # one request must never stop the edge
                    log.exception("unexpected error handling a request")
                if len(self._replies) >= SEND_BATCH:
                    self._flush()
            self._schedule_read()  # more is queued: go on after the loop's other callbacks
        finally:
            self._reading = False
            if self._replies or self._events:  # the batch ran out, or an error: nothing is held
                self._flush()
                self._schedule_read()

    def _flush(self) -> None:
        """Send what the requests read in this pass answered: their replies, then their events,
        each socket's in one burst (a message to an idle pipe wakes libzmq's I/O thread; in a
        burst, some find it awake)."""
        replies, events = self._replies, self._events
        if replies:
            self._replies = []
            send = self._router.send_multipart
            for frames in replies:
                try:
                    send(frames, zmq.NOBLOCK)
                except zmq.ZMQError:  # EAGAIN: the client's budget is full; EHOSTUNREACH: it left
                    self.dropped_replies += 1
        if events:
            self._events = []
            for scope, data in events:
                self._publish_now(scope, data)
    def _schedule_read(self) -> None:
        if not self._read_scheduled and self._loop is not None:
            self._read_scheduled = True
            self._loop.call_soon(self._read_requests)

    def handle(self, frames: list[bytes] | list[zmq.Frame]) -> None:
        scope = ""
        if self.scoped:
            try:
                scope = curve.scope_of(frames[-1].get("User-Id"))
            except (zmq.ZMQError, ValueError):  # no CURVE identity: ZAP let nobody in unnamed
                log.error("a request without a CURVE client identity on a CURVE edge: dropped")
                return
            frames = [f.bytes for f in frames]
        identity, envelope, body = split_envelope(frames)
        self.service.count_request()

        def reply(obj: dict) -> None:
            self._send([identity, *envelope, protocol.encode(obj)])

        if len(body) != 1:
            reply(
                protocol.error_body(
                    protocol.INVALID_REQUEST,
                    f"a request is one frame holding a JSON object; got {len(body)} frames",
                )
            )
            return
        self.service.respond(body[0], reply, scope=scope)

    def _send(self, frames: list[bytes]) -> None:
        self._replies.append(frames)
        if not self._reading:  # a reply from outside the read loop (a synchronous request's)
            self._flush()
            self._schedule_read()  # this send may have consumed the FD's signal

    def publish(self, event: dict, scope: str = "") -> None:
        self.publish_bytes(scope, protocol.encode(event))

    def publish_event(self, scope: str, event: Event, data: bytes) -> None:
        """The dispatcher's publish: the event's JSON as encoded there; the value is not needed here."""
        self.publish_bytes(scope, data)

    def publish_bytes(self, scope: str, data: bytes) -> None:
        """An event of a task in `scope`: one frame to every subscriber, or (scoped) [topic, json]
        to the subscribers of that scope's client only. While requests are being read, it goes
        out with the pass's burst, after the replies (_flush)."""
        if self._reading:
            self._events.append((scope, data))
        else:
            self._publish_now(scope, data)

    def _publish_now(self, scope: str, data: bytes) -> None:
        try:
            if not self.scoped:
                self._pub.send(data, zmq.NOBLOCK)
                return
            topic = curve.topic_of(scope)
            if topic is None:
                self.withheld_events += 1
                return
            self._pub.send_multipart((topic, data), zmq.NOBLOCK)
        except zmq.ZMQError:
            self.dropped_events += 1
        if self.scoped:
            self._schedule_subscriptions()  # this send may have consumed the XPUB's FD signal

    # ------------------------------------------------------------------ subscriptions (scoped)

    def _read_subscriptions(self) -> None:
        """Apply each subscription that names the subscriber's own key, to that subscriber's
        pipe only (ZMQ_XPUB_MANUAL: a setsockopt after a recv applies to the pipe it came from)."""
        self._subs_scheduled = False
        if self._loop is None:
            return  # scheduled before the edge stopped: its sockets may be closed
        for _ in range(RECV_BATCH):
            try:
                frame = self._pub.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                user_id = frame.get("User-Id")
            except zmq.ZMQError:
                user_id = ""
            allowed = curve.allowed_subscription(frame.bytes, user_id)
            if allowed is None:
                self.refused_subscriptions += 1
                continue
            action, topic = allowed
            self._pub.setsockopt(zmq.SUBSCRIBE if action == curve.SUBSCRIBE else zmq.UNSUBSCRIBE, topic)
        self._schedule_subscriptions()  # more is queued

    def _schedule_subscriptions(self) -> None:
        if not self._subs_scheduled and self._loop is not None:
            self._subs_scheduled = True
            self._loop.call_soon(self._read_subscriptions)

    def counters(self) -> dict:
        counts = {"dropped_replies": self.dropped_replies, "dropped_events": self.dropped_events}
        if self.scoped:
            counts.update(withheld_events=self.withheld_events, refused_subscriptions=self.refused_subscriptions)
        return counts
