"""Chat latency: single short messages arriving one at a time, in-process and through the appliance.

    python bench/run.py chat_latency [--messages 200] [--model synthetic-opus-mt-base-int8]
                                     [--models-dir models] [--workers 1] [--no-appliance]

A chat user sends one message of 5-15 source tokens and waits for it; nothing else is in the
batch. Every message is English from `modelbuild.corpus.generate_corpus` (seed `--seed`), kept when
its framed source ids number 5 to 15, each sent once. Per message, in milliseconds, p50 and p99:

* `ours`: `workers.runtime.Model.generate` on the one message, greedy, the output forced to as many
  tokens as the source has (min = max: random weights rarely emit end-of-sequence);
* `ct2-int8`: CTranslate2 on the same ids (as pieces), int8, the same forced length; converted
  from the model's checkpoint like the engine benchmark does;
* `runtime`: `workers.runtime.Runtime.translate` on one `TranslationJob`: the worker's own path
  (tokenize, segment, decode with the runtime's length bound, detokenize), the baseline of
* `appliance`: `python -m appliance serve` (a temp config like bench/appliance_e2e.py: cache off,
  `--workers` workers), one DEALER sending a message and waiting for its `translation_completed`
  on the SUB socket before sending the next: time from send to event.

Order: `runtime`, the appliance, `runtime` again (its figures are both passes together), then
`ours` and `ct2-int8` taking turns message by message (drift on a shared machine hits both
alike), all in this process with one thread. CTranslate2 is loaded last: with it loaded (and
taking turns), the same `runtime` pass measured 150-190 ms instead of 118-125 ms, slower than the
appliance's worker doing the same work, so it would hide the appliance's overhead.
Ratios: ours p50 / CTranslate2 p50, and appliance p50 - runtime p50 (the appliance's overhead).
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from appliance_e2e import Appliance, _request, cache_switch, connect_clients, write_results  # noqa: E402  (bench/ is sys.path[0])

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

        from engine import convert_ct2, pieces_by_id

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


def runtime_pass(runtime, messages) -> tuple[list[float], list[str]]:
    """`Runtime.translate` on one job at a time: the worker's own path, in this process."""
    from workers.jobs import Translation, TranslationJob

    times, texts = [], []
    for i, (text, _) in enumerate(messages):
        start = time.perf_counter()
        outcome = runtime.translate([TranslationJob(text, TARGET, source_language=SOURCE, tier=TIER)])[0]
        elapsed = (time.perf_counter() - start) * 1000
        if not isinstance(outcome, Translation):
            raise RuntimeError(f"runtime error: {outcome}")
        texts.append(outcome.text)
        if i >= WARMUP:
            times.append(elapsed)
    return times, texts


def through_appliance(opts, messages) -> tuple[dict, bool]:
    cache, cache_note = cache_switch()
    with tempfile.TemporaryDirectory(prefix="chat-latency-") as tmp:
        app = Appliance(Path(tmp), opts.workers, opts.model, opts.models_dir, cache)
        try:
            app.wait_ready()
            connect_clients(app)
            times, texts, failures = [], [], 0
            for i, (text, _) in enumerate(messages):
                mid = f"chat-{i}-{time.monotonic_ns()}"
                start = time.perf_counter()
                app.dealer.send(_request(mid, text))
                elapsed = None
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    if app.sub.poll(100):
                        event = json.loads(app.sub.recv())
                        if event.get("taskId") == mid:
                            elapsed = (time.perf_counter() - start) * 1000
                            failures += event.get("type") != "translation_completed"
                            texts.append(event.get("result", {}).get("translatedText"))
                            break
                    while app.dealer.poll(0):
                        app.dealer.recv_multipart()  # the ack; the event is what the user waits for
                if elapsed is None:
                    failures += 1
                    texts.append(None)
                elif i >= WARMUP:
                    times.append(elapsed)
            while app.dealer.poll(50):
                app.dealer.recv_multipart()
            code = app.stop()
        finally:
            app.close()
    row = {**summary(times), "failures": failures, "exit_code": code, "workers": opts.workers, "cache": cache_note}
    return row, texts, failures == 0 and code == 0


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(prog="bench/run.py chat_latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--model", default="synthetic-opus-mt-base-int8")
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--no-appliance", action="store_true", help="in-process figures only")
    opts = parser.parse_args(argv)
    opts.models_dir = opts.models_dir.resolve()
    from workers.manifest import load_specs
    from workers.runtime import Runtime

    if opts.model not in load_specs(opts.models_dir):
        print(f"no {opts.model} in {opts.models_dir}: run `python export_models.py --synthetic opus-mt-base "
              f"--quantize int8 --models-dir {opts.models_dir}`")
        return 2
    runtime = Runtime.load(opts.models_dir, tiers={TIER: opts.model}, threads=1)
    model = runtime._models[opts.model]
    messages = chat_messages(model, opts.messages, opts.seed)
    load_before = os.getloadavg()[0]
    print(f"chat_latency: {opts.model}, {opts.messages} messages of {MIN_TOKENS}-{MAX_TOKENS} source tokens "
          f"(+{WARMUP} warm-up), one at a time, 1 thread, load average {load_before:.2f}", flush=True)
    rows = {}
    runtime_ms, runtime_texts = runtime_pass(runtime, messages)
    ok = True
    if not opts.no_appliance:
        rows["appliance"], appliance_texts, ok = through_appliance(opts, messages)
        # Same text as in-process: the appliance did the same work (one message alone in its batch).
        rows["appliance"]["same_text_as_runtime"] = sum(a == b for a, b in zip(appliance_texts, runtime_texts))
        runtime_ms += runtime_pass(runtime, messages)[0]
    rows["runtime"] = summary(runtime_ms)
    rows = {**ours_vs_ct2(opts, model, messages), **rows}
    runtime.close()
    print(f"\n{'':12} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, row in rows.items():
        print(f"{name:12} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {row['mean_ms']:8.2f}")
    ratios = {"ours_vs_ct2_int8_p50": rows["ours"]["p50_ms"] / rows["ct2-int8"]["p50_ms"],
              "ours_vs_ct2_int8_p99": rows["ours"]["p99_ms"] / rows["ct2-int8"]["p99_ms"]}
    print(f"ours / ct2-int8 at p50: {ratios['ours_vs_ct2_int8_p50']:.2f} (p99 {ratios['ours_vs_ct2_int8_p99']:.2f};"
          " lower is faster)")
    if "appliance" in rows:
        ratios["appliance_overhead_p50_ms"] = rows["appliance"]["p50_ms"] - rows["runtime"]["p50_ms"]
        ratios["appliance_vs_runtime_p50"] = rows["appliance"]["p50_ms"] / rows["runtime"]["p50_ms"]
        print(f"appliance over in-process runtime at p50: {ratios['appliance_overhead_p50_ms']:+.2f} ms "
              f"({ratios['appliance_vs_runtime_p50']:.2f}x); same text as in-process "
              f"{rows['appliance']['same_text_as_runtime']}/{len(messages)}; failures {rows['appliance']['failures']}, "
              f"exit {rows['appliance']['exit_code']}")
    report = {"bench": "chat_latency", "options": {k: str(v) for k, v in vars(opts).items()},
              "messages_tokens_mean": statistics.fmean(len(ids) for _, ids in messages[WARMUP:]),
              "results": rows, "ratios": ratios, "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0]}
    out = write_results("chat_latency", report)
    print(f"load average {load_before:.2f} -> {report['loadavg_after']:.2f}; written {out.relative_to(REPO)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
