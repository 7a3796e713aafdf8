"""Two appliances sharing one real redis-server (ephemeral port, no persistence), and an appliance
whose Redis goes away. Skipped, with the reason, where redis-server or the `redis` package is
missing."""

from __future__ import annotations


import pytest

from tests.fakes.fake_runtime import jobs_logged
from tests.fakes.redis_server import REDIS_SERVER, RedisServer
from tests.fakes.waiting import poll_until

redis = pytest.importorskip("redis", reason="the redis Python package is not installed")
pytestmark = [
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server not found (Debian package redis-server)"),
    pytest.mark.timeout(60),
]


@pytest.fixture
def redis_url(tmp_path):
    server = RedisServer(tmp_path)
    yield server.url, server.proc
    server.stop()


def translate(app, task_id: str, text: str) -> dict:
    body = {"messageId": task_id, "taskId": task_id, "text": text, "targetLanguage": "es",
            "sourceLanguage": "en", "sync": True}
    reply = app.request(body, timeout=20)
    assert reply is not None and reply["status"] == "completed", reply
    return reply["results"][0]


def test_two_appliances_sharing_redis_share_their_translations(start_appliance, redis_url, tmp_path):
    url, _ = redis_url
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    a = start_appliance(config={"cache": {"persistent": url}}, env={"FAKE_RUNTIME_JOB_LOG": str(log_a)})
    b = start_appliance(env={"FAKE_RUNTIME_JOB_LOG": str(log_b), "MEESHY_CACHE_URL": url})
    first = translate(a, "x1", "shared greeting")
    assert first["fromCache"] is False
    poll_until(lambda: a.stats()["cache"]["persistent_written"] >= 1, 10, what="the write-behind to Redis")
    second = translate(b, "x2", "shared greeting")
    assert second["fromCache"] is True and second["translatedText"] == first["translatedText"]
    assert [j for j in jobs_logged(log_b) if j["text"] == "shared greeting"] == []
    cache_b = b.stats()["cache"]
    assert cache_b["persistent_level"] == "redis" and cache_b["persistent_ok"] is True
    assert cache_b["persistent_hits"] == 1 and cache_b["edge_hits"] == 1


def test_a_redis_that_goes_away_leaves_the_memory_level_serving(start_appliance, redis_url, tmp_path):
    url, server = redis_url
    log = tmp_path / "jobs.log"
    app = start_appliance(config={"cache": {"persistent": url}}, env={"FAKE_RUNTIME_JOB_LOG": str(log)})
    translate(app, "k1", "before the outage")
    server.kill()
    server.wait(10)
    assert translate(app, "k2", "during the outage")["fromCache"] is False
    assert translate(app, "k3", "during the outage")["fromCache"] is True
    assert translate(app, "k4", "before the outage")["fromCache"] is True
    cache = poll_until(lambda: (c := app.stats()["cache"])["persistent_ok"] is False and c, 10, what="degraded")
    assert cache["persistent_errors"] >= 1
    assert "persistent cache level redis failed" in app.log() and "serving from memory only" in app.log()
    metrics = app.request({"type": "stats"})["cache"]
    assert metrics["persistent_ok"] is False
