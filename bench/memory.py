"""Memory: each export's size on disk, and what each worker holds serving one model (1 and 2 workers).

    python bench/run.py memory [--model synthetic-opus-mt-base-int8] [--models-dir models]
                               [--workers 1,2] [--sentences 64]

Disk: every model directory of the manifest, its files summed, and the served model's files one by
one (which graphs carry which share).

Per worker: the appliance is started like bench/appliance_e2e.py does (a temp config, the
translation cache off, `--model` as tier basic) with each worker count in turn. Each worker's
RSS, PSS (its share of pages mapped by several processes) and private memory (USS: pages only it
maps) come from psutil's `memory_full_info` (/proc/<pid>/smaps_rollup), once when every worker is
ready, once right after `--sentences` sentences per worker have been translated through the
appliance (pipelined, so the workers batch them: the batches' working set is still held), and once
3 s later (`idle`: a worker idle for a heartbeat interval gives that working set back). The host's cost of a model is the sum of PSS over
workers; the table sets it against the model's bytes on disk and the goal of issue 9: the weights
once + 150 MB per worker, "the weights" being the int8 size of the checkpoint's parameters (one
byte each, counted from `<models-dir>/.build/<model>/model.safetensors`; the export on disk when
there is no checkpoint). The supervisor's own figures are shown for reference.

Writes bench/results/memory-<timestamp>.json and latest-memory.json; exits 1 when the appliance
fails to start, loses a request, or does not exit 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.appliance_e2e import Appliance, cache_switch, connect_clients, drive, write_results
from bench.harness import REPO

MB = 1024 * 1024
PER_WORKER_GOAL_MB = 150
IDLE_S = 3.0  # > the workers' heartbeat interval (1 s) after which an idle worker releases memory


def disk_usage(models_dir: Path) -> dict:
    manifest = json.loads((models_dir / "manifest.json").read_text())
    sizes = {}
    for name, entry in manifest.get("models", {}).items():
        directory = models_dir / entry.get("path", name)
        if directory.is_dir():
            files = {p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.is_file()}
            sizes[name] = {"total_mb": sum(files.values()) / MB, "files_mb": {k: v / MB for k, v in files.items()}}
    return sizes


def int8_weights_mb(models_dir: Path, model: str) -> float | None:
    """The checkpoint's parameter count as int8 bytes, in MB (safetensors header: 8-byte length, JSON)."""
    import math
    import struct

    path = models_dir / ".build" / model.removesuffix("-int8") / "model.safetensors"
    try:
        with open(path, "rb") as f:
            header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    except (OSError, ValueError, struct.error):
        return None
    return sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__") / MB


def memory_of(pid: int) -> dict:
    import psutil

    info = psutil.Process(pid).memory_full_info()
    return {"rss_mb": info.rss / MB, "pss_mb": info.pss / MB, "private_mb": info.uss / MB}


def snapshot(app: Appliance) -> dict:
    stats = app.request({"type": "stats"}, timeout=5.0) or {}
    workers = {str(s["slot"]): memory_of(s["pid"]) for s in stats.get("workers", {}).get("slots", []) if s.get("pid")}
    return {"supervisor": memory_of(app.proc.pid), "workers": workers,
            "workers_pss_sum_mb": sum(w["pss_mb"] for w in workers.values())}


def measure(opts, workers: int, texts: list[str]) -> tuple[dict, bool]:
    cache, _ = cache_switch()
    with tempfile.TemporaryDirectory(prefix="memory-") as tmp:
        app = Appliance(Path(tmp), workers, opts.model, opts.models_dir, cache)
        try:
            app.wait_ready()
            at_load = snapshot(app)
            connect_clients(app)
            run = drive(app, texts, window=64, prefix=f"mem{workers}")
            after = snapshot(app)
            time.sleep(IDLE_S)  # a worker idle for a heartbeat interval gives its working set back
            idle = snapshot(app)
            code = app.stop()
        finally:
            app.close()
    ok = run["completed"] == len(texts) and run["missing_events"] == 0 and code == 0
    return {"workers": workers, "at_load": at_load, "after_traffic": after, "idle": idle, "completed": run["completed"],
            "sent": len(texts), "exit_code": code}, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="synthetic-opus-mt-base-int8")
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--workers", default="1,2", help="worker counts, one appliance each")
    parser.add_argument("--sentences", type=int, default=64, help="translated per worker before the second reading")
    opts = parser.parse_args(argv)
    opts.models_dir = opts.models_dir.resolve()
    counts = [int(w) for w in opts.workers.split(",") if w.strip()]
    disk = disk_usage(opts.models_dir)
    if opts.model not in disk:
        print(f"no {opts.model} in {opts.models_dir}: run `python export_models.py --synthetic opus-mt-base "
              f"--quantize int8 --models-dir {opts.models_dir}`")
        return 2
    print(f"memory: {opts.model}, workers {counts}, load average {os.getloadavg()[0]:.2f}\n\ndisk:")
    for name, row in disk.items():
        print(f"  {name:36} {row['total_mb']:9.1f} MB")
    for file, size in disk[opts.model]["files_mb"].items():
        if size >= 1:
            print(f"    {file:34} {size:9.1f} MB")
    from modelbuild.corpus import generate_corpus

    rows, ok = [], True
    for n in counts:
        texts = [r["en"] for r in generate_corpus(opts.sentences * n, seed=31 + n)]
        row, row_ok = measure(opts, n, texts)
        rows.append(row)
        ok = ok and row_ok
    on_disk = disk[opts.model]["total_mb"]
    weights = int8_weights_mb(opts.models_dir, opts.model) or on_disk
    print(f"\nint8 weights (1 byte per checkpoint parameter): {weights:.1f} MB; the export on disk is "
          f"{on_disk / weights:.2f}x that (goal: <= 1.2x)")
    print(f"\n{'workers':>7} {'when':14} {'worker':>6} {'RSS MB':>8} {'PSS MB':>8} {'private MB':>10}")
    for row in rows:
        for when in ("at_load", "after_traffic", "idle"):
            snap = row[when]
            for slot, m in snap["workers"].items():
                print(f"{row['workers']:7} {when:14} {slot:>6} {m['rss_mb']:8.0f} {m['pss_mb']:8.0f} {m['private_mb']:10.0f}")
            s = snap["supervisor"]
            print(f"{row['workers']:7} {when:14} {'sup.':>6} {s['rss_mb']:8.0f} {s['pss_mb']:8.0f} {s['private_mb']:10.0f}")
            goal = weights + PER_WORKER_GOAL_MB * row["workers"]
            print(f"{'':7} {'':14} sum of worker PSS {snap['workers_pss_sum_mb']:.0f} MB = "
                  f"{snap['workers_pss_sum_mb'] / on_disk:.2f}x the export on disk ({on_disk:.0f} MB); "
                  f"goal weights + {PER_WORKER_GOAL_MB} MB/worker = {goal:.0f} MB ({snap['workers_pss_sum_mb'] / goal:.2f}x)")
    if len(rows) >= 2:
        one, last = rows[0]["after_traffic"]["workers_pss_sum_mb"], rows[-1]["after_traffic"]["workers_pss_sum_mb"]
        print(f"after traffic, {rows[-1]['workers']} workers hold {last / one:.2f}x what {rows[0]['workers']} "
              f"worker(s) hold (sum of PSS; 1.00 would be fully shared weights)")
    report = {"bench": "memory", "options": {k: str(v) for k, v in vars(opts).items()}, "disk": disk, "runs": rows,
              "goal_per_worker_mb": PER_WORKER_GOAL_MB,
              "int8_weights_mb": weights}
    out = write_results("memory", report)
    print(f"written {out.relative_to(REPO)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
