"""A stand-in for Meeshy's gateway ZMQ client, as its TypeScript code behaves (facts in
/work/shared/meeshy-gateway-protocol.md), with its timing scaled by the caller:

    PUSH  one JSON frame per request; a re-push is the same taskId with only the languages
          still missing, `retry_s` after the previous send, at most `retries` times; then the
          task fails with its own "ZMQ timeout" (a `timeouts` count, not a circuit-breaker error)
    SUB   read one frame per `tick_s` (its 100 ms setInterval), on a fixed schedule
    translation_completed  de-duplicated on taskId_targetLanguage over the last 1,000 keys;
          an event without result.messageId is dropped; settles that language only, and counts
          a circuit-breaker success
    translation_error      settles the whole task; a circuit-breaker error ("translation pool
          full" counted apart); `breaker_threshold` in a row open the breaker

Counted for the tests: events read, duplicates that reached the client (past its 1,000 keys) and
every repeat of a key on the wire, languages delivered, timeouts, errors, the breaker's openings.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import zmq

DEDUP_KEYS = 1000
POOL_FULL = "translation pool full"


@dataclass
class Pending:
    request: dict
    languages: set[str]
    sent_at: float
    retries: int = 0


@dataclass
class Tally:
    read: int = 0  # every frame read
    translation_events: int = 0  # translation_completed and translation_error frames
    delivered: dict[str, set[str]] = field(default_factory=dict)  # taskId -> languages emitted
    duplicates: int = 0  # completed events the client emitted twice (past its de-duplication)
    wire_repeats: int = 0  # completed events for a key already seen on the wire
    unserved: int = 0  # completed events whose result.messageId is namespaced "unserved:"
    errors: int = 0  # translation_error events (circuit-breaker errors)
    pool_full: int = 0
    timeouts: int = 0  # tasks the client gave up on ("ZMQ timeout")
    breaker_openings: int = 0
    repushes: int = 0
    stories: list[dict] = field(default_factory=list)


class FakeGateway:
    def __init__(self, ctx: zmq.Context, pull: str, events: str, *, tick_s: float = 0.1, retry_s: float = 30.0,
                 retries: int = 4, breaker_threshold: int = 8) -> None:
        self.push = ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect(pull)
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(events)
        self.tick_s, self.retry_s, self.retries, self.threshold = tick_s, retry_s, retries, breaker_threshold
        self.pending: dict[str, Pending] = {}
        self.dedup: OrderedDict[str, None] = OrderedDict()
        self.seen: set[str] = set()
        self.consecutive_errors = 0
        self.tally = Tally()
        self._next_tick = time.monotonic()

    def close(self) -> None:
        self.push.close(linger=0)
        self.sub.close(linger=0)

    def subscribe(self, deadline: float = 20.0) -> None:
        """Ping until a pong comes: the subscription has reached the appliance."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            self.push.send(json.dumps({"type": "ping", "timestamp": int(time.time() * 1000)}).encode())
            if self.sub.poll(300) and any(json.loads(self.sub.recv()).get("type") == "pong" for _ in [0]):
                while self.sub.poll(50):
                    self.sub.recv()
                self._next_tick = time.monotonic()
                return
        raise AssertionError("no pong on the compat PUB")

    def translate(self, request: dict) -> None:
        self.push.send(json.dumps(request).encode())
        self.pending[request["taskId"]] = Pending(request, set(request["targetLanguages"]), time.monotonic())

    def story(self, request: dict) -> None:
        self.push.send(json.dumps(request).encode())

    def run(self, until, deadline: float) -> None:
        """Tick until `until()` is true (checked each tick) or `deadline` seconds pass."""
        end = time.monotonic() + deadline
        while not until() and time.monotonic() < end:
            self.tick()

    def tick(self) -> None:
        """Wait for the next tick (late ticks catch up: the average pace holds), read one frame,
        fire the re-push timers that are due."""
        now = time.monotonic()
        if now < self._next_tick:
            time.sleep(self._next_tick - now)
        self._next_tick += self.tick_s
        self._read_one()
        self._timers()

    def _read_one(self) -> None:
        try:
            raw = self.sub.recv(zmq.NOBLOCK)
        except zmq.Again:
            return
        self.tally.read += 1
        event = json.loads(raw)
        kind = event.get("type")
        if kind == "translation_completed":
            self._completed(event)
        elif kind == "translation_error":
            self._error(event)
        elif kind == "story_text_object_translation_completed":
            self.tally.stories.append(event)

    def _completed(self, event: dict) -> None:
        self.tally.translation_events += 1
        key = f"{event['taskId']}_{event['targetLanguage']}"
        if key in self.seen:
            self.tally.wire_repeats += 1
        self.seen.add(key)
        if key in self.dedup:
            return
        result = event.get("result") or {}
        if not result.get("messageId"):
            return
        self.dedup[key] = None
        if len(self.dedup) > DEDUP_KEYS:
            self.dedup.popitem(last=False)
        self.consecutive_errors = 0
        delivered = self.tally.delivered.setdefault(event["taskId"], set())
        if event["targetLanguage"] in delivered:
            self.tally.duplicates += 1
        delivered.add(event["targetLanguage"])
        if result["messageId"].startswith("unserved:"):
            self.tally.unserved += 1
        pending = self.pending.get(event["taskId"])
        if pending is not None:
            pending.languages.discard(result.get("targetLanguage") or event["targetLanguage"])
            if not pending.languages:
                del self.pending[event["taskId"]]

    def _error(self, event: dict) -> None:
        self.tally.translation_events += 1
        self.tally.errors += 1
        if event.get("error") == POOL_FULL:
            self.tally.pool_full += 1
        self.consecutive_errors += 1
        if self.consecutive_errors == self.threshold:
            self.tally.breaker_openings += 1
        self.pending.pop(event.get("taskId", ""), None)

    def _timers(self) -> None:
        now = time.monotonic()
        for task_id, pending in list(self.pending.items()):
            if now - pending.sent_at < self.retry_s:
                continue
            if pending.retries >= self.retries:
                self.tally.timeouts += 1
                del self.pending[task_id]
                continue
            pending.retries += 1
            pending.sent_at = now
            self.tally.repushes += 1
            self.push.send(json.dumps({**pending.request, "targetLanguages": sorted(pending.languages)}).encode())
