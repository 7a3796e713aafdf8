"""bench/seed.py end to end on a tiny workload with the fake runtime: it starts the appliance,
runs every kind of scenario and writes its JSON report. Only the report's shape is checked, never
a speed (timings belong in bench/)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

ROW_KEYS = {"level", "scenario", "requests", "concurrency", "workers", "targets", "wall_s", "succeeded",
            "success_rate", "requests_per_s", "latency_ms", "cache_hit_rate", "client_cache_hits",
            "appliance_cache_hits", "claim_requests_per_s", "vs_claim"}


@pytest.mark.timeout(240)
def test_seed_writes_its_report(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.seed", "--fake", "--workers", "1", "--gateway", "6/2", "--translator", "8/4",
         "--multi", "3/2", "--meeshy", "3/3", "--meeshy-languages", "fr,es,de", "--results-dir", str(out), "--timeout", "60"],
        cwd=REPO, capture_output=True, text=True, timeout=220,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "latest-seed.json").read_text())
    assert {"benchmark", "timestamp", "command", "model", "workers", "claims", "results", "appliances", "charts",
            "charts_note", "problems", "repeat_rate"} <= doc.keys()
    assert doc["benchmark"] == "seed" and doc["workers"] == [1] and doc["problems"] == []
    assert doc["claims"] == {"gateway_requests_per_s": 45.0, "translator_requests_per_s": 250.0}
    rows = {(r["level"], r["scenario"]): r for r in doc["results"]}
    assert set(rows) == {("gateway", "6/2"), ("translator", "8/4"), ("multi", "3/2"), ("meeshy", "3/3")}
    for row in rows.values():
        assert ROW_KEYS <= row.keys()
        assert {"mean", "p50", "p99"} <= row["latency_ms"].keys()
        assert row["succeeded"] == row["requests"]
    assert len(rows[("multi", "3/2")]["targets"]) > 1
    meeshy = rows[("meeshy", "3/3")]
    assert meeshy["targets"] == ["fr", "es", "de"] and meeshy["repeats_in_mix"] == 0  # fresh messages only
    assert meeshy["client_cache_hits"] == 0 and "translations_per_s" in meeshy
    assert doc["appliances"][0]["exit_code_after_sigterm"] == 0
    if importlib.util.find_spec("matplotlib") is None:  # an optional extra: the report says why
        assert doc["charts"] == {} and doc["charts_note"]
    else:
        assert set(doc["charts"]) == {"throughput_vs_concurrency", "latency_vs_concurrency", "throughput_vs_workers"}
        for path in doc["charts"].values():
            assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
