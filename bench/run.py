"""Runs the benchmarks in bench/: all of them, or one by name with its own options.

    python bench/run.py                                   # every registered benchmark, defaults
    python bench/run.py engine --sentences 128 --reps 3   # one, the rest of the line is its argv
    python bench/run.py --list

A benchmark is a module in bench/ with a `main()` that reads `sys.argv` (or takes an argv list)
and may return an exit status. Run alone, it runs in this process; run as part of "all", each gets
a fresh interpreter, so one benchmark's imports, thread pools and memory cannot skew the next.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

BENCHMARKS = {
    "cache_micro": "shared-memory cache levels against a dict and a Manager dict",
    "engine": "this runtime (fp32, int8) against HF PyTorch, optimum ORT and CTranslate2",
    "appliance_e2e": "whole appliance over ZeroMQ (N workers) vs the same runtime in one process, same run",
    "cache_e2e": "cache-hit requests through 5555/5556 against a bare pyzmq ROUTER echo server",
}


def run_one(name: str, args: list[str]) -> int:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    sys.argv = [str(BENCH / f"{name}.py"), *args]
    status = module.main()
    return status if isinstance(status, int) else 0


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
        if subprocess.call([sys.executable, str(Path(__file__).resolve()), name], cwd=REPO) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
