"""bench/soak.py --hostile end to end, briefly: references from a quiet appliance, honest native,
compat and HTTP clients beside every attack of bench/attacks.py once, and the JSON report. The
report's shape is checked, not its verdict: on a build with the attacks still open it exits 1 with
its findings, which is its job (timings and figures belong in bench/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import attacks

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_the_hostile_soak_runs_every_attack_and_checks_honest_results(tmp_path):
    if not (REPO / "models" / "manifest.json").exists():
        pytest.skip("needs the built-in models and Apertium (make system-deps models)")
    out = tmp_path / "hostile.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--hostile", "--duration", "9", "--attack-every", "1",
         "--rate", "3", "--honest-texts", "24", "--kill-every", "0", "--sample-every", "3", "--drain", "5",
         "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=220,
    )
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["attacks_launched"]) == {a.__name__ for a in attacks.ATTACKS}
    honest = report["honest"]
    assert set(honest["sent"]) == {"native", "compat", "http"}
    assert honest["accepted_tasks"] > 0 and "lost_targets" in honest and "duplicated_events" in honest
    assert report["supervisor_rss_mib"]["max"] > 0 and report["ping_ms"]["n"] > 0
    assert (proc.returncode == 1) == bool(report["problems"])
