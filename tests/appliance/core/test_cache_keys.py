"""Message keys at the edge, in-process: what a key covers, admission of cached targets, the settings."""

from __future__ import annotations

import pytest

from appliance import config
from appliance.core.cache import deployment, table_name
from ipc.cache_key import cache_key
from ipc.frames import ModelInfo

pytestmark = pytest.mark.timeout(30)

MODELS = [
    ModelInfo("marian-en-fr", "marian", "basic", "int8", ["en-fr"], "rev-b"),
    ModelInfo("m2m", "m2m100", "medium", "none", ["en-fr", "en-es"], "rev-m"),
]
SETTINGS = config.load(None, env={})


def key(deployment_models=MODELS, settings=SETTINGS, text="Hello world", source="en", target="fr", model_type="auto"):
    return cache_key("message", deployment(deployment_models, settings), source, target, text,
                     {"model_type": model_type, "beam_size": 1})


def test_a_message_key_covers_the_exact_text_the_request_and_the_deployment():
    base = key()
    assert base == key()
    assert base != key(text="Hello  world") != key(text="Hello\u001fworld")  # byte for byte: no folding
    assert base != key(source="auto") and base != key(target="es") and base != key(model_type="basic")
    newer = [ModelInfo("marian-en-fr", "marian", "basic", "int8", ["en-fr"], "rev-b2"), MODELS[1]]
    assert base != key(deployment_models=newer)  # a re-exported model starts fresh entries
    rerouted = config.msgspec.structs.replace(SETTINGS, routing=config.RoutingSettings(basic_max_chars=10))
    assert base != key(settings=rerouted)  # so does a change of routing


def test_table_name_is_stable_per_run_dir():
    assert table_name("/run/a") == table_name("/run/a") != table_name("/run/b")
    assert len(table_name("/" + "x" * 300)) < 64


def test_state_dir_and_persistent_url(tmp_path):
    s = config.load(None, env={"MEESHY_STATE_DIR": str(tmp_path)})
    assert s.persistent_cache_url({}) == str(tmp_path / "cache.sqlite3")
    s = config.load(None, env={})
    assert s.state_dir({"STATE_DIRECTORY": "/var/lib/meeshy-appliance"}) == config.Path("/var/lib/meeshy-appliance")
    assert s.state_dir({"XDG_STATE_HOME": "/x"}) == config.Path("/x/meeshy-appliance")
    s = config.load(None, env={"MEESHY_CACHE_URL": "redis://127.0.0.1:6379/0"})
    assert s.persistent_cache_url({}) == "redis://127.0.0.1:6379/0"
    s = config.load(None, env={"MEESHY_CACHE_URL": "", "MEESHY_STATE_DIR": "/s"})
    assert s.persistent_cache_url({}) == ""
    s = config.load(None, env={"MEESHY_CACHE_URL": "sub/c.db", "MEESHY_STATE_DIR": "/s"})
    assert s.persistent_cache_url({}) == "/s/sub/c.db"
    with pytest.raises(config.ConfigError, match="cache.entries"):
        config.validate(config.msgspec.structs.replace(s, cache=config.CacheSettings(entries=0)))
