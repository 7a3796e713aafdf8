"""The task table: the units of work the dispatcher has accepted, from admission to their outcome.

Pure bookkeeping (no sockets, no clock of its own: callers pass `now`); the dispatcher
(appliance/core/dispatcher.py) owns it and adds the request records, outcomes and retries.

    record ──add──▶ one TargetTask per target language to run (uid) ──▶ pending (FIFO)
    pending ──assign──▶ outstanding at a slot (least-loaded slot with credit; attempt += 1)
    answer from the slot holding it ──finish──▶ the unit leaves the table: one outcome
    slot died ──slot_died──▶ its units go back to the front of pending (or are reported out of
                             attempts after max_attempts dispatches)
    deadline passed ──expired──▶ the dispatcher finishes it with a timeout error
    same run key as a unit in the table ──▶ a follower of that unit (its leader): never pending,
                             never sent; finished by the dispatcher with the leader's answer

A unit (TargetTask) is one target language of one request. A slot's credit is counted from what
is outstanding there (`outstanding[slot]`: sent, not yet answered), which outlives a unit that
expired: the worker is still busy with it until it answers or dies.

Coalescing. A unit's `run_key` names what a worker would be given for it (the Task's text,
source, model type, format and target: dispatcher.run_digest); two units with the same key get the
same translation. The first unit of a key in the table is its leader (`leaders`); a unit added
while it is in the table follows it (`followers[leader uid]`, oldest first) instead of going to
pending, up to `max_followers_per_key` per leader and `max_followers` in all; past either bound
it runs on its own, as it would without coalescing. A follower is a unit like any other: it
counts in `units`, `held_bytes`, its own deadline and its record's `remaining`. What happens to
the followers when their leader leaves the table:

    take_followers    the leader's answer is theirs (the dispatcher finishes each with it)
    release_followers each runs on its own, at the front of pending, never to follow again
    finish (default)  the oldest follower is promoted: it leads the rest, at the front of pending

Bytes: `held_bytes` is what the records with units in the table hold in memory (their text and
ids, as `record_bytes` counts them, plus UNIT_BYTES per unit); a record is charged when its first
unit comes in and released when its last leaves. The dispatcher refuses admissions beyond
[limits] max_inflight_bytes with it, so the table is bounded in bytes as well as in units.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from ipc.cache_key import Detection


class Outcome(NamedTuple):
    """A target's published event: whether it is a translation, and its encoded JSON."""

    ok: bool
    event: bytes


# What a record and a unit cost beside the text and ids (the record, its dicts and lists, table
# and index entries), rounded up from tracemalloc on a filled table (docs/operations.md).
RECORD_BYTES = 1024
UNIT_BYTES = 256


def record_bytes(text: str, *ids: str | None) -> int:
    """The memory a request record holds: its text and echoed ids as str objects (1, 2 or 4
    bytes per character, and a UTF-8 copy when one was made), plus RECORD_BYTES."""
    return RECORD_BYTES + sys.getsizeof(text) + sum(sys.getsizeof(i) for i in ids if i is not None)


def detached(text: str) -> str:
    """`text` as a str without a cached UTF-8 copy. CPython keeps, inside a non-ASCII str, the
    UTF-8 bytes the first C caller asked for (msgspec's encoders do, for the taskId digest and
    the cache keys), for as long as the str lives: a 5,000-emoji text held 20 KB twice. A str
    made by `decode` has none until the next such caller (the Task frame, when dispatched)."""
    if text.isascii():
        return text  # an ASCII str is its own UTF-8
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")


@dataclass(slots=True, eq=False)
class Waiter:
    """A synchronous request waiting for `targets` of a record."""

    targets: tuple[str, ...]
    reply: Callable[[RequestRecord, tuple[str, ...]], None]


TaskKey = tuple[str, str]  # (scope, taskId): see appliance/core/dispatcher.py, "Scopes"


@dataclass(slots=True, eq=False)
class RequestRecord:
    task_id: str
    digest: bytes  # what the taskId is bound to: text, source language, model type
    message_id: str
    text: str
    source_language: str
    model_type: str
    conversation_id: str | None
    targets: list[str]
    accepted_at: float
    remaining: int = 0  # units in the table
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    detection: Detection | None = None  # set when the request said sourceLanguage "auto"
    remember: bool = True  # kept for retries once finished (the client chose the taskId)
    waiters: list[Waiter] = field(default_factory=list)
    format: str = "text"  # "text" | "html" (protocol.FORMATS)
    held: int = 0  # bytes charged to the table while the record has units there (record_bytes)
    scope: str = ""  # whose taskId namespace this is: "" anonymous, a CURVE client, compat

    @property
    def key(self) -> TaskKey:
        return (self.scope, self.task_id)


@dataclass(slots=True, eq=False)
class TargetTask:
    uid: int
    request: RequestRecord
    target: str
    deadline: float
    attempt: int = 0
    slot: int | None = None
    dispatched_at: float = 0.0
    cache_key: bytes = b""  # the translation's cache key; b"": not cached
    run_key: bytes = b""  # what a worker is given for it (see "Coalescing"); b"": never coalesced
    leader: int = 0  # uid of the unit it follows; 0: it runs itself


class TaskTable:
    def __init__(self, *, max_attempts: int, task_timeout_s: float, max_followers_per_key: int = 0,
                 max_followers: int = 0) -> None:
        self.max_attempts = max_attempts
        self.task_timeout_s = task_timeout_s
        self.max_followers_per_key = max_followers_per_key
        self.max_followers = max_followers
        self.units: dict[int, TargetTask] = {}
        self.pending: deque[int] = deque()
        self.outstanding: dict[int, set[int]] = {}
        self.leaders: dict[bytes, int] = {}  # run key -> uid of the unit running it
        self.followers: dict[int, list[int]] = {}  # leader uid -> uids of its followers, oldest first
        self.following = 0  # followers in the table
        self._next_uid = 1
        self.redispatched = 0
        self.held_bytes = 0

    def add(self, record: RequestRecord, targets: Iterable[str], now: float, keys: Mapping[str, bytes],
            run_digest: bytes = b"") -> None:
        """One unit per target, at the back of pending, or following a unit with the same run key
        (`run_digest` + the target; b"": none of them follows or leads)."""
        for target in targets:
            if record.remaining == 0:
                record.held = record_bytes(record.text, record.task_id, record.message_id, record.conversation_id)
                self.held_bytes += record.held
            self.held_bytes += UNIT_BYTES
            uid = self._next_uid
            self._next_uid += 1
            unit = TargetTask(uid, record, target, deadline=now + self.task_timeout_s, cache_key=keys.get(target, b""),
                              run_key=run_digest + target.encode() if run_digest else b"")
            self.units[uid] = unit
            record.remaining += 1
            if not self._follow(unit):
                self.pending.append(uid)

    def _follow(self, unit: TargetTask) -> bool:
        """Make `unit` follow the leader of its run key; False when it runs itself (and leads
        its key if none does)."""
        if not unit.run_key or not self.max_followers_per_key:
            return False
        leader = self.leaders.setdefault(unit.run_key, unit.uid)
        if leader == unit.uid:
            return False
        followers = self.followers.setdefault(leader, [])
        if len(followers) >= self.max_followers_per_key or self.following >= self.max_followers:
            return False  # past a bound: it runs on its own, as without coalescing
        followers.append(unit.uid)
        unit.leader = leader
        self.following += 1
        return True

    # ------------------------------------------------------------------ dispatch

    def load(self, slot: int) -> int:
        return len(self.outstanding.get(slot, ()))

    def next_assignment(self, ready_slots: Iterable[int], depth: int) -> tuple[TargetTask, int] | None:
        """The oldest pending unit and the least-loaded ready slot with credit, or None."""
        while self.pending and self.pending[0] not in self.units:
            self.pending.popleft()  # expired while pending
        if not self.pending:
            return None
        candidates = [(self.load(s), s) for s in ready_slots if self.load(s) < depth]
        if not candidates:
            return None
        _, slot = min(candidates)
        return self.units[self.pending[0]], slot

    def assign(self, unit: TargetTask, slot: int, now: float) -> None:
        if self.pending and self.pending[0] == unit.uid:
            self.pending.popleft()
        else:
            self.pending.remove(unit.uid)
        unit.attempt += 1
        unit.slot = slot
        unit.dispatched_at = now
        self.outstanding.setdefault(slot, set()).add(unit.uid)

    def unassign(self, unit: TargetTask) -> None:
        """A send that did not go out: the unit goes back to the front, the attempt is not spent."""
        if unit.slot is not None:
            self.outstanding.get(unit.slot, set()).discard(unit.uid)
        unit.slot = None
        unit.attempt -= 1
        self.pending.appendleft(unit.uid)

    # ------------------------------------------------------------------ outcomes

    def release(self, slot: int, uid: int) -> None:
        """The worker in `slot` answered `uid`: it no longer holds it."""
        self.outstanding.get(slot, set()).discard(uid)

    def finish(self, uid: int) -> TargetTask | None:
        """Take a unit out of the table for publishing; None if it already left (drop the answer).
        A follower leaves its leader; a leader's followers, unless taken or released first, are
        led by the oldest of them from now on, which goes to the front of pending."""
        unit = self.units.pop(uid, None)
        if unit is None:
            return None
        record = unit.request
        record.remaining -= 1
        self.held_bytes -= UNIT_BYTES + (record.held if record.remaining == 0 else 0)
        if unit.leader:
            self.followers[unit.leader].remove(uid)
            self.following -= 1
            unit.leader = 0
        elif unit.run_key and self.leaders.get(unit.run_key) == uid:
            del self.leaders[unit.run_key]
            followers = self.followers.pop(uid, [])
            if followers:
                heir = self.units[followers[0]]
                heir.leader = 0
                self.following -= 1
                self.leaders[heir.run_key] = heir.uid
                for follower in followers[1:]:
                    self.units[follower].leader = heir.uid
                if len(followers) > 1:
                    self.followers[heir.uid] = followers[1:]
                self.pending.appendleft(heir.uid)
        return unit

    def take_followers(self, uid: int) -> list[TargetTask]:
        """The followers of `uid`, no longer following (still in the table: finish each)."""
        units = [self.units[f] for f in self.followers.pop(uid, [])]
        for unit in units:
            unit.leader = 0
        self.following -= len(units)
        return units

    def release_followers(self, uid: int) -> None:
        """The followers of `uid` run on their own: at the front of pending, oldest first, and
        never follow again."""
        units = self.take_followers(uid)
        for unit in units:
            unit.run_key = b""
        self.pending.extendleft(u.uid for u in reversed(units))

    def slot_died(self, slot: int) -> tuple[list[TargetTask], list[TargetTask]]:
        """Units the dead slot outstanding: (requeued at the front of pending, out of attempts)."""
        requeued: list[TargetTask] = []
        exhausted: list[TargetTask] = []
        for uid in sorted(self.outstanding.pop(slot, set())):
            unit = self.units.get(uid)
            if unit is None or unit.slot != slot:
                continue  # already answered, expired, or now outstanding elsewhere
            unit.slot = None
            if unit.attempt >= self.max_attempts:
                exhausted.append(unit)
            else:
                requeued.append(unit)
        for unit in reversed(requeued):
            self.pending.appendleft(unit.uid)
        self.redispatched += len(requeued)
        return requeued, exhausted

    def running(self, record: RequestRecord) -> set[str]:
        """The targets of `record` with a unit in the table."""
        return {u.target for u in self.units.values() if u.request is record}

    def expired(self, now: float) -> list[TargetTask]:
        return [u for u in self.units.values() if u.deadline <= now]

    def in_flight(self) -> int:
        return len(self.units)

    def assigned_to(self, slot: int) -> int:
        return sum(1 for uid in self.outstanding.get(slot, ()) if uid in self.units)
