"""Settings: the shipped config.toml, environment overrides, refusals naming the key."""

from __future__ import annotations

import msgspec
import pytest

from appliance import config
from tests.appliance.conftest import REPO

pytestmark = pytest.mark.timeout(30)


def test_shipped_config_toml_documents_exactly_the_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = config.load(str(REPO / "config.toml"), env={})
    defaults = config.load(None, env={})
    assert shipped.workers.models_dir == str(REPO / "models")

    def comparable(s):
        return msgspec.structs.replace(s, source="", workers=msgspec.structs.replace(s.workers, models_dir=""))

    assert comparable(shipped) == comparable(defaults)
    text = (REPO / "config.toml").read_text()
    for section in ("server", "limits", "workers", "respawn", "shutdown", "ipc", "cache"):
        for key in msgspec.structs.asdict(getattr(defaults, section)):
            assert f"\n{key} = " in text or f"\n# {key}" in text or key == "tiers", f"{section}.{key} undocumented"


def test_environment_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {
        "TRANSLATION_WORKERS": "3",
        "ZMQ_PORT": "6555",
        "ZMQ_PUB_PORT": "6556",
        "API_PORT": "9000",
        "MEESHY_BIND_ADDRESS": "0.0.0.0",
        "MEESHY_MODELS_DIR": "/srv/models",
        "MEESHY_RUN_DIR": "/run/x",
        "MEESHY_HTTP_TOKEN": "s3cret",
    }
    s = config.load(None, env=env)
    assert (s.workers.count, s.server.zmq_port, s.server.zmq_pub_port, s.server.api_port) == (3, 6555, 6556, 9000)
    assert s.server.bind_address == "0.0.0.0" and s.workers.models_dir == "/srv/models"
    assert s.server.run_dir == "/run/x" and s.worker_count() == 3
    assert s.security.http_token == "s3cret"


def test_http_beyond_loopback_needs_a_token(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(config.ConfigError, match="MEESHY_HTTP_TOKEN"):
        config.load(None, env={"MEESHY_BIND_ADDRESS": "0.0.0.0"})
    s = config.load(None, env={"MEESHY_BIND_ADDRESS": "0.0.0.0", "MEESHY_HTTP_TOKEN": "t"})
    assert s.security.http_token == "t"


def test_defaults_bind_loopback_and_count_usable_cores(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = config.load(None, env={})
    assert s.server.bind_address == "127.0.0.1"
    assert s.worker_count() == len(config.usable_cpus())


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "c.toml").write_text('[workers]\nmodels_dir = "m"\n[server]\nrun_dir = "r"\n')
    s = config.load(str(tmp_path / "c.toml"), env={})
    assert s.workers.models_dir == str(tmp_path / "m") and s.server.run_dir == str(tmp_path / "r")


@pytest.mark.parametrize(
    "toml, env, fragment",
    [
        ("[workers]\ncuont = 2\n", {}, "cuont"),
        ("[nope]\n", {}, "nope"),
        ('[server]\nzmq_port = "x"\n', {}, "zmq_port"),
        ("[server]\nzmq_port = 70000\n", {}, "ZMQ_PORT"),
        ("[server]\nzmq_port = 7000\nzmq_pub_port = 7000\n", {}, "differ"),
        ("[workers.tiers]\ngold = 'm'\n", {}, "gold"),
        ("[ipc]\npub_buffer_bytes = 0\n", {}, "1 MiB"),
        ("not toml [", {}, "TOML"),
        ("", {"TRANSLATION_WORKERS": "two"}, "TRANSLATION_WORKERS"),
        ("", {"API_PORT": "-1"}, "API_PORT"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(tmp_path, toml, env, fragment):
    (tmp_path / "c.toml").write_text(toml)
    with pytest.raises(config.ConfigError, match=fragment):
        config.load(str(tmp_path / "c.toml"), env=env)


def test_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(str(tmp_path / "absent.toml"), env={})
