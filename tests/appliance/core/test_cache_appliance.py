"""The cache wired into a real appliance (fake runtime, one worker): hits never reach a worker.

The fake runtime appends every job it decodes to FAKE_RUNTIME_JOB_LOG, so "the worker did not
translate it" is asserted by counting lines, not inferred from timings.
"""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from pathlib import Path

import pytest
import zmq

from appliance.core.cache import table_name
from tests.fakes.fake_runtime import jobs_logged
from tests.fakes.waiting import poll_until

pytestmark = pytest.mark.timeout(60)


def translate(app, task_id: str, text: str, targets: list[str], **extra) -> dict:
    body = {"messageId": task_id, "taskId": task_id, "text": text, "targetLanguages": targets, "sync": True, **extra}
    reply = app.request(body, timeout=20)
    assert reply is not None, f"no reply to {task_id}"
    assert reply["status"] == "completed", reply
    return {r["targetLanguage"]: r for r in reply["results"]}


def decoded(log, text: str) -> list[dict]:
    return [job for job in jobs_logged(log) if job["text"] == text]


def test_a_full_hit_is_published_by_the_edge_without_the_worker(start_appliance, tmp_path):
    log = tmp_path / "jobs.log"
    app = start_appliance(env={"FAKE_RUNTIME_JOB_LOG": str(log)})
    first = translate(app, "t1", "hello world", ["fr"], sourceLanguage="en")["fr"]
    assert first["fromCache"] is False and first["translatedText"] == "dlrow olleh"
    assert len(decoded(log, "hello world")) == 1

    events = app.subscriber()
    dealer = app.socket(zmq.DEALER)
    dealer.send(b'{"messageId": "m2", "taskId": "t2", "text": "hello world", "targetLanguage": "fr", "sourceLanguage": "en"}')
    assert dealer.poll(10000)
    reply = json.loads(dealer.recv())
    assert reply["status"] == "queued" and reply["estimatedProcessingTime"] == 0
    (event,) = events.wait_for(lambda evs: [e for e in evs if e["taskId"] == "t2"], what="the cached event")
    result = event["result"]
    assert event["type"] == "translation_completed"
    assert result["fromCache"] is True and result["workerId"] is None
    assert (result["translatedText"], result["confidenceScore"], result["translatorModel"], result["sourceLanguage"]) == (
        "dlrow olleh", first["confidenceScore"], "fake-basic", "en")
    assert result["processingTime"] < 50
    assert len(decoded(log, "hello world")) == 1 and len(decoded(log, " hello   world")) == 0

    cache = app.stats()["cache"]
    assert cache["enabled"] and cache["edge_hits"] >= 1 and cache["hits"] >= 1 and cache["misses"] >= 1
    assert 0 < cache["hit_rate"] <= 1 and cache["size"] >= 1
    assert cache["persistent_level"] == "sqlite" and cache["persistent_ok"] is True
    # A retry of the finished task starts nothing: its event is published again.
    again = app.request({"messageId": "m2", "taskId": "t2", "text": "hello world", "targetLanguage": "fr", "sourceLanguage": "en"})
    assert again["status"] == "queued" and again["duplicate"] is True
    events.wait_for(lambda evs: len([e for e in evs if e["taskId"] == "t2"]) == 2, what="the event again")
    assert len(decoded(log, "hello world")) == 1


def test_a_partial_hit_sends_only_the_missing_targets_to_the_worker(start_appliance, tmp_path):
    log = tmp_path / "jobs.log"
    app = start_appliance(env={"FAKE_RUNTIME_JOB_LOG": str(log)})
    translate(app, "p1", "good morning", ["fr"], sourceLanguage="en")
    results = translate(app, "p2", "good morning", ["fr", "es", "de"], sourceLanguage="en")
    assert {t: r["fromCache"] for t, r in results.items()} == {"fr": True, "es": False, "de": False}
    assert sorted(j["target"] for j in decoded(log, "good morning")) == ["de", "es", "fr"]
    # Every target is cached now, each with the model that served it.
    results = translate(app, "p3", "good morning", ["de", "es", "fr"], sourceLanguage="en")
    assert all(r["fromCache"] for r in results.values())
    assert {t: r["translatorModel"] for t, r in results.items()} == {"fr": "fake-basic", "es": "fake-medium", "de": "fake-medium"}
    assert len(decoded(log, "good morning")) == 3
    # The source "auto" is another message entry, so the edge misses; the edge detects English and
    # the worker finds the en->fr segment entry: no decode.
    results = translate(app, "p4", "good morning", ["fr"])
    assert results["fr"]["fromCache"] is True and results["fr"]["sourceLanguage"] == "en"
    assert results["fr"]["workerId"] is not None and results["fr"]["detectedLanguage"] == "en"
    assert translate(app, "p5", "good morning", ["fr"])["fr"]["workerId"] is None  # now an edge hit
    assert len(decoded(log, "good morning")) == 3


def test_repeats_in_one_batch_share_one_decode(start_appliance, tmp_path):
    log = tmp_path / "jobs.log"
    app = start_appliance(env={"FAKE_RUNTIME_JOB_LOG": str(log), "FAKE_RUNTIME_DELAY_MS": "300"})
    dealer = app.socket(zmq.DEALER)
    body = '{{"messageId": "{0}", "taskId": "{0}", "text": "{1}", "targetLanguage": "fr", "sourceLanguage": "en", "sync": true}}'
    # The worker is busy with "slow" while both copies of "same text" miss at the edge and queue.
    dealer.send(body.format("b0", "slow").encode())
    poll_until(lambda: decoded(log, "slow"), 20, what="the worker busy")
    dealer.send(body.format("b1", "same text").encode())
    dealer.send(body.format("b2", "same text").encode())
    replies = {}

    def both():
        while dealer.poll(20):
            r = json.loads(dealer.recv())
            replies[r["taskId"]] = r
        return {"b1", "b2"} <= replies.keys()

    poll_until(both, 30, interval=0, what="both replies")
    # Both reached the worker in one batch: one decode answers both (neither came from the cache).
    assert [replies[t]["results"][0]["translatedText"] for t in ("b1", "b2")] == ["txet emas"] * 2
    assert len(decoded(log, "same text")) == 1
    # A third copy asking another model type misses at the edge (message entries are keyed per
    # request), and the worker answers it from the segment entry the first decode left.
    third = translate(app, "b3", "same text", ["fr"], sourceLanguage="en", modelType="basic")
    assert third["fr"]["fromCache"] is True and len(decoded(log, "same text")) == 1
    assert app.stats()["cache"]["worker_hits"] == 1


def test_translations_cached_before_a_restart_are_hits_after_it(start_appliance, tmp_path):
    log = tmp_path / "jobs.log"
    state = tmp_path / "state"
    config = {"server": {"state_dir": str(state)}}
    first = start_appliance(config=config, env={"FAKE_RUNTIME_JOB_LOG": str(log)})
    before = translate(first, "r1", "see you tomorrow", ["fr", "es"], sourceLanguage="en")
    shm = Path("/dev/shm") / table_name(str(first.run_dir))
    assert shm.exists()
    first.signal(signal.SIGTERM)
    assert first.wait_exit() == 0
    assert not shm.exists()  # the supervisor unlinks its table
    assert (state / "cache.sqlite3").exists()
    assert len(decoded(log, "see you tomorrow")) == 2

    second = start_appliance(config=config, env={"FAKE_RUNTIME_JOB_LOG": str(log)})
    assert second.stats()["cache"]["warm_loaded"] >= 2
    after = translate(second, "r2", "see you tomorrow", ["fr", "es"], sourceLanguage="en")
    assert all(r["fromCache"] for r in after.values())
    assert {t: r["translatedText"] for t, r in after.items()} == {t: r["translatedText"] for t, r in before.items()}
    assert len(decoded(log, "see you tomorrow")) == 2


def test_a_deleted_sqlite_file_is_noticed_and_what_follows_survives_a_restart(start_appliance, tmp_path):
    state = tmp_path / "state"
    config = {"server": {"state_dir": str(state)}}
    first = start_appliance(config=config)
    translate(first, "d1", "before the delete", ["fr"], sourceLanguage="en")
    db = state / "cache.sqlite3"
    poll_until(lambda: first.stats()["cache"]["persistent_written"] >= 1, 20, what="the first write")
    assert (os.stat(state).st_mode & 0o777, os.stat(db).st_mode & 0o777) == (0o700, 0o600)
    for path in state.glob("cache.sqlite3*"):
        path.unlink()
    translate(first, "d2", "after the delete", ["fr"], sourceLanguage="en")
    poll_until(lambda: first.stats()["cache"]["persistent_reopened"] >= 1, 20, what="the reopen")
    poll_until(lambda: db.exists() and first.stats()["cache"]["persistent_written"] >= 2, 20, what="a write to the new file")
    assert first.stats()["cache"]["persistent_ok"] is True
    first.signal(signal.SIGTERM)
    assert first.wait_exit() == 0

    second = start_appliance(config=config)
    hit = translate(second, "d3", "after the delete", ["fr"], sourceLanguage="en")
    assert hit["fr"]["fromCache"] is True  # written to the new file, not to the unlinked one


def test_an_unusable_persistent_level_leaves_the_memory_level_serving(start_appliance, tmp_path):
    log = tmp_path / "jobs.log"
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    app = start_appliance(
        config={"server": {"state_dir": str(blocker)}}, env={"FAKE_RUNTIME_JOB_LOG": str(log)}
    )
    translate(app, "u1", "still works", ["fr"], sourceLanguage="en")
    assert translate(app, "u2", "still works", ["fr"], sourceLanguage="en")["fr"]["fromCache"] is True
    cache = app.stats()["cache"]
    assert cache["persistent_ok"] is False and cache["persistent_errors"] >= 1
    assert "persistent cache level" in app.log() and "serving from memory only" in app.log()
    assert len(decoded(log, "still works")) == 1
    with urllib.request.urlopen(app.endpoints["http"] + "/metrics", timeout=10) as answer:
        metrics = answer.read().decode()
    assert "\nmeeshy_cache_persistent_ok 0.0\n" in metrics and "\nmeeshy_cache_edge_hits_total 1.0\n" in metrics


def test_cache_disabled_sends_everything_to_the_worker(start_appliance, tmp_path):
    log = tmp_path / "jobs.log"
    app = start_appliance(config={"cache": {"enabled": False}}, env={"FAKE_RUNTIME_JOB_LOG": str(log)})
    for i in range(2):
        assert translate(app, f"d{i}", "no cache", ["fr"], sourceLanguage="en")["fr"]["fromCache"] is False
    assert len(decoded(log, "no cache")) == 2
    assert app.stats()["cache"] == {"hits": 0, "misses": 0, "hit_rate": 0.0, "size": 0, "enabled": False}


def test_a_corrupt_sqlite_file_is_moved_aside_at_start_and_while_running(start_appliance, tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    db = state / "cache.sqlite3"
    db.write_bytes(b"not a database, " * 4096)
    app = start_appliance(config={"server": {"state_dir": str(state)}})
    assert app.stats()["cache"]["persistent_repairs"] == 1
    translate(app, "c1", "after the start", ["fr"], sourceLanguage="en")
    poll_until(lambda: app.stats()["cache"]["persistent_written"] >= 1, 20, what="a write to the new file")

    with open(db, "r+b") as f:  # in place, as a disk error or a stray writer would
        f.write(b"\xff" * db.stat().st_size)
    translate(app, "c2", "after the garbage", ["fr"], sourceLanguage="en")
    poll_until(lambda: app.stats()["cache"]["persistent_repairs"] == 2, 20, what="the second repair")
    poll_until(lambda: app.stats()["cache"]["persistent_written"] >= 2, 20, what="a write to the newest file")
    cache = app.stats()["cache"]
    assert cache["persistent_ok"] is True
    assert len(list(state.glob("cache.sqlite3.corrupt-*"))) == 2
    with urllib.request.urlopen(app.endpoints["http"] + "/metrics", timeout=10) as answer:
        assert "\nmeeshy_cache_persistent_repairs_total 2.0\n" in answer.read().decode()
