"""Scope attacks on a CURVE appliance (issue 16, item 5), with the supervisor's RSS before and
after each:

1. an allowed client ("mallory") subscribes to 20,000 prefixes that are not its own key: how
   many the appliance refused (stats: edge.refused_subscriptions), and that none was applied;
2. mallory takes 500 of another client's future taskIds first, with its own text: the victim's
   requests under those ids must be accepted and each answered with its own translation.

Uses the tests' appliance (bench/harness.py) and fake runtime (it reverses the text; no models
needed). Run from the repository root:

    .venv/bin/python -m bench.scope_attacks
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import psutil
import zmq

from ipc import curve_keys as curve
from bench.harness import Appliance, base_config, merge, start_curve_appliance

SUBSCRIPTIONS = 20_000
SQUATTED = 500


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="scope-attacks-"))
    ctx = zmq.Context()
    apps: list[Appliance] = []

    def start(config=None, env=None, wait=True) -> Appliance:
        where = tmp / "appliance"
        where.mkdir()
        apps.append(Appliance(where, merge(base_config(where / "run"), config or {}), env or {}, ctx))
        return apps[-1]

    def connect(kind: int, endpoint: str, server_public: Path, secret: Path, topic: bytes | None = None) -> zmq.Socket:
        sock = ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        curve.client_options(sock, server_public, secret)
        if topic is not None:
            sock.setsockopt(zmq.SUBSCRIBE, topic)
        sock.connect(endpoint)
        return sock

    def ask(dealer: zmq.Socket, body: dict) -> dict:
        dealer.send(json.dumps(body).encode())
        if not dealer.poll(10_000):
            raise SystemExit("no reply within 10 s")
        return json.loads(dealer.recv())

    def translation(task_id: str, text: str) -> dict:
        return {"type": "translation", "messageId": "m", "taskId": task_id, "text": text,
                "sourceLanguage": "en", "targetLanguage": "fr"}

    try:
        app, server_public, good = start_curve_appliance(start, tmp / "keys", more_clients=("mallory",))
        mallory = tmp / "keys" / "mallory.key_secret"
        rss = lambda: psutil.Process(app.proc.pid).memory_info().rss / 2**20  # noqa: E731
        requests, events = app.endpoints["requests"], app.endpoints["events"]
        victim = connect(zmq.DEALER, requests, server_public, good)
        while not ask(victim, {"type": "ping"}).get("ready"):
            time.sleep(0.2)
        victim_sub = connect(zmq.SUB, events, server_public, good, curve.client_topic(good))
        time.sleep(1)  # the subscription propagates; attack 2 counts every event anyway
        print(f"idle RSS {rss():.1f} MiB")

        before = rss()
        greedy = connect(zmq.SUB, events, server_public, mallory)
        for i in range(SUBSCRIPTIONS):
            greedy.setsockopt(zmq.SUBSCRIBE, f'{{"type":"translation_{i}'.encode())
        refused, last = 0, -1
        while refused != last and refused < SUBSCRIPTIONS:
            last = refused
            time.sleep(1)
            refused = ask(victim, {"type": "stats"})["edge"]["refused_subscriptions"]
        print(f"{SUBSCRIPTIONS} subscriptions sent, {refused} refused: RSS {before:.1f} -> {rss():.1f} MiB")

        before = rss()
        squatter = connect(zmq.DEALER, requests, server_public, mallory)
        for i in range(SQUATTED):
            assert ask(squatter, translation(f"v-{i}", f"mallory {i}"))["status"] == "queued"
        for i in range(SQUATTED):
            reply = ask(victim, translation(f"v-{i}", f"victim {i}"))
            assert reply["status"] == "queued" and not reply.get("duplicate"), reply
        own: dict[str, bool] = {}
        end = time.monotonic() + 60
        while len(own) < SQUATTED and time.monotonic() < end:
            if victim_sub.poll(200):
                event = json.loads(victim_sub.recv_multipart()[-1])
                task_id = event["taskId"]
                if task_id.startswith("v-"):
                    own[task_id] = event["result"]["translatedText"] == f"victim {task_id[2:]}"[::-1]
        foreign = sum(not ok for ok in own.values())
        print(f"squatting {SQUATTED} taskIds: victim got {len(own)}/{SQUATTED} results, {foreign} foreign; "
              f"RSS {before:.1f} -> {rss():.1f} MiB")
        print("edge counters", ask(victim, {"type": "stats"})["edge"])
    finally:
        for app in apps:
            app.close()
        ctx.destroy(linger=0)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
