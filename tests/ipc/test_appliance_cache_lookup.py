"""The edge's two-step lookup (appliance/core/cache.py), in-process: the shared table on the event loop,
then the persistent level on the cache's reader thread, without blocking the loop."""

from __future__ import annotations

import asyncio
import math
import threading

import pytest

from appliance import config
from appliance.core.cache import ApplianceCache
from ipc.cache_key import CachedTranslation, encode_value
from ipc.frames import ModelInfo

pytestmark = pytest.mark.timeout(30)

MODELS = [ModelInfo("marian-en-fr", "marian", "basic", "int8", ["en-fr"], "rev-b")]


def value(i: int) -> CachedTranslation:
    return CachedTranslation(f"Bonjour {i}", "en", 0.9, "marian-en-fr", "basic", 1.0)


@pytest.fixture
def cache(tmp_path):
    settings = config.load(None, env={"MEESHY_STATE_DIR": str(tmp_path / "state")})
    cache = ApplianceCache(settings, str(tmp_path / "run"))
    cache.set_models(MODELS)
    yield cache
    cache.close()


def keys(cache: ApplianceCache, n: int) -> list[bytes]:
    return [cache.key(f"Hello {i}", "en", "fr", "auto") for i in range(n)]


def test_lookup_persistent_returns_the_level_hits_and_fills_the_table(cache):
    k = keys(cache, 3)
    # Rows another run wrote: in the persistent level, not in this run's table.
    cache.tiers.persistent.put_many([(k[0], encode_value(value(0)), math.inf),
                                     (k[1], encode_value(value(1)), math.inf)])
    assert cache.has_persistent
    assert [cache.lookup_memory(x) for x in k] == [None, None, None]

    found = asyncio.run(cache.lookup_persistent(k))
    assert found == {k[0]: value(0), k[1]: value(1)}
    assert cache.lookup_memory(k[0]) == value(0) and cache.lookup_memory(k[1]) == value(1)
    assert cache.lookup(k[2]) is None  # the one-step lookup still works
    stats = cache.stats()
    assert stats["persistent_hits"] == 2 and stats["persistent_reopened"] == 0
    assert stats["lock_timeouts"] == 0


def test_a_slow_persistent_read_does_not_block_the_event_loop(cache):
    k = keys(cache, 2)
    entered, release = threading.Event(), threading.Event()

    class GatedLevel:
        name = "gated"

        def get(self, key):
            entered.set()
            release.wait(20)
            return (encode_value(value(0)), math.inf) if key == k[0] else None

    sqlite = cache.tiers.persistent
    cache.tiers.persistent = GatedLevel()

    async def main():
        lookup = asyncio.create_task(cache.lookup_persistent(k))
        while not entered.is_set():  # the loop keeps running while the read is stuck
            await asyncio.sleep(0.001)
        assert cache.lookup_memory(k[1]) is None and not lookup.done()
        release.set()
        return await lookup

    try:
        assert asyncio.run(main()) == {k[0]: value(0)}
    finally:
        cache.tiers.persistent = sqlite


def test_a_failing_level_degrades_and_the_async_step_is_skipped(cache):
    k = keys(cache, 1)
    cache.tiers.persistent.close()  # every read now raises
    assert asyncio.run(cache.lookup_persistent(k)) == {}
    stats = cache.stats()
    assert stats["persistent_ok"] is False and stats["persistent_errors"] == 1
    assert not cache.has_persistent  # sitting out retry_after_s: the caller skips the step
    assert asyncio.run(cache.lookup_persistent(k)) == {}


def test_after_close_there_is_no_persistent_step(cache):
    cache.close()
    assert not cache.has_persistent
    assert asyncio.run(cache.lookup_persistent([b"k" * 16])) == {}
