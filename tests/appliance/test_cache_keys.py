"""Cache routing at the edge, in-process: which model a task's key names, and the cache settings."""

from __future__ import annotations

import pytest

from appliance import config
from appliance.cache import KeyRouter, table_name
from appliance.tasks import TaskTable
from ipc.cache_key import cache_key
from ipc.frames import ModelInfo

pytestmark = pytest.mark.timeout(30)

LANGUAGES = {
    "basic": [("en", "fr")],
    "medium": [("en", "es"), ("en", "fr"), ("fr", "en")],
}
MODELS = [
    ModelInfo("marian-en-fr", "marian", "basic", "int8", ["en", "fr"], "rev-b"),
    ModelInfo("m2m", "m2m100", "medium", "none", ["en", "fr", "es"], "rev-m"),
]
ROUTER = KeyRouter(LANGUAGES, MODELS)


def test_explicit_tier_names_that_tiers_model():
    assert ROUTER.model_for("medium", "en", "fr") == ("m2m", "rev-m")
    assert ROUTER.model_for("basic", "auto", "fr") == ("marian-en-fr", "rev-b")
    assert ROUTER.model_for("premium", "en", "fr") is None  # no such model: never cached


def test_auto_tier_takes_the_lowest_tier_serving_the_pair_like_the_runtime():
    assert ROUTER.model_for("auto", "en", "fr") == ("marian-en-fr", "rev-b")
    assert ROUTER.model_for("auto", "en", "es") == ("m2m", "rev-m")
    # No tier serves en->en: the runtime falls back to the highest tier's model.
    assert ROUTER.model_for("auto", "en", "en") == ("m2m", "rev-m")


def test_auto_tier_with_auto_source_keys_on_the_whole_route():
    assert ROUTER.model_for("auto", "auto", "fr") == ("auto:marian-en-fr+m2m", "rev-b+rev-m")


def test_keys_normalize_text_and_separate_models_sources_and_revisions():
    key = ROUTER.key("Hello  world ", "en", "fr", "auto")
    assert key == ROUTER.key("Hello world", "en", "fr", "basic")
    assert key == cache_key("marian-en-fr", "rev-b", "en", "fr", "Hello world", {"beam_size": 1})
    assert key != ROUTER.key("Hello world", "auto", "fr", "basic")  # "auto" is its own entry
    assert key != ROUTER.key("Hello world", "en", "fr", "medium")
    assert key != ROUTER.key("Hello world", "en", "fr", "basic", beam_size=4)
    newer = KeyRouter(LANGUAGES, [ModelInfo("marian-en-fr", "marian", "basic", "int8", ["en", "fr"], "rev-b2"), MODELS[1]])
    assert key != newer.key("Hello world", "en", "fr", "basic")


def test_table_name_is_stable_per_run_dir():
    assert table_name("/run/a") == table_name("/run/a") != table_name("/run/b")
    assert len(table_name("/" + "x" * 300)) < 64


def test_admit_skips_cached_targets_and_finishes_a_full_hit_at_once():
    table = TaskTable(max_units=2, max_attempts=3, task_timeout_s=10, recent_ids=8)
    common = dict(message_id="m", text="t", source_language="en", model_type="auto", conversation_id=None, now=0.0)
    record = table.admit(task_id="full", targets=("fr", "es"), done={"fr", "es"}, **common)
    assert record.remaining == 0 and table.in_flight() == 0 and table.recently_finished("full")
    # Hits take no capacity: two misses fit a table of two even with a third target cached.
    record = table.admit(task_id="part", targets=("fr", "es", "de"), done={"fr"}, keys={"es": b"k" * 16}, **common)
    assert record.remaining == 2 and table.lookup("part") is record
    assert sorted(u.cache_key for u in table.units.values()) == [b"", b"k" * 16]


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
