"""Per-client scope (issue 16, item 5) from outside, through real sockets and a real appliance
with the fake runtime (it "translates" by reversing the text):

- under CURVE, two clients using the same taskId each get exactly their own translation, and no
  client receives another's event, even with an empty-prefix subscription (a squatter cannot take
  or read another client's taskId);
- with compat on, a gateway request naming a native task's taskId (same text or not) is another
  task: native events stay on 5556, gateway events on the compat PUB.
"""

from __future__ import annotations

import json
import time

import pytest
import zmq

from appliance.edge import curve
from bench.harness import waiting
from tests.appliance.conftest import Events, start_curve_appliance
from tests.fakes.waiting import poll_until

pytestmark = pytest.mark.timeout(120)

QUIET_MS = 300  # how long a socket is watched for a message that must not come


def translation(task_id: str, text: str, target: str = "fr") -> bytes:
    return json.dumps({"type": "translation", "messageId": f"m-{task_id}", "taskId": task_id, "text": text,
                       "sourceLanguage": "en", "targetLanguage": target}).encode()


class CurveClient:
    """A DEALER and a SUB with one key pair. The SUB asks for everything ("") and for its own key:
    only the latter may be applied."""

    def __init__(self, app, ctx: zmq.Context, server_public, secret, *, own_topic: bool = True) -> None:
        self.dealer = ctx.socket(zmq.DEALER)
        self.sub = ctx.socket(zmq.SUB)
        for sock in (self.dealer, self.sub):
            sock.setsockopt(zmq.LINGER, 0)
            curve.client_options(sock, server_public, secret)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        if own_topic:
            self.sub.setsockopt(zmq.SUBSCRIBE, curve.client_topic(secret))
        self.dealer.connect(app.endpoints["requests"])
        self.sub.connect(app.endpoints["events"])
        self.events: list[dict] = []
        self.probes = 0

    def ask(self, body: bytes, timeout_ms: int = 10_000) -> dict:
        self.dealer.send(body)
        assert self.dealer.poll(timeout_ms), "no reply"
        return json.loads(self.dealer.recv())

    def pump(self, timeout_ms: int = 0) -> None:
        if self.sub.poll(timeout_ms):
            for frames in waiting(self.sub, multipart=True):
                assert len(frames) == 2, frames  # [topic, json] under CURVE
                self.events.append(json.loads(frames[1]))

    def synced(self) -> bool:
        """A same-language probe's event arrived: the SUB's subscription is in place."""
        self.probes += 1
        task_id = f"probe-{self.probes}-{time.monotonic_ns()}"
        self.ask(json.dumps({"type": "translation", "messageId": task_id, "taskId": task_id, "text": "probe",
                             "sourceLanguage": "en", "targetLanguage": "en"}).encode())
        self.pump(300)
        return any(e["taskId"] == task_id for e in self.events)

    def for_task(self, task_id: str) -> list[dict]:
        return [e for e in self.events if e["taskId"] == task_id]


def edge_counters(client: CurveClient) -> dict:
    return client.ask(b'{"type": "stats"}')["edge"]


def test_curve_clients_have_their_own_task_ids_and_events(start_appliance, tmp_path, zctx):
    keys = tmp_path / "keys"
    app, server_public, good_secret = start_curve_appliance(start_appliance, keys, more_clients=("bob", "greedy"))
    alice = CurveClient(app, zctx, server_public, good_secret)
    bob = CurveClient(app, zctx, server_public, keys / "bob.key_secret")
    greedy = CurveClient(app, zctx, server_public, keys / "greedy.key_secret", own_topic=False)
    poll_until(lambda: alice.ask(b'{"type": "ping"}').get("ready"), 60, what="a ready appliance")
    poll_until(alice.synced, 30, what="alice's subscription")
    poll_until(bob.synced, 30, what="bob's subscription")
    # Three subscriptions refused: alice's "", bob's "", greedy's "". Once counted, greedy's
    # subscription has reached the appliance, so its silence below means something.
    poll_until(lambda: edge_counters(alice)["refused_subscriptions"] >= 3, 30, what="the refused subscriptions")
    alice.events.clear()
    bob.events.clear()

    # Bob takes the taskId first (a squatter), with his own text; alice uses it after him.
    assert bob.ask(translation("shared", "bob squats"))["status"] == "queued"
    assert alice.ask(translation("shared", "alice writes"))["status"] == "queued"
    # A retry of alice's by bob with alice's very text is bob's own task, in his own scope.
    assert bob.ask(translation("mine", "alice writes"))["status"] == "queued"
    assert alice.ask(translation("mine", "only alice"))["status"] == "queued"

    def settled() -> bool:
        alice.pump(50)
        bob.pump(50)
        return all(len(c.for_task(t)) >= 1 for c in (alice, bob) for t in ("shared", "mine"))

    poll_until(settled, 30, interval=0, what="each client's events")
    alice.pump(QUIET_MS)
    bob.pump(QUIET_MS)
    texts = {name: sorted((e["taskId"], e["result"]["translatedText"]) for e in c.events)
             for name, c in (("alice", alice), ("bob", bob))}
    assert texts["bob"] == [("mine", "setirw ecila"), ("shared", "bob squats"[::-1])]
    assert texts["alice"] == [("mine", "only alice"[::-1]), ("shared", "alice writes"[::-1])]
    # The one subscribed to "" only got nothing at all.
    assert greedy.sub.poll(QUIET_MS) == 0

    # A retry is still deduplicated within a scope, and refused with other content there.
    assert alice.ask(translation("shared", "alice writes"))["duplicate"] is True
    conflict = bob.ask(translation("shared", "alice writes"))
    assert conflict["status"] == "error" and conflict["error"]["code"] == "task_id_conflict"
    alice.pump(QUIET_MS)
    assert [e["result"]["translatedText"] for e in alice.for_task("shared")] == ["alice writes"[::-1]] * 2


def test_compat_and_native_task_ids_are_separate_namespaces(start_appliance, zctx):
    app = start_appliance(
        config={"compat": {"enabled": True, "meeshy_pull_port": 0, "meeshy_pub_port": 0, "pong_interval_s": 0.5},
                "cache": {"enabled": False}},
        env={"FAKE_RUNTIME_DELAY_MS": "300"},  # the native task is still in flight when the gateway names it
    )
    native = app.subscriber()
    push = app.socket(zmq.PUSH, app.endpoints["compat_pull"])
    gateway_sub = app.socket(zmq.SUB, app.endpoints["compat_events"])
    gateway_sub.setsockopt(zmq.SUBSCRIBE, b"")
    gateway = Events(gateway_sub)
    gateway.wait_for(lambda events: any(e.get("type") == "pong" for e in events), 20, "a pong on the compat PUB")

    def gateway_translation(task_id: str, text: str) -> bytes:
        return json.dumps({"type": "translation", "taskId": task_id, "messageId": f"gw-{task_id}", "text": text,
                           "sourceLanguage": "en", "targetLanguages": ["fr"], "conversationId": "c",
                           "modelType": "basic"}).encode()

    # Native first, then the gateway names its in-flight taskId with the same text; then the
    # gateway first and a native client names its taskId with other text.
    assert app.request(translation("n-1", "native first"))["status"] == "queued"
    push.send(gateway_translation("n-1", "native first"))
    push.send(gateway_translation("g-1", "gateway first"))
    poll_until(lambda: gateway.pump(50) >= 0 and any(e.get("taskId") == "g-1" for e in gateway.all), 30,
               what="the gateway task's event")
    reply = app.request(translation("g-1", "a native text"))
    assert reply["status"] == "queued" and not reply.get("duplicate")

    def done() -> bool:
        native.pump(50)
        gateway.pump(50)
        completed = [e for e in gateway.all if e.get("type") == "translation_completed"]
        return len(native.for_task("n-1")) >= 1 and len(native.for_task("g-1")) >= 1 and len(completed) >= 2

    poll_until(done, 30, interval=0, what="every event")
    native.pump(QUIET_MS)
    gateway.pump(QUIET_MS)
    on_native = sorted((e["taskId"], e["result"]["translatedText"]) for e in native.all)
    assert on_native == [("g-1", "a native text"[::-1]), ("n-1", "native first"[::-1])]
    assert all("processingTime" in e["result"] and "workerId" in e["result"] for e in native.all)
    on_gateway = sorted((e["taskId"], e["result"]["translatedText"], e["result"]["workerId"])
                        for e in gateway.all if e.get("type") == "translation_completed")
    # Gateway-shaped (workerId a string), one per task, never a native event converted.
    assert [(t, text) for t, text, _ in on_gateway] == [("g-1", "gateway first"[::-1]), ("n-1", "native first"[::-1])]
    assert all(isinstance(worker, str) for _, _, worker in on_gateway)
