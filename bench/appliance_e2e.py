"""End-to-end appliance throughput against the same runtime in one process, measured in one run.

    python -m bench.appliance_e2e [--sentences 256] [--workers W] [--model synthetic-opus-mt-base-int8]
                                  [--models-dir models] [--window 64] [--seed 0] [--queue-depth N]

What it measures (wall time, tokens/s and sentences/s):

* in-process: `workers.runtime.Runtime.load(models_dir, {"basic": model}, threads=1)` translating
  every sentence as `TranslationJob(text, "fr", "en", tier="basic")`, 32 jobs per `translate`
  call (as a worker batches), one core. This is the engine benchmark's work in one process, but
  through the runtime's real length bound (2 x source tokens + 10) instead of a forced length.
* appliance: `python -m appliance serve` with W workers (a temp config: ephemeral ports, HTTP
  off, the translation cache off so every sentence is decoded), driven over TCP: one DEALER on
  the requests port sends every sentence pipelined (at most `--window` awaiting their event), one
  SUB on the events port collects one `translation_completed` per request. Time: first send to
  last event.

Order: in-process, appliance, in-process again (the machine may be shared: the in-process figure
is the mean of both runs). Ratio = appliance tokens/s / in-process tokens/s; with W workers on W
free cores its ideal is W (less the edge's own CPU, which shares those cores).

Token counts are exact for the in-process run: `Model.generate` is wrapped to record each row's
generated tokens (end-of-sequence included when emitted, i.e. decoder steps). The appliance
returns text, not tokens, so its token count is the same per-sentence counts (the same work); the
JSON records how many of its texts equal the in-process ones (int8 dynamic quantization scales
activations per batch, so a different batch grouping can change a few outputs).

Because the machine may be shared, CPU time is recorded too: tokens per CPU-second (in-process:
its own CPU; appliance: its workers' CPU, from /proc/<pid>/stat over the timed window), the cores
the appliance used, and "others": cores busy with other processes during each run (/proc/stat).
The workers' batch sizes in the timed run come from their periodic Stats frames (the script
waits a few seconds for them). A worker's batches are bounded by what the supervisor hands it
(`[workers] queue_depth`, 16 by default); `--queue-depth` overrides it in the temp config, to
compare.

Writes bench/results/appliance-<timestamp>.json and bench/results/latest-appliance.json; exits 1
when a request got no completion event, any error, a cache hit, or a non-zero exit after SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import zmq

from bench import harness
from bench.harness import REPO

RESULTS = REPO / "bench" / "results"
MODELS = REPO / "models"
DEFAULT_MODEL = "synthetic-opus-mt-base-int8"
CHUNK = 32
SOURCE, TARGET, TIER = "en", "fr", "basic"
WARMUP_SEED_OFFSET = 1000  # warm-up sentences come from another seed: never the timed ones


# ----------------------------------------------------------------------------- CPU accounting

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (0 when it is gone or /proc is missing)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def system_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores, /proc/stat), for "what else ran"."""
    try:
        with open("/proc/stat", "rb") as f:
            values = [int(v) for v in f.readline().split()[1:9]]
        return (sum(values) - values[3] - values[4]) / CLK_TCK  # minus idle and iowait
    except (OSError, ValueError, IndexError):
        return 0.0


class CpuWindow:
    """CPU seconds of given processes and of the whole machine between `start` and `stop`."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.own0 = {name: proc_cpu_s(pid) for name, pid in self.pids.items()}
        self.sys0 = system_busy_s()

    def stop(self) -> dict:
        wall = time.perf_counter() - self.t0
        own = {name: round(proc_cpu_s(pid) - self.own0[name], 3) for name, pid in self.pids.items()}
        busy = system_busy_s() - self.sys0
        return {"wall_s": round(wall, 3), "cpu_s": own, "machine_busy_s": round(busy, 3),
                "others_cpu_s": round(max(0.0, busy - sum(own.values())), 3),
                "others_cores": round(max(0.0, busy - sum(own.values())) / wall, 2) if wall > 0 else 0.0}


# ----------------------------------------------------------------------------- in-process


class CountingRuntime:
    """A `Runtime` whose model's `generate` records (source ids, generated tokens, budget) per row."""

    def __init__(self, models_dir: Path, model: str):
        from workers.runtime import Runtime

        self.runtime = Runtime.load(models_dir, tiers={TIER: model}, threads=1)
        self.model = self.runtime._models[model]
        self.rows: list[tuple[tuple[int, ...], int, int]] = []
        original = self.model.generate

        def counting(sources, target, beam_size=1, max_new_tokens=None, min_new_tokens=0):
            hyps = original(sources, target, beam_size, max_new_tokens, min_new_tokens)
            budgets = max_new_tokens or [256] * len(sources)
            self.rows.extend((tuple(ids), len(h.tokens), int(b)) for ids, h, b in zip(sources, hyps, budgets))
            return hyps

        self.model.generate = counting  # instance attribute: shadows the method for this model only

    def translate_all(self, texts: list[str]) -> tuple[float, float, list]:
        from workers.jobs import TranslationJob

        jobs = [TranslationJob(t, TARGET, source_language=SOURCE, tier=TIER) for t in texts]
        outcomes = []
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(jobs), CHUNK):
            outcomes.extend(self.runtime.translate(jobs[i : i + CHUNK]))
        return time.perf_counter() - wall, time.process_time() - cpu, outcomes


def run_inprocess(counting: CountingRuntime, texts: list[str], label: str) -> dict:
    from workers.jobs import Translation

    counting.rows.clear()
    window = CpuWindow({"bench": os.getpid()})
    window.start()
    wall, cpu, outcomes = counting.translate_all(texts)
    machine = window.stop()
    errors = [o for o in outcomes if not isinstance(o, Translation)]
    tokens = sum(n for _, n, _ in counting.rows)
    at_bound = sum(1 for _, n, b in counting.rows if n >= b)
    row = {
        "label": label,
        "sentences": len(texts),
        "errors": len(errors),
        "tokens": tokens,
        "rows_at_length_bound": at_bound,
        "wall_s": wall,
        "cpu_s": cpu,
        "sentences_per_s": len(texts) / wall,
        "tokens_per_s": tokens / wall,
        "tokens_per_cpu_s": tokens / cpu if cpu > 0 else 0.0,
        "others_cores": machine["others_cores"],
        "cpu_window": machine,
        "texts": [o.text if isinstance(o, Translation) else None for o in outcomes],
    }
    if errors:
        row["first_error"] = f"{errors[0].code}: {errors[0].message}"
    print(f"  {label:14} {wall:7.2f} s  {row['tokens_per_s']:8.1f} tok/s  "
          f"({len(texts)} sentences, {tokens} tokens, {len(errors)} errors)", flush=True)
    return row


def token_counts_per_text(counting: CountingRuntime, texts: list[str]) -> list[int]:
    """Generated tokens per sentence of the last run (rows matched back by their source ids)."""
    by_ids: dict[tuple[int, ...], list[int]] = {}
    for ids, n, _ in counting.rows:
        by_ids.setdefault(ids, []).append(n)
    model = counting.model
    return [by_ids[tuple(model.source_ids(t, SOURCE, TARGET))][0] for t in texts]


# ----------------------------------------------------------------------------- appliance


def cache_switch() -> tuple[dict, str]:
    """The [cache] settings that turn the translation cache off, if this tree has one by now."""
    try:
        shipped = tomllib.loads((REPO / "config.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        shipped = {}
    cache = shipped.get("cache")
    if not isinstance(cache, dict) or "enabled" not in cache:
        return {}, "no [cache] enabled setting in config.toml: nothing to turn off"
    section = {"enabled": False}
    if "persistent" in cache:
        section["persistent"] = ""  # no SQLite file either
    return section, "translation cache disabled ([cache] enabled = false)"


class Appliance(harness.Appliance):
    """`bench.harness.Appliance` with the benchmarks' config: ephemeral ports and paths in `tmp`, HTTP
    off, log level WARNING, `model` served as tier basic by `workers` workers (`cache`: the [cache]
    section, e.g. `cache_switch()`'s), waiting for every worker to be ready. A benchmark with a
    config of its own subclasses it and calls `_start` from its __init__, or uses `with_sections`."""

    def __init__(self, tmp: Path, workers: int, model: str, models_dir: Path, cache: dict,
                 queue_depth: int | None = None):
        sections = {"workers": {"count": workers, "models_dir": str(models_dir), "startup_timeout_s": 300.0,
                                "tiers": {TIER: model}}}
        if queue_depth is not None:
            sections["workers"]["queue_depth"] = queue_depth
        if cache:
            sections["cache"] = cache
        self._start(tmp, sections)

    @classmethod
    def with_sections(cls, tmp: Path, sections: dict, log_level: str = "WARNING", env: dict | None = None,
                      preexec_fn=None) -> "Appliance":
        """The appliance on `sections` (no model of its own), e.g. the fake runtime's [workers]."""
        app = cls.__new__(cls)
        app._start(tmp, sections, log_level, preexec_fn, env)
        return app

    def _start(self, tmp: Path, sections: dict, log_level: str = "WARNING", preexec_fn=None,
               env: dict | None = None) -> None:
        """Start `python -m appliance serve` on `sections` under a [server] of ephemeral ports and
        paths in `tmp` (a [server] in `sections` adds to it, e.g. http_enabled for the hostile soak)."""
        server = {**harness.ephemeral_server(tmp), "http_enabled": False, "log_level": log_level}
        server.update(sections.pop("server", {}))
        super().__init__(tmp, {"server": server, **sections}, env, preexec_fn=preexec_fn)
        self.zmq = zmq  # for the benchmarks that take zmq from the appliance

    def wait_ready(self, deadline: float = 300.0, all_workers: bool = True) -> dict:
        return super().wait_ready(deadline, all_workers)

    def request(self, body: dict | bytes, timeout: float = 5.0) -> dict | None:
        return super().request(body, timeout)

    def log(self, tail: int | None = 4000) -> str:
        return super().log(tail)


def _request(message_id: str, text: str) -> bytes:
    return json.dumps({"type": "translation", "messageId": message_id, "taskId": message_id, "text": text,
                       "sourceLanguage": SOURCE, "targetLanguage": TARGET, "modelType": TIER}).encode()


def drive(app: Appliance, texts: list[str], window: int, prefix: str, timeout_s: float = 600.0,
          cpu: CpuWindow | None = None) -> dict:
    """Send every text from one DEALER, at most `window` awaiting their event; collect the events."""
    dealer, sub = app.dealer, app.sub
    ids = [f"{prefix}-{i}" for i in range(len(texts))]
    index = {m: i for i, m in enumerate(ids)}
    events: dict[str, list[dict]] = {}
    replies: dict[str, dict] = {}
    reply_errors: list[dict] = []
    stray = 0
    sent = done = 0
    poller = harness.read_poller(dealer, sub)
    if cpu is not None:
        cpu.start()
    start = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    last_event = start
    while done < len(texts):
        while sent < len(texts) and sent - done < window:
            dealer.send(_request(ids[sent], texts[sent]))
            sent += 1
        if time.monotonic() > deadline:
            break
        ready = dict(poller.poll(1000))
        if dealer in ready:
            for frames in harness.waiting(dealer, multipart=True):
                reply = json.loads(frames[-1])
                if reply.get("status") == "error":
                    reply_errors.append(reply)
                    mid = reply.get("messageId")
                    if mid in index and mid not in events:  # never accepted: no event will come
                        events[mid] = []
                        done += 1
                else:
                    replies[reply.get("messageId")] = reply
        if sub in ready:
            for raw in harness.waiting(sub):
                event = json.loads(raw)
                mid = event.get("taskId")
                if mid not in index:
                    stray += 1
                    continue
                first = mid not in events
                events.setdefault(mid, []).append(event)
                if first:
                    done += 1
                    last_event = time.perf_counter()
        if not ready:
            app.check_alive()
    cpu_window = cpu.stop() if cpu is not None else None
    # Late duplicates would show up here: a short extra listen.
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        if sub.poll(50):
            event = json.loads(sub.recv())
            if event.get("taskId") in index:
                events.setdefault(event["taskId"], []).append(event)
    return {
        "sent": sent,
        "wall_s": last_event - start,
        "queued_replies": len(replies),
        "reply_errors": len(reply_errors),
        "reply_error_codes": sorted({r.get("error", {}).get("code", "?") for r in reply_errors}),
        **tally(ids, events, stray, cpu_window),
    }


def tally(ids: list[str], events: dict[str, list[dict]], stray: int, cpu_window: dict | None) -> dict:
    """What the events of `drive`'s requests `ids` (in text order) say: completed, errors, missing,
    duplicated, cache hits, per worker, and each text's translation (None without one)."""
    completed = [m for m in ids if any(e["type"] == "translation_completed" for e in events.get(m, []))]
    error_events = [e for m in ids for e in events.get(m, []) if e["type"] != "translation_completed"]
    index = {m: i for i, m in enumerate(ids)}
    texts_out: list[str | None] = [None] * len(ids)
    from_cache = 0
    workers_seen: dict[str, int] = {}
    for m in completed:
        event = next(e for e in events[m] if e["type"] == "translation_completed")
        texts_out[index[m]] = event["result"]["translatedText"]
        from_cache += bool(event["result"].get("fromCache"))
        w = str(event["result"].get("workerId"))
        workers_seen[w] = workers_seen.get(w, 0) + 1
    return {
        "completed": len(completed),
        "error_events": len(error_events),
        "error_event_codes": sorted({e.get("error", {}).get("code", "?") for e in error_events}),
        "missing_events": sum(1 for m in ids if not events.get(m)),
        "duplicate_events": sum(max(0, len(events.get(m, [])) - 1) for m in ids),
        "stray_events": stray,
        "from_cache": from_cache,
        "per_worker": workers_seen,
        "cpu_window": cpu_window,
        "texts": texts_out,
    }


def worker_counters(app: Appliance, at_least: int, deadline_s: float = 12.0) -> dict[str, tuple[int, int]]:
    """Per-slot (tasks, batches) from the workers' periodic Stats frames (sent every few idle
    heartbeats), waiting until they account for `at_least` tasks in all."""
    end = time.monotonic() + deadline_s
    counters: dict[str, tuple[int, int]] = {}
    while True:
        stats = app.request({"type": "stats"}, timeout=5.0) or {}
        slots = stats.get("workers", {}).get("slots", [])
        counters = {str(s["slot"]): (int(s.get("tasks", 0)), int(s.get("batches", 0))) for s in slots}
        if sum(t for t, _ in counters.values()) >= at_least or time.monotonic() > end:
            return counters
        time.sleep(0.5)


def connect_clients(app: Appliance, deadline_s: float = 30.0, topic: bytes = b'{"type":"translation_') -> None:
    """A DEALER for requests and a SUB for events whose subscription is known to have propagated.
    `topic`: what the SUB subscribes to (a CURVE client: its own public key; an event is then
    [topic, json], read by its last frame)."""
    app.dealer = app.ctx.socket(zmq.DEALER)
    app.dealer.setsockopt(zmq.LINGER, 0)
    app.dealer.connect(app.endpoints["requests"])
    app.sub = app.ctx.socket(zmq.SUB)
    app.sub.setsockopt(zmq.LINGER, 0)
    app.sub.setsockopt(zmq.RCVHWM, 0)
    app.sub.setsockopt(zmq.SUBSCRIBE, topic)
    app.sub.connect(app.endpoints["events"])
    end = time.monotonic() + deadline_s
    n = 0
    while time.monotonic() < end:  # a probe whose event arrives proves the subscription is live
        n += 1
        probe = f"probe-{n}-{time.monotonic_ns()}"
        app.dealer.send(_request(probe, "the cat sees the dog"))
        until = time.monotonic() + 2.0
        while time.monotonic() < until:
            if app.dealer.poll(0):
                app.dealer.recv_multipart()
            if app.sub.poll(50) and json.loads(app.sub.recv_multipart()[-1]).get("taskId") == probe:
                time.sleep(0.5)  # earlier probes' events, if any, arrive and are dropped here
                while app.sub.poll(0):
                    app.sub.recv_multipart()
                while app.dealer.poll(0):
                    app.dealer.recv_multipart()
                return n
    raise RuntimeError(f"SUB subscription not confirmed within {deadline_s}s:\n{app.log()}")


# ----------------------------------------------------------------------------- report


def write_results(name: str, report: dict) -> Path:
    """bench/results/<name>-<timestamp>.json and latest-<name>.json; the timestamped path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    text = json.dumps(report, indent=2)
    out.write_text(text)
    (RESULTS / f"latest-{name}.json").write_text(text)
    return out


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--models-dir", type=Path, default=MODELS)
    parser.add_argument("--window", type=int, default=64, help="requests awaiting their event (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queue-depth", type=int, default=None,
                        help="override [workers] queue_depth in the appliance's config (default: its default)")
    return parser.parse_args(argv)


def run_appliance(opts, models_dir: Path, texts: list[str], warm: list[str]) -> dict:
    """Boot the appliance, warm every worker up, drive the timed run and stop it with SIGTERM: the
    run's `drive` result, the workers' counters either side of it, stats, boot time and exit code."""
    cache, cache_note = cache_switch()
    tmp = Path(tempfile.mkdtemp(prefix="meeshy-e2e-"))  # short: ipc:// paths are limited to 107 bytes
    app = None
    try:
        t0 = time.perf_counter()
        app = Appliance(tmp, opts.workers, opts.model, models_dir, cache, opts.queue_depth)
        pong = app.wait_ready()
        boot_s = time.perf_counter() - t0
        probes = connect_clients(app)
        drive(app, warm, opts.window, "warm")  # warm-up: every worker gets some of it
        counters0 = worker_counters(app, probes + len(warm))
        before = app.request({"type": "stats"}, timeout=5.0) or {}
        pids = {"edge": app.proc.pid, "bench": os.getpid()}
        for slot in before.get("workers", {}).get("slots", []):
            pids[f"worker{slot['slot']}"] = slot["pid"]
        result = drive(app, texts, opts.window, "run", cpu=CpuWindow(pids))
        counters1 = worker_counters(app, probes + len(warm) + len(texts))
        stats = app.request({"type": "stats"}, timeout=5.0) or {}
        app.dealer.close(linger=0)
        app.sub.close(linger=0)
        exit_code = app.stop()
        log_tail = app.log(2000)
    finally:
        if app is not None:
            app.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"result": result, "pong": pong, "boot_s": boot_s, "counters0": counters0, "counters1": counters1,
            "stats": stats, "exit_code": exit_code, "log_tail": log_tail, "cache_note": cache_note}


def appliance_row(opts, run: dict, per_text: list[int], base1: dict) -> dict:
    """The appliance's row of the report: throughput over the exact token counts, the workers'
    batches in the timed run, tokens per CPU-second."""
    result = run["result"]
    texts = result["texts"]
    wall = result["wall_s"]
    done_tokens = sum(n for n, t in zip(per_text, texts) if t is not None)
    row = {
        "label": "appliance",
        "workers": opts.workers,
        "window": opts.window,
        "queue_depth": opts.queue_depth if opts.queue_depth is not None else "config default",
        "boot_s": run["boot_s"],
        "pong": run["pong"],
        "sentences": len(texts),
        "tokens": done_tokens,
        "wall_s": wall,
        "sentences_per_s": result["completed"] / wall if wall > 0 else 0.0,
        "tokens_per_s": done_tokens / wall if wall > 0 else 0.0,
        "texts_equal_to_inprocess": sum(1 for a, b in zip(texts, base1["texts"]) if a is not None and a == b),
        "exit_code_after_sigterm": run["exit_code"],
        "cache": run["cache_note"],
        **{k: v for k, v in result.items() if k not in ("texts", "wall_s")},
    }
    batches = {}
    for slot, (tasks1, batches1) in run["counters1"].items():
        tasks0, batches0 = run["counters0"].get(slot, (0, 0))
        dt, db = tasks1 - tasks0, batches1 - batches0
        batches[slot] = {"tasks": dt, "batches": db, "mean_batch": round(dt / db, 1) if db else None}
    row["worker_batches"] = batches
    cw = result["cpu_window"]
    worker_cpu = sum(v for k, v in cw["cpu_s"].items() if k.startswith("worker"))
    row["tokens_per_cpu_s_workers"] = done_tokens / worker_cpu if worker_cpu > 0 else 0.0
    row["tokens_per_cpu_s_workers_and_edge"] = (
        done_tokens / (worker_cpu + cw["cpu_s"]["edge"]) if worker_cpu > 0 else 0.0)
    row["cores_used"] = round((worker_cpu + cw["cpu_s"]["edge"]) / cw["wall_s"], 2) if cw["wall_s"] else 0.0
    row["others_cores"] = cw["others_cores"]
    return row


def find_problems(n_texts: int, result: dict, base1: dict, base2: dict, exit_code: int | None) -> list[str]:
    problems = []
    if result["completed"] != n_texts:
        problems.append(f"{n_texts - result['completed']} request(s) without a translation_completed event")
    for key in ("reply_errors", "error_events", "missing_events", "duplicate_events"):
        if result[key]:
            problems.append(f"{key}: {result[key]}")
    if result["from_cache"]:
        problems.append(f"{result['from_cache']} result(s) came from the cache")
    if base1["errors"] or base2["errors"]:
        problems.append("in-process errors")
    if exit_code != 0:
        problems.append(f"appliance exit code after SIGTERM: {exit_code}")
    return problems


def print_report(opts, cores: int, base1: dict, appliance: dict, base2: dict, figures: dict, run: dict,
                 load_before: list[float], problems: list[str]) -> None:
    result = run["result"]
    cw = result["cpu_window"]
    n = len(result["texts"])
    print()
    print(f"{'run':16}{'wall s':>9}{'sent/s':>10}{'tokens/s':>11}{'tokens':>9}{'tok/cpu-s':>11}"
          f"{'others':>8}")
    for row in (base1, appliance, base2):
        per_cpu = row.get("tokens_per_cpu_s") or row.get("tokens_per_cpu_s_workers", 0.0)
        print(f"{row['label']:16}{row['wall_s']:9.2f}{row['sentences_per_s']:10.1f}"
              f"{row['tokens_per_s']:11.1f}{row['tokens']:9d}{per_cpu:11.1f}{row['others_cores']:8.2f}")
    print(f"{'in-process mean':16}{'':9}{figures['base_sps']:10.1f}{figures['base_tps']:11.1f}")
    print(f"ratio appliance / in-process (tokens/s): {figures['ratio']:.2f}  "
          f"({opts.workers} worker(s), {cores} core(s); ideal ~{min(opts.workers, cores)}; "
          f"window {opts.window}, queue_depth {appliance['queue_depth']})")
    print(f"ratio by CPU time (min(workers, cores) x appliance tokens per (worker+edge) CPU-s / in-process "
          f"tokens per CPU-s): {figures['cpu_ratio']:.2f}")
    print(f"rows at the length bound: {base1['rows_at_length_bound']}/{n}; appliance texts equal to "
          f"in-process #1: {appliance['texts_equal_to_inprocess']}/{n}; per worker: {result['per_worker']}")
    print(f"appliance worker batches in the timed run (from worker Stats): {appliance['worker_batches']}")
    print(f"appliance CPU in the timed window: {cw['cpu_s']} (cores used by edge+workers "
          f"{appliance['cores_used']}); tokens per worker-CPU-second {appliance['tokens_per_cpu_s_workers']:.1f}, "
          f"per (worker+edge)-CPU-second {appliance['tokens_per_cpu_s_workers_and_edge']:.1f}")
    print("  (tok/cpu-s: in-process = its own CPU; appliance = workers' CPU. others = cores busy with "
          "other processes during the run, from /proc/stat)")
    print(f"{run['cache_note']}; exit code after SIGTERM: {run['exit_code']}; load {load_before} -> "
          f"{figures['load_after']}")
    for p in problems:
        print(f"PROBLEM: {p}")


def write_report(doc: dict) -> Path:
    """bench/results/appliance-<timestamp>.json and latest-appliance.json (UTF-8 as it is)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"appliance-{doc['timestamp']}.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False))
    (RESULTS / "latest-appliance.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False))
    return path


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    models_dir = opts.models_dir.resolve()

    from modelbuild.corpus import generate_corpus

    texts = [row[SOURCE] for row in generate_corpus(opts.sentences, seed=opts.seed)]
    warm = [row[SOURCE] for row in generate_corpus(max(CHUNK, 4 * opts.workers), seed=opts.seed + WARMUP_SEED_OFFSET)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load_before = load_average()
    print(f"appliance_e2e: {opts.model}, {len(texts)} sentences, {opts.workers} worker(s), {cores} core(s), "
          f"load {load_before}", flush=True)

    # In-process, the appliance, in-process again: the baseline is the mean of both sides.
    counting = CountingRuntime(models_dir, opts.model)
    counting.translate_all(warm[:CHUNK])  # warm-up: first-run allocations
    base1 = run_inprocess(counting, texts, "in-process #1")
    per_text = token_counts_per_text(counting, texts)
    run = run_appliance(opts, models_dir, texts, warm)
    result = run["result"]
    appliance = appliance_row(opts, run, per_text, base1)
    print(f"  {'appliance':14} {result['wall_s']:7.2f} s  {appliance['tokens_per_s']:8.1f} tok/s  "
          f"({result['completed']} completed, {result['error_events']} error events, "
          f"{result['reply_errors']} error replies)", flush=True)
    base2 = run_inprocess(counting, texts, "in-process #2")

    base_tps = (base1["tokens_per_s"] + base2["tokens_per_s"]) / 2
    base_sps = (base1["sentences_per_s"] + base2["sentences_per_s"]) / 2
    # Steadier under a noisy neighbour: what the ratio would be with every worker on its own idle
    # core, from CPU time (appliance: workers' + edge's CPU; in-process: its own).
    base_per_cpu = (base1["tokens_per_cpu_s"] + base2["tokens_per_cpu_s"]) / 2
    figures = {"base_tps": base_tps, "base_sps": base_sps, "ratio": appliance["tokens_per_s"] / base_tps,
               "cpu_ratio": min(opts.workers, cores) * appliance["tokens_per_cpu_s_workers_and_edge"] / base_per_cpu,
               "load_after": load_average()}
    problems = find_problems(len(texts), result, base1, base2, run["exit_code"])
    print_report(opts, cores, base1, appliance, base2, figures, run, load_before, problems)

    path = write_report({
        "benchmark": "appliance_e2e",
        "timestamp": time.strftime("%Y%m%d-%H%M%S"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]) if argv is None else f"main({argv!r})",
        "model": opts.model,
        "models_dir": str(models_dir),
        "sentences": len(texts),
        "seed": opts.seed,
        "workers": opts.workers,
        "cores": cores,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "load_before": load_before,
        "load_after": figures["load_after"],
        "token_count_method": "exact per-row Model.generate token counts (in-process #1), reused per sentence "
                              "for the appliance",
        "inprocess": [{k: v for k, v in b.items() if k != "texts"} for b in (base1, base2)],
        "inprocess_mean": {"tokens_per_s": base_tps, "sentences_per_s": base_sps},
        "appliance": appliance,
        "appliance_stats": run["stats"],
        "ratio_tokens_per_s": figures["ratio"],
        "ratio_sentences_per_s": appliance["sentences_per_s"] / base_sps,
        "ratio_by_cpu_time": figures["cpu_ratio"],
        "inprocess_mean_tokens_per_cpu_s": base_per_cpu,
        "problems": problems,
        "appliance_log_tail": run["log_tail"],
    })
    print(f"wrote {path.relative_to(REPO)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
