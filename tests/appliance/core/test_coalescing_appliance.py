"""Coalescing through a real appliance (fake runtime, one worker, CURVE on): identical messages in
flight from two clients are decoded once, and each request gets its own event, in its own scope.

The fake runtime logs every job it decodes (FAKE_RUNTIME_JOB_LOG) and holds its batch while a
flag file exists (FAKE_RUNTIME_HOLD_FLAG), so "in flight at once" and "decoded once" are facts
the test sets up and counts, not timings.
"""

from __future__ import annotations

import pytest

from tests.appliance.conftest import start_curve_appliance
from tests.appliance.test_scope import QUIET_MS, CurveClient, translation
from tests.fakes.fake_runtime import jobs_logged
from tests.fakes.waiting import poll_until

pytestmark = pytest.mark.timeout(120)

TEXT = "the same words"


def test_identical_messages_from_two_clients_are_decoded_once_each_gets_its_own_event(start_appliance, tmp_path, zctx):
    log, hold = tmp_path / "jobs.log", tmp_path / "hold"
    keys = tmp_path / "keys"
    app, server_public, alice_secret = start_curve_appliance(
        start_appliance, keys, more_clients=("bob",),
        env={"FAKE_RUNTIME_JOB_LOG": str(log), "FAKE_RUNTIME_HOLD_FLAG": str(hold)},
    )
    alice = CurveClient(app, zctx, server_public, alice_secret)
    bob = CurveClient(app, zctx, server_public, keys / "bob.key_secret")
    poll_until(lambda: alice.ask(b'{"type": "ping"}').get("ready"), 60, what="a ready appliance")
    poll_until(alice.synced, 30, what="alice's subscription")
    poll_until(bob.synced, 30, what="bob's subscription")
    alice.events.clear()
    bob.events.clear()

    hold.touch()  # the first copy's batch stays in the worker while the others arrive
    sent = {"alice": ["a0", "a1", "a2", "a3"], "bob": ["b0", "b1", "b2", "a0"]}  # bob reuses alice's taskId
    for name, client in (("alice", alice), ("bob", bob)):
        for task_id in sent[name]:
            reply = client.ask(translation(task_id, TEXT))
            assert reply["status"] == "queued" and reply["taskId"] == task_id and not reply.get("duplicate"), reply
    tasks = alice.ask(b'{"type": "stats"}')["tasks"]
    assert tasks["following"] == 7 and tasks["in_flight"] == 8  # one leader, seven waiting on it
    hold.unlink()

    def settled() -> bool:
        alice.pump(50)
        bob.pump(50)
        return len(alice.events) >= 4 and len(bob.events) >= 4

    poll_until(settled, 30, interval=0, what="every event")
    alice.pump(QUIET_MS)
    bob.pump(QUIET_MS)
    for name, client in (("alice", alice), ("bob", bob)):
        got = sorted((e["taskId"], e["messageId"], e["result"]["translatedText"], e["type"]) for e in client.events)
        assert got == sorted((t, f"m-{t}", TEXT[::-1], "translation_completed") for t in sent[name]), name
        assert all(e["result"]["fromCache"] is False and e["result"]["workerId"] == 0 for e in client.events)
    assert len([j for j in jobs_logged(log) if j["text"] == TEXT]) == 1  # one decode for eight requests
    stats = alice.ask(b'{"type": "stats"}')
    assert stats["tasks"]["coalesced"] == 7 and stats["tasks"]["following"] == 0
    assert stats["cache"]["misses"] == 1 and stats["tasks"]["completed"] == 1
