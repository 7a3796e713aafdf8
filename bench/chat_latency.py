"""Chat latency: single short messages arriving one at a time, in-process and through the appliance.

    python bench/run.py chat_latency [--messages 200] [--model synthetic-opus-mt-base-int8]
                                     [--models-dir models] [--workers 1] [--no-appliance]
                                     [--loads 0.3,0.5,0.7 [--stream 100]]

A chat user sends one message of 5-15 source tokens and waits for it; nothing else is in the
batch. Every message is English from `modelbuild.corpus.generate_corpus` (seed `--seed`), kept when
its framed source ids number 5 to 15, each sent once. Per message, in milliseconds, p50 and p99,
and the output tokens each row decodes:

* `ours`: `workers.runtime.Model.generate` on the one message, greedy, the output forced to as many
  tokens as the source has (min = max: random weights rarely emit end-of-sequence);
* `ct2-int8`: CTranslate2 on the same ids (as pieces), int8, the same forced length; converted
  from the model's checkpoint like the engine benchmark does;
* `runtime`: `workers.runtime.Runtime.translate` on one `TranslationJob`, the worker's own path
  (segment, tokenize, decode, detokenize) with the runtime's length bound, min(model limit,
  2 x source ids + 10), which random weights always reach: about 3x the forced length, which is
  why this row takes about 2.8x `ours` (the same `generate` call with that bound takes as long as
  this row: segmentation and tokenization cost under 1 %). It runs in a process of its own set up
  like a worker (spawned, pinned to the worker's core, the same packed weights: `Baseline`);
* `appliance`: `python -m appliance serve` (a temp config like bench/appliance_e2e.py: cache off,
  `--workers` workers, the same state directory, so its worker maps the same packed weights), one
  DEALER sending a message and waiting for its `translation_completed` on the SUB socket before
  sending the next: time from send to event. `runtime` and `appliance` take turns message by
  message on the same texts and count the messages whose text is the same (the same work);
* `appliance worker`: the event's `processingTime`, the worker's own `runtime.translate` time.

The appliance's overhead is printed two ways: appliance p50 - runtime p50 (two processes, each with
its own noise), and per message, event time - `processingTime` (the model's noise cancels out).
Then `ours` and `ct2-int8` take turns message by message in this process, CTranslate2 loaded last.

`--loads`: chat traffic at a moderate load through one appliance: `--stream` messages arriving as
a Poisson stream at each fraction of one worker's single-message capacity (1000 / the `appliance
worker` p50 of a short calibration), all sent from one DEALER without waiting; p50/p99 latency from
each message's arrival to its event, throughput, and the mean batch the worker decoded (the events
of one batch share its `processingTime`).

Writes bench/results/chat_latency-<timestamp>.json and latest-chat_latency.json; exits 1 when a
message got no event, an error, or the appliance did not exit 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.appliance_e2e import Appliance, _request, cache_switch, connect_clients, write_results
from bench.relay_floor import RelayFloor

REPO = Path(__file__).resolve().parent.parent

SOURCE, TARGET, TIER = "en", "fr", "basic"
MIN_TOKENS, MAX_TOKENS = 5, 15
WARMUP = 5


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "mean_ms": statistics.fmean(ms),
            "min_ms": min(ms), "max_ms": max(ms)}


def chat_messages(model, n: int, seed: int) -> list[tuple[str, list[int]]]:
    from modelbuild.corpus import generate_corpus

    seen, picked = set(), []
    for row in generate_corpus(n * 20, seed=seed):
        text = row[SOURCE]
        ids = model.source_ids(text, SOURCE, TARGET)
        if text not in seen and MIN_TOKENS <= len(ids) <= MAX_TOKENS:
            seen.add(text)
            picked.append((text, ids))
            if len(picked) == n + WARMUP:
                return picked
    raise SystemExit(f"only {len(picked)} distinct messages of {MIN_TOKENS}-{MAX_TOKENS} tokens; lower --messages")


class Ct2:
    """CTranslate2 int8 on the model's checkpoint, converted and cached as the engine benchmark does."""

    def __init__(self, spec, models_dir: Path, messages):
        import ctranslate2

        from bench.engine import convert_ct2, pieces_by_id

        base = spec.name.removesuffix("-int8")
        directory = models_dir / ".build" / f"ct2-{base}-int8"
        if not (directory / "model.bin").exists():
            convert_ct2(models_dir / ".build" / base, directory, "int8")
        self.translator = ctranslate2.Translator(str(directory), device="cpu", compute_type="int8",
                                                 intra_threads=1, inter_threads=1)
        prefix = spec.framing.decoder_prefix(TARGET)
        self.piece_of = pieces_by_id(spec, {i for _, ids in messages for i in ids} | set(prefix))
        self.prefix = [self.piece_of[i] for i in prefix[1:]]

    def translate(self, ids: list[int]) -> int:
        n = len(ids) + len(self.prefix)
        result = self.translator.translate_batch(
            [[self.piece_of[i] for i in ids]], beam_size=1, max_decoding_length=n, min_decoding_length=n,
            target_prefix=[self.prefix] if self.prefix else None,
        )
        return len(result[0].hypotheses[0]) - len(self.prefix)


def ours_vs_ct2(opts, model, messages) -> dict:
    ct2 = Ct2(model.spec, opts.models_dir, messages)

    def ours(ids):
        return len(model.generate([ids], TARGET, 1, [len(ids)], len(ids))[0].tokens)

    engines = {"ours": ours, "ct2-int8": ct2.translate}
    times = {name: [] for name in engines}
    for i, (_, ids) in enumerate(messages):
        names = list(engines)
        turn = i % len(names)
        for name in names[turn:] + names[:turn]:
            start = time.perf_counter()
            out = engines[name](ids)
            elapsed = (time.perf_counter() - start) * 1000
            if out != len(ids):
                raise RuntimeError(f"{name} produced {out} tokens for a {len(ids)}-token message, not {len(ids)}")
            if i >= WARMUP:
                times[name].append(elapsed)
    return {name: summary(ms) for name, ms in times.items()}


def run_job(runtime, text: str):
    """`Runtime.translate` on one job: the worker's own path, in this process."""
    from workers.jobs import Translation, TranslationJob

    outcome = runtime.translate([TranslationJob(text, TARGET, source_language=SOURCE, tier=TIER)])[0]
    if not isinstance(outcome, Translation):
        raise RuntimeError(f"runtime error: {outcome}")
    return outcome


def runtime_pass(opts, tmp: Path, messages) -> dict:
    """`runtime` alone (--no-appliance): the baseline process on every message."""
    from appliance.config import usable_cpus

    baseline = Baseline(opts, tmp / "state" / "packed-weights", usable_cpus()[0])
    try:
        times = [baseline.translate(text)[0] for text, _ in messages]
    finally:
        baseline.close()
    return summary(times[WARMUP:])


def await_event(app, mid: str, deadline_s: float = 60.0) -> dict | None:
    """The `translation_*` event of `mid` from the SUB socket (acks on the DEALER are drained)."""
    zmq = app.zmq
    poller = zmq.Poller()
    poller.register(app.sub, zmq.POLLIN)
    poller.register(app.dealer, zmq.POLLIN)
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        ready = dict(poller.poll(100))
        if app.dealer in ready:
            app.dealer.recv_multipart()  # the ack; the event is what the user waits for
        if app.sub in ready:
            event = json.loads(app.sub.recv())
            if event.get("taskId") == mid:
                return event
    return None


def _baseline_main(conn, models_dir: str, model: str, packed_dir: str, cpu: int) -> None:
    """The in-process baseline's process: loaded like a worker (spawned, pinned to `cpu`, the
    host's packed weights), it times `Runtime.translate` on each text it is sent."""
    from workers.runtime import Runtime

    os.sched_setaffinity(0, {cpu})
    runtime = Runtime.load(Path(models_dir), tiers={TIER: model}, threads=1, packed_dir=Path(packed_dir))
    conn.send("ready")
    while (text := conn.recv()) is not None:
        start = time.perf_counter()
        out = run_job(runtime, text)
        conn.send(((time.perf_counter() - start) * 1000, out.text, bool(out.truncated_segments)))
    runtime.close()


class Baseline:
    """`Runtime.translate` in a fresh process of its own, not in this one: this process (the
    ZeroMQ client, the message generator, the `ours` rows) measured the same translate 1-28 %
    slower than a fresh process doing it, taking turns (over 10 % in six of seven comparisons),
    with the weights packed or not, pinned or not, the appliance running or not, so it cannot be
    the appliance's baseline. The child is set up as a worker is: spawned,
    pinned to the worker's core, mapping the same packed copy of the weights."""

    def __init__(self, opts, packed_dir: Path, cpu: int):
        import multiprocessing

        spawn = multiprocessing.get_context("spawn")
        self.conn, child = spawn.Pipe()
        self.proc = spawn.Process(target=_baseline_main, daemon=True,
                                  args=(child, str(opts.models_dir), opts.model, str(packed_dir), cpu))
        self.proc.start()
        if not self.conn.poll(300) or self.conn.recv() != "ready":
            raise RuntimeError("the baseline process did not load its runtime")

    def translate(self, text: str) -> tuple[float, str, bool]:
        self.conn.send(text)
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(30)


def paired(opts, tmp: Path, messages) -> tuple[dict, dict, bool]:
    """`runtime` (the baseline process) and `appliance` taking turns message by message, on the
    same texts, with the same model files: the same work, so their p50 difference is the
    appliance's overhead. Per message the appliance's event also carries `processingTime`, the
    worker's own `runtime.translate` time: event time minus it is what the appliance adds around
    that call (ZeroMQ hops, frames, the supervisor's loop, the edge), with the model's noise
    cancelled. After each appliance message, the same message through `RelayFloor` (the same hops,
    no work; its worker spins for the appliance worker's `processingTime`): what the transport
    alone costs, measured under the same conditions."""
    from appliance.config import usable_cpus

    cache, cache_note = cache_switch()
    worker_core = usable_cpus()[0]  # slot 0's core ([workers] pin)
    baseline = Baseline(opts, tmp / "state" / "packed-weights", worker_core)
    ms = {"runtime": [], "appliance": [], "appliance worker": []}
    overhead_ms, diff_ms, floor_ms = [], [], []
    same = failures = truncated = 0
    (tmp / "floor").mkdir()
    floor = RelayFloor(tmp / "floor", worker_core)
    app = Appliance(tmp, opts.workers, opts.model, opts.models_dir, cache)
    try:
        app.wait_ready()
        connect_clients(app)
        connect_clients(floor)
        for i, (text, _) in enumerate(messages):
            mid = f"chat-{i}-{time.monotonic_ns()}"

            def remote():
                start = time.perf_counter()
                app.dealer.send(_request(mid, text))
                event = await_event(app, mid)
                return (time.perf_counter() - start) * 1000, event

            if i % 2:
                (a_ms, event), (r_ms, r_text, r_truncated) = remote(), baseline.translate(text)
            else:
                (r_ms, r_text, r_truncated), (a_ms, event) = baseline.translate(text), remote()
            if event is None or event.get("type") != "translation_completed":
                failures += 1
                continue
            result = event["result"]
            same += result.get("translatedText") == r_text
            truncated += r_truncated
            spin = result["processingTime"]
            start = time.perf_counter()
            floor.send(_request(f"floor-{mid}", text), spin)
            floor_event = await_event(floor, f"floor-{mid}")
            if floor_event is None:
                failures += 1
                continue
            if i >= WARMUP:
                floor_ms.append((time.perf_counter() - start) * 1000 - spin)
                ms["runtime"].append(r_ms)
                ms["appliance"].append(a_ms)
                ms["appliance worker"].append(result["processingTime"])
                overhead_ms.append(a_ms - result["processingTime"])
                diff_ms.append(a_ms - r_ms)
        while app.dealer.poll(50):
            app.dealer.recv_multipart()
        code = app.stop()
    finally:
        app.close()
        floor.close()
        baseline.close()
    rows = {name: summary(values) for name, values in ms.items()}
    rows["appliance"].update(failures=failures, exit_code=code, workers=opts.workers, cache=cache_note,
                             same_text_as_runtime=same, of=len(messages))
    overhead = {"event_minus_worker": summary(overhead_ms), "appliance_minus_runtime_paired": summary(diff_ms),
                "transport_floor": summary(floor_ms),
                "truncated_share": truncated / max(1, len(messages)), "worker_core": worker_core}
    return rows, overhead, failures == 0 and code == 0


CALIBRATION = 10  # single messages that measure one worker's capacity before the streams


def stream_pass(app, texts: list[str], rate: float, seed: int) -> dict:
    """`texts` arriving as a Poisson stream of `rate` per second from one DEALER, none waiting for
    another; latency from each message's scheduled arrival to its event."""
    import random

    zmq = app.zmq
    arrivals, t = [], 0.0
    rng = random.Random(seed)
    for _ in texts:
        t += rng.expovariate(rate)
        arrivals.append(t)
    poller = zmq.Poller()
    poller.register(app.sub, zmq.POLLIN)
    poller.register(app.dealer, zmq.POLLIN)
    pending: dict[str, float] = {}
    latency, batches, failures, sent, last = [], {}, 0, 0, 0.0
    start = time.perf_counter()
    deadline = arrivals[-1] + 120
    while sent < len(texts) or pending:
        now = time.perf_counter() - start
        if now > deadline:
            failures += len(pending) + len(texts) - sent
            break
        if sent < len(texts) and now >= arrivals[sent]:
            mid = f"stream-{seed}-{sent}-{time.monotonic_ns()}"
            app.dealer.send(_request(mid, texts[sent]))
            pending[mid] = arrivals[sent]
            sent += 1
            continue
        wait_ms = (arrivals[sent] - now) * 1000 if sent < len(texts) else 1000
        for sock, _ in poller.poll(max(0.0, wait_ms)):
            if sock is app.dealer:
                app.dealer.recv_multipart()
                continue
            event = json.loads(app.sub.recv())
            arrived = pending.pop(event.get("taskId"), None)
            if arrived is None:
                continue
            last = time.perf_counter() - start
            latency.append((last - arrived) * 1000)
            if event.get("type") != "translation_completed":
                failures += 1
                continue
            batch = event["result"]["processingTime"]  # the events of one batch share it
            batches[batch] = batches.get(batch, 0) + 1
    sizes = list(batches.values()) or [0]
    return {**summary(latency or [0.0]), "rate_per_s": rate, "throughput_per_s": len(latency) / max(1e-9, last - arrivals[0]),
            "mean_batch": statistics.fmean(sizes), "batches": len(batches), "failures": failures}


def moderate_load(opts, tmp: Path, texts: list[str]) -> tuple[dict, bool]:
    """The `--loads` streams through one appliance, after a calibration of its capacity."""
    cache, _ = cache_switch()
    app = Appliance(tmp, opts.workers, opts.model, opts.models_dir, cache)
    rows, ok = {}, True
    try:
        app.wait_ready()
        connect_clients(app)
        service_ms = []
        for i, text in enumerate(texts[:CALIBRATION]):
            mid = f"calibrate-{i}-{time.monotonic_ns()}"
            app.dealer.send(_request(mid, text))
            event = await_event(app, mid)
            if event is None or event.get("type") != "translation_completed":
                raise RuntimeError(f"calibration message {i} got {event}")
            service_ms.append(event["result"]["processingTime"])
        capacity = opts.workers * 1000 / statistics.median(service_ms[2:])
        print(f"\nmoderate load: one message's service {statistics.median(service_ms[2:]):.1f} ms -> capacity "
              f"{capacity:.2f} messages/s; {opts.stream} messages per load, Poisson arrivals", flush=True)
        print(f"{'load':>6} {'msg/s':>6} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'thr/s':>6} {'batch':>6}")
        rest = texts[CALIBRATION:]
        for i, load in enumerate(opts.loads):
            row = stream_pass(app, rest[i * opts.stream:(i + 1) * opts.stream], load * capacity, opts.seed + i)
            ok &= row["failures"] == 0
            rows[f"{load:g}"] = {**row, "load": load, "capacity_per_s": capacity}
            print(f"{load:6.2f} {row['rate_per_s']:6.2f} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f} {row['mean_ms']:8.1f} "
                  f"{row['throughput_per_s']:6.2f} {row['mean_batch']:6.2f}", flush=True)
        while app.dealer.poll(50):
            app.dealer.recv_multipart()
        ok &= app.stop() == 0
    finally:
        app.close()
    return rows, ok


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(prog="bench/run.py chat_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--model", default="synthetic-opus-mt-base-int8")
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--no-appliance", action="store_true", help="in-process figures only")
    parser.add_argument("--loads", type=lambda v: [float(x) for x in v.split(",") if x], default=[],
                        help="fractions of one worker's capacity for Poisson streams through the appliance")
    parser.add_argument("--stream", type=int, default=100, help="messages per --loads stream")
    opts = parser.parse_args(argv)
    opts.models_dir = opts.models_dir.resolve()
    from workers.manifest import load_specs

    if opts.model not in load_specs(opts.models_dir):
        print(f"no {opts.model} in {opts.models_dir}: run `python export_models.py --synthetic opus-mt-base "
              f"--quantize int8 --models-dir {opts.models_dir}`")
        return 2
    with tempfile.TemporaryDirectory(prefix="chat-latency-") as tmp:
        return measure(opts, Path(tmp))


def measure(opts, tmp: Path) -> int:
    from workers.runtime import BatchLimits, Runtime

    # The host's packed copy of the weights, under the appliance's state directory: this process,
    # the baseline process and the appliance's worker all map the same files.
    runtime = Runtime.load(opts.models_dir, tiers={TIER: opts.model}, threads=1,
                           packed_dir=tmp / "state" / "packed-weights")
    model = runtime._models[opts.model]
    streamed = 0 if opts.no_appliance else CALIBRATION + len(opts.loads) * opts.stream
    pool = chat_messages(model, opts.messages + streamed, opts.seed)
    messages, stream_texts = pool[:opts.messages + WARMUP], [text for text, _ in pool[opts.messages + WARMUP:]]
    measured = messages[WARMUP:]
    limits = BatchLimits()
    # Output tokens per message: `ours` and `ct2-int8` are forced to the source's length; the
    # runtime (and so the appliance) decodes up to its own bound, min(model limit, 2 x ids + 10),
    # which random weights always reach (no end-of-sequence): about 3x the tokens, hence its time.
    tokens = {"forced": statistics.fmean(len(ids) for _, ids in measured),
              "runtime_bound": statistics.fmean(model.chunk(text, SOURCE, TARGET, 1, limits).budget
                                                for text, _ in measured)}
    load_before = os.getloadavg()[0]
    print(f"chat_latency: {opts.model}, {opts.messages} messages of {MIN_TOKENS}-{MAX_TOKENS} source tokens "
          f"(+{WARMUP} warm-up), one at a time, 1 thread, load average {load_before:.2f}", flush=True)
    ok, overhead = True, None
    if opts.no_appliance:
        rows = {"runtime": runtime_pass(opts, tmp, messages)}
    else:
        rows, overhead, ok = paired(opts, tmp, messages)
    loads = {}
    if stream_texts and opts.loads:
        loads, loads_ok = moderate_load(opts, tmp, stream_texts)
        ok &= loads_ok
    rows = {**ours_vs_ct2(opts, model, messages), **rows}
    runtime.close()
    out_tokens = {"ours": tokens["forced"], "ct2-int8": tokens["forced"]}
    print(f"\n{'':17} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'out tok':>8}")
    for name, row in rows.items():
        row["output_tokens_mean"] = out_tokens.get(name, tokens["runtime_bound"])
        print(f"{name:17} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {row['mean_ms']:8.2f} "
              f"{row['output_tokens_mean']:8.1f}")
    ratios = {"ours_vs_ct2_int8_p50": rows["ours"]["p50_ms"] / rows["ct2-int8"]["p50_ms"],
              "ours_vs_ct2_int8_p99": rows["ours"]["p99_ms"] / rows["ct2-int8"]["p99_ms"]}
    print(f"ours / ct2-int8 at p50: {ratios['ours_vs_ct2_int8_p50']:.2f} (p99 {ratios['ours_vs_ct2_int8_p99']:.2f};"
          " lower is faster)")
    if overhead is not None:
        app = rows["appliance"]
        ratios["appliance_minus_runtime_p50_ms"] = app["p50_ms"] - rows["runtime"]["p50_ms"]
        ratios["appliance_vs_runtime_p50"] = app["p50_ms"] / rows["runtime"]["p50_ms"]
        ratios["appliance_overhead_p50_ms"] = overhead["event_minus_worker"]["p50_ms"]
        ratios["appliance_overhead_p99_ms"] = overhead["event_minus_worker"]["p99_ms"]
        print(f"appliance overhead (event time - the worker's runtime.translate time, per message): "
              f"p50 {ratios['appliance_overhead_p50_ms']:.2f} ms, p99 {ratios['appliance_overhead_p99_ms']:.2f} ms")
        floor_row = overhead["transport_floor"]
        ratios["transport_floor_p50_ms"], ratios["transport_floor_p99_ms"] = floor_row["p50_ms"], floor_row["p99_ms"]
        ratios["appliance_overhead_vs_floor_p50"] = ratios["appliance_overhead_p50_ms"] / floor_row["p50_ms"]
        print(f"transport floor (the same hops, no work: bench/relay_floor.py): p50 {floor_row['p50_ms']:.2f} ms, "
              f"p99 {floor_row['p99_ms']:.2f} ms; appliance overhead / floor at p50: "
              f"{ratios['appliance_overhead_vs_floor_p50']:.2f}x")
        print(f"appliance p50 - runtime p50 (taking turns): {ratios['appliance_minus_runtime_p50_ms']:+.2f} ms "
              f"({ratios['appliance_vs_runtime_p50']:.3f}x); per-message difference p50 "
              f"{overhead['appliance_minus_runtime_paired']['p50_ms']:+.2f} ms")
        print(f"same text as in-process {app['same_text_as_runtime']}/{app['of']}; truncated (length bound) "
              f"{overhead['truncated_share']:.0%}; failures {app['failures']}, exit {app['exit_code']}")
    report = {"bench": "chat_latency", "options": {k: str(v) for k, v in vars(opts).items()},
              "messages_tokens_mean": tokens["forced"], "output_tokens": tokens,
              "results": rows, "overhead": overhead, "ratios": ratios, "moderate_load": loads,
              "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0]}
    out = write_results("chat_latency", report)
    print(f"load average {load_before:.2f} -> {report['loadavg_after']:.2f}; written {out.relative_to(REPO)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
