"""The edge against a real appliance process: REQ/REP, DEALER pipelining, validation, events."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest
import zmq

from tests.fakes.waiting import poll_until

pytestmark = pytest.mark.timeout(90)


def translation(**fields) -> dict:
    body = {"messageId": uuid.uuid4().hex, "text": "the cat sees the dog"}
    if "targetLanguages" not in fields:
        body["targetLanguage"] = "fr"
    body.update(fields)
    return body


def test_32_req_clients_and_dealer_pipelining(shared_appliance):
    app = shared_appliance
    events = app.subscriber()
    clients = [app.socket(zmq.REQ) for _ in range(32)]
    dealer = app.socket(zmq.DEALER)
    expected: dict[str, set[str]] = {}
    replies: dict[str, dict] = {}

    def body(i: int) -> dict:
        task_id = f"conc-{i}-{uuid.uuid4().hex[:8]}"
        targets = ["fr", "es"] if i % 2 else ["de"]
        expected[task_id] = set(targets)
        return translation(taskId=task_id, targetLanguages=targets, text=f"sentence number {i}")

    # DEALER: 64 requests in a row, no waiting; one with the REQ-style empty delimiter, one without.
    for i in range(64):
        payload = json.dumps(body(1000 + i)).encode()
        dealer.send_multipart([b"", payload] if i % 2 else [payload])
    # 32 REQ clients, three rounds each, all in flight together.
    rounds = {id(c): 0 for c in clients}
    for i, c in enumerate(clients):
        c.send(json.dumps(body(i)).encode())
    poller = zmq.Poller()
    for c in [*clients, dealer]:
        poller.register(c, zmq.POLLIN)

    def all_replied():
        for sock, _ in poller.poll(50):
            if sock is dealer:
                frames = dealer.recv_multipart()
                reply = json.loads(frames[-1])
            else:
                reply = json.loads(sock.recv())
                rounds[id(sock)] += 1
                if rounds[id(sock)] < 3:
                    sock.send(json.dumps(body(100 * rounds[id(sock)] + clients.index(sock))).encode())
            assert reply["status"] == "queued", reply
            replies[reply["taskId"]] = reply
        return len(replies) == len(expected) == 64 + 96

    poll_until(all_replied, 60, interval=0, what="every reply")
    for task_id, reply in replies.items():
        assert set(reply["targetLanguages"]) == expected[task_id]

    def all_events(evs):
        return sum(1 for e in evs if e["taskId"] in expected) == sum(len(t) for t in expected.values())

    events.wait_for(all_events, 60, what="one event per target")
    per_target = Counter((e["taskId"], e["targetLanguage"]) for e in events.all if e["taskId"] in expected)
    assert set(per_target) == {(t, lang) for t, langs in expected.items() for lang in langs}
    assert set(per_target.values()) == {1}
    assert all(e["type"] == "translation_completed" for e in events.all if e["taskId"] in expected)


BIG = "x" * 300
MALFORMED = [
    ("not json", b"hello", "invalid_json"),
    ("binary garbage", bytes(range(256)), "invalid_json"),
    ("invalid utf-8 in a string", b'{"messageId": "\xc3\x28"}', "invalid_json"),
    ("empty frame", b"", "invalid_json"),
    ("a list", b"[1, 2]", "invalid_request"),
    ("a string", b'"translate me"', "invalid_request"),
    ("null", b"null", "invalid_request"),
    ("missing messageId", {"text": "hi", "targetLanguage": "fr"}, "invalid_request"),
    ("messageId not a string", {"messageId": 5, "text": "hi", "targetLanguage": "fr"}, "invalid_request"),
    ("empty messageId", {"messageId": " ", "text": "hi", "targetLanguage": "fr"}, "invalid_request"),
    ("missing text", {"messageId": "m", "targetLanguage": "fr"}, "invalid_request"),
    ("text not a string", {"messageId": "m", "text": ["hi"], "targetLanguage": "fr"}, "invalid_request"),
    ("empty text", {"messageId": "m", "text": "", "targetLanguage": "fr"}, "invalid_request"),
    ("blank text", {"messageId": "m", "text": " \n\t ", "targetLanguage": "fr"}, "invalid_request"),
    ("text over the limit", {"messageId": "m", "text": BIG, "targetLanguage": "fr"}, "text_too_long"),
    ("no target", {"messageId": "m", "text": "hi"}, "invalid_request"),
    ("targets not a list", {"messageId": "m", "text": "hi", "targetLanguages": "fr"}, "invalid_request"),
    ("target not a string", {"messageId": "m", "text": "hi", "targetLanguages": ["fr", 3]}, "invalid_request"),
    ("empty target list", {"messageId": "m", "text": "hi", "targetLanguages": []}, "invalid_request"),
    (
        "too many targets",
        {"messageId": "m", "text": "hi", "targetLanguages": ["fr", "es", "de", "en", "it"]},
        "too_many_targets",
    ),
    ("unknown target", {"messageId": "m", "text": "hi", "targetLanguage": "xx"}, "unsupported_language"),
    (
        "unknown source",
        {"messageId": "m", "text": "hi", "sourceLanguage": "zz", "targetLanguage": "fr"},
        "unsupported_language",
    ),
    ("unknown target as an ISO 639-3 code", {"messageId": "m", "text": "hi", "targetLanguage": "JPN"}, "unsupported_language"),
    ("unknown model type", {"messageId": "m", "text": "hi", "targetLanguage": "fr", "modelType": "huge"}, "unsupported_model"),
    ("model type not a string", {"messageId": "m", "text": "hi", "targetLanguage": "fr", "modelType": 1}, "invalid_request"),
    ("unknown request type", {"type": "explode", "messageId": "m"}, "invalid_request"),
    ("type not a string", {"type": 7}, "invalid_request"),
    ("sync not a boolean", {"messageId": "m", "text": "hi", "targetLanguage": "fr", "sync": "yes"}, "invalid_request"),
    ("taskId not a string", {"messageId": "m", "text": "hi", "targetLanguage": "fr", "taskId": 12}, "invalid_request"),
    ("payload over max_request_bytes", b'{"pad": "' + b"y" * 70000 + b'"}', "invalid_request"),
]


@pytest.mark.parametrize("payload, code", [(p, c) for _, p, c in MALFORMED], ids=[n for n, _, _ in MALFORMED])
def test_malformed_request_gets_its_error_code_and_the_appliance_keeps_serving(shared_appliance, payload, code):
    app = shared_appliance
    reply = app.request(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    assert reply is not None, "no reply"
    assert reply["status"] == "error"
    assert reply["error"]["code"] == code, reply
    assert reply["error"]["message"]
    if isinstance(payload, dict) and isinstance(payload.get("messageId"), str):
        assert reply["messageId"] == payload["messageId"]
    assert app.request(translation())["status"] == "queued"


def test_multipart_junk_gets_an_error_reply(shared_appliance):
    app = shared_appliance
    req = app.socket(zmq.REQ)
    req.send_multipart([b'{"type": "ping"}', b"junk", b"more junk"])
    assert req.poll(10000)
    reply = json.loads(req.recv())
    assert reply["error"]["code"] == "invalid_request"
    dealer = app.socket(zmq.DEALER)
    dealer.send_multipart([b"a", b"b"])  # no delimiter, two body frames
    assert dealer.poll(10000)
    assert json.loads(dealer.recv_multipart()[-1])["error"]["code"] == "invalid_request"
    assert app.request({"type": "ping"})["type"] == "pong"


def test_fan_out_one_event_per_target_with_type_first(shared_appliance):
    app = shared_appliance
    events = app.subscriber()
    prefix = app.socket(zmq.SUB, app.endpoints["events"])
    prefix.setsockopt(zmq.SUBSCRIBE, b'{"type":"translation_completed"')
    task_id = f"fan-{uuid.uuid4().hex}"
    reply = app.request(
        translation(taskId=task_id, targetLanguages=["fr", "es", "fr-FR", "de"], conversationId="c1", sourceLanguage="en",
                    text=f"the cat sees the dog {task_id}")  # a text of its own: no cache hit from another test
    )
    assert reply["status"] == "queued" and reply["taskId"] == task_id
    assert reply["targetLanguages"] == ["fr", "es", "de"]  # fr-FR folds into fr
    assert isinstance(reply["estimatedProcessingTime"], int)
    got = events.wait_for(lambda evs: len([e for e in evs if e["taskId"] == task_id]) >= 3, what="3 events")
    mine = events.for_task(task_id)
    assert sorted(e["targetLanguage"] for e in mine) == ["de", "es", "fr"]
    for event in mine:
        assert next(iter(event)) == "type"
        assert event["messageId"] == reply["messageId"]
        result = event["result"]
        assert result["translatedText"] == f"the cat sees the dog {task_id}"[::-1]
        assert result["sourceLanguage"] == "en" and result["targetLanguage"] == event["targetLanguage"]
        assert 0 <= result["confidenceScore"] <= 1
        assert result["fromCache"] is False and result["workerId"] in (0, 1)
        assert {"processingTime", "modelType", "translatorModel"} <= set(result)
        assert event["metadata"]["conversationId"] == "c1"
    assert got
    # The documented prefix filter sees the completions.
    assert prefix.poll(10000)
    assert prefix.recv().startswith(b'{"type":"translation_completed"')


def test_retry_with_the_same_task_id_starts_no_new_work_and_gets_the_outcomes_again(shared_appliance):
    app = shared_appliance
    events = app.subscriber()
    before = app.stats()["service"]["translation_requests"]
    task_id = f"retry-{uuid.uuid4().hex}"
    body = translation(taskId=task_id, targetLanguages=["fr", "es"])
    first = app.request(body)
    again = app.request(body)
    assert first["status"] == "queued" and "duplicate" not in first
    assert again["taskId"] == task_id and again["duplicate"] is True
    # A retry while in flight publishes again what finished already: wait for both targets.
    events.wait_for(lambda evs: len({e["targetLanguage"] for e in evs if e["taskId"] == task_id}) == 2, what="2 events")
    first_events = {e["targetLanguage"]: e for e in events.for_task(task_id)}
    seen = len(events.for_task(task_id))
    late = app.request(body)  # finished: its recorded outcomes are published again
    assert late["duplicate"] is True and late["estimatedProcessingTime"] == 0
    # A marker published after everything else: once it arrives, any duplicate would have too.
    marker = f"marker-{uuid.uuid4().hex}"
    app.request(translation(taskId=marker))
    events.wait_for(lambda evs: any(e["taskId"] == marker for e in evs), what="marker")
    again_events = events.for_task(task_id)[seen:]
    assert sorted(e["targetLanguage"] for e in again_events) == ["es", "fr"]
    assert all(e == first_events[e["targetLanguage"]] for e in again_events)
    assert app.stats()["service"]["translation_requests"] == before + 2  # the first + marker


def test_ping_stats_languages(shared_appliance):
    app = shared_appliance
    pong = app.request({"type": "ping", "messageId": "p1"})
    assert pong["type"] == "pong" and pong["messageId"] == "p1" and pong["ready"] is True
    assert pong["workers"] == {"ready": 2, "total": 2}
    stats = app.request({"type": "stats"})
    assert set(stats["service"]) >= {"total_requests", "requests_per_second", "avg_processing_time", "errors"}
    assert set(stats["cache"]) >= {"hits", "misses", "hit_rate", "size"}
    assert stats["workers"]["max_workers"] == 2 and stats["workers"]["active_workers"] == 2
    assert [s["slot"] for s in stats["workers"]["slots"]] == [0, 1]
    langs = app.request({"type": "languages"})
    assert ["en", "fr"] in langs["languages"]["basic"]
    assert ["fr", "de"] in langs["languages"]["medium"]
    assert {m["tier"] for m in langs["models"]} == {"basic", "medium"}


def test_sync_mode_returns_results_in_the_reply(shared_appliance):
    app = shared_appliance
    reply = app.request(translation(text="bonjour", targetLanguages=["en", "es"], sync=True))
    assert reply["status"] == "completed"
    assert {r["targetLanguage"]: r["translatedText"] for r in reply["results"]} == {"en": "ruojnob", "es": "ruojnob"}
    # "auto": the edge detects French once, for every target.
    assert {r["targetLanguage"]: r["sourceLanguage"] for r in reply["results"]} == {"en": "fr", "es": "fr"}
    assert all(r["detectedLanguage"] == "fr" and r["detectionConfidence"] > 0.5 for r in reply["results"])
    failed = app.request(translation(text="__error__", targetLanguage="fr", sync=True))
    assert failed["status"] == "error" and failed["results"] == []
    assert failed["errors"] == [{"targetLanguage": "fr", "error": {"code": "translation_failed", "message": "fake error"}}]


@pytest.mark.timeout(60)
def test_over_capacity_gets_overloaded_and_accepted_work_completes(start_appliance):
    app = start_appliance(
        config={"limits": {"max_inflight_tasks": 6}, "workers": {"queue_depth": 2}},
        env={"FAKE_RUNTIME_DELAY_MS": "100"},
    )
    events = app.subscriber()
    dealer = app.socket(zmq.DEALER)
    for i in range(30):
        dealer.send(json.dumps(translation(taskId=f"cap-{i}")).encode())
    replies = []

    def all_replied():
        while dealer.poll(20):
            replies.append(json.loads(dealer.recv()))
        return len(replies) == 30

    poll_until(all_replied, 30, interval=0, what="30 replies")
    accepted = {r["taskId"] for r in replies if r.get("status") == "queued"}
    refused = [r for r in replies if r.get("status") == "error"]
    assert 1 <= len(accepted) <= 6
    assert refused and {r["error"]["code"] for r in refused} == {"overloaded"}
    events.wait_for(lambda evs: {e["taskId"] for e in evs} >= accepted, what="accepted work done")
    assert app.stats()["tasks"]["in_flight"] == 0


def test_a_message_with_nothing_to_detect_uses_the_default_source_and_says_so(shared_appliance):
    app = shared_appliance
    reply = app.request(translation(text="😀 👍🏽 https://example.com", targetLanguages=["fr", "en"], sync=True))
    results = {r["targetLanguage"]: r for r in reply["results"]}
    assert all(r["defaultSourceUsed"] is True and r["detectedLanguage"] is None for r in results.values())
    assert results["fr"]["sourceLanguage"] == "en"  # [languages] default_source
    assert results["en"]["sameLanguage"] is True and results["en"]["translatedText"] == "😀 👍🏽 https://example.com"
    assert results["en"]["workerId"] is None  # answered by the edge
