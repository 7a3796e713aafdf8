"""Meeshy's real pattern: chat messages into 5 targets each, through the appliance against HF PyTorch
batched as Meeshy's own translator batches, in one run (issue 19, goal 6: events/s >= 5x).

    python bench/run.py meeshy_pattern --models-dir /work/engine-models            # 10 messages x 5, 2 reps
    python bench/run.py meeshy_pattern --models-dir M --messages 20 --reps 3 --baseline as-deployed
    python bench/run.py meeshy_pattern --models-dir M --rate 4     # messages arriving 4/s instead of a backlog

The model is the NLLB-600M shape (`export_models.py --synthetic nllb-600m --quantize int8`): the
appliance serves `--model` (synthetic-nllb-600m-int8) as tier basic with `--workers` workers (cache
off, so every target is decoded); the baseline is transformers' M2M100 `generate` on the same
checkpoint (`<models-dir>/.build/synthetic-nllb-600m`, float32 as Meeshy loads it on a CPU), in
its own process with `--threads` torch threads (2: the appliance's 2 workers are 2 cores).

How Meeshy's translator handles a chat message, read from its source (isopen-io/meeshy at
ea1789df, services/translator/src/):

- services/zmq_pool/connection_manager.py `enqueue_task`: a request (one message, all its target
  languages) goes into an accumulator keyed by source + sorted targets + model type
  (`_get_batch_key`); a key reaching BATCH_MAX_SIZE = 10 is flushed at once, and a loop flushes
  every key every BATCH_WINDOW_MS = 50 ms (`_batch_flush_loop`: a fixed tick, not a per-batch
  timer). But a text under TRANSLATOR_SHORT_TEXT_THRESHOLD = 100 characters skips the
  accumulator into the `fast_pool` (the priority queue is on by default) and is translated on
  its own; most chat messages are that short.
- services/zmq_pool/zmq_pool_manager.py `_process_task`: a flushed batch of more than one task
  goes to `process_batch_translation`, a single task to `process_single_translation`; the fast
  pool is served first.
- services/zmq_pool/translation_processor.py: a batch is translated one target language after
  the other, each language's results published when that language's whole batch is done; a
  single task likewise, one language at a time (the model's inference lock serializes them).
- services/translation_ml/translator_engine.py `translate_batch`: two texts or fewer are
  translated one at a time (`translate_text`); more go in chunks of TRANSLATOR_BATCH_SIZE = 8
  (utils/performance.py), one `Seq2SeqTranslator` call per chunk under the lock, greedy
  (`num_beams=1, do_sample=False`) with `max_length=256`.
- services/translation_ml/seq2seq_translator.py `__call__`: `tokenizer(texts, padding=True,
  truncation=True, max_length=512)`, `model.generate(**inputs, max_length, num_beams, do_sample,
  forced_bos_token_id=<target language token>)`, `batch_decode(skip_special_tokens=True)`;
  model_loader.py loads float32 on a CPU, and inference runs under `torch.inference_mode`.

`--baseline batched` (the default, and the stronger baseline) sends every message through the
accumulator, as Meeshy does for texts of 100 characters or more: the issue's "up to 10 items,
50 ms window". `--baseline as-deployed` adds the fast pool: messages under 100 characters are
decoded one (message, target) at a time. The flush tick's phase is taken as the first arrival.
Meeshy's several worker coroutines share one inference lock, so the baseline decodes one call at
a time; the 1 s wait of its idle workers on the normal pool is not modelled (it only delays).

Output length: a random-weight model rarely emits end-of-sequence, so `max_length=256` would
decode 256 tokens per row where a real model stops at the sentence's end. Both sides get the
appliance's own bound instead (workers.runtime.BatchLimits: 2 x framed source tokens + 10):
the appliance applies it per segment; a baseline chunk gets min_new_tokens = max_new_tokens = its
longest row's bound + 1 (the forced language token counts as a new token in `generate`), since a
batched `generate` runs until its longest row ends, as it would on a real model. Reported per
side: useful tokens (the bound summed over every (message, target)) and, for the baseline, the
tokens it computed (rows x steps); for the appliance, the segments that ended at their bound.

Targets: the synthetic NLLB export serves en -> fr, es, de. The manifest entry is copied into
`<models-dir>/.build/meeshy-pattern/manifest.json` (path absolute, the files are not copied) with
every `--targets` language added as a pair: the graphs are language-agnostic and a target
language is one forced decoder token, read from the checkpoint's M2M100 tokenizer. The
appliance's packed weights are cached in that directory too.

Order: each repetition decodes fresh messages (`modelbuild.corpus`, never repeated), all
arriving at once (`--rate 0`, a backlog: throughput) or `--rate` per second, first on the
baseline, then through the appliance, never both at once. Events/s = (message, target) events /
(first arrival .. last event). The ratio per repetition and their median are reported; worker
batch sizes, CPU per process and the machine's other load are recorded to tell where time goes.

Writes bench/results/meeshy_pattern-<timestamp>.json and latest-meeshy_pattern.json; exits 1 when
an event is missing or failed, or a baseline chunk did not decode its forced length.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import appliance_e2e as e2e
from bench import harness
from bench.pipe_child import PipeChild

REPO = e2e.REPO
SOURCE, TIER = "en", "basic"
TARGETS = "fr,es,de,it,pt"
MODEL = "synthetic-nllb-600m-int8"
CHECKPOINT = "synthetic-nllb-600m"  # under <models-dir>/.build: the float32 checkpoint both sides come from
MESSAGE_SEED = 7300  # corpus seeds: repetition r draws generate_corpus(..., seed=MESSAGE_SEED + r)
WARMUP_SEED = 7299
# Meeshy's translator (module docstring): its batcher and its engine's batching.
BATCH_MAX_SIZE = 10
BATCH_WINDOW_S = 0.050
ENGINE_BATCH_SIZE = 8
SHORT_TEXT_CHARS = 100
# The appliance's length rule (workers.runtime.BatchLimits), applied to both sides.
LENGTH_RATIO, LENGTH_SLACK = 2.0, 10


# ----------------------------------------------------------------------------- workload


def chat_messages(n: int, seed: int) -> list[str]:
    from modelbuild.corpus import generate_corpus

    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        for row in generate_corpus(max(2 * n, 100), seed=seed):
            if row[SOURCE] not in seen and len(out) < n:
                seen.add(row[SOURCE])
                out.append(row[SOURCE])
        seed += 1000
    return out


def arrivals(n: int, rate: float) -> list[float]:
    """Seconds after the first arrival: all at 0 (a backlog) or evenly `rate` per second."""
    return [0.0 if rate <= 0 else i / rate for i in range(n)]


def served_copy(models_dir: Path, model: str, targets: list[str]) -> Path:
    """<models-dir>/.build/meeshy-pattern: a manifest with `model` serving SOURCE -> every target."""
    from transformers import AutoTokenizer

    manifest = json.loads((models_dir / "manifest.json").read_text())
    entry = dict(manifest["models"][model])
    entry["path"] = str((models_dir / entry["path"]).resolve())
    framing = dict(entry["framing"])
    prefixes = dict(framing.get("target_prefix") or {})
    missing = [t for t in targets if t not in prefixes]
    if missing:
        tokenizer = AutoTokenizer.from_pretrained(str(models_dir / ".build" / CHECKPOINT))
        prefixes.update({t: [tokenizer.get_lang_id(t)] for t in missing})
    framing["target_prefix"] = prefixes
    entry["framing"] = framing
    pairs = [list(p) for p in entry["pairs"]]
    entry["pairs"] = pairs + [[SOURCE, t] for t in targets if [SOURCE, t] not in pairs]
    out = models_dir / ".build" / "meeshy-pattern"
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"version": manifest["version"], "models": {model: entry}}, indent=1)
    if not (out / "manifest.json").exists() or (out / "manifest.json").read_text() != text:
        (out / "manifest.json").write_text(text)
    return out


def length_bounds(served: Path, model: str, texts: list[str]) -> list[int]:
    """The appliance's output bound per message: 2 x its framed source ids + 10 (any target:
    NLLB frames the source the same way whatever the target)."""
    from workers.manifest import load_specs
    from workers.tokenizer import load_tokenizer

    spec = load_specs(served)[model]
    framing = spec.framing
    tokenizer = load_tokenizer(spec.directory, spec.tokenizer, set(spec.special_ids))
    out = []
    for text in texts:
        ids = [*framing.encoder_prefix(SOURCE), *tokenizer.encode(text), *framing.source_suffix]
        out.append(int(len(ids) * LENGTH_RATIO) + LENGTH_SLACK)
    return out


# ----------------------------------------------------------------------------- Meeshy's batching


def meeshy_batches(arrive: list[float], texts: list[str], policy: str) -> list[tuple[float, bool, list[int]]]:
    """(ready at, from the fast pool, message indices) in the order Meeshy's queues fill.

    Every message here has the same source, targets and model type: one accumulator key."""
    out: list[tuple[float, bool, list[int]]] = []
    pending: list[int] = []
    tick = BATCH_WINDOW_S
    for i in sorted(range(len(texts)), key=lambda k: arrive[k]):
        t = arrive[i]
        while tick <= t:  # the flush loop's ticks before this arrival
            if pending:
                out.append((tick, False, pending))
                pending = []
            tick += BATCH_WINDOW_S
        if policy == "as-deployed" and len(texts[i]) < SHORT_TEXT_CHARS:
            out.append((t, True, [i]))
            continue
        pending.append(i)
        if len(pending) >= BATCH_MAX_SIZE:
            out.append((t, False, pending))
            pending = []
    if pending:
        out.append((tick, False, pending))
    return out


def engine_calls(indices: list[int]) -> list[list[int]]:
    """translate_batch's calls for one target: two texts or fewer alone, else chunks of 8."""
    if len(indices) <= 2:
        return [[i] for i in indices]
    return [indices[k : k + ENGINE_BATCH_SIZE] for k in range(0, len(indices), ENGINE_BATCH_SIZE)]


class Baseline:
    """HF PyTorch M2M100 `generate`, driven by Meeshy's schedule (the child process's side)."""

    def __init__(self, checkpoint: Path, threads: int):
        import torch
        from transformers import AutoTokenizer, M2M100ForConditionalGeneration

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
        self.tokenizer.src_lang = SOURCE
        self.model = M2M100ForConditionalGeneration.from_pretrained(str(checkpoint), torch_dtype=torch.float32).eval()
        self.model.generation_config.forced_eos_token_id = None  # the appliance forces nothing either

    def generate(self, texts: list[str], target: str, new_tokens: int) -> tuple[int, int, int]:
        """One Seq2SeqTranslator call: (rows, steps, longest source ids)."""
        torch = self.torch
        inputs = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=512)
        with torch.inference_mode():
            out = self.model.generate(
                **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, num_beams=1, do_sample=False,
                forced_bos_token_id=self.tokenizer.get_lang_id(target),
            )
        self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return out.shape[0], out.shape[1] - 1, inputs["input_ids"].shape[1]  # minus the decoder start

    def run(self, job: dict) -> dict:
        texts, targets, bounds = job["texts"], job["targets"], job["bounds"]
        schedule = meeshy_batches(job["arrivals"], texts, job["policy"])
        events: list[tuple[int, str, float]] = []
        calls: list[dict] = []
        wrong: list[str] = []
        mismatch = 0
        cpu0 = time.process_time()
        start = time.perf_counter()
        waiting = list(schedule)
        while waiting:
            now = time.perf_counter() - start
            ready = [b for b in waiting if b[0] <= now]
            if not ready:
                time.sleep(min(b[0] for b in waiting) - now)
                continue
            batch = next((b for b in ready if b[1]), ready[0])  # the fast pool is served first
            waiting.remove(batch)
            for target in targets:
                for call in engine_calls(batch[2]):
                    steps_wanted = max(bounds[i] for i in call) + 1  # + the forced language token
                    t = time.perf_counter()
                    rows, steps, width = self.generate([texts[i] for i in call], target, steps_wanted)
                    calls.append({"rows": rows, "steps": steps, "source_width": width,
                                  "s": round(time.perf_counter() - t, 4)})
                    if steps != steps_wanted:
                        wrong.append(f"{rows} rows decoded {steps} steps, not {steps_wanted}")
                    if width != max((bounds[i] - LENGTH_SLACK) // LENGTH_RATIO for i in call):
                        mismatch += 1  # HF's tokenizer framed the source unlike the appliance's
                    if len(batch[2]) == 1 or batch[1]:  # process_single_translation: one event per call
                        events.append((call[0], target, time.perf_counter() - start))
                done = time.perf_counter() - start
                if len(batch[2]) > 1 and not batch[1]:  # a language's batch is published when it is all done
                    events.extend((i, target, done) for i in batch[2])
        wall = max(t for _, _, t in events)
        return {
            "events": len(events),
            "wall_s": wall,
            "cpu_s": time.process_time() - cpu0,
            "calls": calls,
            "batches": [len(b[2]) for b in schedule],
            "fast_pool": sum(1 for b in schedule if b[1]),
            "computed_tokens": sum(c["rows"] * (c["steps"] - 1) for c in calls),  # the language token aside
            "wrong_length": wrong,
            "calls_with_other_source_length": mismatch,
        }


def serve_baseline(opts) -> int:
    """The child side: load, warm up, then run each job read from stdin (JSON lines)."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library prints must not corrupt the replies
    try:
        t0 = time.perf_counter()
        base = Baseline(opts.models_dir / ".build" / CHECKPOINT, opts.threads)
        warm = chat_messages(ENGINE_BATCH_SIZE, WARMUP_SEED)
        base.generate(warm, "fr", 20)
        base.generate(warm[:1], "es", 20)
        out.write(json.dumps({"ready": round(time.perf_counter() - t0, 1), "rss_mb": e2e_rss_mb()}) + "\n")
    except Exception as exc:
        out.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:300]}) + "\n")
        return 1
    for line in sys.stdin:
        try:
            out.write(json.dumps(base.run(json.loads(line))) + "\n")
        except Exception as exc:
            out.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"[:300]}) + "\n")
    return 0


def e2e_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0.0


def baseline_process(opts) -> PipeChild:
    """The baseline in its own interpreter (torch's thread pool and allocator apart), over a pipe:
    `run` a job with `ask`."""
    return PipeChild("bench.meeshy_pattern", ["--baseline-worker", "--threads", str(opts.threads),
                                             "--models-dir", str(opts.models_dir)], opts.threads, "baseline process")


# ----------------------------------------------------------------------------- the appliance


class PatternAppliance(e2e.Appliance):
    """`python -m appliance serve`: `workers` workers serving `model` as tier basic from `served`,
    the translation cache off, packed weights kept in `served`/state between runs."""

    def __init__(self, tmp: Path, workers: int, model: str, served: Path):
        cache, _ = e2e.cache_switch()
        sections = {"server": {"state_dir": str(served / "state")},
                    "workers": {"count": workers, "models_dir": str(served), "startup_timeout_s": 600.0,
                                "tiers": {TIER: model}}}
        if cache:
            sections["cache"] = cache
        self._start(tmp, sections)


def slot_counters(app: PatternAppliance, at_least: int, deadline_s: float = 15.0) -> dict[str, dict]:
    """Per worker slot: tasks, batches and seconds busy decoding (cumulative, from the workers'
    periodic Stats frames), once they account for `at_least` tasks in all."""
    end = time.monotonic() + deadline_s
    while True:
        slots = ((app.request({"type": "stats"}, timeout=5.0) or {}).get("workers") or {}).get("slots") or []
        counters = {str(s["slot"]): {k: float(s.get(k) or 0) for k in ("tasks", "batches", "busy_s")} for s in slots}
        if sum(c["tasks"] for c in counters.values()) >= at_least or time.monotonic() > end:
            return counters
        time.sleep(0.5)


def translation(task_id: str, text: str, targets: list[str]) -> bytes:
    return json.dumps({"type": "translation", "taskId": task_id, "messageId": task_id, "text": text,
                       "sourceLanguage": SOURCE, "targetLanguages": targets, "modelType": TIER}).encode()


def drive(app: PatternAppliance, texts: list[str], targets: list[str], arrive: list[float], prefix: str,
          cpu: e2e.CpuWindow | None = None, timeout_s: float = 900.0) -> dict:
    """Send each message at its arrival time (one request, every target, as Meeshy's gateway
    does) over one DEALER; one event per (message, target) on the SUB."""
    dealer, sub = app.dealer, app.sub
    ids = [f"{prefix}-{i}" for i in range(len(texts))]
    index = {m: i for i, m in enumerate(ids)}
    expected = len(texts) * len(targets)
    events: dict[tuple[int, str], dict] = {}
    failed: list[dict] = []
    duplicates = sent = 0
    last = 0.0
    poller = harness.read_poller(dealer, sub)
    if cpu is not None:
        cpu.start()
    start = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    while len(events) + len(failed) < expected and time.monotonic() < deadline:
        now = time.perf_counter() - start
        while sent < len(texts) and arrive[sent] <= now:
            dealer.send(translation(ids[sent], texts[sent], targets))
            sent += 1
        wait_ms = 1000 if sent == len(texts) else max(0, int((arrive[sent] - now) * 1000))
        ready = dict(poller.poll(wait_ms))
        if dealer in ready:
            while dealer.poll(0):
                reply = json.loads(dealer.recv_multipart()[-1])
                if reply.get("status") == "error":  # never accepted: no event will come for it
                    failed.extend({"reply": reply} for _ in targets)
        if sub in ready:
            while sub.poll(0):
                event = json.loads(sub.recv_multipart()[-1])
                i = index.get(event.get("taskId"))
                if i is None:
                    continue
                key = (i, event.get("targetLanguage"))
                if key in events:
                    duplicates += 1
                elif event.get("type") == "translation_completed":
                    events[key] = event["result"]
                    last = time.perf_counter() - start
                else:
                    failed.append(event)
        if not ready:
            app.check_alive()
    window = cpu.stop() if cpu is not None else None
    results = list(events.values())
    segments = sum(int(r.get("segmentsCount", 1)) for r in results)
    at_bound = sum(len(r.get("truncatedSegments") or []) for r in results)
    return {
        "events": len(events),
        "expected": expected,
        "failed": len(failed),
        "failure_sample": failed[:2],
        "duplicates": duplicates,
        "wall_s": last,
        "from_cache": sum(1 for r in results if r.get("fromCache")),
        "segments": segments,
        "segments_at_length_bound": at_bound,
        "processing_ms_mean": statistics.fmean(r.get("processingTime", 0.0) for r in results) if results else 0.0,
        "per_worker": {str(w): sum(1 for r in results if str(r.get("workerId")) == str(w))
                       for w in sorted({str(r.get("workerId")) for r in results})},
        "cpu_window": window,
    }


# ----------------------------------------------------------------------------- the run


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py meeshy_pattern", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--model", default=MODEL, help=f"the export the appliance serves (default {MODEL})")
    parser.add_argument("--messages", type=int, default=10, help="chat messages per repetition (default 10)")
    parser.add_argument("--targets", default=TARGETS, help=f"target languages of every message (default {TARGETS})")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="the baseline's torch threads (default 2)")
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s arriving; 0: all at once (default)")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--baseline", choices=("batched", "as-deployed"), default="batched")
    parser.add_argument("--baseline-worker", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    opts.models_dir = opts.models_dir.resolve()
    opts.targets = [t.strip() for t in opts.targets.split(",") if t.strip()]
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    if opts.baseline_worker:
        return serve_baseline(opts)
    if not (opts.models_dir / opts.model).is_dir() or not (opts.models_dir / ".build" / CHECKPOINT).is_dir():
        print(f"missing {opts.models_dir / opts.model} or its checkpoint: run `python export_models.py "
              f"--synthetic nllb-600m --quantize int8 --models-dir {opts.models_dir}`", file=sys.stderr)
        return 2
    served = served_copy(opts.models_dir, opts.model, opts.targets)
    messages = [chat_messages(opts.messages, MESSAGE_SEED + r) for r in range(opts.reps)]
    arrive = arrivals(opts.messages, opts.rate)
    load_before = e2e.load_average()
    print(f"meeshy_pattern: {opts.model}, {opts.messages} messages x {len(opts.targets)} targets "
          f"({','.join(opts.targets)}), {opts.reps} rep(s), appliance {opts.workers} workers vs HF PyTorch "
          f"{opts.threads} threads ({opts.baseline}), rate {opts.rate or 'backlog'}; load {load_before}", flush=True)
    baseline = baseline_process(opts)
    tmp = Path(tempfile.mkdtemp(prefix="meeshy-mp-"))  # short: ipc:// paths are limited to 107 bytes
    app = None
    reps: list[dict] = []
    exit_code, tail = None, ""
    try:
        t0 = time.perf_counter()
        app = PatternAppliance(tmp, opts.workers, opts.model, served)
        pong = app.wait_ready(600.0)
        boot_s = time.perf_counter() - t0
        ready = baseline.reply()
        print(f"  appliance ready in {boot_s:.1f}s; baseline loaded + warmed up in {ready['ready']}s, "
              f"RSS {ready['rss_mb']:.0f} MB", flush=True)
        tasks_done = e2e.connect_clients(app)  # one task per probe
        warm = chat_messages(4 * opts.workers, WARMUP_SEED)
        tasks_done += drive(app, warm, opts.targets, [0.0] * len(warm), "warm")["events"]
        stats0 = app.request({"type": "stats"}, timeout=5.0) or {}
        pids = {"edge": app.proc.pid}
        for slot in stats0.get("workers", {}).get("slots", []):
            pids[f"worker{slot['slot']}"] = slot["pid"]
        for r, texts in enumerate(messages):
            bounds = length_bounds(served, opts.model, texts)
            job = {"texts": texts, "targets": opts.targets, "bounds": bounds, "arrivals": arrive,
                   "policy": opts.baseline}
            window = e2e.CpuWindow({"baseline": baseline.proc.pid})
            window.start()
            base = baseline.ask(job)
            base["cpu_window"] = window.stop()
            counters0 = slot_counters(app, tasks_done)  # workers report their counts every few seconds
            ours = drive(app, texts, opts.targets, arrive, f"rep{r}", cpu=e2e.CpuWindow(pids))
            tasks_done += ours["events"]
            useful = sum(bounds) * len(opts.targets)
            rep = summarize_rep(r, base, ours, useful, counters0, slot_counters(app, tasks_done))
            reps.append(rep)
            print(f"  rep {r + 1}/{opts.reps}: baseline {rep['baseline_events_per_s']:.2f} events/s "
                  f"({base['wall_s']:.1f}s), appliance {rep['appliance_events_per_s']:.2f} events/s "
                  f"({ours['wall_s']:.1f}s): {rep['ratio']:.2f}x; other processes' cores during each: "
                  f"{rep['baseline_others_cores']} / {rep['others_cores']}", flush=True)
        stats = app.request({"type": "stats"}, timeout=5.0) or {}
        app.dealer.close(linger=0)
        app.sub.close(linger=0)
        exit_code = app.stop()
    finally:
        baseline.close()
        if app is not None:
            tail = app.log(2000)
            app.close()
        shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "bench": "meeshy_pattern",
        "model": opts.model,
        "checkpoint": str(opts.models_dir / ".build" / CHECKPOINT),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()},
        "meeshy_batching": {"batch_max_size": BATCH_MAX_SIZE, "batch_window_s": BATCH_WINDOW_S,
                            "engine_batch_size": ENGINE_BATCH_SIZE, "short_text_chars": SHORT_TEXT_CHARS,
                            "source": "isopen-io/meeshy ea1789df services/translator/src (module docstring)"},
        "appliance": {"workers": opts.workers, "boot_s": round(boot_s, 1), "pong": pong,
                      "exit_code_after_sigterm": exit_code, "stats": stats.get("workers"), "log_tail": tail},
        "baseline": {"threads": opts.threads, "policy": opts.baseline, "load_s": ready["ready"],
                     "rss_mb": ready["rss_mb"]},
        "reps": reps,
        "ratio_median": statistics.median(r["ratio"] for r in reps),
        "load_before": load_before,
        "load_after": e2e.load_average(),
    }
    print_table(report)
    print(f"written {e2e.write_results('meeshy_pattern', report).relative_to(REPO)}")
    problems = [p for r in reps for p in r["problems"]]
    if exit_code != 0:
        problems.append(f"appliance exit code after SIGTERM {exit_code}")
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


def summarize_rep(r: int, base: dict, ours: dict, useful: int, counters0: dict, counters1: dict) -> dict:
    def delta(key: str) -> float:
        return sum(c[key] for c in counters1.values()) - sum(c[key] for c in counters0.values())

    tasks, batches, busy = delta("tasks"), delta("batches"), delta("busy_s")
    problems = []
    if ours["events"] != ours["expected"] or ours["failed"] or ours["duplicates"]:
        problems.append(f"rep {r + 1}: appliance {ours['events']}/{ours['expected']} events, {ours['failed']} failed, "
                        f"{ours['duplicates']} duplicates {ours['failure_sample']}")
    if base["wrong_length"]:
        problems.append(f"rep {r + 1}: baseline {base['wrong_length'][:3]}")
    if ours["from_cache"]:
        problems.append(f"rep {r + 1}: {ours['from_cache']} appliance events came from a cache")
    b_rate = base["events"] / base["wall_s"] if base["wall_s"] > 0 else 0.0
    a_rate = ours["events"] / ours["wall_s"] if ours["wall_s"] > 0 else 0.0
    cpu = ours["cpu_window"] or {}
    ours_cpu = sum((cpu.get("cpu_s") or {}).values())
    return {
        "rep": r + 1,
        "baseline_events_per_s": b_rate,
        "appliance_events_per_s": a_rate,
        "ratio": a_rate / b_rate if b_rate > 0 else 0.0,
        # The same events per CPU-second of each side (the baseline's process; the appliance's
        # edge and workers): steadier than wall time when a neighbour's load hits one side more.
        "ratio_per_cpu_s": base["cpu_s"] / ours_cpu if ours_cpu > 0 else None,
        "useful_tokens": useful,
        "baseline_tokens_per_s": useful / base["wall_s"] if base["wall_s"] > 0 else 0.0,
        "appliance_tokens_per_s": useful / ours["wall_s"] if ours["wall_s"] > 0 else 0.0,
        "baseline": {k: v for k, v in base.items() if k != "calls"},
        "baseline_calls": {"count": len(base["calls"]),
                           "rows_mean": statistics.fmean(c["rows"] for c in base["calls"]),
                           "generate_s": round(sum(c["s"] for c in base["calls"]), 3)},
        "appliance": ours,
        "appliance_worker_batches": {"tasks": tasks, "batches": batches,
                                     "mean_batch": round(tasks / batches, 2) if batches else None},
        # Seconds the workers spent in Runtime.translate, over the run's wall x workers: what is
        # left is the edge, the queues and the sockets (or a worker waiting for work).
        "appliance_workers_busy_fraction": round(busy / (ours["wall_s"] * max(1, len(counters1))), 3)
        if ours["wall_s"] > 0 else None,
        "appliance_cores_busy": {k: round(v / cpu["wall_s"], 2) for k, v in cpu.get("cpu_s", {}).items()}
        if cpu.get("wall_s") else {},
        "others_cores": cpu.get("others_cores"),
        "baseline_others_cores": (base.get("cpu_window") or {}).get("others_cores"),
        "problems": problems,
    }


def print_table(report: dict) -> None:
    print(f"\n{'rep':>4} {'HF events/s':>12} {'ours events/s':>14} {'ratio':>7} {'useful tok':>11} "
          f"{'HF computed tok':>16} {'HF calls (mean rows)':>21} {'ours batch':>11} {'at bound':>10}")
    for r in report["reps"]:
        b, a = r["baseline"], r["appliance"]
        print(f"{r['rep']:>4} {r['baseline_events_per_s']:12.2f} {r['appliance_events_per_s']:14.2f} "
              f"{r['ratio']:6.2f}x {r['useful_tokens']:11d} {b['computed_tokens']:16d} "
              f"{r['baseline_calls']['count']:>10} ({r['baseline_calls']['rows_mean']:.1f}) "
              f"{str(r['appliance_worker_batches']['mean_batch']):>11} "
              f"{a['segments_at_length_bound']:>4}/{a['segments']:<5}")
    per_cpu = [r["ratio_per_cpu_s"] for r in report["reps"] if r["ratio_per_cpu_s"]]
    if per_cpu:
        others = ", ".join(f"{r['baseline_others_cores']} / {r['others_cores']}" for r in report["reps"])
        print(f"per CPU-second: {', '.join(f'{x:.2f}x' for x in per_cpu)}; other processes' cores during the "
              f"baseline / the appliance: {others}")
    print(f"median ratio {report['ratio_median']:.2f}x (goal >= 5x); events = (message, target) pairs; useful "
          f"tokens: the length bound summed over them (both sides); ours batch: tasks per worker batch")


if __name__ == "__main__":
    sys.exit(main())
