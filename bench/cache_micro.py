"""Micro-benchmark of the cache levels, against baselines measured in the same run.

    python -m bench.cache_micro [--entries 10000] [--ops 50000] [--procs 2]

Measures, for the shared-memory table: get (hit, decoded to `CachedTranslation`), get (miss),
put; and the aggregate hit rate of `--procs` processes reading at once (the lock is shared).
Baselines: a plain dict lookup + msgspec decode in the same process (the floor: no sharing at
all), and a `multiprocessing.Manager` dict (the obvious way to share a dict between processes).
Also the SQLite level's get (a memory miss served from disk). Prints a table and writes JSON to
bench/results/. Ratios, not absolute numbers, are what compare across machines.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ipc.cache_key import CachedTranslation, cache_key, decode_value, encode_value
from ipc.persistent_cache import SqliteLevel
from ipc.shm_cache import ShmCache

RESULTS = Path(__file__).resolve().parent / "results"


def keys_and_values(n: int) -> tuple[list[bytes], list[bytes]]:
    keys = [cache_key("opus-mt-en-fr", "r1", "en", "fr", f"chat message number {i}")
            for i in range(n)]
    values = [encode_value(CachedTranslation(
        f"message de discussion numéro {i}, traduit", "en", 0.87, "opus-mt-en-fr", "basic",
        time.time())) for i in range(n)]
    return keys, values


def timed(fn, args_list) -> dict:
    """Per-call latencies (µs) and the overall rate of calling fn on each args in turn."""
    lat = []
    clock = time.perf_counter_ns
    start = clock()
    for args in args_list:
        t0 = clock()
        fn(*args)
        lat.append(clock() - t0)
    total = (clock() - start) / 1e9
    lat.sort()
    return {
        "ops_per_s": len(args_list) / total,
        "p50_us": lat[len(lat) // 2] / 1000,
        "p99_us": lat[int(len(lat) * 0.99)] / 1000,
        "mean_us": statistics.fmean(lat) / 1000,
    }


def _reader(name: str, keys: list[bytes], seconds: float, out) -> None:
    cache = ShmCache.attach(name)
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for k in keys[:1000]:
            cache.get(k)
        n += 1000
    out.put(n / seconds)
    cache.close()


def _manager_reader(d, keys: list[bytes], seconds: float, out) -> None:
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for k in keys[:200]:
            decode_value(d[k])
        n += 200
    out.put(n / seconds)


def aggregate(ctx, target, args, procs: int, seconds: float) -> float:
    out = ctx.Queue()
    ps = [ctx.Process(target=target, args=(*args, seconds, out)) for _ in range(procs)]
    for p in ps:
        p.start()
    rates = [out.get(timeout=seconds + 60) for _ in ps]
    for p in ps:
        p.join()
    return sum(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--ops", type=int, default=50_000)
    ap.add_argument("--procs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seconds", type=float, default=2.0, help="per multi-process measurement")
    opts = ap.parse_args()

    keys, values = keys_and_values(opts.entries)
    miss_keys = [cache_key("x", "r", "en", "fr", f"absent {i}") for i in range(opts.entries)]
    idx = [i % opts.entries for i in range(opts.ops)]
    name = f"meeshy-bench-{os.getpid()}"
    table = ShmCache.create(name, entries=opts.entries, max_bytes=opts.entries * 256,
                            replace=True)
    results: dict[str, dict] = {}
    ctx = mp.get_context("spawn")
    try:
        results["shm put"] = timed(table.put_bytes, [(keys[i], values[i]) for i in idx])
        results["shm get hit"] = timed(table.get, [(keys[i],) for i in idx])
        results["shm get miss"] = timed(table.get, [(miss_keys[i],) for i in idx])

        plain = dict(zip(keys, values, strict=True))
        results["dict get + decode"] = timed(
            lambda k: decode_value(plain[k]), [(keys[i],) for i in idx])

        with ctx.Manager() as manager:
            shared = manager.dict(plain)
            few = idx[: max(1000, opts.ops // 10)]  # a proxy round trip is slow: fewer calls
            results["Manager dict get + decode"] = timed(
                lambda k: decode_value(shared[k]), [(keys[i],) for i in few])
            results["Manager dict put"] = timed(
                shared.__setitem__, [(keys[i], values[i]) for i in few])
            mgr_rate = aggregate(ctx, _manager_reader, (shared, keys), opts.procs, opts.seconds)

        shm_rate = aggregate(ctx, _reader, (name, keys), opts.procs, opts.seconds)
        results[f"shm get hit, {opts.procs} procs"] = {"ops_per_s": shm_rate}
        results[f"Manager get, {opts.procs} procs"] = {"ops_per_s": mgr_rate}

        with tempfile.TemporaryDirectory() as tmp:
            level = SqliteLevel(Path(tmp) / "cache.sqlite")
            level.put_many([(keys[i], values[i], time.time() + 3600)
                            for i in range(opts.entries)])
            results["sqlite level get"] = timed(level.get, [(keys[i],) for i in idx[:20_000]])
            level.close()
    finally:
        table.unlink()
        table.close()

    base = results["dict get + decode"]["ops_per_s"]
    mgr = results["Manager dict get + decode"]["ops_per_s"]
    print(f"{'measure':34} {'ops/s':>12} {'p50 µs':>8} {'p99 µs':>8} {'÷ dict':>8}"
          f" {'× Manager':>10}")
    for label, r in results.items():
        p50 = f"{r['p50_us']:.2f}" if "p50_us" in r else "-"
        p99 = f"{r['p99_us']:.2f}" if "p99_us" in r else "-"
        r["vs_dict"] = r["ops_per_s"] / base
        r["vs_manager"] = r["ops_per_s"] / mgr
        print(f"{label:34} {r['ops_per_s']:12,.0f} {p50:>8} {p99:>8} "
              f"{r['vs_dict']:8.3f} {r['vs_manager']:10.1f}")

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"cache_micro-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({
        "bench": "cache_micro",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "options": vars(opts),
        "results": results,
    }, indent=2))
    print(f"\nwritten {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


if __name__ == "__main__":
    main()
