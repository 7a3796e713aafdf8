"""systemd/meeshy-appliance.service: the directives the design relies on, and `systemd-analyze verify`."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.appliance.conftest import REPO

pytestmark = pytest.mark.timeout(120)
UNIT = REPO / "systemd" / "meeshy-appliance.service"


def directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_unit_has_notify_watchdog_restart_and_hardening():
    d = directives()
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert int(d["WatchdogSec"][0]) > 0
    assert d["Restart"] == ["on-failure"]
    assert d["KillMode"] == ["mixed"]
    assert d["User"] == ["meeshy"] and d["ProtectSystem"] == ["strict"] and d["PrivateTmp"] == ["yes"]
    assert d["NoNewPrivileges"] == ["yes"] and d["CapabilityBoundingSet"] == [""]
    assert "3" in d["RestartPreventExitStatus"][0].split() and "78" in d["RestartPreventExitStatus"][0].split()
    assert d["RuntimeDirectory"] == ["meeshy-appliance"]
    assert d["StateDirectory"] == ["meeshy-appliance"] and d["RemoveIPC"] == ["yes"]  # cache: SQLite, shm
    assert int(d["TimeoutStopSec"][0]) > 30 + 5  # drain_timeout_s + worker_exit_timeout_s


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path):
    # verify insists that ExecStart's binary exists: point it at this interpreter.
    text = UNIT.read_text().replace(
        "/opt/meeshy-appliance/.venv/bin/meeshy-appliance", f"{sys.executable} -m appliance"
    )
    unit = tmp_path / "meeshy-appliance.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=90
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "meeshy-appliance.service" not in result.stderr, result.stderr
