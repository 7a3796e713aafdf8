"""Clients that misbehave on purpose, through the real appliance: taskIds bound to their content,
retries after failures, and memory bounded in bytes under each attack (supervisor RSS measured
before, during and after)."""

from __future__ import annotations

import json
import uuid

import psutil
import pytest
import zmq

from tests.fakes.waiting import poll_until

pytestmark = pytest.mark.timeout(180)

MIB = 1024 * 1024
RSS_CEILING = 250 * MIB  # the bound for the supervisor under any of these attacks


def rss(app) -> int:
    return psutil.Process(app.proc.pid).memory_info().rss


def translation(**fields) -> dict:
    body = {"messageId": f"m-{uuid.uuid4().hex[:8]}", "text": "hello world", "sourceLanguage": "en", "targetLanguage": "fr"}
    body.update(fields)
    return body


def test_a_task_id_cannot_reach_another_message_s_results(start_appliance):
    app = start_appliance(env={"FAKE_RUNTIME_DELAY_MS": "1500"})
    events = app.subscriber()
    victim = app.socket(zmq.DEALER)
    victim.send(json.dumps(translation(taskId="T", text="my private message")).encode())
    assert victim.poll(10_000) and json.loads(victim.recv())["status"] == "queued"
    # While T is in flight, an attacker who knows T asks for its results with other text.
    stolen = app.request(translation(taskId="T", text="anything", sync=True))
    assert stolen["status"] == "error" and stolen["error"]["code"] == "task_id_conflict"
    assert stolen["taskId"] == "T" and "results" not in stolen
    (event,) = events.wait_for(lambda evs: events.for_task("T"), what="the victim's event")
    assert event["result"]["translatedText"] == "egassem etavirp ym"
    # Finished, the taskId still names the victim's message only.
    late = app.request(translation(taskId="T", text="anything", sync=True))
    assert late["error"]["code"] == "task_id_conflict"


def test_a_task_id_taken_first_by_someone_else_is_refused_not_answered_duplicate(start_appliance):
    app = start_appliance()
    events = app.subscriber()
    attacker = app.request(translation(taskId="future", text="spam spam"))
    assert attacker["status"] == "queued"
    victim = app.request(translation(taskId="future", text="see you tomorrow"))
    assert victim["status"] == "error" and victim["error"]["code"] == "task_id_conflict"
    assert "duplicate" not in victim
    events.wait_for(lambda evs: events.for_task("future"), what="the attacker's event")
    assert [e["result"]["translatedText"] for e in events.for_task("future")] == ["maps maps"]


def test_a_retry_after_a_failure_runs_again_and_a_finished_target_is_answered_again(start_appliance, tmp_path):
    flag = tmp_path / "fail"
    flag.touch()
    app = start_appliance(env={"FAKE_RUNTIME_ERROR_FLAG": str(flag)})
    body = translation(taskId="R", text="good morning", targetLanguages=["fr"], targetLanguage=None, sync=True)
    first = app.request(body)
    assert first["status"] == "error" and first["errors"][0]["error"]["code"] == "translation_failed"
    flag.unlink()
    retry = app.request(body)
    assert retry["status"] == "completed" and retry["results"][0]["translatedText"] == "gninrom doog"
    # A gateway retrying with more languages: fr is answered from the record, es runs.
    more = app.request(dict(body, targetLanguages=["fr", "es"]))
    assert more["status"] == "completed"
    assert sorted(r["targetLanguage"] for r in more["results"]) == ["es", "fr"]
    # Asynchronously, the recorded outcome is published again (never "completed" with nothing).
    events = app.subscriber()
    again = app.request(dict(body, sync=False, targetLanguages=["fr"]))
    assert again["status"] == "queued" and again["duplicate"] is True
    (event,) = events.wait_for(lambda evs: events.for_task("R"), what="the recorded event")
    assert event["targetLanguage"] == "fr" and event["result"]["translatedText"] == "gninrom doog"


def test_every_error_reply_names_the_request_s_task_id(start_appliance):
    app = start_appliance()
    for body, code in [
        (translation(taskId="e1", targetLanguage="xx"), "unsupported_language"),
        (translation(taskId="e2", text="x" * 6000), "text_too_long"),
        (translation(taskId="e3", modelType="huge"), "unsupported_model"),
        ({"messageId": "m", "taskId": "e4", "text": "hi"}, "invalid_request"),
    ]:
        reply = app.request(body)
        assert reply["error"]["code"] == code and reply["taskId"] == body["taskId"], reply
        assert reply["messageId"] == body["messageId"]


def test_ids_are_bounded_in_bytes(start_appliance):
    app = start_appliance()
    for field in ("messageId", "taskId", "conversationId"):
        reply = app.request(translation(**{field: "é" * 200}))  # 400 bytes
        assert reply["status"] == "error" and reply["error"]["code"] == "invalid_request"
        assert field in reply["error"]["message"] and "256 bytes" in reply["error"]["message"]
        assert "é" * 200 not in json.dumps(reply)  # never echoed
    ok = app.request(translation(messageId="x" * 256, taskId="y" * 256, conversationId="z" * 256))
    assert ok["status"] == "queued" and ok["taskId"] == "y" * 256


def test_deeply_nested_json_is_invalid_json_without_a_traceback(start_appliance):
    app = start_appliance()
    for _ in range(3):
        reply = app.request(b'{"messageId": "n", "text": "hi", "targetLanguage": "fr", "x": ' + b"[" * 30_000 + b"}")
        assert reply["status"] == "error" and reply["error"]["code"] == "invalid_json"
    assert app.request({"type": "ping"})["ready"] is True
    assert "Traceback" not in app.log() and "RecursionError" not in app.log()


def wait_rss_below(app, limit: int, what: str) -> int:
    """RSS comes back once a client leaves: within a minute (ZeroMQ frees the pipe, and the
    supervisor trims its heap when idle)."""
    return poll_until(lambda: (r := rss(app)) < limit and r, 60, interval=1.0, what=what)


def test_a_subscriber_that_never_reads_cannot_grow_memory_with_cache_hits(start_appliance):
    app = start_appliance(config={"limits": {"max_text_chars": 5000, "max_targets": 3}})
    text = "😀 chat " * 625  # 5,000 characters, 15,000 bytes
    targets = ["fr", "es", "de"]
    assert app.request(translation(text=text, targetLanguages=targets, targetLanguage=None, sync=True))["status"] == "completed"
    before = rss(app)
    slow = app.socket(zmq.SUB, app.endpoints["events"])
    slow.setsockopt(zmq.RCVBUF, 4096)
    slow.setsockopt(zmq.SUBSCRIBE, b"")
    dealer = app.socket(zmq.DEALER)
    peak = before
    for batch in range(12):  # 1,200 cache-hit requests, 3 targets each: 3,600 events of ~15 KB
        for _ in range(100):
            dealer.send(json.dumps(translation(text=text, targetLanguages=targets, targetLanguage=None)).encode())
        for _ in range(100):
            assert dealer.poll(30_000)
            dealer.recv()
        peak = max(peak, rss(app))
    print(f"slow subscriber: supervisor RSS {before / MIB:.0f} -> peak {peak / MIB:.0f} MiB")
    assert peak < RSS_CEILING, f"supervisor RSS {before / MIB:.0f} -> {peak / MIB:.0f} MiB"
    slow.close(linger=0)
    wait_rss_below(app, before + 32 * MIB, "RSS back after the subscriber left")


def test_a_client_that_never_reads_replies_cannot_grow_memory(start_appliance):
    app = start_appliance()
    before = rss(app)
    dealer = app.socket(zmq.DEALER)
    dealer.setsockopt(zmq.RCVBUF, 4096)
    dealer.setsockopt(zmq.RCVHWM, 1)
    for i in range(3000):
        dealer.send(json.dumps({"type": "ping", "messageId": "p" * 256}).encode())
        dealer.send(json.dumps({"type": "ping", "messageId": "p" * 60_000}).encode())  # refused, not echoed
    poll_until(lambda: app.stats()["service"]["total_requests"] >= 6000, 60, what="6,000 requests read")
    peak = rss(app)
    print(f"unread replies: supervisor RSS {before / MIB:.0f} -> peak {peak / MIB:.0f} MiB")
    assert peak < RSS_CEILING, f"supervisor RSS {before / MIB:.0f} -> {peak / MIB:.0f} MiB"
    dealer.close(linger=0)
    wait_rss_below(app, before + 32 * MIB, "RSS back after the client left")


def test_waiters_on_one_task_are_capped(start_appliance):
    app = start_appliance(env={"FAKE_RUNTIME_DELAY_MS": "3000"})
    before = rss(app)
    body = json.dumps(translation(taskId="W", sync=True)).encode()
    dealer = app.socket(zmq.DEALER)
    replies = []
    for _ in range(30):  # in steps the client's reply budget holds ([ipc] edge_buffer_bytes)
        for _ in range(100):
            dealer.send(body)
        target = len(replies) + 100 - (8 if not replies else 0)
        while len(replies) < target:
            assert dealer.poll(30_000), "a reply is missing"
            replies.append(json.loads(dealer.recv()))
    while len(replies) < 3000:
        assert dealer.poll(30_000), f"a waiter's reply is missing: {len(replies)} replies, {app.stats()['edge']}"
        replies.append(json.loads(dealer.recv()))
    completed = [r for r in replies if r["status"] == "completed"]
    refused = [r for r in replies if r["status"] == "error"]
    assert len(completed) == 8  # [limits] max_waiters_per_task
    assert {r["error"]["code"] for r in refused} == {"overloaded"} and all(r["taskId"] == "W" for r in refused)
    after = rss(app)
    print(f"3,000 waiters: supervisor RSS {before / MIB:.0f} -> {after / MIB:.0f} MiB")
    assert after < RSS_CEILING and after < before + 64 * MIB
