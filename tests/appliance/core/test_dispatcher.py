"""The dispatcher in-process: dispatch, re-dispatch after a death, attempts, expiry, drain,
taskId binding and retries, starvation, waiters, and exactly-once outcomes."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.core import events, protocol
from appliance.config import LimitSettings
from appliance.core.dispatcher import Dispatcher, Finished, Overloaded, TaskIdConflict, TooManyWaiters, content_digest, sync_body
from appliance.core.tasks import RECORD_BYTES, UNIT_BYTES, RequestRecord, detached, record_bytes
from ipc import events as ipc_events
from ipc.frames import Result, TaskFailed

pytestmark = pytest.mark.timeout(60)


class Harness:
    """A dispatcher whose sends and publications are recorded."""

    def __init__(self, depth: int = 4, on_idle=lambda: None, **limits) -> None:
        self.sent: list[tuple[int, object]] = []
        self.events: list[dict] = []
        self.scopes: list[str] = []  # the scope each event was published with
        self.connected = True
        self.d = Dispatcher(LimitSettings(**limits), depth, self._send, self._publish, on_idle=on_idle)
        self.d.set_ready([0, 1])

    def _send(self, slot, task) -> bool:
        if self.connected:
            self.sent.append((slot, task))
        return self.connected

    def _publish(self, scope: str, event, data: bytes) -> None:
        assert ipc_events.decode(data) == event  # the value and its JSON say the same
        self.scopes.append(scope)
        self.events.append(msgspec.json.decode(data))

    def admit(self, task_id="t1", targets=("fr",), text="hello", now=0.0, answered=None, scope="",
              conversation_id=None, message_id=None) -> RequestRecord:
        record = RequestRecord(
            task_id=task_id, digest=content_digest(text, "en", "auto"), message_id=message_id or f"m-{task_id}", text=text,
            source_language="en", model_type="auto", conversation_id=conversation_id, targets=list(targets),
            accepted_at=now, scope=scope,
        )
        answered = answered or {}
        self.d.admit(record, answered=answered, run=[t for t in targets if t not in answered], keys={}, now=now)
        return record

    def answer(self, slot: int, task, text="bonjour", pid=1, cacheable=True) -> None:
        self.d.on_result(slot, Result(task.uid, task.attempt, slot, pid, text, "en", task.target_language, 0.9, "m",
                                      "basic", 1.0, cacheable=cacheable))

    def fail(self, slot: int, task, code="translation_failed") -> None:
        self.d.on_failure(slot, TaskFailed(task.uid, task.attempt, slot, 1, code, "it broke"))

    def outcomes(self, task_id: str) -> list[tuple[str, str]]:
        return [(e["targetLanguage"], e["type"]) for e in self.events if e["taskId"] == task_id]


def test_dispatch_spreads_over_slots_within_credit_oldest_first():
    h = Harness(depth=2)
    h.admit("a", ["fr", "es", "de"])
    h.admit("b", ["it", "pt"])
    h.d.dispatch(0.0)
    assert [(slot, t.target_language) for slot, t in h.sent] == [(0, "fr"), (1, "es"), (0, "de"), (1, "it")]
    assert h.d.pending() == 1
    slot, task = h.sent[0]
    h.answer(slot, task)
    h.d.dispatch(0.0)
    assert h.sent[-1][1].target_language == "pt"  # the oldest waiting unit, on the freed credit


def test_a_send_that_does_not_go_out_keeps_the_unit_first_and_its_attempt():
    h = Harness()
    h.admit("a", ["fr"])
    h.connected = False
    assert h.d.dispatch(0.0) is False
    h.connected = True
    assert h.d.dispatch(0.0) is True
    assert [t.attempt for _, t in h.sent] == [1]


def test_a_dead_worker_s_units_run_again_first_and_publish_once():
    h = Harness()
    h.admit("a", ["fr", "es"])
    h.d.set_ready([0])
    h.d.dispatch(0.0)
    (_, fr), (_, es) = h.sent
    h.admit("b", ["de"])
    assert h.d.worker_died(0) == 2
    h.d.set_ready([1])
    h.d.dispatch(0.0)
    assert [(s, t.target_language, t.attempt) for s, t in h.sent[2:]] == [(1, "fr", 2), (1, "es", 2), (1, "de", 1)]
    h.answer(0, fr)  # the dead worker's late answer is not its to give
    assert h.outcomes("a") == []
    for slot, task in h.sent[2:]:
        h.answer(slot, task)
    h.answer(1, h.sent[2][1])  # a duplicate answer is dropped
    assert sorted(h.outcomes("a")) == [("es", "translation_completed"), ("fr", "translation_completed")]


def test_a_result_from_a_slot_the_unit_was_not_assigned_to_is_dropped():
    h = Harness()
    h.admit("a", ["fr"])
    h.d.set_ready([0])
    h.d.dispatch(0.0)
    _, task = h.sent[0]
    h.answer(1, task, text="forged")
    assert h.events == []
    h.answer(0, task)
    assert [e["result"]["translatedText"] for e in h.events] == ["bonjour"]


def test_units_out_of_attempts_fail_with_worker_crashed():
    h = Harness(max_attempts=2)
    h.admit("a", ["fr"])
    for _ in range(2):
        h.d.dispatch(0.0)
        h.d.worker_died(h.sent[-1][0])
    assert [e["error"]["code"] for e in h.events] == [protocol.WORKER_CRASHED]
    assert h.d.in_flight() == 0


def test_expiry_times_out_and_credit_is_held_until_the_worker_answers():
    h = Harness(depth=1, task_timeout_s=5.0)
    h.d.set_ready([0])
    h.admit("a", ["fr"], now=0.0)
    h.d.dispatch(0.0)
    h.d.expire(4.9)
    assert h.events == []
    h.d.expire(5.0)
    assert [e["error"]["code"] for e in h.events] == [protocol.TIMEOUT]
    h.admit("b", ["fr"], now=5.0)
    h.d.dispatch(5.0)
    assert len(h.sent) == 1  # slot 0 is still busy with the expired unit
    h.answer(0, h.sent[0][1])  # its late answer frees the credit and publishes nothing
    h.d.dispatch(5.0)
    assert len(h.sent) == 2 and len(h.events) == 1


def test_drain_fails_what_is_left_once_and_reports_idle():
    idle = []
    h = Harness(on_idle=lambda: idle.append(True))
    h.admit("a", ["fr", "es"])
    h.d.dispatch(0.0)
    h.answer(*h.sent[0])
    assert h.d.fail_all(protocol.SHUTTING_DOWN, "bye") == 1
    assert h.d.fail_all(protocol.SHUTTING_DOWN, "bye") == 0
    assert sorted(h.outcomes("a")) == [("es", "translation_error"), ("fr", "translation_completed")]
    assert idle == [True]


def test_capacity_counts_every_target_cached_or_not():
    h = Harness(max_inflight_tasks=3)
    h.admit("a", ["fr", "es"])
    with pytest.raises(Overloaded):
        h.d.check_capacity(2)
    h.d.check_capacity(1)


def test_capacity_counts_the_bytes_of_the_text_once_per_record():
    budget = 1024 * 1024
    h = Harness(max_inflight_bytes=budget)
    text = "\U0001F600" * 5000  # 4 bytes per character in a str
    cost = record_bytes(text, "a", "m-a", None)
    assert cost >= RECORD_BYTES + 20_000
    h.admit("a", ["fr", "es", "de"], text=text)
    assert h.d.table.held_bytes == cost + 3 * UNIT_BYTES  # the text once, not once per target
    fits = (budget - h.d.table.held_bytes) // (cost + UNIT_BYTES)
    for n in range(fits):
        h.d.check_capacity(1, cost)
        h.admit(f"b{n}", ["fr"], text=text)
    with pytest.raises(Overloaded, match="bytes"):
        h.d.check_capacity(1, cost)
    assert h.d.refused_for_bytes == 1
    h.d.check_capacity(1, 0)  # a retry's new target: its record holds the text already
    h.d.fail_all("shutting_down", "bye")
    assert h.d.table.held_bytes == 0
    h.d.check_capacity(1, cost)


def test_a_record_s_text_keeps_no_utf8_copy():
    import sys

    text = "é" * 1000 + "\U0001F600"
    bare = sys.getsizeof(text)
    msgspec.json.encode(text)  # asks CPython for the UTF-8, which it caches in the str (cache keys do)
    assert sys.getsizeof(text) > bare
    copy = detached(text)
    assert copy == text and sys.getsizeof(copy) == bare
    assert detached("plain ascii") == "plain ascii"


def test_answered_targets_are_published_at_once_and_take_no_unit():
    h = Harness()
    def hit(task_id):
        record = RequestRecord(task_id=task_id, digest=b"", message_id=f"m-{task_id}", text="hello",
                               source_language="en", model_type="auto", conversation_id=None, targets=["fr"],
                               accepted_at=0.0)
        return events.same_language(record, "fr")

    record = h.admit("a", ["fr"], answered={"fr": hit("a")})
    assert h.outcomes("a") == [("fr", "translation_completed")] and h.d.in_flight() == 0
    assert ("", "a") in h.d.recent and ("", "a") not in h.d.records
    record = h.admit("b", ["fr", "es"], answered={"fr": hit("b")})
    assert record.remaining == 1 and h.d.in_flight() == 1


def test_a_task_id_names_one_content():
    h = Harness()
    h.admit("a", ["fr"], text="victim")
    with pytest.raises(TaskIdConflict):
        h.d.find("", "a", content_digest("attacker", "en", "auto"))
    assert isinstance(h.d.find("", "a", content_digest("victim", "en", "auto")), RequestRecord)
    h.d.dispatch(0.0)
    h.answer(*h.sent[0])
    with pytest.raises(TaskIdConflict):  # still bound once finished
        h.d.find("", "a", content_digest("attacker", "en", "auto"))
    assert isinstance(h.d.find("", "a", content_digest("victim", "en", "auto")), Finished)


def test_scopes_are_separate_task_id_namespaces():
    """The same taskId in two scopes is two tasks: neither is a conflict or a retry of the other,
    each outcome is published with its own scope, and each stays bound to its own content."""
    h = Harness()
    alice = h.admit("same", ["fr"], text="alice's text", scope="curve:alice")
    assert h.d.find("curve:bob", "same", content_digest("bob's text", "en", "auto")) is None
    bob = h.admit("same", ["fr"], text="bob's text", scope="curve:bob")
    assert h.d.find("curve:alice", "same", content_digest("alice's text", "en", "auto")) is alice
    assert h.d.find("curve:bob", "same", content_digest("bob's text", "en", "auto")) is bob
    assert h.d.find("", "same", content_digest("anything", "en", "auto")) is None
    h.d.dispatch(0.0)
    assert sorted(t.text for _, t in h.sent) == ["alice's text", "bob's text"]
    for slot, task in h.sent:
        h.answer(slot, task, text="for " + task.text)
    published = sorted(zip(h.scopes, (e["result"]["translatedText"] for e in h.events)))
    assert published == [("curve:alice", "for alice's text"), ("curve:bob", "for bob's text")]
    with pytest.raises(TaskIdConflict):  # each scope's id stays bound to its own content
        h.d.find("curve:alice", "same", content_digest("bob's text", "en", "auto"))
    h.d.republish("curve:bob", h.d.recent[("curve:bob", "same")].outcomes, ["fr"])
    assert h.scopes[-1] == "curve:bob" and h.events[-1]["result"]["translatedText"] == "for bob's text"


def test_a_retry_in_flight_runs_only_what_failed_or_is_new():
    h = Harness()
    record = h.admit("a", ["fr", "es"])
    h.d.dispatch(0.0)
    (s1, fr), (s2, es) = h.sent
    h.fail(s1, fr)
    h.d.rerun(record, ["fr", "es", "de"], 0.0, {})  # fr failed, es runs, de is new
    h.d.dispatch(0.0)
    assert sorted((t.target_language, t.attempt) for _, t in h.sent[2:]) == [("de", 1), ("fr", 1)]
    assert record.targets == ["fr", "es", "de"]


def test_waiters_get_their_targets_and_are_capped():
    h = Harness(max_waiters_per_task=2)
    record = h.admit("a", ["fr", "es"])
    replies = []
    h.d.wait(record, ("fr",), lambda r, t: replies.append(sync_body(r, t)))
    h.d.wait(record, ("fr", "es"), lambda r, t: replies.append(sync_body(r, t)))
    with pytest.raises(TooManyWaiters):
        h.d.wait(record, ("es",), lambda r, t: None)
    h.d.dispatch(0.0)
    h.answer(*h.sent[0])
    assert [r["targetLanguages"] for r in replies] == [["fr"]]
    h.fail(*h.sent[1])
    assert replies[1]["status"] == "partial" and replies[1]["errors"][0]["targetLanguage"] == "es"


def test_recent_tasks_are_bounded_in_bytes():
    h = Harness(recent_task_bytes=20_000)
    for i in range(40):
        h.admit(f"t{i}", ["fr"], text=f"text {i}")
        h.d.dispatch(0.0)
        h.answer(*h.sent[-1], text="x" * 1000)
    assert h.d.recent_bytes <= 20_000 and 0 < len(h.d.recent) < 40
    assert ("", "t39") in h.d.recent and ("", "t0") not in h.d.recent


# ---------------------------------------------------------------- coalescing


def test_identical_targets_in_flight_are_sent_once_and_each_gets_its_own_event():
    """Two scopes using the same taskId and an anonymous client, same text and target: one Task;
    each event carries its own ids and scope, and nothing of the leader's request but the text."""
    h = Harness()
    h.admit("same", ["fr", "es"], text="hi there", scope="curve:alice", conversation_id="alice-conv", message_id="alice-msg")
    h.admit("same", ["fr"], text="hi there", scope="curve:bob", conversation_id="bob-conv", message_id="bob-msg")
    h.admit("anon", ["fr"], text="hi there")
    h.admit("other", ["fr"], text="another text")
    assert h.d.in_flight() == 5 and h.d.table.following == 2
    h.d.dispatch(0.0)
    assert sorted((t.text, t.target_language) for _, t in h.sent) == [
        ("another text", "fr"), ("hi there", "es"), ("hi there", "fr")]
    fr = next((s, t) for s, t in h.sent if (t.text, t.target_language) == ("hi there", "fr"))
    h.answer(*fr, text="salut")
    published = [(scope, e["taskId"], e["messageId"], e.get("conversationId"), e["result"]["translatedText"])
                 for scope, e in zip(h.scopes, h.events)]
    assert sorted(published, key=str) == sorted([
        ("curve:alice", "same", "alice-msg", "alice-conv", "salut"),
        ("curve:bob", "same", "bob-msg", "bob-conv", "salut"),
        ("", "anon", "m-anon", None, "salut"),
    ], key=str)
    for scope, event in zip(h.scopes, h.events):
        if scope != "curve:alice":
            assert "alice" not in msgspec.json.encode(event).decode()
    assert h.d.coalesced == 2 and h.d.table.following == 0 and h.d.in_flight() == 2


def test_a_failed_leader_s_oldest_follower_runs_again_and_leads_the_others():
    h = Harness()
    for n in range(3):
        h.admit(f"r{n}", ["fr"], now=float(n))
    h.d.dispatch(0.0)
    assert len(h.sent) == 1
    h.fail(*h.sent[0])
    assert h.outcomes("r0") == [("fr", "translation_error")] and h.d.table.following == 1
    h.d.dispatch(0.0)
    assert len(h.sent) == 2 and h.sent[1][1].attempt == 1  # r1's own unit, its first attempt
    h.answer(*h.sent[1])
    assert [h.outcomes(f"r{n}") for n in (1, 2)] == [[("fr", "translation_completed")]] * 2
    assert len(h.events) == 3 and h.d.in_flight() == 0 and h.d.table.held_bytes == 0


def test_a_timed_out_leader_hands_over_and_each_follower_keeps_its_own_deadline():
    h = Harness(task_timeout_s=10.0)
    h.admit("r0", ["fr"], now=0.0)
    h.d.dispatch(0.0)
    h.admit("r1", ["fr"], now=5.0)
    h.admit("r2", ["fr"], now=9.0)
    h.d.expire(10.0)
    assert h.outcomes("r0") == [("fr", "translation_error")] and h.events[0]["error"]["code"] == protocol.TIMEOUT
    h.d.dispatch(10.0)
    assert len(h.sent) == 2
    h.answer(*h.sent[0])  # the expired leader's late answer: nobody's any more
    assert len(h.events) == 1
    h.d.expire(15.0)  # r1's own deadline; r2 follows it no longer but runs again
    assert h.outcomes("r1") == [("fr", "translation_error")]
    h.d.dispatch(15.0)
    h.answer(*h.sent[-1])
    assert h.outcomes("r2") == [("fr", "translation_completed")] and h.d.in_flight() == 0


def test_an_uncacheable_result_is_not_shared_each_follower_runs_on_its_own():
    h = Harness()
    for n in range(3):
        h.admit(f"r{n}", ["fr"])
    h.d.dispatch(0.0)
    h.answer(*h.sent[0], text="desynced", cacheable=False)
    assert [e["taskId"] for e in h.events] == ["r0"] and h.d.coalesced == 0
    h.d.dispatch(0.0)
    assert len(h.sent) == 3  # r1 and r2, each alone
    h.admit("r3", ["fr"])  # released followers lead nothing: r3 runs on its own too
    h.d.dispatch(0.0)
    assert len(h.sent) == 4
    for slot, task in h.sent[1:]:
        h.answer(slot, task, text="clean")
    assert sorted((e["taskId"], e["result"]["translatedText"]) for e in h.events) == [
        ("r0", "desynced"), ("r1", "clean"), ("r2", "clean"), ("r3", "clean")]


def test_a_leader_that_keeps_killing_workers_fails_its_followers_with_it():
    h = Harness(max_attempts=2)
    h.admit("r0", ["fr"])
    h.admit("r1", ["fr"])
    h.d.dispatch(0.0)
    h.d.worker_died(h.sent[-1][0])  # dispatched again, still leading
    h.d.dispatch(0.0)
    assert len(h.sent) == 2 and h.d.table.following == 1
    h.d.worker_died(h.sent[-1][0])
    assert sorted((e["taskId"], e["error"]["code"]) for e in h.events) == [
        ("r0", protocol.WORKER_CRASHED), ("r1", protocol.WORKER_CRASHED)]
    h.d.dispatch(0.0)
    assert len(h.sent) == 2 and h.d.in_flight() == 0


def test_followers_are_bounded_per_key_and_in_all():
    h = Harness(max_coalesced_per_key=2, max_coalesced=3)
    for n in range(4):
        h.admit(f"a{n}", ["fr"])
    for n in range(3):
        h.admit(f"b{n}", ["fr"], text="other")
    h.d.dispatch(0.0)
    # a0 leads a1 and a2 (per-key bound), a3 runs alone; b0 leads b1 (3 in all), b2 runs alone.
    assert sorted(t.text for _, t in h.sent) == ["hello", "hello", "other", "other"]
    assert h.d.table.following == 3
    for slot, task in list(h.sent):
        h.answer(slot, task)
    assert len(h.events) == 7 and h.d.coalesced == 3 and h.d.in_flight() == 0


def test_coalescing_off_sends_every_target():
    h = Harness(max_coalesced_per_key=0)
    h.admit("a", ["fr"])
    h.admit("b", ["fr"])
    h.d.dispatch(0.0)
    assert len(h.sent) == 2


def test_followers_count_in_capacity_and_bytes_and_a_follower_may_leave_first():
    h = Harness(max_inflight_tasks=2)
    h.admit("a", ["fr"])
    h.admit("b", ["fr"])
    with pytest.raises(Overloaded):
        h.d.check_capacity(1)
    assert h.d.table.held_bytes == 2 * (record_bytes("hello", "a", "m-a", None) + UNIT_BYTES)
    follower = next(u for u in h.d.table.units.values() if u.leader)
    h.d.fail(follower, protocol.TIMEOUT, "gone")  # leaves its leader; the leader runs on
    h.d.dispatch(0.0)
    h.answer(*h.sent[0])
    assert sorted(h.outcomes("a") + h.outcomes("b")) == [("fr", "translation_completed"), ("fr", "translation_error")]
    assert h.d.coalesced == 0 and h.d.table.held_bytes == 0 and not h.d.table.leaders and not h.d.table.followers


def test_drain_fails_leader_and_followers_once_each():
    h = Harness()
    for n in range(3):
        h.admit(f"r{n}", ["fr"])
    h.d.dispatch(0.0)
    assert h.d.fail_all(protocol.SHUTTING_DOWN, "bye") == 3
    assert sorted(e["taskId"] for e in h.events) == ["r0", "r1", "r2"]
    assert h.d.in_flight() == 0 and not h.d.table.leaders and h.d.table.following == 0


OPS = ["admit", "dispatch", "answer", "taint", "fail", "die", "expire"]


@given(st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 2)), max_size=60))
def test_every_admitted_target_gets_exactly_one_outcome(ops):
    """Whatever the interleaving of deaths, failures, uncacheable answers and expiry, each target
    (many of them identical, so leaders and followers) is published once, in its own scope."""
    h = Harness(depth=3, max_attempts=1000, task_timeout_s=50.0, max_coalesced_per_key=2)
    h.d.set_ready([0, 1, 2])
    admitted: list[tuple[str, str]] = []
    now = 0.0
    for n, (op, slot) in enumerate(ops):
        now += 1.0
        if op == "admit":
            targets = ["fr", "es"][: 1 + n % 2]
            h.admit(f"r{n}", targets, now=now, text=["hello", "hi"][slot % 2], scope=f"s{slot}")
            admitted += [(f"r{n}", t) for t in targets]
        elif op == "dispatch":
            h.d.dispatch(now)
        elif op in ("answer", "taint", "fail"):
            outstanding = sorted(h.d.table.outstanding.get(slot, ()))
            if outstanding:
                unit = h.d.table.units.get(outstanding[0])
                task = next((t for s, t in reversed(h.sent) if t.uid == outstanding[0]), None)
                if unit is not None and task is not None and op == "fail":
                    h.fail(slot, task)
                elif unit is not None and task is not None:
                    h.answer(slot, task, cacheable=op == "answer")
                else:
                    h.d.table.release(slot, outstanding[0])
        elif op == "die":
            h.d.worker_died(slot)
        else:
            h.d.expire(now)
    h.d.set_ready([9])
    for slot in range(3):
        h.d.worker_died(slot)
    while h.d.in_flight():
        h.d.dispatch(now)
        for uid in sorted(h.d.table.outstanding.get(9, ())):
            task = next(t for s, t in reversed(h.sent) if t.uid == uid and s == 9)
            h.answer(9, task)
    published = sorted((e["taskId"], e["targetLanguage"]) for e in h.events)
    assert published == sorted(admitted)
    assert h.scopes == [f"s{ops[int(e['taskId'][1:])][1]}" for e in h.events]  # each in its own scope
    assert not h.d.records
    assert h.d.table.held_bytes == 0  # every record's bytes released with its last unit
    assert not h.d.table.leaders and not h.d.table.followers and h.d.table.following == 0
