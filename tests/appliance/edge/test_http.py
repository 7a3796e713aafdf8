"""The HTTP API on the shared appliance: health, readiness, stats, Prometheus metrics, translate."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.waiting import poll_until

pytestmark = pytest.mark.timeout(60)


def call(app, method: str, path: str, body: bytes | None = None, conn=None):
    url = urlsplit(app.endpoints["http"])
    conn = conn or http.client.HTTPConnection(url.hostname, url.port, timeout=20)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
    resp = conn.getresponse()
    data = resp.read()
    ctype = resp.getheader("Content-Type", "")
    return resp.status, (json.loads(data) if ctype.startswith("application/json") else data.decode()), conn


def test_health_ready_stats(shared_appliance):
    status, body, conn = call(shared_appliance, "GET", "/health")
    assert status == 200 and body == {"status": "ok", "state": "serving"}
    status, body, _ = call(shared_appliance, "GET", "/ready", conn=conn)  # keep-alive
    assert status == 200 and body["ready"] is True
    status, body, _ = call(shared_appliance, "GET", "/stats", conn=conn)
    assert status == 200 and body["workers"]["max_workers"] == 2
    conn.close()


def scrape(app) -> dict[str, dict]:
    """/metrics parsed by prometheus_client: family name -> {"type", "samples": {(name, labels): value}}."""
    status, text, _ = call(app, "GET", "/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in out
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        out[family.name] = {"type": family.type, "samples": samples}
    return out


def test_metrics_are_prometheus_text(shared_appliance):
    status, text, _ = call(shared_appliance, "GET", "/metrics")
    assert status == 200
    assert "# TYPE meeshy_requests_total counter" in text
    families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(families) == len(set(families))
    metrics = scrape(shared_appliance)
    assert metrics["meeshy_worker_up"]["samples"][("meeshy_worker_up", (("slot", "1"),))] == 1
    assert metrics["meeshy_workers_max"]["samples"][("meeshy_workers_max", ())] == 2
    rss = metrics["meeshy_worker_rss_bytes"]["samples"]
    assert metrics["meeshy_supervisor_rss_bytes"]["samples"][("meeshy_supervisor_rss_bytes", ())] > 0
    assert set(rss) == {("meeshy_worker_rss_bytes", (("slot", "0"),)), ("meeshy_worker_rss_bytes", (("slot", "1"),))}


def histogram_count(metrics: dict, family: str, **labels: str) -> float:
    samples = metrics[family]["samples"]
    return sum(v for (name, lbls), v in samples.items() if name == f"{family}_count" and set(labels.items()) <= set(lbls))


def test_metrics_histograms_and_counters_follow_translations(shared_appliance):
    before = scrape(shared_appliance)
    for i in range(3):
        body = json.dumps({"messageId": f"hm{i}", "text": f"metrics {i}", "sourceLanguage": "en", "targetLanguages": ["fr", "de"]}).encode()
        status, reply, _ = call(shared_appliance, "POST", "/translate", body)
        assert status == 200 and reply["status"] == "completed"
    call(shared_appliance, "POST", "/translate", b"nope")  # an invalid_json error
    after = scrape(shared_appliance)
    for family in ("meeshy_latency_seconds", "meeshy_queue_seconds", "meeshy_processing_seconds"):
        assert after[family]["type"] == "histogram"
        assert histogram_count(after, family) >= histogram_count(before, family) + 6, family
    assert histogram_count(after, "meeshy_latency_seconds", outcome="completed") >= 6
    buckets = [(dict(lbls)["le"], v) for (name, lbls), v in after["meeshy_latency_seconds"]["samples"].items()
               if name == "meeshy_latency_seconds_bucket" and dict(lbls)["outcome"] == "completed"]
    assert dict(buckets)["+Inf"] == histogram_count(after, "meeshy_latency_seconds", outcome="completed")

    def total(metrics, family, **labels):
        return sum(v for (name, lbls), v in metrics.get(family, {"samples": {}})["samples"].items()
                   if set(labels.items()) <= set(lbls))

    assert total(after, "meeshy_translations", source="en", target="fr") >= total(before, "meeshy_translations", source="en", target="fr") + 3
    assert all(dict(lbls)["model"] for (_, lbls) in after["meeshy_translations"]["samples"])
    assert total(after, "meeshy_request_errors", code="invalid_json") == total(before, "meeshy_request_errors", code="invalid_json") + 1
    assert total(after, "meeshy_http_responses", route="/translate", status="200") >= 3
    assert total(after, "meeshy_http_connections") >= 1  # this scrape's own connection

    # Workers send Stats frames every few heartbeats: their cumulative tasks and batches follow.
    def worker_counts():
        now = scrape(shared_appliance)
        return total(now, "meeshy_worker_tasks") >= total(before, "meeshy_worker_tasks") + 6 and now

    now = poll_until(worker_counts, 30, interval=0.2, what="worker Stats frames counting the tasks")
    assert 0 < total(now, "meeshy_worker_batches") <= total(now, "meeshy_worker_tasks")


def test_translate_is_synchronous(shared_appliance):
    body = json.dumps({"messageId": "h1", "text": "abc", "targetLanguages": ["fr", "de"]}).encode()
    status, reply, _ = call(shared_appliance, "POST", "/translate", body)
    assert status == 200 and reply["status"] == "completed"
    assert sorted(r["translatedText"] for r in reply["results"]) == ["cba", "cba"]


@pytest.mark.parametrize(
    "method, path, body, status, code",
    [
        ("POST", "/translate", b"nope", 400, "invalid_json"),
        ("POST", "/translate", json.dumps({"messageId": "m", "text": "x", "targetLanguage": "xx"}).encode(), 400, "unsupported_language"),
        ("GET", "/translate", None, 405, "method_not_allowed"),
        ("GET", "/nowhere", None, 404, "not_found"),
    ],
)
def test_http_errors(shared_appliance, method, path, body, status, code):
    got, reply, _ = call(shared_appliance, method, path, body)
    assert got == status and reply["error"]["code"] == code


def test_detect_ranks_the_served_languages(shared_appliance):
    body = json.dumps({"text": "Merci beaucoup pour ton message, à demain !"}).encode()
    status, reply, _ = call(shared_appliance, "POST", "/detect", body)
    assert status == 200 and reply["type"] == "detection" and reply["detectedLanguage"] == "fr" and reply["reliable"]
    assert {x["language"] for x in reply["languages"]} <= {"en", "fr", "es", "de"}  # the fake runtime's languages
    assert 0.5 < reply["confidence"] <= 1 and reply["languages"][0] == {"language": "fr", "confidence": reply["confidence"]}
    status, reply, _ = call(shared_appliance, "POST", "/detect", json.dumps({"text": "  "}).encode())
    assert status == 400 and reply["error"]["code"] == "invalid_request"


def test_each_post_route_takes_only_its_own_request_type(shared_appliance):
    body = json.dumps({"type": "translation", "messageId": "x", "text": "abc", "targetLanguage": "fr"}).encode()
    status, reply, _ = call(shared_appliance, "POST", "/detect", body)
    assert status == 400 and reply["error"]["code"] == "invalid_request" and "detect" in reply["error"]["message"]
