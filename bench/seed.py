"""The seed's performance scenarios, each request timed until its `translation_completed` event.

    python -m bench.seed                                   # built-in models, 1 and 2 workers
    python -m bench.seed --model synthetic-opus-mt-base-int8 --models-dir /tmp/seed-models
    python -m bench.seed --endpoint /run/meeshy-appliance/endpoints.json   # a running appliance
    python -m bench.seed --fake --workers 1 --gateway 6/2 --translator 8/4 --multi 3/2  # quick check

The original design (the translator this appliance replaces) claimed 45 requests/s through the
gateway and 250 requests/s at the translator. Its scenarios, as requests/concurrency:

    gateway      50/5, 100/10, 200/20        through `appliance.client.Client` (REQ pool + SUB,
                                             its LRU of the last 1,000 results on), one target
    translator   500/50, 1000/100, 2000/200  raw sockets: one pipelining DEALER + one SUB, no
                                             client cache, one target
    multi        50/5                        through the client, every message into the targets
                                             of `--languages` (default: up to 5 the appliance
                                             serves from the source; the built-in models serve 3;
                                             skipped when fewer than 2)
    meeshy       off by default (--meeshy 40/40)  Meeshy's own pattern: fresh chat messages (no
                                             repeats), each into `--meeshy-languages` (fr,es,de,
                                             it,pt) as one request, through the client; its
                                             events/s is what bench/meeshy_pattern.py compares
                                             with HF PyTorch batched as Meeshy's translator
                                             (serve the NLLB-600M shape: --models-dir
                                             <models-dir>/.build/meeshy-pattern --model
                                             synthetic-nllb-600m-int8)

A request is timed from its call (gateway) or its send (translator) until the last of its
targets' `translation_completed` events arrived, not until the ack; a client-cache hit is timed
too (it returns at once: that is what the cache buys a gateway). Concurrency is the number of
requests awaiting their events at once. Each scenario sends a message mix with an 80 % repeat
rate (`--repeat-rate`): 20 % of the requests carry a sentence never sent before in this run
(modelbuild.corpus, in the built-in models' domain), the others repeat one of the scenario's
earlier sentences, chosen uniformly; the workload is drawn once from `--seed`, so every worker
count gets the same requests. A repeat may still be in flight when it is sent, so the cache hit
rate measured is at most the repeat rate.

Reported per scenario: requests/s (requests finished / wall time from the first send to the last
event), success rate (every target completed), mean/p50/p99 latency of the successful requests,
cache hit rate (targets answered by the client's LRU or the appliance's cache; both also apart),
and the claim beside it; and what the appliance did for it, from its stats before and after:
`decodes` (targets a worker translated: cache misses), `coalesced` (targets answered by an
identical one in flight, never sent) and `distinct` (distinct texts x targets: the decodes an
ideal appliance does). `--coalescing off,on` starts each worker count twice, without coalescing
([limits] max_coalesced_per_key = 0) and with it, on the same workload. Without `--endpoint` the appliance is started for each `--workers`
count in turn (a temp config: ephemeral ports, HTTP off, cache on with its SQLite level in a temp
state directory; `--model` serves that model as tier basic, `--fake` the test suite's fake
runtime), warmed up with sentences never used later, and stopped with SIGTERM (it must exit 0).

Writes bench/results/seed-<timestamp>.json and latest-seed.json (`--results-dir` elsewhere),
and with matplotlib (the `bench` extra) three PNG charts next to it: throughput and p50/p99
latency vs concurrency, throughput vs workers. Exits 1 when a request failed, got no event in
`--timeout` seconds, got a duplicate event, or the appliance did not exit 0 after SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import zmq
import zmq.asyncio

from bench import appliance_e2e as e2e
from bench import soak
from appliance.client import EVENT_PREFIX, Client, Endpoint
from modelbuild.corpus import generate_corpus

REPO = e2e.REPO
CLAIMS = {"gateway": 45.0, "translator": 250.0}  # requests/s, the original design's figures
FRESH_SEED = 9100  # sentences: generate_corpus(1000, seed=FRESH_SEED + 1000 x --seed + k), k = 0, 1, ...
MAX_TARGETS = 5
SUB_HWM = 100_000
PROBE_WAIT_S = 0.5


# ----------------------------------------------------------------------------- workload


class Sentences:
    """An endless supply of source-language corpus sentences never handed out before."""

    def __init__(self, source: str, seed: int):
        self.source = source
        self.seed = seed
        self.seen: set[str] = set()
        self.rows: list[str] = []

    def fresh(self) -> str:
        while True:
            if not self.rows:
                self.rows = [row.get(self.source) or row["en"] for row in generate_corpus(1000, seed=self.seed)]
                self.rows.reverse()
                self.seed += 1
            text = self.rows.pop()
            if text not in self.seen:
                self.seen.add(text)
                return text


def message_mix(n: int, repeat_rate: float, rng: random.Random, sentences: Sentences) -> list[str]:
    """n texts: exactly max(1, round(n x (1 - repeat_rate))) fresh ones (the first among them),
    the rest each a repeat of an earlier text of this list, chosen uniformly."""
    fresh_count = max(1, round(n * (1.0 - repeat_rate)))
    fresh_at = {0, *rng.sample(range(1, n), fresh_count - 1)} if n > 1 else {0}
    texts: list[str] = []
    pool: list[str] = []
    for i in range(n):
        if i in fresh_at:
            pool.append(sentences.fresh())
            texts.append(pool[-1])
        else:
            texts.append(rng.choice(pool))
    return texts


def build_workload(opts) -> dict:
    """Every scenario's texts and the warm-up's, drawn once from the seed: each worker count gets
    the same requests in the same order (each appliance starts with an empty cache). No sentence
    is fresh twice, the warm-up's included."""
    rng = random.Random(opts.seed)
    sentences = Sentences(opts.source, FRESH_SEED + 1000 * opts.seed)
    workload: dict = {"warmup": [sentences.fresh() for _ in range(8 * max(opts.workers_list))]}
    for level, scenarios in (("gateway", opts.gateway), ("translator", opts.translator), ("multi", opts.multi),
                             ("meeshy", opts.meeshy)):
        for n, c in scenarios:
            workload[level, n, c] = message_mix(n, 0.0 if level == "meeshy" else opts.repeat_rate, rng, sentences)
    return workload


def parse_scenarios(spec: str, what: str) -> list[tuple[int, int]]:
    """"50/5,100/10" -> [(50, 5), (100, 10)]; "" -> []."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        try:
            n, c = (int(x) for x in part.split("/"))
        except ValueError:
            raise SystemExit(f"--{what}: {part!r} is not REQUESTS/CONCURRENCY") from None
        if n < 1 or c < 1:
            raise SystemExit(f"--{what}: {part!r}: requests and concurrency must be positive")
        out.append((n, c))
    return out


# ----------------------------------------------------------------------------- progress


class Progress:
    """One stderr line per scenario: redrawn in place on a terminal, printed once at the end
    otherwise (logs and captured output get no carriage returns)."""

    def __init__(self, label: str, total: int):
        self.label, self.total, self.done, self.failed = label, total, 0, 0
        self.tty = sys.stderr.isatty()
        self.start = self.last = time.perf_counter()

    def step(self, ok: bool = True) -> None:
        self.done += 1
        self.failed += not ok
        now = time.perf_counter()
        if self.tty and (now - self.last >= 0.1 or self.done == self.total):
            self.last = now
            self._draw(now, "\r")

    def _draw(self, now: float, lead: str, end: str = "") -> None:
        width = 30
        filled = width * self.done // max(1, self.total)
        rate = self.done / (now - self.start) if now > self.start else 0.0
        failed = f", {self.failed} failed" if self.failed else ""
        sys.stderr.write(f"{lead}  {self.label:28} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{self.done}/{self.total} {rate:7.1f}/s{failed}{end}")
        sys.stderr.flush()

    def close(self) -> None:
        self._draw(time.perf_counter(), "\r" if self.tty else "", "\n")


# ----------------------------------------------------------------------------- one request's record


class Record:
    """One request's outcome: latency to its last event, failed targets' codes, cache hits."""

    __slots__ = ("latency_s", "ok", "codes", "targets", "client_hits", "appliance_hits", "decoded_by", "finished_at")

    def __init__(self, latency_s: float, targets: int, codes: list[str], client_hits: int, appliance_hits: int,
                 decoded_by: list = (), finished_at: float | None = None):
        self.latency_s = latency_s
        self.decoded_by = decoded_by  # workerId of each target a worker translated (no cache hit)
        self.targets = targets
        self.codes = codes  # one per failed target
        self.ok = not codes
        self.client_hits = client_hits
        self.appliance_hits = appliance_hits
        self.finished_at = time.perf_counter() if finished_at is None else finished_at


def summarize(level: str, n: int, concurrency: int, targets: list[str], wall: float, records: list[Record],
              repeats: int, extra: dict) -> dict:
    ok = [r for r in records if r.ok]
    lat = np.array([r.latency_s * 1000.0 for r in ok]) if ok else np.array([0.0])
    # Requests no cache answered at all: what the model's speed (and queueing) costs.
    decoded = np.array([r.latency_s * 1000.0 for r in ok if not r.client_hits and not r.appliance_hits])
    per_worker: dict[str, int] = {}
    for r in records:
        for w in r.decoded_by:
            per_worker[str(w)] = per_worker.get(str(w), 0) + 1
    codes: dict[str, int] = {}
    for r in records:
        for c in r.codes:
            codes[c] = codes.get(c, 0) + 1
    translations = sum(r.targets for r in records)
    client_hits = sum(r.client_hits for r in records)
    appliance_hits = sum(r.appliance_hits for r in records)
    claim = CLAIMS.get(level)
    rps = len(records) / wall if wall > 0 else 0.0
    return {
        "level": level,
        "scenario": f"{n}/{concurrency}",
        "requests": n,
        "concurrency": concurrency,
        "targets": targets,
        "wall_s": round(wall, 4),
        "finished": len(records),
        "succeeded": len(ok),
        "success_rate": len(ok) / n if n else 0.0,
        "requests_per_s": rps,
        "translations_per_s": translations / wall if wall > 0 else 0.0,
        "latency_ms": {"mean": float(lat.mean()), "p50": float(np.percentile(lat, 50)),
                       "p99": float(np.percentile(lat, 99)), "max": float(lat.max())},
        "uncached_latency_ms": {"requests": int(decoded.size),
                                **({"mean": float(decoded.mean()), "p50": float(np.percentile(decoded, 50)),
                                    "p99": float(np.percentile(decoded, 99))} if decoded.size else {})},
        "decoded_per_worker": dict(sorted(per_worker.items())),
        "cache_hit_rate": (client_hits + appliance_hits) / translations if translations else 0.0,
        "client_cache_hits": client_hits,
        "appliance_cache_hits": appliance_hits,
        "repeats_in_mix": repeats,
        "failure_codes": codes,
        "claim_requests_per_s": claim,
        "vs_claim": rps / claim if claim else None,
        **extra,
    }


# ----------------------------------------------------------------------------- gateway level


async def gateway_scenario(level: str, endpoint: Endpoint, texts: list[str], concurrency: int, targets: list[str],
                           opts, label: str) -> dict:
    """`texts` through one fresh `Client` (its defaults: pool of 5 REQ, LRU of 1,000), `concurrency`
    callers each awaiting `translate_many` in turn."""
    t0 = time.perf_counter()
    client = Client(endpoint, timeout=opts.timeout, max_in_flight=max(100, concurrency))
    await client.start()
    start_s = time.perf_counter() - t0
    records: list[Record] = []
    progress = Progress(label, len(texts))
    order = iter(range(len(texts)))

    async def caller() -> None:
        for i in order:  # one iterator shared by every caller: each text is sent once
            t = time.perf_counter()
            outcomes = await client.translate_many(texts[i], targets, source=opts.source, model_type=opts.model_type)
            latency = time.perf_counter() - t
            codes = [o.code for o in outcomes.values() if not o.ok]
            client_hits = sum(1 for o in outcomes.values() if o.ok and o.from_client_cache)
            appliance_hits = sum(1 for o in outcomes.values() if o.ok and o.from_cache and not o.from_client_cache)
            decoded_by = [o.worker_id for o in outcomes.values()
                          if o.ok and not o.from_cache and not o.from_client_cache]
            records.append(Record(latency, len(targets), codes, client_hits, appliance_hits, decoded_by))
            progress.step(not codes)

    try:
        begin = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        wall = max(r.finished_at for r in records) - begin
        stats = client.stats()
    finally:
        progress.close()
        await client.close()
    extra = {"client_start_s": round(start_s, 3),
             "client_stats": {k: v for k, v in stats.items() if k != "appliances"},
             "lost": 0, "duplicate_events": 0}
    return summarize(level, len(texts), concurrency, targets, wall, records, len(texts) - len(set(texts)), extra)


# ----------------------------------------------------------------------------- translator level


def _translation(task_id: str, text: str, source: str, target: str, model_type: str) -> bytes:
    return json.dumps({"type": "translation", "messageId": task_id, "taskId": task_id, "text": text,
                       "sourceLanguage": source, "targetLanguage": target, "modelType": model_type}).encode()


async def _confirm_subscription(dealer: zmq.asyncio.Socket, sub: zmq.asyncio.Socket, language: str,
                                deadline_s: float = 30.0) -> int:
    """Send same-language probes (answered by the edge: no worker, no cache) until one's event
    arrives on `sub`: only then is the subscription known to have reached the PUB. Returns the
    probes sent."""
    end = time.monotonic() + deadline_s
    n = 0
    while time.monotonic() < end:
        n += 1
        probe = f"seed-probe-{uuid.uuid4().hex}"
        await dealer.send(_translation(probe, "probe", language, language, "auto"))
        until = time.monotonic() + PROBE_WAIT_S
        while (left := until - time.monotonic()) > 0:
            if await sub.poll(int(left * 1000) + 1) and json.loads(await sub.recv()).get("taskId") == probe:
                while await dealer.poll(200):  # the probes' acks
                    await dealer.recv_multipart()
                return n
    raise RuntimeError(f"SUB subscription not confirmed within {deadline_s:g}s")


async def translator_scenario(endpoint: Endpoint, texts: list[str], concurrency: int, opts, label: str,
                              prefix: str) -> dict:
    """`texts` over one pipelining DEALER, at most `concurrency` awaiting their event; events on
    one SUB matched by taskId. No client cache: repeats reach the appliance."""
    ctx = zmq.asyncio.Context()
    dealer = ctx.socket(zmq.DEALER)
    sub = ctx.socket(zmq.SUB)
    for sock in (dealer, sub):
        sock.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.SNDHWM, max(1000, 2 * concurrency))
    dealer.setsockopt(zmq.RCVHWM, max(1000, 2 * concurrency))
    sub.setsockopt(zmq.RCVHWM, SUB_HWM)
    sub.setsockopt(zmq.SUBSCRIBE, EVENT_PREFIX)
    dealer.connect(endpoint.requests)
    sub.connect(endpoint.events)
    loop = asyncio.get_running_loop()
    pending: dict[str, asyncio.Future] = {}
    settled: set[str] = set()
    counts = {"duplicate_events": 0, "acks": 0, "stray": 0}
    records: list[Record] = []
    readers: list[asyncio.Task] = []
    progress: Progress | None = None

    def settle(task_id: str, message: dict) -> None:
        future = pending.pop(task_id, None)
        if future is None:
            if task_id in settled:
                counts["duplicate_events"] += 1
            else:
                counts["stray"] += 1
            return
        settled.add(task_id)
        if not future.done():
            future.set_result((time.perf_counter(), message))

    async def read_events() -> None:
        while True:
            event = json.loads(await sub.recv())
            settle(str(event.get("taskId")), event)

    async def read_replies() -> None:
        while True:
            reply = json.loads((await dealer.recv_multipart())[-1])
            if reply.get("status") == "error":
                settle(str(reply.get("taskId")), reply)
            else:
                counts["acks"] += 1

    sem = asyncio.Semaphore(concurrency)
    lost = 0

    async def one(i: int) -> None:
        nonlocal lost
        async with sem:
            task_id = f"{prefix}-{i}"
            future = pending[task_id] = loop.create_future()
            t = time.perf_counter()
            await dealer.send(_translation(task_id, texts[i], opts.source, opts.target, opts.model_type))
            try:
                end, message = await asyncio.wait_for(future, opts.timeout)
            except TimeoutError:
                pending.pop(task_id, None)
                lost += 1
                records.append(Record(opts.timeout, 1, ["no_event"], 0, 0))
                progress.step(False)
                return
            if message.get("type") == "translation_completed":
                result = message.get("result") or {}
                hit = int(bool(result.get("fromCache")))
                record = Record(end - t, 1, [], 0, hit, [] if hit else [result.get("workerId")], end)
            else:
                error = message.get("error") if isinstance(message.get("error"), dict) else {}
                record = Record(end - t, 1, [str(error.get("code", "unknown"))], 0, 0, [], end)
            records.append(record)
            progress.step(record.ok)

    try:
        probes = await _confirm_subscription(dealer, sub, opts.source)
        readers = [asyncio.create_task(read_events()), asyncio.create_task(read_replies())]
        progress = Progress(label, len(texts))
        begin = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(len(texts))))
        wall = max(r.finished_at for r in records) - begin
        progress.close()
        progress = None
        await asyncio.sleep(0.3)  # late duplicates would arrive here
    finally:
        if progress is not None:
            progress.close()
        for r in readers:
            r.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        dealer.close(linger=0)
        sub.close(linger=0)
        ctx.destroy(linger=0)
    extra = {"lost": lost, "probes": probes, **counts}
    return summarize("translator", len(texts), concurrency, [opts.target], wall, records,
                     len(texts) - len(set(texts)), extra)


# ----------------------------------------------------------------------------- one appliance, every scenario


def served_targets(languages: dict, source: str) -> list[str]:
    """Targets the appliance serves from `source`, directly (any tier) or through a pivot."""
    direct = {tuple(p) for pairs in (languages.get("languages") or {}).values() for p in pairs or []}
    pivot = {tuple(p) for p in (languages.get("pivot") or {}).get("pairs") or []}
    return sorted({t for s, t in direct | pivot if s == source and t != source})


async def run_scenarios(endpoint: Endpoint, workers: int, opts, workload: dict) -> dict:
    """Warm-up, then every scenario against one appliance; the rows and what the appliance said."""
    async with Client(endpoint, timeout=opts.timeout, cache_size=0) as client:
        languages = await client.languages()
        if opts.languages:
            targets = opts.languages
        else:
            served = served_targets(languages, opts.source)
            others = [t for t in served if t != opts.target]
            targets = ([opts.target] if opts.target in served else []) + others
            targets = targets[:MAX_TARGETS]
        before = await client.appliance_stats()
    rows = []
    tag = f"w{workers}"
    warm_texts = workload["warmup"][: 8 * max(1, workers)]
    warmup = await translator_scenario(endpoint, warm_texts, 2 * max(1, workers), opts, f"{tag} warm-up",
                                       f"seed-{opts.run_id}-{tag}-warm")
    async with Client(endpoint, timeout=opts.timeout, cache_size=0) as probe:
        for level, scenarios in (("gateway", opts.gateway), ("translator", opts.translator), ("multi", opts.multi),
                                 ("meeshy", opts.meeshy)):
            for n, c in scenarios:
                if level == "multi" and len(targets) < 2:
                    continue  # one target: the gateway scenarios measured that already
                texts = workload[level, n, c]
                label = f"{tag} {level} {n}/{c}"
                ahead = await probe.appliance_stats()
                if level == "translator":
                    row = await translator_scenario(endpoint, texts, c, opts, label, f"seed-{opts.run_id}-{tag}-{n}-{c}")
                else:
                    row = await gateway_scenario(level, endpoint, texts, c,
                                                 {"multi": targets, "meeshy": opts.meeshy_languages}.get(level, [opts.target]),
                                                 opts, label)
                row.update(work_done(ahead, await probe.appliance_stats(), texts, row["targets"]))
                row["workers"] = workers
                rows.append(row)
    async with Client(endpoint, timeout=opts.timeout, cache_size=0) as client:
        after = await client.appliance_stats()
    return {"rows": rows, "multi_targets": targets, "warmup": {k: warmup[k] for k in ("requests", "success_rate",
                                                                                       "wall_s")},
            "languages": languages, "stats_before": before, "stats_after": after}


def work_done(before: dict, after: dict, texts: list[str], targets: list[str]) -> dict:
    """What the appliance did for one scenario, from its stats: `decodes` (targets a worker
    translated, cache.misses), `coalesced` (targets answered by an identical one in flight,
    never sent), beside `distinct` (distinct texts x targets: the decodes an ideal appliance
    would do, every text of a scenario being new to it). Events cannot tell a coalesced target
    from a decoded one (both name the worker that ran it), so `decoded_per_worker` counts both."""
    def delta(section: str, key: str) -> int:
        return int((after.get(section) or {}).get(key, 0)) - int((before.get(section) or {}).get(key, 0))

    return {"decodes": delta("cache", "misses"), "coalesced": delta("tasks", "coalesced"),
            "distinct": len(set(texts)) * len(targets)}


# ----------------------------------------------------------------------------- the appliance


class SeedAppliance(e2e.Appliance):
    """`appliance_e2e.Appliance` (wait_ready, request, stop, close, log) with this benchmark's
    config, and a child that gets SIGTERM if this process dies without cleaning up."""

    def __init__(self, tmp: Path, workers: int, opts, coalescing: bool = True):
        workers_config = soak.worker_section(workers, opts.fake, opts.models_dir)
        if not opts.fake and opts.model:
            workers_config["tiers"] = {"basic": opts.model}
        sections = {"workers": workers_config, "shutdown": {"drain_timeout_s": 10.0}}
        if not coalescing:
            sections["limits"] = {"max_coalesced_per_key": 0}
        self._start(tmp, sections, preexec_fn=soak._die_with_parent)


def serve_and_run(workers: int, opts, workload: dict, coalescing: bool = True) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="meeshy-seed-"))  # short: ipc:// paths are limited to 107 bytes
    app = None
    try:
        t0 = time.perf_counter()
        app = SeedAppliance(tmp, workers, opts, coalescing)
        pong = app.wait_ready()
        boot_s = time.perf_counter() - t0
        print(f"{workers} worker(s) ready in {boot_s:.1f}s", file=sys.stderr, flush=True)
        endpoint = Endpoint(app.endpoints["requests"], app.endpoints["events"])
        run = asyncio.run(run_scenarios(endpoint, workers, opts, workload))
        for row in run["rows"]:
            row["coalescing"] = coalescing
        exit_code = soak.stop_everything(app, {})
        run.update(workers=workers, coalescing=coalescing, boot_s=round(boot_s, 2), pong=pong, exit_code_after_sigterm=exit_code,
                   appliance_log_tail=app.log(2000))
        return run
    except BaseException:
        if app is not None:
            tail = app.log(3000)
            if tail:
                print(f"appliance log tail:\n{tail}", file=sys.stderr)
            soak.stop_everything(app, {})
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def parse_endpoint(spec: str) -> Endpoint:
    """An endpoints.json path, or "tcp://host:5555,tcp://host:5556"."""
    if "," in spec:
        requests, events = (s.strip() for s in spec.split(",", 1))
        return Endpoint(requests, events)
    return Endpoint.from_file(spec)


def target_running(opts, workload: dict) -> dict:
    endpoint = parse_endpoint(opts.endpoint)

    async def go() -> dict:
        async with Client(endpoint, timeout=opts.timeout, cache_size=0) as client:
            pong = await client.ping()
        workers = int((pong.get("workers") or {}).get("total") or 0)
        run = await run_scenarios(endpoint, workers, opts, workload)
        run.update(workers=workers, pong=pong, boot_s=None, exit_code_after_sigterm=None)
        return run

    return asyncio.run(go())


# ----------------------------------------------------------------------------- report


def fmt(x: float | None, spec: str) -> str:
    return format("-", ">" + spec.split(".")[0]) if x is None else format(x, spec)


def print_table(rows: list[dict]) -> None:
    print()
    print(f"{'workers':>7} {'coal':>4} {'level':10} {'req/conc':>9} {'req/s':>8} {'events/s':>8} {'ok %':>6} {'mean ms':>9} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'cache %':>7} {'claim':>6} {'x claim':>7} {'decodes':>7} {'distinct':>8} {'coalesced':>9}")
    for r in rows:
        lat = r["latency_ms"]
        level = r["level"] if r["level"] not in ("multi", "meeshy") else f"{r['level']} x{len(r['targets'])}"
        print(f"{r['workers']:>7} {'off' if r.get('coalescing') is False else 'on':>4} {level:10} {r['scenario']:>9} "
              f"{r['requests_per_s']:8.1f} {r['translations_per_s']:8.1f} "
              f"{100 * r['success_rate']:6.1f} {lat['mean']:9.1f} {lat['p50']:8.1f} {lat['p99']:8.1f} "
              f"{100 * r['cache_hit_rate']:7.1f} {fmt(r['claim_requests_per_s'], '6.0f')} "
              f"{fmt(r['vs_claim'], '7.2f')} {fmt(r.get('decodes'), '7d')} {fmt(r.get('distinct'), '8d')} "
              f"{fmt(r.get('coalesced'), '9d')}")
    print("  req/s: requests finished / (first send .. last translation_completed event); events/s: targets "
          "translated in that time; latency: call or send "
          "to the request's last event, successful requests; cache %: targets answered by the client's LRU "
          "or the appliance's cache; claim: the original design's req/s; decodes: targets a worker translated "
          "(appliance stats), distinct: distinct texts x targets sent, coalesced: targets answered by an identical "
          "one in flight")


def draw_charts(rows: list[dict], prefix: Path) -> tuple[dict[str, str], str]:
    """Three PNGs named prefix-<chart>.png; ({} and why) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}, "matplotlib is not installed (pip install -e '.[bench]')"
    colors = {"gateway": "tab:blue", "translator": "tab:orange", "multi": "tab:green", "meeshy": "tab:red"}
    markers = ["o", "s", "^", "D", "v"]
    worker_counts = sorted({r["workers"] for r in rows})
    paths: dict[str, str] = {}

    def save(fig, ax, name: str, legend_size: int) -> str:
        path = str(prefix.with_name(f"{prefix.name}-{name}.png"))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=legend_size)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    def series(level: str, workers: int) -> list[dict]:
        return sorted((r for r in rows if r["level"] == level and r["workers"] == workers),
                      key=lambda r: r["concurrency"])

    fig, ax = plt.subplots(figsize=(8, 5))
    for level in ("gateway", "translator"):
        for k, w in enumerate(worker_counts):
            pts = series(level, w)
            if pts:
                ax.plot([p["concurrency"] for p in pts], [p["requests_per_s"] for p in pts],
                        marker=markers[k % len(markers)], color=colors[level],
                        alpha=0.5 + 0.5 * (k + 1) / len(worker_counts), label=f"{level}, {w} worker(s)")
        ax.axhline(CLAIMS[level], color=colors[level], linestyle=":",
                   label=f"{level}: original claim {CLAIMS[level]:g}/s")
    ax.set(xscale="log", yscale="log", xlabel="concurrency (requests awaiting their event)", ylabel="requests/s",
           title="Throughput vs concurrency (timed to translation_completed)")
    paths["throughput_vs_concurrency"] = save(fig, ax, "throughput", legend_size=8)

    fig, ax = plt.subplots(figsize=(8, 5))
    for level in ("gateway", "translator"):
        for k, w in enumerate(worker_counts):
            pts = series(level, w)
            if not pts:
                continue
            x = [p["concurrency"] for p in pts]
            ax.plot(x, [p["latency_ms"]["p50"] for p in pts], marker=markers[k % len(markers)], color=colors[level],
                    label=f"{level} p50, {w} worker(s)")
            ax.plot(x, [p["latency_ms"]["p99"] for p in pts], marker=markers[k % len(markers)], color=colors[level],
                    linestyle="--", label=f"{level} p99, {w} worker(s)")
    ax.set(xscale="log", yscale="log", xlabel="concurrency (requests awaiting their event)", ylabel="latency, ms",
           title="p50 / p99 latency vs concurrency (request to its translation_completed event)")
    paths["latency_vs_concurrency"] = save(fig, ax, "latency", legend_size=7)

    fig, ax = plt.subplots(figsize=(8, 5))
    scenarios = sorted({(r["level"], r["requests"], r["concurrency"]) for r in rows},
                       key=lambda s: (list(colors).index(s[0]), s[2]))
    for k, (level, n, c) in enumerate(scenarios):
        pts = sorted((r for r in rows if (r["level"], r["requests"], r["concurrency"]) == (level, n, c)),
                     key=lambda r: r["workers"])
        ax.plot([p["workers"] for p in pts], [p["requests_per_s"] for p in pts], marker=markers[k % len(markers)],
                color=colors[level], label=f"{level} {n}/{c}")
    ax.set(yscale="log", xlabel="workers", ylabel="requests/s", title="Throughput vs number of workers",
           xticks=worker_counts)
    paths["throughput_vs_workers"] = save(fig, ax, "workers", legend_size=8)
    return paths, ""


def problems_of(runs: list[dict]) -> list[str]:
    problems = []
    for run in runs:
        for r in run["rows"]:
            where = f"{run['workers']} worker(s), {r['level']} {r['scenario']}"
            if r["succeeded"] != r["requests"]:
                problems.append(f"{where}: {r['requests'] - r['succeeded']} request(s) failed {r['failure_codes']}")
            if r.get("duplicate_events"):
                problems.append(f"{where}: {r['duplicate_events']} duplicate event(s)")
        code = run.get("exit_code_after_sigterm")
        if run.get("boot_s") is not None and code != 0:
            problems.append(f"{run['workers']} worker(s): appliance exit code after SIGTERM {code}")
    return problems


def main(argv: list[str] | None = None) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--endpoint", help="a running appliance: its endpoints.json, or REQUESTS,EVENTS "
                                          "(tcp://host:5555,tcp://host:5556); no CURVE")
    where.add_argument("--fake", action="store_true", help="start it with the test suite's fake runtime")
    parser.add_argument("--workers", default=",".join(map(str, sorted({1, cores}))),
                        help=f"worker counts to start the appliance with, in turn (default {sorted({1, cores})})")
    parser.add_argument("--model", help="serve this manifest model as tier basic (default: every model in its "
                                        "manifest tier)")
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--gateway", default="50/5,100/10,200/20", help="REQUESTS/CONCURRENCY,... through the client")
    parser.add_argument("--translator", default="500/50,1000/100,2000/200",
                        help="REQUESTS/CONCURRENCY,... over raw DEALER+SUB")
    parser.add_argument("--multi", default="50/5", help="REQUESTS/CONCURRENCY,... of the multi-language pass")
    parser.add_argument("--meeshy", default="", help="REQUESTS/CONCURRENCY,... of Meeshy's pattern (fresh messages "
                                                      "into --meeshy-languages; off by default)")
    parser.add_argument("--meeshy-languages", default="fr,es,de,it,pt", help="targets of every --meeshy message")
    parser.add_argument("--languages", help="targets of the multi-language pass, comma-separated (default: up to "
                                            f"{MAX_TARGETS} the appliance serves from --source)")
    parser.add_argument("--source", default="en")
    parser.add_argument("--target", default="fr", help="the target of the one-target scenarios")
    parser.add_argument("--model-type", default="auto")
    parser.add_argument("--repeat-rate", type=float, default=0.8)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a request may wait for its events")
    parser.add_argument("--seed", type=int, default=None,
                        help="workload seed (default 0; with --endpoint a random one, so that the running "
                             "appliance's cache has not seen the fresh sentences)")
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--coalescing", default="on",
                        help="on, off, or off,on: start each worker count with identical targets in flight "
                             "decoded once (on: the default config) or each sent to a worker "
                             "([limits] max_coalesced_per_key = 0), in turn; same workload")
    opts = parser.parse_args(argv)
    choices = {"on": True, "off": False}
    try:
        opts.coalescing_list = [choices[c.strip()] for c in opts.coalescing.split(",") if c.strip()]
    except KeyError:
        parser.error(f"--coalescing: {opts.coalescing!r} is not on, off or off,on")
    if not opts.coalescing_list:
        parser.error("--coalescing: name on, off or both")
    try:
        opts.workers_list = sorted({int(w) for w in opts.workers.split(",") if w.strip()})
    except ValueError:
        parser.error(f"--workers: {opts.workers!r} is not a comma-separated list of counts")
    if not opts.workers_list or min(opts.workers_list) < 1:
        parser.error("--workers: counts must be positive")
    if not 0.0 <= opts.repeat_rate < 1.0:
        parser.error("--repeat-rate is in [0, 1)")
    opts.gateway = parse_scenarios(opts.gateway, "gateway")
    opts.translator = parse_scenarios(opts.translator, "translator")
    opts.multi = parse_scenarios(opts.multi, "multi")
    opts.meeshy = parse_scenarios(opts.meeshy, "meeshy")
    opts.meeshy_languages = [t.strip() for t in opts.meeshy_languages.split(",") if t.strip()]
    opts.languages = [t.strip() for t in opts.languages.split(",") if t.strip()] if opts.languages else None
    opts.models_dir = opts.models_dir.resolve()
    if not opts.fake and not opts.endpoint and not (opts.models_dir / "manifest.json").exists():
        parser.error(f"no {opts.models_dir}/manifest.json: run `python export_models.py --builtin`, or use --fake")
    if opts.seed is None:
        opts.seed = random.randrange(1 << 20) if opts.endpoint else 0
    opts.run_id = f"{os.getpid()}-{time.monotonic_ns() % 10**9}"

    signal.signal(signal.SIGTERM, soak._raise_interrupt)
    what = ("fake runtime" if opts.fake else f"running appliance {opts.endpoint}" if opts.endpoint
            else f"{opts.model or 'every model in its manifest tier'} ({opts.models_dir})")
    load_before = e2e.load_average()
    print(f"seed: {what}; workers {opts.workers_list if not opts.endpoint else '(as running)'}, {cores} core(s), "
          f"repeat rate {opts.repeat_rate:g}, seed {opts.seed}; load {load_before}", flush=True)
    workload = build_workload(opts)
    runs = []
    try:
        if opts.endpoint:
            runs.append(target_running(opts, workload))
        else:
            for w in opts.workers_list:
                for coalescing in opts.coalescing_list:
                    runs.append(serve_and_run(w, opts, workload, coalescing))
                    if len(opts.workers_list) * len(opts.coalescing_list) > 1:
                        print_table(runs[-1]["rows"])
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    rows = [r for run in runs for r in run["rows"]]
    print_table(rows)
    problems = problems_of(runs)
    targets = runs[0]["multi_targets"] if runs else []
    if opts.multi and len(targets) < 2:
        print(f"multi-language pass skipped: the appliance serves {len(targets)} target(s) from {opts.source} "
              f"({', '.join(targets) or 'none'}); --languages chooses them")
    elif opts.multi and len(targets) < MAX_TARGETS and not opts.languages:
        print(f"multi-language pass: the appliance serves {len(targets)} target(s) from {opts.source} "
              f"({', '.join(targets)}), not {MAX_TARGETS}; --languages chooses them")

    opts.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prefix = opts.results_dir / f"seed-{stamp}"
    charted = [r for r in rows if r.get("coalescing", True)] or rows  # one curve per level and worker count
    charts, charts_note = draw_charts(charted, prefix) if rows else ({}, "no results")
    doc = {
        "benchmark": "seed",
        "timestamp": stamp,
        "command": " ".join([Path(sys.executable).name, *sys.argv]) if argv is None else f"main({argv!r})",
        "appliance": what,
        "model": "fake" if opts.fake else (opts.model or "manifest tiers"),
        "models_dir": None if opts.fake or opts.endpoint else str(opts.models_dir),
        "endpoint": opts.endpoint,
        "workers": [run["workers"] for run in runs],
        "cores": cores,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "load_before": load_before,
        "load_after": e2e.load_average(),
        "seed": opts.seed,
        "repeat_rate": opts.repeat_rate,
        "source": opts.source,
        "target": opts.target,
        "model_type": opts.model_type,
        "timeout_s": opts.timeout,
        "claims": {"gateway_requests_per_s": CLAIMS["gateway"], "translator_requests_per_s": CLAIMS["translator"]},
        "results": rows,
        "appliances": [{k: v for k, v in run.items() if k != "rows"} for run in runs],
        "charts": charts,
        "charts_note": charts_note,
        "problems": problems,
    }
    text = json.dumps(doc, indent=2, ensure_ascii=False, default=str)
    path = prefix.with_suffix(".json")
    path.write_text(text)
    (opts.results_dir / "latest-seed.json").write_text(text)
    print(f"wrote {path}")
    for name, p in charts.items():
        print(f"chart {name}: {p}")
    if charts_note:
        print(f"no charts: {charts_note}")
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
