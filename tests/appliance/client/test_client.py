"""The client library (appliance/client/library.py) against real appliances with the fake runtime (which
reverses the text): translations settled by their events, errors as values, the client's LRU,
retries with the same taskId across a stopped worker, several appliances with one stopped,
CurveZMQ, and the one-shot `request`.

A stopped process is always continued in a `finally`, so a failing test leaves none behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import uvloop

from appliance.edge import curve
from appliance.client import (
    Client,
    Endpoint,
    NoAnswer,
    SyncClient,
    TranslationFailed,
    TranslationFailure,
    TranslationResult,
    request,
)
from tests.appliance.conftest import start_curve_appliance
from tests.fakes.fake_runtime import jobs_logged
from tests.fakes.waiting import poll_until

pytestmark = pytest.mark.timeout(120)

LOOPS: dict[str, Callable] = {"asyncio": asyncio.run, "uvloop": uvloop.run}


def pair(app) -> tuple[str, str]:
    return app.endpoints["requests"], app.endpoints["events"]


def state(client: SyncClient, app) -> dict:
    return next(a for a in client.stats()["appliances"] if a["requests"] == app.endpoints["requests"])


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_translate_and_translate_many_complete_on_their_events(shared_appliance, loop):
    app = shared_appliance
    seen: list = []

    async def main() -> None:
        async with Client(pair(app), on_result=seen.append) as client:
            one = await client.translate("the cat sees the dog", "fr", source="en", message_id="m-1")
            assert one.translated_text == "god eht sees tac eht"
            assert (one.target_language, one.source_language, one.message_id) == ("fr", "en", "m-1")
            assert one.task_id and one.attempts == 1 and one.endpoint == app.endpoints["requests"]
            assert not one.from_client_cache and one.model_type and 0 < one.confidence_score <= 1

            many = await client.translate_many(
                "hello there", ["fr", "es", "de-DE"], source="en", conversation_id="conv-1"
            )
            assert list(many) == ["fr", "es", "de-DE"]
            assert all(isinstance(o, TranslationResult) and o.translated_text == "ereht olleh" for o in many.values())
            assert many["de-DE"].target_language == "de"
            assert len({o.task_id for o in many.values()}) == 1 and one.task_id not in {o.task_id for o in many.values()}
            assert all(o.conversation_id == "conv-1" for o in many.values())

            stats = client.stats()
            assert (stats["totalRequests"], stats["zmqRequests"], stats["pendingTasks"]) == (2, 2, 0)
            assert (stats["cacheMisses"], stats["cacheHits"], stats["results"]) == (4, 0, 4)
            assert stats["appliances"][0]["up"]

    LOOPS[loop](main())
    assert sorted(o.target_language for o in seen) == ["de", "es", "fr", "fr"]


def test_each_target_settles_on_its_own_and_errors_are_values(shared_appliance):
    with SyncClient(pair(shared_appliance)) as client:
        # "__error__" fails in the worker; a target equal to the source is answered by the edge.
        outcomes = client.translate_many("__error__ the dog", ["fr", "en"], source="en")
        assert isinstance(outcomes["fr"], TranslationFailure) and outcomes["fr"].code == "translation_failed"
        assert isinstance(outcomes["en"], TranslationResult) and outcomes["en"].same_language
        assert outcomes["en"].translated_text == "__error__ the dog"
        assert outcomes["fr"].task_id == outcomes["en"].task_id

        # An error reply fails every target of its request, as values.
        refused = client.translate_many("the dog", ["fr", "xx"], source="en")
        assert {o.code for o in refused.values()} == {"unsupported_language"}
        assert all(not o.ok for o in refused.values())

        with pytest.raises(TranslationFailed) as failed:
            client.translate("__error__ again", "es", source="en")
        assert failed.value.failure.code == "translation_failed"
        assert client.stats()["failures"] == 4


def test_repeats_come_from_the_client_cache_without_a_request(shared_appliance):
    with SyncClient(pair(shared_appliance), cache_size=2) as client:
        first = client.translate("a cached sentence", "fr", source="en")
        sent = client.stats()["zmqRequests"]
        again = client.translate("a cached sentence", "fr", source="en")
        assert client.stats()["zmqRequests"] == sent
        assert again.from_client_cache and not first.from_client_cache
        assert again.translated_text == first.translated_text and again.task_id == first.task_id

        # One target cached, one not: only the missing one is asked for.
        mixed = client.translate_many("a cached sentence", ["fr", "es"], source="en")
        assert mixed["fr"].from_client_cache and not mixed["es"].from_client_cache
        assert client.stats()["zmqRequests"] == sent + 1

        # Another model type is another key; the least recently used entry is evicted.
        client.translate("a cached sentence", "fr", source="en", model_type="medium")
        assert client.stats()["zmqRequests"] == sent + 2
        assert client.translate("a cached sentence", "es", source="en").from_client_cache
        evicted = client.translate("a cached sentence", "fr", source="en")  # the least recently used
        assert not evicted.from_client_cache
        stats = client.stats()
        assert stats["zmqRequests"] == sent + 3 and stats["cacheSize"] == 2
        assert (stats["cacheHits"], stats["cacheMisses"]) == (3, 4)


def test_a_timed_out_request_is_retried_with_the_same_task_id(start_appliance, tmp_path):
    job_log = tmp_path / "jobs.jsonl"
    app = start_appliance(env={"FAKE_RUNTIME_JOB_LOG": str(job_log)})
    pid = app.stats()["workers"]["slots"][0]["pid"]
    seen: list = []
    text = "the bird sings in the tree"
    with SyncClient(pair(app), timeout=2.0, retries=20, on_result=seen.append) as client, ThreadPoolExecutor(1) as pool:
        os.kill(pid, signal.SIGSTOP)  # the request reaches a worker that cannot answer
        try:
            pending = pool.submit(client.translate_many, text, ["fr", "es"], source="en")
            poll_until(lambda: client.stats()["retries"] >= 1, 60, what="a retry after the client's timeout")
        finally:
            os.kill(pid, signal.SIGCONT)
        outcomes = pending.result(timeout=60)
        assert all(isinstance(o, TranslationResult) for o in outcomes.values()), outcomes
        assert {o.translated_text for o in outcomes.values()} == {text[::-1]}
        (task_id,) = {o.task_id for o in outcomes.values()}
        assert all(o.attempts >= 2 for o in outcomes.values())
        assert sorted(o.target_language for o in seen) == ["es", "fr"]  # one outcome per target
    # The appliance saw the same taskId again (a duplicate) and decoded each target once.
    assert app.stats()["service"]["duplicate_requests"] >= 1
    decoded = [j["target"] for j in jobs_logged(job_log) if j["text"] == text]
    assert sorted(decoded) == ["es", "fr"]
    assert task_id


def test_two_appliances_one_stopped_requests_go_to_the_other(start_appliance):
    a, b = start_appliance(), start_appliance()
    options = {"timeout": 2.0, "retries": 3, "ping_interval": 0.2, "ping_timeout": 1.0}
    texts = (f"message number {i} from the gateway" for i in range(1000))
    with SyncClient([pair(a), Endpoint(*pair(b))], **options) as client:
        poll_until(lambda: all(x["up"] for x in client.stats()["appliances"]), 30, what="both appliances up")
        served = {client.translate(next(texts), "fr", source="en").endpoint for _ in range(4)}
        assert served == {a.endpoints["requests"], b.endpoints["requests"]}

        a.signal(signal.SIGSTOP)
        try:
            # Before a ping notices, one of the next two requests goes to `a`: it times out and
            # is retried on `b`.
            retried = [client.translate(next(texts), "fr", source="en") for _ in range(6)]
            assert {r.endpoint for r in retried} == {b.endpoints["requests"]}
            assert client.stats()["timeouts"] >= 1 and max(r.attempts for r in retried) == 2
            poll_until(lambda: not state(client, a)["up"], 30, what="the stopped appliance skipped")
            sent_to_a = state(client, a)["sent"]
            results = [client.translate(next(texts), "fr", source="en") for _ in range(4)]
            assert {r.endpoint for r in results} == {b.endpoints["requests"]}
            assert state(client, a)["sent"] == sent_to_a
        finally:
            a.signal(signal.SIGCONT)

        poll_until(lambda: state(client, a)["up"], 30, what="the resumed appliance back in rotation")
        results = [client.translate(next(texts), "fr", source="en") for _ in range(4)]
        assert a.endpoints["requests"] in {r.endpoint for r in results}
        assert state(client, a)["sent"] > sent_to_a
        assert client.stats()["failures"] == 0


def test_an_appliance_that_never_answers_is_skipped(shared_appliance, tmp_path):
    silent = (f"ipc://{tmp_path}/nobody-requests.ipc", f"ipc://{tmp_path}/nobody-events.ipc")
    with SyncClient([silent, pair(shared_appliance)], ping_timeout=0.5, ping_interval=0.2) as client:
        results = [client.translate(f"text {i} for a live one", "fr", source="en") for i in range(3)]
        assert {r.endpoint for r in results} == {shared_appliance.endpoints["requests"]}
        poll_until(lambda: "ping" in client.stats()["appliances"][0]["reason"], 30, what="the failed ping")
        down = client.stats()["appliances"][0]
        assert not down["up"] and down["sent"] == 0
    with pytest.raises(NoAnswer, match="no appliance came up"):
        SyncClient(silent, timeout=1.0, ping_timeout=0.3)


def test_a_curve_appliance_serves_clients_with_an_allowed_key(start_appliance, tmp_path):
    app, server_public, good_secret = start_curve_appliance(start_appliance, tmp_path / "keys")
    _, stranger_secret = curve.generate(tmp_path / "keys", "stranger")
    keys = {"server_key": server_public, "client_secret_key": good_secret}
    with SyncClient(pair(app), start_timeout=60, **keys) as client:
        assert client.translate("a secret message", "fr", source="en").translated_text == "egassem terces a"
        assert client.ping()["ready"] is True
    assert request(app.endpoints["requests"], {"type": "ping"}, 10, keys=(server_public, good_secret))["ready"]
    with pytest.raises(NoAnswer, match="refused this client's key"):
        request(app.endpoints["requests"], {"type": "ping"}, 10, keys=(server_public, stranger_secret))
    for options in ({"server_key": server_public, "client_secret_key": stranger_secret}, {}):
        with pytest.raises(NoAnswer):
            SyncClient(pair(app), timeout=1.0, ping_timeout=0.5, **options)
    with pytest.raises(ValueError, match="go together"):
        Client(pair(app), server_key=server_public)


def test_in_flight_tasks_are_bounded(start_appliance):
    app = start_appliance(env={"FAKE_RUNTIME_DELAY_MS": "50"})
    pending_seen: list[int] = []

    async def main() -> None:
        async with Client(pair(app), max_in_flight=2) as client:
            client.on_result = lambda _: pending_seen.append(client.stats()["pendingTasks"])
            outcomes = await asyncio.gather(*(client.translate(f"sentence {i}", "fr", source="en") for i in range(8)))
            assert [o.translated_text for o in outcomes] == [f"sentence {i}"[::-1] for i in range(8)]
            assert client.stats()["pendingTasks"] == 0

    uvloop.run(main())
    assert len(pending_seen) == 8 and max(pending_seen) <= 2


def test_one_shot_request_and_endpoints_file(shared_appliance, tmp_path):
    app = shared_appliance
    pong = request(app.endpoints["requests"], {"type": "ping"}, 10)
    assert pong["type"] == "pong" and pong["ready"] is True
    refused = request(app.endpoints["requests"], b"not json", 10)
    assert refused["status"] == "error" and refused["error"]["code"] == "invalid_json"
    with pytest.raises(NoAnswer, match="no answer"):
        request(f"ipc://{tmp_path}/nobody.ipc", {"type": "ping"}, 0.3)
    endpoint = Endpoint.from_file(app.run_dir / "endpoints.json")
    assert (endpoint.requests, endpoint.events) == pair(app)
    with SyncClient(app.run_dir / "endpoints.json") as client:
        assert client.appliance_stats()["type"] == "stats"
        assert ["en", "fr"] in client.languages()["languages"]["basic"]
    with pytest.raises(ValueError, match="pair"):
        Client("tcp://127.0.0.1:5555")
