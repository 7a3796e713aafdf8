"""Runs the benchmarks in bench/: all of them, or one by name with its own options.

    python bench/run.py                                   # every registered benchmark, defaults
    python bench/run.py engine --sentences 128 --reps 3   # one, the rest of the line is its argv
    python bench/run.py --list

A benchmark is a module of the bench package that takes its own options and exits non-zero on
failure; each runs as `python -m bench.<module>` in a fresh interpreter, from the repository root.
This file imports nothing of the package, so it runs as a script (`python bench/run.py`) or as a
module (`python -m bench.run`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

BENCHMARKS = {
    "cache_micro": "shared-memory cache levels against a dict and a Manager dict",
    "engine": "the engine report: ours int8 vs CTranslate2 and HF (greedy, beam 4, NLLB shape), chat latency, memory",
    "appliance_e2e": "whole appliance over ZeroMQ (N workers) vs the same runtime in one process, same run",
    "cache_e2e": "cache-hit requests through 5555/5556 against a bare pyzmq ROUTER echo server",
    "langid": "language-ID libraries on short chat messages against py3langid, the appliance's pick",
    "soak": "mixed traffic for a set time, a worker killed every few minutes: lost/duplicated events, RSS over time",
    "apertium_bench": "segments/s of the Apertium engine in one worker, against an apertium process per segment",
    "seed": "the original design's gateway/translator scenarios, timed to each event, vs its claims; charts",
    "chat_latency": "single short messages one at a time: p50/p99 ms, ours vs CTranslate2 in-process, appliance overhead",
    "memory": "export sizes on disk; per-worker RSS, PSS and private memory with 1 and 2 workers",
    "hostile_text": "adversarial texts: ms per pattern at 1k/5k/20k chars; ping p50 under 150 hostile detect requests",
    "inflight_memory": "supervisor RSS with the in-flight table filled by 5,000-emoji texts (a stalled worker)",
    "meeshy_pattern": "NLLB-600M shape, chat messages x 5 targets: appliance (2 workers) vs HF generate batched as Meeshy's translator, events/s",
    "confidence": "built-in models' confidence on in-domain vs out-of-domain text; what the vocabulary gate and floor let through",
}
# Benchmarks whose module is not bench.<name>: appliance/ has a langid.py
# already, so the benchmark's file says what it does.
MODULES = {"langid": "langid_compare"}


def run_one(name: str, args: list[str]) -> int:
    # A fresh interpreter per benchmark: one benchmark's imports, thread pools and memory cannot
    # skew the next. From the repository root, so `bench`, `appliance`, `workers`... import, in
    # the benchmark and in the helper processes it spawns.
    module = f"bench.{MODULES.get(name, name)}"
    return subprocess.call([sys.executable, "-m", module, *args], cwd=REPO)


def main() -> int:
    args = sys.argv[1:]
    if args and args[0] in ("-h", "--help", "--list"):
        print(__doc__.strip().split("\n\n")[0], "\n")
        for name, what in BENCHMARKS.items():
            print(f"  {name:12} {what}")
        return 0
    if args and not args[0].startswith("-"):
        name, rest = args[0], args[1:]
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        return run_one(name, rest)
    if args:
        print("options belong to one benchmark: python bench/run.py NAME [options]", file=sys.stderr)
        return 2
    failed = []
    for name in BENCHMARKS:
        print(f"=== {name}", flush=True)
        if run_one(name, []) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
