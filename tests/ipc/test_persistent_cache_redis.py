"""The Redis level against a real redis-server started for each test (ephemeral port, temp dir,
no persistence). Skipped, with the reason, where the binary or the `redis` package is missing."""

from __future__ import annotations

import math
import time

import pytest

from ipc.cache_key import CachedTranslation, cache_key
from ipc.persistent_cache import RedisLevel, TieredCache
from tests.fakes.redis_server import REDIS_SERVER, RedisServer
from tests.fakes.clock import Clock

redis = pytest.importorskip("redis", reason="the redis Python package is not installed")
pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server not found (Debian package redis-server)")



def key(i: int) -> bytes:
    return cache_key("nllb-600m", "r1", "en", "de", f"message {i}")


def value(i: int) -> CachedTranslation:
    return CachedTranslation(f"Nachricht {i}", "en", 0.8, "nllb-600m", "medium", 1.0)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def new_table(shm_tables):
    return shm_tables


@pytest.mark.timeout(30)
def test_two_appliances_share_one_redis(redis_server, new_table):
    clock = Clock(time.time())
    a = TieredCache(new_table(clock), RedisLevel(redis_server.url, clock=clock), clock=clock)
    b = TieredCache(new_table(clock), RedisLevel(redis_server.url, clock=clock), clock=clock)
    a.put(key(1), value(1))
    assert a.flush(10)
    assert b.memory.get(key(1)) is None
    assert b.get(key(1)) == value(1)  # served by Redis, then promoted into b's memory
    assert b.persistent_hits == 1 and b.memory.get(key(1)) == value(1)
    b.put(key(2), value(2))
    assert b.flush(10)
    assert a.get(key(2)) == value(2)
    a.close()
    b.close()


@pytest.mark.timeout(30)
def test_redis_level_expiry(redis_server):
    clock = Clock(time.time())
    level = RedisLevel(redis_server.url, prefix="t:", clock=clock)
    level.put_many([(key(1), b"soon", clock.now + 60), (key(2), b"never", math.inf),
                    (key(3), b"already gone", clock.now - 1)])
    client = redis.Redis.from_url(redis_server.url)
    assert 0 < client.pttl(b"t:" + key(1)) <= 60_000  # Redis expires it on its own
    assert client.pttl(b"t:" + key(2)) == -1
    assert client.exists(b"t:" + key(3)) == 0
    client.close()
    assert level.get(key(1)) == (b"soon", clock.now + 60)
    clock.now += 61  # our clock passed the expiry before Redis's did: still a miss
    assert level.get(key(1)) is None
    assert level.get(key(2)) == (b"never", math.inf)
    assert level.recent(10) == []
    level.close()


@pytest.mark.timeout(30)
def test_redis_going_away_degrades_to_memory(redis_server, new_table, caplog):
    clock = Clock(time.time())
    cache = TieredCache(new_table(clock), RedisLevel(redis_server.url, clock=clock),
                        clock=clock, retry_after=5.0)
    cache.put(key(1), value(1))
    assert cache.flush(10)
    redis_server.stop()
    assert cache.get(key(1)) == value(1)  # a memory hit never asks Redis
    assert cache.get(key(2)) is None
    assert not cache.persistent_ok and cache.persistent_errors == 1
    cache.put(key(3), value(3))
    assert cache.get(key(3)) == value(3)
    assert any("redis failed" in r.getMessage() for r in caplog.records)
    cache.close()
