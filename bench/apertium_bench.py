"""Segments per second of the Apertium engine in one worker, against running `apertium` per segment.

    python -m bench.apertium_bench [--reps 3] [--repeat 8] [--modes eng-spa,fr-es]

Workload: the hand-written chat messages of bench/data/langid_chat.tsv in the mode's source
language (en for eng-spa, es for spa-eng and es-fr, fr for fr-es), segmented as the runtime
segments them (`workers.segmenter`); a pass is every message once (one worker batch: the runtime
deduplicates within a call, not across), timed `--repeat` passes in a row. One process, one core:
what one worker does. Per mode, measured in the same run:

| row               | what                                                                          |
|-------------------|-------------------------------------------------------------------------------|
| `engine`          | `ApertiumModel.run`: every segment through the worker's long-lived null-flush chain |
| `runtime`         | `Runtime.translate`, one job per message, rule-based, no cache: segmentation, routing, reassembly too |
| `apertium-batch`  | one `apertium <mode>` process per pass over its segments, one per line (Apertium's own ceiling) |
| `apertium-per-segment` | one `apertium <mode>` process per segment (the baseline: a naive integration), on a sample |

The median of `--reps` timed passes (after one warm-up) gives segments/s; ratios are against
`apertium-per-segment`. Writes JSON to bench/results/ (`latest-apertium.json`). Exits 1 when
Apertium is not installed, naming the Debian packages.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "bench" / "data" / "langid_chat.tsv"

SOURCE = {"eng-spa": "en", "spa-eng": "es", "fr-es": "fr", "es-fr": "es"}
CODES = {"eng-spa": ("en", "es"), "spa-eng": ("es", "en"), "fr-es": ("fr", "es"), "es-fr": ("es", "fr")}
PER_SEGMENT_SAMPLE = 40  # a process per segment is slow: time a sample of this many


def messages(lang: str) -> list[str]:
    rows = [line.split("\t", 1) for line in DATA.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return [text for code, text in rows if code == lang]


def timed(fn, reps: int) -> list[float]:
    fn()  # warm-up: the chain starts, caches fill
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def bench_mode(mode: str, models_dir: Path, reps: int, repeat: int) -> dict:
    from ipc.tiers import RULE_BASED
    from workers.jobs import TranslationJob
    from workers.manifest import load_specs
    from workers.runtime import Runtime
    from workers.segmenter import segment

    source, target = CODES[mode]
    texts = messages(SOURCE[mode])
    segments = [p.text for text in texts for p in segment(text) if p.translatable]
    total = len(segments) * repeat
    spec = next(s for s in load_specs(models_dir).values() if s.family == "apertium" and s.mode == mode)
    runtime = Runtime.load(models_dir, tiers={"fallback": [spec.name]})
    engine = runtime._models[spec.name]
    rows: dict[str, dict] = {}
    try:
        def run_engine():
            for _ in range(repeat):
                chunks = [engine.chunk(t, source, target, 1) for t in segments]
                engine.run(source, target, 1, chunks)
                failed = [c.failure for c in chunks if c.failure]
                if failed:
                    raise RuntimeError(failed[0])

        jobs = [TranslationJob(t, target, source, RULE_BASED) for t in texts]

        def run_runtime():
            for _ in range(repeat):
                bad = [o for o in runtime.translate(jobs) if not hasattr(o, "text")]
                if bad:
                    raise RuntimeError(bad[0])

        rows["engine"] = {"seconds": timed(run_engine, reps), "segments": total}
        rows["runtime"] = {"seconds": timed(run_runtime, reps), "segments": total}
        rows["engine"]["restarts"] = engine.pipeline.starts - 1
    finally:
        runtime.close()
    batch_input = "\n".join(segments) + "\n"

    def run_batch():
        for _ in range(repeat):
            subprocess.run(["apertium", "-u", mode], input=batch_input, capture_output=True, text=True, check=True)

    sample = segments[:PER_SEGMENT_SAMPLE]

    def run_per_segment():
        for text in sample:
            subprocess.run(["apertium", "-u", mode], input=text, capture_output=True, text=True, check=True)

    rows["apertium-batch"] = {"seconds": timed(run_batch, reps), "segments": total}
    rows["apertium-per-segment"] = {"seconds": timed(run_per_segment, max(1, reps)), "segments": len(sample)}
    for row in rows.values():
        row["median_s"] = statistics.median(row["seconds"])
        row["segments_per_s"] = round(row["segments"] / row["median_s"], 1)
    base = rows["apertium-per-segment"]["segments_per_s"]
    for row in rows.values():
        row["vs_per_segment"] = round(row["segments_per_s"] / base, 2)
    return rows


def table(results: dict[str, dict]) -> str:
    lines = ["| mode | row | segments | segments/s | vs apertium per segment |", "|---|---|---|---|---|"]
    for mode, rows in results.items():
        for name, row in rows.items():
            lines.append(f"| {mode} | {name} | {row['segments']} | {row['segments_per_s']:.0f} "
                         f"| {row['vs_per_segment']:.1f}x |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=8, help="times the chat messages are repeated")
    parser.add_argument("--modes", default=",".join(SOURCE), help="comma-separated Apertium modes")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/")
    args = parser.parse_args()

    import shutil
    import tempfile

    from workers.apertium import DEBIAN_PACKAGES, install_hint, installed_modes

    modes = [m for m in args.modes.split(",") if m]
    missing = [m for m in modes if m not in installed_modes()]
    if missing or shutil.which("apertium") is None:
        print(f"Apertium modes {missing or modes} are not installed: {install_hint(DEBIAN_PACKAGES)}", file=sys.stderr)
        return 1
    from modelbuild.apertium_modes import export_apertium

    with tempfile.TemporaryDirectory() as tmp:
        models_dir = Path(tmp)
        export_apertium(models_dir, modes)
        results = {mode: bench_mode(mode, models_dir, args.reps, args.repeat) for mode in modes}
    print(table(results))
    if not args.no_json:
        from bench.appliance_e2e import write_results

        doc = {"bench": "apertium", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": platform.machine(),
               "python": platform.python_version(), "reps": args.reps, "repeat": args.repeat, "results": results}
        print(f"wrote {write_results('apertium', doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
