"""bench/harness.py, the appliance process shared by the tests and the benchmarks: what its child
environment keeps out, and that the config it writes is the one the appliance reads."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from appliance import config
from bench.harness import REPO, base_config, child_env, merge, write_config

pytestmark = pytest.mark.timeout(30)

# What a developer's shell or a systemd unit may export that the appliance or the fake runtime reads.
APPLIANCE_INPUTS = [*config.ENV_OVERRIDES, "MEESHY_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                    "STATE_DIRECTORY", "RUNTIME_DIRECTORY", "FAKE_RUNTIME_DELAY_MS"]


def test_child_env_keeps_every_appliance_input_out_unless_asked(monkeypatch):
    for name in APPLIANCE_INPUTS:
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("HARNESS_UNRELATED", "kept")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = child_env({"FAKE_RUNTIME_DELAY_MS": "5", "NOTIFY_SOCKET": "/run/notify"})
    assert not (set(APPLIANCE_INPUTS) - {"FAKE_RUNTIME_DELAY_MS", "NOTIFY_SOCKET"}) & env.keys()
    assert env["FAKE_RUNTIME_DELAY_MS"] == "5" and env["NOTIFY_SOCKET"] == "/run/notify"
    assert env["HARNESS_UNRELATED"] == "kept"
    assert env["PYTHONPATH"].split(":") == [str(REPO), "/elsewhere"]


def test_written_config_is_what_the_appliance_loads(tmp_path):
    sections = merge(base_config(tmp_path / "run"), {
        "workers": {"count": 2, "models_dir": tmp_path / "models", "tiers": {"basic": ["a", "b"]}},
        "server": {"http_enabled": False},
    })
    path = write_config(tmp_path / "config.toml", sections)
    assert tomllib.loads(path.read_text())["workers"]["tiers"] == {"basic": ["a", "b"]}
    settings = config.load(str(path), env={})
    assert settings.server.run_dir == str(tmp_path / "run") and settings.server.zmq_port == 0
    assert settings.workers.count == 2 and settings.workers.models_dir == str(tmp_path / "models")
    assert settings.tier_models() == {"basic": ["a", "b"]} and settings.server.http_enabled is False


def test_a_value_without_a_toml_form_is_refused(tmp_path):
    with pytest.raises(TypeError):
        write_config(tmp_path / "config.toml", {"workers": {"queue_depth": None}})
    assert not Path(tmp_path / "config.toml").exists()
