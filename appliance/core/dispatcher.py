"""The dispatcher: the supervisor's pure core. Every accepted task, from admission to its one
published outcome, and what a retry with the same taskId gets.

No sockets and no clock of its own: the shell hands it `send_task` (a Task to a slot's socket,
False when it could not go out), `publish` (an event, as its `ipc.events` value and its JSON,
with the scope of the task it belongs to, to whatever delivers that scope's events) and `now`, so
dispatch, retries, deduplication, timeouts and drain are tested in-process
(tests/appliance/core/test_dispatcher.py).

    admit ──▶ RequestRecord (taskId bound to a digest of text, source and model type)
              │ targets answered already (cache, same language, a previous attempt): published now
              └ the rest: one unit each in the TaskTable ──dispatch──▶ least-loaded ready slot
    Result / TaskFailed from the slot holding the unit ──▶ its outcome, published once
    an outcome: its event built (appliance/core/events.py), encoded once, published, and kept
              as bytes (tasks.Outcome) for a retry, which gets those bytes again
    worker died ──▶ its units run again (worker_crashed after max_attempts)
    expire(now) ──▶ timeout;  fail_all ──▶ drain deadline, halt
    every target has an outcome ──▶ the record moves to `recent` (bounded in count and bytes)

A taskId names one content. Seen again with other content it is refused (TaskIdConflict) and
never reaches the first request's results. With the same content (a gateway's retry, perhaps
naming only the languages it still misses), each target named gets: nothing new while it runs;
its recorded outcome again when it finished; a new run when it failed or is new.

Coalescing. Identical work in flight is done once: a unit whose run key (what a worker would be
given: text, resolved source, model type, format, target; `run_digest`) matches a unit already in
the table follows it instead of being sent (tasks.py, "Coalescing"; bounded by [limits]
max_coalesced_per_key and max_coalesced, beyond which a unit runs on its own). The key is the
Task's content, not the message's cache key: the cache key is absent with the cache off and
differs between sourceLanguage "auto" and the language it detects, though the worker is given the
same Task. When the leader leaves the table, each follower gets exactly one outcome, its own:

    Result, cacheable     the translation, in an event built from the follower's own record
                          (its scope, taskId, messageId, conversationId, detection): of the
                          leader's request it carries only the translation of the identical text
    Result, not cacheable each follower runs on its own (an engine exchange went wrong during
                          the leader's run, e.g. a desynced Apertium chain: its text is correct
                          for the message, but no cache may keep it, and a follower sent alone
                          would most likely have had a clean run; sharing it would hand every
                          follower an answer it would not have got alone)
    TaskFailed, timeout,  the oldest follower runs it again and leads the others (a failure may
    output too long       be the leader's alone; each follower keeps its own deadline)
    worker died           the leader is dispatched again, still leading (as before); out of
                          attempts, the followers fail with worker_crashed too: running the
                          text that killed max_attempts workers again per follower would kill
                          more, and alone each would have been in those batches

So a follower gets what a cache hit would have given it, or the outcome of its own run.

Scopes. A taskId is only unique within its scope, an opaque string the caller gives with each
request: the records are keyed by (scope, taskId), and every event is published with its
record's scope. The service uses "" for anonymous clients (5555 without CURVE, HTTP), the
CURVE client's identity for an authenticated one (appliance/edge/curve.py), and one scope for
Meeshy's gateway (appliance/edge/compat.py). So two scopes may use the same taskId and never reach
each other's records, outcomes or events; within a scope, ids are first come, first served.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

import msgspec

from appliance.core import events, protocol
from appliance.config import LimitSettings
from appliance.core.tasks import UNIT_BYTES, Outcome, RequestRecord, TaskKey, TaskTable, TargetTask, Waiter
from ipc.events import Completed, Event
from ipc.events import decode as decode_event
from ipc.events import encode as encode_event
from ipc.frames import Result, Task, TaskFailed


class Overloaded(Exception):
    pass


class TaskIdConflict(Exception):
    pass


class TooManyWaiters(Exception):
    pass


@dataclass(slots=True, eq=False)
class Finished:
    """A record whose targets all have outcomes, kept for retries (without its text)."""

    digest: bytes
    message_id: str
    outcomes: dict[str, Outcome]
    size: int


def content_digest(text: str, source_language: str, model_type: str, format: str = "text") -> bytes:
    # str.encode, not an encoder given the str: that would leave a UTF-8 copy cached inside the
    # text for as long as it lives (tasks.detached). A format other than text is another message.
    head = [source_language, model_type] + ([format] if format != "text" else [])
    digest = hashlib.blake2b(msgspec.msgpack.encode(head), digest_size=16)
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.digest()


def run_digest(record: RequestRecord) -> bytes:
    """What a worker is given for each of `record`'s targets besides the target itself: its
    text, source (the detected one for "auto"), model type and format. Units with the same
    digest and target coalesce."""
    return content_digest(record.text, record.source_language, record.model_type, record.format)


class Dispatcher:
    def __init__(
        self,
        limits: LimitSettings,
        queue_depth: int,
        send_task: Callable[[int, Task], bool],
        publish: Callable[[str, Event, bytes], None],
        *,
        max_output_chars: int | None = None,
        on_idle: Callable[[], None] = lambda: None,
        on_completed: Callable[[TargetTask, Result], None] = lambda unit, frame: None,
        on_coalesced: Callable[[TargetTask, TargetTask, Result], None] = lambda unit, leader, frame: None,
        on_failed: Callable[[str], None] = lambda code: None,
        on_outcome: Callable[[RequestRecord, str, bool], None] = lambda record, target, ok: None,
        on_dispatched: Callable[[TargetTask, float], None] = lambda unit, now: None,
    ) -> None:
        """`max_output_chars` bounds a translation (default 2 x max_text_chars); the `on_`
        callables are told what happens (they default to nothing):

            on_idle        the last unit in the table finished (a drain waits for it)
            on_completed   each worker result, before it is published (the cache stores it,
                           metrics count it)
            on_coalesced   each follower answered by its leader's result (follower, leader, result)
            on_failed      each error event's code
            on_outcome     each outcome recorded for a target, ok or not (not one published again
                           for a retry): metrics' end-to-end latency
            on_dispatched  each unit sent to a worker, with the `now` it was sent at
        """
        self.max_units = limits.max_inflight_tasks
        self.max_bytes = limits.max_inflight_bytes
        self.refused_for_bytes = 0  # admissions refused by max_inflight_bytes (stats)
        self.max_waiters = limits.max_waiters_per_task
        self.recent_capacity = limits.recent_task_ids
        self.recent_max_bytes = limits.recent_task_bytes
        self.task_timeout_s = limits.task_timeout_s
        self.max_output_chars = max_output_chars or 2 * limits.max_text_chars  # bounds an event's size (edge.buffer_hwm)
        self.queue_depth = queue_depth
        self.table = TaskTable(max_attempts=limits.max_attempts, task_timeout_s=limits.task_timeout_s,
                               max_followers_per_key=limits.max_coalesced_per_key, max_followers=limits.max_coalesced)
        self.coalesced = 0  # targets answered with an identical unit's translation (stats)
        self.records: dict[TaskKey, RequestRecord] = {}
        self.recent: OrderedDict[TaskKey, Finished] = OrderedDict()
        self.recent_bytes = 0
        self.ready_slots: list[int] = []
        self._send_task = send_task
        self._publish = publish
        self.on_idle = on_idle
        self.on_completed = on_completed
        self.on_coalesced = on_coalesced
        self.on_failed = on_failed
        self.on_outcome = on_outcome
        self.on_dispatched = on_dispatched

    # ------------------------------------------------------------------ admission

    def find(self, scope: str, task_id: str, digest: bytes) -> RequestRecord | Finished | None:
        """What already holds `task_id` in `scope`: a record in flight, a finished one, or None.
        Raises TaskIdConflict when it was given to other content."""
        key = (scope, task_id)
        known = self.records.get(key) or self.recent.get(key)
        if known is not None and known.digest != digest:
            raise TaskIdConflict(f"taskId {task_id!r} already names another message; use a new taskId")
        return known

    def check_capacity(self, targets: int, nbytes: int = 0) -> None:
        """Every target counts, answered from the cache or not, so a flood of hits is bounded too;
        `nbytes` (tasks.record_bytes of a new request; 0 for a retry, whose record holds its
        text already) must fit the byte budget with UNIT_BYTES per target."""
        if len(self.table.units) + targets > self.max_units:
            raise Overloaded(f"{len(self.table.units)} tasks in flight; the limit is {self.max_units}")
        if nbytes and self.table.held_bytes + nbytes + targets * UNIT_BYTES > self.max_bytes:
            self.refused_for_bytes += 1
            raise Overloaded(f"tasks in flight hold {self.table.held_bytes} bytes; the limit is {self.max_bytes}")

    def admit(
        self,
        record: RequestRecord,
        *,
        answered: Mapping[str, Completed | Outcome],
        run: Collection[str],
        keys: Mapping[str, bytes],
        now: float,
        republish: Collection[str] = (),
    ) -> None:
        """Start `record`: publish the targets answered already (events; or outcomes recorded by
        an earlier attempt of the same task, published again for the targets in `republish`),
        and queue one unit per target in `run`."""
        self.recent_forget(record.key)
        self.records[record.key] = record
        for target, answer in answered.items():
            if isinstance(answer, Outcome):
                record.outcomes[target] = answer
                if target in republish:
                    self._republish(record.scope, answer)
            else:
                self._record(record, target, answer)
        if run:  # a request answered whole (cache hits) has no unit and no run key to digest
            self.table.add(record, run, now, keys, run_digest(record))
        self._settle(record)

    def rerun(self, record: RequestRecord, targets: Iterable[str], now: float, keys: Mapping[str, bytes]) -> None:
        """A retry of `record` in flight: queue the targets it names that failed or are new."""
        targets = [t for t in targets if t not in record.targets or t in record.outcomes]
        for target in targets:
            record.outcomes.pop(target, None)
            if target not in record.targets:
                record.targets.append(target)
        self.table.add(record, targets, now, keys, run_digest(record))

    def wait(self, record: RequestRecord, targets: tuple[str, ...], reply: Callable[[RequestRecord, tuple[str, ...]], None]) -> None:
        """Call `reply(record, targets)` once each of `targets` has an outcome (now, if they have)."""
        if all(t in record.outcomes for t in targets):
            reply(record, targets)
            return
        if len(record.waiters) >= self.max_waiters:
            raise TooManyWaiters(f"{len(record.waiters)} requests already wait on task {record.task_id}")
        record.waiters.append(Waiter(targets, reply))

    def republish(self, scope: str, outcomes: Mapping[str, Outcome], targets: Iterable[str]) -> None:
        for target in targets:
            if target in outcomes:
                self._republish(scope, outcomes[target])

    def _republish(self, scope: str, outcome: Outcome) -> None:
        """A recorded outcome again (a retry of its task): its bytes as first published, with the
        value decoded from them for a publisher that maps events (compat)."""
        self._publish(scope, decode_event(outcome.event), outcome.event)

    def recent_forget(self, key: TaskKey) -> None:
        finished = self.recent.pop(key, None)
        if finished is not None:
            self.recent_bytes -= finished.size

    # ------------------------------------------------------------------ dispatch

    def set_ready(self, slots: Iterable[int]) -> None:
        self.ready_slots = sorted(slots)

    def dispatch(self, now: float) -> bool:
        """Hand pending units to the least-loaded ready slots, up to each slot's credit.
        False when a send did not go out (that slot's pipe is not connected yet): retry soon."""
        while (pick := self.table.next_assignment(self.ready_slots, self.queue_depth)) is not None:
            unit, slot = pick
            self.table.assign(unit, slot, now)
            record = unit.request
            task = Task(
                uid=unit.uid,
                attempt=unit.attempt,
                text=record.text,
                source_language=record.source_language,
                target_language=unit.target,
                tier=record.model_type,
                format=record.format,
            )
            if not self._send_task(slot, task):
                self.table.unassign(unit)
                return False
            self.on_dispatched(unit, now)
        return True

    # ------------------------------------------------------------------ outcomes

    def on_result(self, slot: int, frame: Result) -> None:
        """A worker's translation, for its unit and the unit's followers ("Coalescing"). Only the
        slot the unit was assigned to may finish it."""
        unit = self._owned(slot, frame.uid)
        if unit is None:
            return
        if len(frame.text) > self.max_output_chars:
            self.fail(unit, protocol.TRANSLATION_FAILED, f"the translation is longer than {self.max_output_chars} characters")
            return
        followers = []
        if frame.cacheable:
            followers = self.table.take_followers(unit.uid)
        else:
            self.table.release_followers(unit.uid)  # each runs on its own: "Coalescing"
        self.table.finish(unit.uid)
        self.on_completed(unit, frame)
        self._publish_outcome(unit.request, unit.target, events.from_worker(unit, frame))
        for follower in followers:
            self.table.finish(follower.uid)
            self.coalesced += 1
            self.on_coalesced(follower, unit, frame)
            self._publish_outcome(follower.request, follower.target, events.from_worker(follower, frame, ran=unit))

    def on_failure(self, slot: int, frame: TaskFailed) -> None:
        unit = self._owned(slot, frame.uid)
        if unit is not None:
            self.fail(unit, frame.code, frame.message)  # its oldest follower runs it again

    def _owned(self, slot: int, uid: int) -> TargetTask | None:
        """The unit `slot` answered, still in the table and assigned there; None otherwise."""
        self.table.release(slot, uid)
        unit = self.table.units.get(uid)
        if unit is None or unit.slot != slot:
            return None  # already answered, expired, or not this worker's to answer
        return unit

    def worker_died(self, slot: int) -> int:
        """Requeue what the dead slot held; fail what is out of attempts, and its followers
        ("Coalescing"). Returns the requeued count."""
        requeued, exhausted = self.table.slot_died(slot)
        for unit in exhausted:
            message = f"the worker died each of the {unit.attempt} times this task was dispatched"
            followers = self.table.take_followers(unit.uid)
            self.fail(unit, protocol.WORKER_CRASHED, message)
            for follower in followers:
                self.fail(follower, protocol.WORKER_CRASHED, message)
        return len(requeued)

    def expire(self, now: float) -> None:
        for unit in self.table.expired(now):
            self.fail(unit, protocol.TIMEOUT, f"not translated within {self.task_timeout_s:g}s")

    def fail_all(self, code: str, message: str) -> int:
        units = list(self.table.units.values())
        for unit in units:
            self.fail(unit, code, message)
        return len(units)

    def fail(self, unit: TargetTask, code: str, message: str) -> None:
        if self.table.finish(unit.uid) is not None:
            self._publish_failure(unit, code, message)

    def _publish_failure(self, unit: TargetTask, code: str, message: str) -> None:
        self.on_failed(code)
        self._publish_outcome(unit.request, unit.target, events.failed(unit.request, unit.target, code, message))

    def _publish_outcome(self, record: RequestRecord, target: str, event: Event) -> None:
        self._record(record, target, event)
        self._settle(record)
        if not self.table.units:
            self.on_idle()

    def _record(self, record: RequestRecord, target: str, event: Event) -> None:
        """A target's outcome: its event encoded (the only time), published, and kept for retries."""
        data = encode_event(event)
        ok = type(event) is Completed
        self._publish(record.scope, event, data)
        record.outcomes[target] = Outcome(ok, data)
        self.on_outcome(record, target, ok)

    def _settle(self, record: RequestRecord) -> None:
        """Answer the waiters whose targets are all done; retire a record with nothing left."""
        if record.waiters:
            waiting = []
            for waiter in record.waiters:
                if all(t in record.outcomes for t in waiter.targets):
                    waiter.reply(record, waiter.targets)
                else:
                    waiting.append(waiter)
            record.waiters = waiting
        if record.remaining == 0 and self.records.get(record.key) is record:
            del self.records[record.key]
            self._remember(record)

    def _remember(self, record: RequestRecord) -> None:
        if not self.recent_capacity or not record.remember:
            return
        ids = len(record.scope) + len(record.task_id) + len(record.message_id)
        size = 200 + ids + sum(len(o.event) for o in record.outcomes.values())
        if size > self.recent_max_bytes:
            return
        self.recent[record.key] = Finished(record.digest, record.message_id, dict(record.outcomes), size)
        self.recent_bytes += size
        while len(self.recent) > self.recent_capacity or self.recent_bytes > self.recent_max_bytes:
            _, old = self.recent.popitem(last=False)
            self.recent_bytes -= old.size

    # ------------------------------------------------------------------ counts

    def in_flight(self) -> int:
        return len(self.table.units)

    def pending(self) -> int:
        return len(self.table.pending)


def sync_body(record: RequestRecord, targets: tuple[str, ...]) -> dict:
    """The synchronous reply: the outcomes of `targets`."""
    results = []
    errors = []
    for target in targets:
        outcome = record.outcomes.get(target)
        if outcome is None:
            continue
        event = msgspec.json.decode(outcome.event)
        if outcome.ok:
            results.append(event["result"])
        else:
            errors.append({"targetLanguage": target, "error": event["error"]})
    status = "completed" if not errors else ("error" if not results else "partial")
    return {
        "taskId": record.task_id,
        "messageId": record.message_id,
        "status": status,
        "targetLanguages": list(targets),
        "results": results,
        "errors": errors,
    }
