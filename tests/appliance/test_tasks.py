"""The task table in-process: dispatch, redispatch on death, exactly-once outcomes, bounds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.tasks import Overloaded, TaskTable

pytestmark = pytest.mark.timeout(60)


def table(**kw) -> TaskTable:
    args = dict(max_units=100, max_attempts=3, task_timeout_s=10.0, recent_ids=10)
    args.update(kw)
    return TaskTable(**args)


def admit(t: TaskTable, task_id: str, targets=("fr",), now=0.0):
    return t.admit(task_id=task_id, message_id="m", text="hello", source_language="auto", model_type="auto",
                   conversation_id=None, targets=tuple(targets), now=now)


def test_dispatch_prefers_the_least_loaded_slot_within_its_credit():
    t = table()
    admit(t, "a", ["fr", "es", "de", "en", "it"])
    picks = []
    while (pick := t.next_assignment([0, 1], depth=2)) is not None:
        unit, slot = pick
        t.assign(unit, slot, 0.0)
        picks.append(slot)
    assert picks == [0, 1, 0, 1]
    assert len(t.pending) == 1


def test_a_dead_slot_requeues_its_units_first_and_outcomes_are_published_once():
    t = table()
    admit(t, "a", ["fr", "es"])
    u1, s1 = t.next_assignment([0], 5)
    t.assign(u1, s1, 0.0)
    u2, s2 = t.next_assignment([0], 5)
    t.assign(u2, s2, 0.0)
    admit(t, "b", ["fr"])
    requeued, exhausted = t.slot_died(0)
    assert [u.uid for u in requeued] == [u1.uid, u2.uid] and not exhausted
    assert list(t.pending)[:2] == [u1.uid, u2.uid]
    unit, slot = t.next_assignment([1], 5)
    t.assign(unit, slot, 0.0)
    assert unit is u1 and unit.attempt == 2
    assert t.finish(u1.uid) is u1
    assert t.finish(u1.uid) is None  # a late answer from anyone is dropped


def test_units_out_of_attempts_are_reported_not_requeued():
    t = table(max_attempts=1)
    admit(t, "a")
    unit, slot = t.next_assignment([0], 5)
    t.assign(unit, slot, 0.0)
    requeued, exhausted = t.slot_died(0)
    assert not requeued and exhausted == [unit]


def test_overloaded_beyond_max_units_and_recent_ids_are_bounded():
    t = table(max_units=3, recent_ids=2)
    admit(t, "a", ["fr", "es"])
    with pytest.raises(Overloaded):
        admit(t, "b", ["fr", "es"])
    admit(t, "c", ["fr"])
    for uid in list(t.units):
        t.finish(uid)
    assert t.in_flight() == 0 and t.recently_finished("a") and t.recently_finished("c")
    admit(t, "d")
    t.finish(next(iter(t.units)))
    assert not t.recently_finished("a") and len(t.recent) == 2


def test_expired_units_and_credit_held_until_the_worker_answers():
    t = table(task_timeout_s=5.0)
    admit(t, "a", now=0.0)
    unit, slot = t.next_assignment([0], 1)
    t.assign(unit, slot, 0.0)
    assert t.expired(4.9) == [] and t.expired(5.0) == [unit]
    t.finish(unit.uid)
    assert t.load(0) == 1  # the worker is still busy with it
    t.release(0, unit.uid)
    assert t.load(0) == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["admit", "dispatch", "answer", "die"]), st.integers(0, 2)), max_size=60))
def test_every_admitted_unit_gets_exactly_one_outcome(ops):
    """Against a reference: whatever the interleaving of deaths, each unit finishes once."""
    t = table(max_attempts=1000)
    admitted: set[int] = set()
    finished: list[int] = []
    n = 0
    for op, slot in ops:
        if op == "admit":
            n += 1
            record = admit(t, f"r{n}", ["fr", "es"][: 1 + n % 2])
            admitted |= {u.uid for u in t.units.values() if u.request is record}
        elif op == "dispatch":
            if (pick := t.next_assignment([slot], 3)) is not None:
                t.assign(*pick, 0.0)
        elif op == "answer":
            held = sorted(t.held.get(slot, ()))
            if held:
                t.release(slot, held[0])
                if t.finish(held[0]) is not None:
                    finished.append(held[0])
        else:
            t.slot_died(slot)
    # The test's slots die; a healthy slot 9 drains what is left.
    for slot in range(3):
        t.slot_died(slot)
    while t.units:
        pick = t.next_assignment([9], 3)
        if pick is not None:
            t.assign(*pick, 0.0)
        for uid in sorted(t.held.get(9, ())):
            t.release(9, uid)
            if t.finish(uid) is not None:
                finished.append(uid)
    assert sorted(finished) == sorted(admitted)
    assert not t.requests and not t.pending
