"""End-to-end cache hits through the appliance's 5555/5556, against a bare pyzmq ROUTER echo.

    python bench/cache_e2e.py [--requests 20000] [--clients 1] [--window 64] [--distinct 100]

Starts a real appliance (`python -m appliance serve`, one worker, the test suite's fake runtime:
a cache hit never reaches a worker, so the model does not matter), warms its cache with
`--distinct` texts, then drives `--requests` cache-hit translation requests (unique taskIds)
and times each from its send to its `translation_completed` event on 5556. Two client loops:

    dealer  a DEALER on 5555 pipelining up to `--window` requests per client, and a SUB on 5556
            (subscribed to its own taskId prefix); a request completes with its event
    req     a REQ on 5555 and a SUB: send, wait for the reply, wait for the event, next

The baseline, in the same run and in its own process: a bare pyzmq ROUTER that echoes every
message, driven by the same loops with the same payloads, where a request completes with its
echo. A second one, the floor: a bare pyzmq ROUTER and PUB that answer as the appliance does (a
reply, then an event carrying the taskId on the PUB) with no other work, driven like the
appliance: what its two sockets and two messages per request cost at the least, against one
message per request for the echo. `--clients` runs that many client processes at once. Prints a
table (requests/s, p50/p99 latency, ratios to the echo and to the floor) and writes JSON to
bench/results/.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import zmq

from appliance.client import NoAnswer
from appliance.client import request as client_request

REPO = Path(__file__).resolve().parent.parent

EVENT_PREFIX = b'{"type":"translation_completed","taskId":"'
FLOOR_REPLY = b'{"type":"translation_queued","status":"queued"}'


def payload(task_id: str, text: str) -> bytes:
    return json.dumps(
        {"messageId": task_id, "taskId": task_id, "text": text, "targetLanguage": "fr", "sourceLanguage": "en"}
    ).encode()


def task_of_event(raw: bytes) -> str:
    start = len(EVENT_PREFIX)
    return raw[start:raw.index(b'"', start)].decode()


# ---------------------------------------------------------------------------- servers


def echo_server(ready: mp.Queue) -> None:
    """A bare ROUTER echo: what any ZeroMQ request server costs at the least."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100000)
    sock.setsockopt(zmq.RCVHWM, 100000)
    sock.bind("tcp://127.0.0.1:*")
    ready.put(sock.getsockopt(zmq.LAST_ENDPOINT).decode())
    try:
        while True:
            sock.send_multipart(sock.recv_multipart())
    finally:
        sock.close(0)
        ctx.term()


def floor_server(ready: mp.Queue) -> None:
    """A bare ROUTER and PUB answering a cache hit's way: a fixed reply, then an event with the
    request's taskId, found by a byte search (the payload's own layout) instead of a parse."""
    ctx = zmq.Context()
    router, pub = ctx.socket(zmq.ROUTER), ctx.socket(zmq.PUB)
    for sock in (router, pub):
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 100000)
        sock.setsockopt(zmq.RCVHWM, 100000)
        sock.bind("tcp://127.0.0.1:*")
    ready.put((router.getsockopt(zmq.LAST_ENDPOINT).decode(), pub.getsockopt(zmq.LAST_ENDPOINT).decode()))
    key = b'"taskId": "'
    try:
        while True:
            *envelope, body = router.recv_multipart()  # a REQ's envelope has an empty delimiter
            start = body.index(key) + len(key)
            task_id = body[start:body.index(b'"', start)]
            router.send_multipart([*envelope, FLOOR_REPLY])
            pub.send(EVENT_PREFIX + task_id + b'","status":"completed"}')
    finally:
        ctx.destroy(0)


def start_appliance(tmp: Path, profile: str | None = None) -> tuple[subprocess.Popen, dict]:
    config = tmp / "config.toml"
    config.write_text(
        f"""[server]
zmq_port = 0
zmq_pub_port = 0
http_enabled = false
run_dir = "{tmp / 'run'}"
state_dir = "{tmp / 'state'}"
log_level = "WARNING"
[workers]
count = 1
runtime_factory = "tests.fakes.fake_runtime:load"
[cache]
persistent = "sqlite"
"""
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    for var in ("TRANSLATION_WORKERS", "MEESHY_CACHE_URL", "MEESHY_STATE_DIR", "ZMQ_PORT", "ZMQ_PUB_PORT"):
        env.pop(var, None)
    log = open(tmp / "appliance.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else []),
         "-m", "appliance", "serve", "--config", str(config)],
        cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    endpoints_file = tmp / "run" / "endpoints.json"
    deadline = time.monotonic() + 60
    while not endpoints_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"appliance did not start:\n{(tmp / 'appliance.log').read_text()}")
        time.sleep(0.05)
    endpoints = json.loads(endpoints_file.read_text())
    while not (request(endpoints["requests"], {"type": "ping"}) or {}).get("ready"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"appliance not ready:\n{(tmp / 'appliance.log').read_text()}")
        time.sleep(0.05)
    return proc, endpoints


def request(endpoint: str, body: dict, timeout_ms: int = 10000) -> dict | None:
    """One REQ round trip (`appliance.client.request`); None without an answer in time."""
    try:
        return client_request(endpoint, body, timeout_ms / 1000.0, ctx=zmq.Context.instance())
    except NoAnswer:
        return None


# ---------------------------------------------------------------------------- clients


def client(args: tuple) -> dict:
    """One client process: `n` requests through `mode`, each timed to its completion."""
    endpoint, events, mode, n, window, prefix, texts = args
    ctx = zmq.Context()
    sub = None
    if events:
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.setsockopt(zmq.SUBSCRIBE, EVENT_PREFIX + prefix.encode())
        sub.connect(events)
    sock = ctx.socket(zmq.DEALER if mode == "dealer" else zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    clock = time.perf_counter
    if sub is not None:  # the subscription must have propagated before the clock starts
        for attempt in range(1000):
            probe = f"{prefix}probe-{attempt}"
            sock.send(payload(probe, texts[0]))
            if mode == "req":
                sock.recv()
            if sub.poll(100):
                while sub.poll(50):
                    sub.recv()
                break
        while sock.poll(50):
            sock.recv()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    ids = [f"{prefix}{i}" for i in range(n)]
    bodies = [payload(task_id, texts[i % len(texts)]) for i, task_id in enumerate(ids)]
    completion = sub if sub is not None else sock
    poller = zmq.Poller()
    poller.register(completion, zmq.POLLIN)
    if sub is not None and mode == "dealer":
        poller.register(sock, zmq.POLLIN)
    start_wall = time.monotonic()
    start = clock()
    if mode == "req":
        for task_id, body in zip(ids, bodies):
            t0 = clock()
            sock.send(body)
            reply = sock.recv()
            if sub is not None:
                raw = sub.recv()
                assert task_of_event(raw) == task_id, raw[:120]
            else:
                assert reply == body
            latencies.append(clock() - t0)
    else:
        nxt = 0
        done = 0
        while done < n:
            while nxt < n and len(sent_at) < window:
                sent_at[ids[nxt]] = clock()
                sock.send(bodies[nxt])
                nxt += 1
            for s, _ in poller.poll(1000):
                while True:
                    try:
                        raw = s.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if s is sock and sub is not None:
                        continue  # the "queued" reply; the event completes the request
                    task_id = task_of_event(raw) if sub is not None else json.loads(raw)["taskId"]
                    latencies.append(clock() - sent_at.pop(task_id))
                    done += 1
    elapsed = clock() - start
    end_wall = time.monotonic()
    sock.close(0)
    if sub is not None:
        sub.close(0)
    ctx.term()
    return {"latencies": latencies, "elapsed": elapsed, "start": start_wall, "end": end_wall}


def drive(endpoint: str, events: str | None, mode: str, requests: int, clients: int, window: int,
          texts: list[str], tag: str) -> dict:
    per = requests // clients
    jobs = [(endpoint, events, mode, per, window, f"{tag}-{mode}-{c}-", texts) for c in range(clients)]
    if clients == 1:
        runs = [client(jobs[0])]
    else:
        with mp.get_context("spawn").Pool(clients) as pool:
            runs = pool.map(client, jobs)
    lat = sorted(x for run in runs for x in run["latencies"])
    wall = max(r["end"] for r in runs) - min(r["start"] for r in runs)
    return {
        "requests": len(lat),
        "rps": len(lat) / wall,
        "p50_ms": lat[len(lat) // 2] * 1000,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
        "mean_ms": sum(lat) / len(lat) * 1000,
    }


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="timed requests per loop (default 20000)")
    parser.add_argument("--clients", type=int, default=1, help="client processes at once (default 1)")
    parser.add_argument("--window", type=int, default=64, help="requests in flight per DEALER client (default 64)")
    parser.add_argument("--distinct", type=int, default=100, help="distinct cached texts (default 100)")
    parser.add_argument("--modes", default="dealer,req", help="client loops to run (default dealer,req)")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/")
    parser.add_argument("--profile", metavar="PATH", help="run the appliance under cProfile, stats to PATH")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    texts = [f"chat message number {i}, said again and again" for i in range(args.distinct)]

    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()
    echo = ctx.Process(target=echo_server, args=(ready,), daemon=True)
    echo.start()
    echo_endpoint = ready.get(timeout=30)
    floor = ctx.Process(target=floor_server, args=(ready,), daemon=True)
    floor.start()
    floor_requests, floor_events = ready.get(timeout=30)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="meeshy-bench-") as tmp:
        proc, endpoints = start_appliance(Path(tmp), args.profile and str(Path(args.profile).resolve()))
        try:
            for i, text in enumerate(texts):  # warm: every text translated once, by the worker
                answer = request(endpoints["requests"], {**json.loads(payload(f"warm-{i}", text)), "sync": True}, 30000)
                assert answer and answer["status"] == "completed", answer
            before = request(endpoints["requests"], {"type": "stats"})["cache"]
            appliance = psutil.Process(proc.pid)
            for mode in modes:
                rows[f"{mode}/echo"] = drive(echo_endpoint, None, mode, args.requests, args.clients, args.window, texts, "e")
                rows[f"{mode}/floor"] = drive(floor_requests, floor_events, mode, args.requests, args.clients,
                                              args.window, texts, "f")
                cpu_before = sum(appliance.cpu_times()[:2])
                rows[f"{mode}/appliance"] = drive(
                    endpoints["requests"], endpoints["events"], mode, args.requests, args.clients, args.window, texts, "a")
                # every thread of the process (libzmq's I/O thread too): what one hit costs it
                row = rows[f"{mode}/appliance"]
                row["cpu_us_per_request"] = (sum(appliance.cpu_times()[:2]) - cpu_before) / row["requests"] * 1e6
            after = request(endpoints["requests"], {"type": "stats"})["cache"]
        finally:
            proc.terminate()
            proc.wait(30)
            echo.kill()
            floor.kill()
    worker_jobs = after["misses"] - before["misses"]
    if worker_jobs:
        print(f"warning: {worker_jobs} request(s) reached a worker during the timed runs", file=sys.stderr)

    print(f"\ncache-hit requests end to end (request sent -> translation_completed received), "
          f"{args.requests} per loop, {args.clients} client(s), window {args.window}")
    print(f"{'loop':8} {'server':10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'vs echo':>8} {'vs floor':>9} {'CPU µs':>8}")
    for mode in modes:
        echo_rps, floor_rps = rows[f"{mode}/echo"]["rps"], rows[f"{mode}/floor"]["rps"]
        for server in ("echo", "floor", "appliance"):
            r = rows[f"{mode}/{server}"]
            print(f"{mode:8} {server:10} {r['rps']:10.0f} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} "
                  f"{r['rps'] / echo_rps:8.2f} {r['rps'] / floor_rps:9.2f}"
                  + (f" {r['cpu_us_per_request']:8.1f}" if "cpu_us_per_request" in r else ""))
    print("CPU µs: the appliance process's CPU time (every thread) per request of its loop")
    result = {
        "benchmark": "cache_e2e",
        "command": "python bench/cache_e2e.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "settings": vars(args),
        "rows": rows,
        "ratios": {m: rows[f"{m}/appliance"]["rps"] / rows[f"{m}/echo"]["rps"] for m in modes},
        "ratios_to_floor": {m: rows[f"{m}/appliance"]["rps"] / rows[f"{m}/floor"]["rps"] for m in modes},
        "cache_stats_after": after,
        "worker_jobs_during_timed_runs": worker_jobs,
        "targets": {"rps_ratio_min": 0.5, "p99_ms_max": 2.0},
    }
    if not args.no_json:
        from bench.appliance_e2e import write_results

        print(f"\nwrote {write_results('cache_e2e', result).relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
