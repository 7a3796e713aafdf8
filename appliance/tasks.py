"""The task table: every accepted unit of work, from admission to its one published outcome.

Pure bookkeeping (no sockets, no clock of its own: callers pass `now`), so the rules that make
"no accepted task is lost, none is published twice" hold are tested in-process.

    request (taskId) ──admit──▶ one Unit per target language (uid) ──▶ pending (FIFO)
    pending ──dispatch──▶ assigned to a slot (least-loaded slot with credit; attempt += 1)
    answer from a worker ──finish──▶ the unit leaves the table: its first answer is published,
                                      any later answer finds nothing and is dropped
    slot died ──slot_died──▶ its units go back to the front of pending (or fail with
                             worker_crashed after max_attempts dispatches)
    deadline passed ──expire──▶ the unit leaves the table with a timeout error

A slot's credit is counted from what it holds (`held[slot]`), which outlives a unit that expired
or was answered by another worker: the worker is still busy with it until it answers or dies.
Capacity is bounded: `admit` refuses (Overloaded) when the table would exceed `max_units`.
A bounded LRU remembers recently finished taskIds so a late retry starts no new work either.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from ipc.cache_key import Detection


class Overloaded(Exception):
    pass


@dataclass(slots=True, eq=False)
class RequestRecord:
    task_id: str
    message_id: str
    text: str
    source_language: str
    model_type: str
    conversation_id: str | None
    targets: tuple[str, ...]
    accepted_at: float
    remaining: int = 0
    outcomes: dict[str, dict] = field(default_factory=dict)  # target -> event, kept for sync waiters
    detection: Detection | None = None  # set when the request said sourceLanguage "auto"
    waiters: list[Callable[[RequestRecord], None]] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Unit:
    uid: int
    request: RequestRecord
    target: str
    deadline: float
    attempt: int = 0
    slot: int | None = None
    dispatched_at: float = 0.0
    cache_key: bytes = b""  # the translation's cache key; b"": not cached


class TaskTable:
    def __init__(self, *, max_units: int, max_attempts: int, task_timeout_s: float, recent_ids: int) -> None:
        self.max_units = max_units
        self.max_attempts = max_attempts
        self.task_timeout_s = task_timeout_s
        self.recent_capacity = recent_ids
        self.units: dict[int, Unit] = {}
        self.requests: dict[str, RequestRecord] = {}
        self.pending: deque[int] = deque()
        self.held: dict[int, set[int]] = {}
        self.recent: OrderedDict[str, None] = OrderedDict()
        self._next_uid = 1
        self.redispatched = 0

    # ------------------------------------------------------------------ admission

    def lookup(self, task_id: str) -> RequestRecord | None:
        return self.requests.get(task_id)

    def recently_finished(self, task_id: str) -> bool:
        return task_id in self.recent

    def admit(
        self,
        *,
        task_id: str,
        message_id: str,
        text: str,
        source_language: str,
        model_type: str,
        conversation_id: str | None,
        targets: tuple[str, ...],
        now: float,
        done: Collection[str] = (),
        keys: Mapping[str, bytes] | None = None,
    ) -> RequestRecord:
        """Admit a request: one unit per target not in `done` (targets already answered, from
        the cache: they take no unit and no capacity). A request with nothing left to do is
        finished at once (its taskId goes to the recent list)."""
        todo = [t for t in targets if t not in done]
        if len(self.units) + len(todo) > self.max_units:
            raise Overloaded(f"{len(self.units)} tasks in flight; the limit is {self.max_units}")
        record = RequestRecord(
            task_id=task_id,
            message_id=message_id,
            text=text,
            source_language=source_language,
            model_type=model_type,
            conversation_id=conversation_id,
            targets=targets,
            accepted_at=now,
            remaining=len(todo),
        )
        if not todo:
            self._remember(task_id)
            return record
        self.requests[task_id] = record
        for target in todo:
            uid = self._next_uid
            self._next_uid += 1
            key = keys.get(target, b"") if keys else b""
            self.units[uid] = Unit(uid, record, target, deadline=now + self.task_timeout_s, cache_key=key)
            self.pending.append(uid)
        return record

    # ------------------------------------------------------------------ dispatch

    def load(self, slot: int) -> int:
        return len(self.held.get(slot, ()))

    def next_assignment(self, ready_slots: Iterable[int], depth: int) -> tuple[Unit, int] | None:
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

    def assign(self, unit: Unit, slot: int, now: float) -> None:
        if self.pending and self.pending[0] == unit.uid:
            self.pending.popleft()
        else:
            self.pending.remove(unit.uid)
        unit.attempt += 1
        unit.slot = slot
        unit.dispatched_at = now
        self.held.setdefault(slot, set()).add(unit.uid)

    def unassign(self, unit: Unit) -> None:
        """A send that did not go out: the unit goes back to the front, the attempt is not spent."""
        if unit.slot is not None:
            self.held.get(unit.slot, set()).discard(unit.uid)
        unit.slot = None
        unit.attempt -= 1
        self.pending.appendleft(unit.uid)

    # ------------------------------------------------------------------ outcomes

    def release(self, slot: int, uid: int) -> None:
        """The worker in `slot` answered `uid`: it no longer holds it."""
        self.held.get(slot, set()).discard(uid)

    def finish(self, uid: int) -> Unit | None:
        """Take a unit out of the table for publishing; None if it already left (drop the answer)."""
        unit = self.units.pop(uid, None)
        if unit is None:
            return None
        record = unit.request
        record.remaining -= 1
        if record.remaining == 0:
            del self.requests[record.task_id]
            self._remember(record.task_id)
        return unit

    def _remember(self, task_id: str) -> None:
        if self.recent_capacity:
            self.recent[task_id] = None
            self.recent.move_to_end(task_id)
            while len(self.recent) > self.recent_capacity:
                self.recent.popitem(last=False)

    def slot_died(self, slot: int) -> tuple[list[Unit], list[Unit]]:
        """Units the dead slot held: (requeued at the front of pending, out of attempts)."""
        requeued: list[Unit] = []
        exhausted: list[Unit] = []
        for uid in sorted(self.held.pop(slot, set())):
            unit = self.units.get(uid)
            if unit is None or unit.slot != slot:
                continue  # already answered, expired, or now held elsewhere
            unit.slot = None
            if unit.attempt >= self.max_attempts:
                exhausted.append(unit)
            else:
                requeued.append(unit)
        for unit in reversed(requeued):
            self.pending.appendleft(unit.uid)
        self.redispatched += len(requeued)
        return requeued, exhausted

    def expired(self, now: float) -> list[Unit]:
        return [u for u in self.units.values() if u.deadline <= now]

    def in_flight(self) -> int:
        return len(self.units)

    def assigned_to(self, slot: int) -> int:
        return sum(1 for uid in self.held.get(slot, ()) if uid in self.units)
