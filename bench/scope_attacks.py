"""Scope attacks on a CURVE appliance (issue 16, item 5), with the supervisor's RSS before and
after each: an allowed client subscribing to 20,000 prefixes that are not its own key, then
squatting 500 of another client's future taskIds. Uses the tests' appliance harness and fake
runtime (no models needed). Run from the repository root:

    .venv/bin/python bench/scope_attacks.py
"""
import json, shutil, sys, tempfile, time, zmq, psutil
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.appliance.conftest import Appliance, base_config, merge, start_curve_appliance
from appliance import curve
tmp = Path(tempfile.mkdtemp(prefix="scope-attacks-"))
ctx = zmq.Context(); apps = []
def start(config=None, env=None, wait=True):
    t = tmp / "a"; t.mkdir(); a = Appliance(t, merge(base_config(t / "run"), config or {}), env or {}, ctx); apps.append(a); return a
def rss(app): return psutil.Process(app.proc.pid).memory_info().rss / 2**20
def sock(kind, ep, spub, sec):
    s = ctx.socket(kind); s.linger = 0; curve.client_options(s, spub, sec); s.connect(ep); return s
try:
    app, spub, good = start_curve_appliance(start, tmp / "keys", more_clients=("mallory",))
    mal = tmp / "keys" / "mallory.key_secret"
    victim = sock(zmq.DEALER, app.endpoints["requests"], spub, good)
    def ask(d, body):
        d.send(json.dumps(body).encode()); assert d.poll(10000); return json.loads(d.recv())
    while not ask(victim, {"type": "ping"}).get("ready"): time.sleep(0.2)
    vsub = ctx.socket(zmq.SUB); vsub.linger = 0; curve.client_options(vsub, spub, good)
    vsub.setsockopt(zmq.SUBSCRIBE, curve.client_topic(good)); vsub.connect(app.endpoints["events"])
    time.sleep(1)
    print(f"idle RSS {rss(app):.1f} MiB")
    # 1. 20,000 refused subscriptions from an allowed client (every prefix but its own key).
    before = rss(app)
    greedy = sock(zmq.SUB, app.endpoints["events"], spub, mal)
    for i in range(20000):
        greedy.setsockopt(zmq.SUBSCRIBE, f'{{"type":"translation_{i}'.encode())
    t0 = time.monotonic()
    last = -1
    while True:
        time.sleep(1)
        n = ask(victim, {"type": "stats"})["edge"]["refused_subscriptions"]
        if n == last or n >= 20000: break
        last = n
    print(f"20000 subscriptions sent, {n} refused: RSS {before:.1f} -> {rss(app):.1f} MiB")
    # 2. Squatting: mallory takes 500 taskIds first, then the victim uses them.
    before = rss(app)
    msquat = sock(zmq.DEALER, app.endpoints["requests"], spub, mal)
    for i in range(500):
        assert ask(msquat, {"type": "translation", "messageId": "m", "taskId": f"v-{i}", "text": f"mallory {i}", "sourceLanguage": "en", "targetLanguage": "fr"})["status"] == "queued"
    for i in range(500):
        r = ask(victim, {"type": "translation", "messageId": "m", "taskId": f"v-{i}", "text": f"victim {i}", "sourceLanguage": "en", "targetLanguage": "fr"})
        assert r["status"] == "queued" and not r.get("duplicate"), r
    got, foreign, end = {}, 0, time.monotonic() + 60
    while len(got) < 500 and time.monotonic() < end:
        if vsub.poll(200):
            e = json.loads(vsub.recv_multipart()[-1])
            if e["taskId"].startswith("v-"):
                ok = e["result"]["translatedText"] == f"victim {e['taskId'][2:]}"[::-1]
                foreign += not ok; got[e["taskId"]] = ok
    print(f"squatting 500 taskIds: victim got {len(got)}/500 own results, {foreign} foreign; RSS {before:.1f} -> {rss(app):.1f} MiB")
    print("edge", ask(victim, {"type": "stats"})["edge"])
finally:
    for a in apps: a.close()
    ctx.destroy(0)
    shutil.rmtree(tmp, ignore_errors=True)
