"""The HTTP API on the shared appliance: health, readiness, stats, Prometheus metrics, translate."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

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


def test_metrics_are_prometheus_text(shared_appliance):
    status, text, _ = call(shared_appliance, "GET", "/metrics")
    assert status == 200
    assert "# TYPE meeshy_requests_total counter" in text
    assert 'meeshy_worker_up{slot="1"} 1' in text
    families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(families) == len(set(families))
    for line in text.splitlines():
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            float(value)


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
