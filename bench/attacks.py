"""The attacks of issue 16, one small function each, for the hostile soak (`bench/soak.py --hostile`).

Each attack is `attack(arena) -> dict`: one burst through real sockets, sent without waiting on
the appliance (replies to the attacker are read and dropped by `Arena.drain`), so the soak's loop
never stalls on it; the dict says what was sent. ATTACKS is the rotation: to add one, write a
function and append it.

    apertium_syntax   Apertium stream syntax (^ $ [ ] \\ @ * # { } < > / + ~ | U+FFFF NUL ...) in
                      texts sent modelType auto and rule-based, on the pairs Apertium serves,
                      beside the honest Apertium-bound texts (engine framing, item 1)
    compat_frames     compat PUSH: messages of many frames, and of large frames (item 4)
    compat_targets    compat PUSH: a translation whose targetLanguages list is 16 MiB (item 4)
    inflight_fill     5,000-character emoji texts, as fast as the requests socket takes them (item 4)
    http_hold         HTTP connections that send half a header and hold it, while the honest
                      token holder calls (item 6)
    squat_native      honest clients' next taskIds, taken first on 5555 with the attacker's text (item 5)
    squat_compat      honest native clients' next taskIds and texts sent through compat first (item 5)
    email_detect      5,000-character e-mail-shaped texts, and a flood of `detect` (item 7)

Every attacker text carries MARK, so an honest result that contains it is foreign.
"""

from __future__ import annotations

import collections
import json
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq

from bench.harness import waiting

MARK = "zqxj"  # in every attacker text; a word no honest text or model output contains
MIB = 1024 * 1024

# Apertium's stream format (lttoolbox and apertium's deformatters): every character with a meaning
# there, and a few Unicode ones that have broken chains (noncharacters, NUL, separators).
STREAM_SYNTAX = ["^", "$", "/", "<", ">", "@", "*", "#", "[", "]", "{", "}", "\\", "+", "~", "|", "=",
                 "\uffff", "\ufffe", "\x00", "\u2028", "\x0c", "[]", "^a$", "^a/b$", "\\^", "<b>", "[\\]"]
SOURCE_WORDS = {"en": "the cat sees the dog", "es": "el gato ve el perro", "fr": "le chat voit le chien"}
APERTIUM_PAIRS = [("en", "es"), ("es", "fr"), ("fr", "es"), ("es", "en")]


@dataclass
class Arena:
    """What the attackers share: the appliance's endpoints, their sockets, and what they sent."""

    ctx: zmq.Context
    endpoints: dict
    rng: random.Random
    http_token: str = ""
    # The honest native clients' next requests, (taskId, body), for the squatting attacks.
    upcoming: Callable[[int], list[tuple[str, dict]]] = lambda n: []
    # The compat door's sockets (plain ZMTP: no CURVE there); None: `ctx` makes them too.
    compat_ctx: zmq.Context | None = None
    counts: collections.Counter = field(default_factory=collections.Counter)
    _dealer: zmq.Socket | None = None
    _push: zmq.Socket | None = None
    _held: list[socket.socket] = field(default_factory=list)
    _n: int = 0
    _big_targets: bytes = b""

    def next_id(self) -> str:
        self._n += 1
        return f"atk-{self._n}"

    @property
    def dealer(self) -> zmq.Socket:
        if self._dealer is None:
            self._dealer = self.ctx.socket(zmq.DEALER)
            self._dealer.setsockopt(zmq.LINGER, 0)
            self._dealer.setsockopt(zmq.SNDHWM, 100_000)
            self._dealer.connect(self.endpoints["requests"])
        return self._dealer

    @property
    def push(self) -> zmq.Socket | None:
        if self._push is None and self.endpoints.get("compat_pull"):
            self._push = (self.compat_ctx or self.ctx).socket(zmq.PUSH)
            self._push.setsockopt(zmq.LINGER, 0)
            self._push.setsockopt(zmq.SNDHWM, 64)
            self._push.connect(self.endpoints["compat_pull"])
        return self._push

    def send(self, body: dict) -> None:
        """One request on 5555 from the attacker (its reply is drained, unread)."""
        try:
            self.dealer.send(json.dumps(body, ensure_ascii=False).encode(), zmq.NOBLOCK)
            self.counts["native_sent"] += 1
        except zmq.Again:
            self.counts["native_blocked"] += 1

    def push_frames(self, frames: list[bytes]) -> None:
        """One multipart message on the compat PULL (never waits: a full pipe skips it)."""
        if self.push is None:
            return
        try:
            self.push.send_multipart(frames, zmq.NOBLOCK)
            self.counts["compat_sent"] += 1
        except zmq.Again:
            self.counts["compat_blocked"] += 1

    def drain(self) -> None:
        if self._dealer is None:
            return
        for _ in waiting(self._dealer):
            self.counts["native_replies"] += 1

    def release_http(self) -> None:
        for conn in self._held:
            conn.close()
        self._held.clear()

    def close(self) -> None:
        self.release_http()
        for sock in (self._dealer, self._push):
            if sock is not None:
                sock.close(linger=0)


def apertium_syntax(arena: Arena) -> dict:
    sent = 0
    for ch in STREAM_SYNTAX:
        source, target = arena.rng.choice(APERTIUM_PAIRS)
        words = SOURCE_WORDS[source]
        for text in (f"{words} {MARK}{arena._n} {ch}", f"{words}{ch}", f"{ch}{MARK} {words} {ch}{ch}"):
            for model_type in ("rule-based", "auto"):
                mid = arena.next_id()
                arena.send({"messageId": mid, "taskId": mid, "text": text, "sourceLanguage": source,
                            "targetLanguage": target, "modelType": model_type})
                sent += 1
    return {"requests": sent}


def compat_frames(arena: Arena) -> dict:
    ping = json.dumps({"type": "ping", "timestamp": int(time.time() * 1000)}).encode()
    arena.push_frames([ping, *([b"\0" * 65536] * 200)])  # many frames: 12.5 MiB
    arena.push_frames([ping, *([b"\1" * (8 * MIB)] * 2)])  # large frames: 16 MiB
    return {"messages": 2}


def compat_targets(arena: Arena) -> dict:
    if not arena._big_targets:
        head = {"type": "translation", "taskId": str(uuid.uuid4()), "messageId": f"{MARK}-big", "text": f"{MARK} hello",
                "sourceLanguage": "en", "modelType": "basic"}
        arena._big_targets = json.dumps(dict(head, targetLanguages=["fr"] * (16 * MIB // 6))).encode()
    arena.push_frames([arena._big_targets])
    return {"bytes": len(arena._big_targets)}


def inflight_fill(arena: Arena) -> dict:
    emoji = [chr(c) for c in range(0x1F600, 0x1F640)]
    for _ in range(300):
        mid = arena.next_id()
        text = MARK + "".join(arena.rng.choice(emoji) for _ in range(4996))
        arena.send({"messageId": mid, "taskId": mid, "text": text, "sourceLanguage": "en", "targetLanguages": ["fr", "es"]})
    return {"requests": 300}


def http_hold(arena: Arena) -> dict:
    """Connections that send part of a header and stop; held until this attack's next turn."""
    url = arena.endpoints.get("http")
    if not url:
        return {"skipped": "no HTTP"}
    arena.release_http()
    host, port = url.rsplit("/", 1)[-1].rsplit(":", 1)
    for _ in range(300):
        try:
            conn = socket.create_connection((host.strip("[]"), int(port)), timeout=0.5)
            conn.sendall(b"POST /translate HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            arena._held.append(conn)
        except OSError:
            arena.counts["http_refused"] += 1
    return {"held": len(arena._held)}


def squat_native(arena: Arena) -> dict:
    taken = 0
    for task_id, body in arena.upcoming(5):
        arena.send({"messageId": f"{MARK}-sq", "taskId": task_id, "text": f"{MARK} the dog sees the cat",
                    "sourceLanguage": body["sourceLanguage"], "targetLanguages": body["targetLanguages"],
                    "modelType": body["modelType"]})
        taken += 1
    return {"taskIds": taken}


def squat_compat(arena: Arena) -> dict:
    """The same text under an honest client's next taskId, through compat: on main, its events
    then go to the compat PUB, away from the native client that asks next."""
    taken = 0
    for task_id, body in arena.upcoming(8)[5:]:  # beyond squat_native's: each attack its own
        request = {"type": "translation", "taskId": task_id, "messageId": f"{MARK}-sqc", "text": body["text"],
                   "sourceLanguage": body["sourceLanguage"], "targetLanguages": body["targetLanguages"],
                   "conversationId": "c", "modelType": body["modelType"], "timestamp": int(time.time() * 1000)}
        arena.push_frames([json.dumps(request, ensure_ascii=False).encode()])
        taken += 1
    return {"taskIds": taken}


def email_text(rng: random.Random) -> str:
    parts = []
    while sum(map(len, parts)) < 5000:
        parts.append(f"{MARK}.{'a.' * rng.randint(5, 40)}b@{'c-' * rng.randint(5, 30)}d.{'e' * rng.randint(2, 9)} ")
    return "".join(parts)[:5000]


def email_detect(arena: Arena) -> dict:
    for _ in range(5):
        mid = arena.next_id()
        arena.send({"messageId": mid, "taskId": mid, "text": email_text(arena.rng), "sourceLanguage": "auto",
                    "targetLanguage": "fr"})
    for _ in range(150):
        arena.send({"type": "detect", "messageId": arena.next_id(), "text": email_text(arena.rng)})
    return {"translations": 5, "detects": 150}


ATTACKS: list[Callable[[Arena], dict]] = [
    apertium_syntax, compat_frames, compat_targets, inflight_fill, http_hold, squat_native, squat_compat,
    email_detect,
]
