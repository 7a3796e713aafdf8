"""The shared-memory table, one behaviour at a time (the model-based test covers sequences)."""

from __future__ import annotations

import itertools
import math
import os
import threading
from multiprocessing import shared_memory

import pytest

from ipc.cache_key import CachedTranslation, cache_key
from ipc.shm_cache import CacheLayoutError, ShmCache
from tests.fakes.clock import Clock

_names = itertools.count()


def key(i: int) -> bytes:
    return cache_key("opus-mt-en-fr", "r1", "en", "fr", f"message {i}")


@pytest.fixture
def name():
    name = f"meeshy-test-{os.getpid()}-{next(_names)}"
    yield name
    try:
        shared_memory.SharedMemory(name).unlink()
    except FileNotFoundError:
        pass


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def table(name, clock):
    cache = ShmCache.create(name, entries=8, max_bytes=1024, ttl=60.0, block_size=64,
                            clock=clock)
    yield cache
    cache.close()


VALUE = CachedTranslation("Bonjour le monde", "en", 0.93, "opus-mt-en-fr", "basic", 1.0)


@pytest.mark.timeout(10)
def test_attached_handle_sees_what_the_creator_wrote(table, name, clock):
    assert table.put(key(1), VALUE)
    with ShmCache.attach(name, clock=clock) as other:
        assert other.get(key(1)) == VALUE
        assert other.get(key(2)) is None
        assert other.put(key(2), VALUE)
    assert table.get(key(2)) == VALUE
    stats = table.stats()
    assert (stats["hits"], stats["misses"], stats["size"], stats["hit_rate"]) == (2, 1, 2, 2 / 3)


@pytest.mark.timeout(10)
def test_ttl_is_per_entry_and_uses_the_injected_clock(table, clock):
    table.put_bytes(key(1), b"default")
    table.put_bytes(key(2), b"short", ttl=5.0)
    table.put_bytes(key(3), b"forever", ttl=math.inf)
    table.put_bytes(key(4), b"absolute", expires_at=clock.now + 30.0)
    clock.now += 10.0
    assert table.get_bytes(key(2)) is None
    assert table.get_bytes(key(1)) == b"default"
    clock.now += 55.0
    assert table.get_bytes(key(4)) is None
    assert table.get_bytes(key(1)) is None
    clock.now += 1e9
    assert table.get_bytes(key(3)) == b"forever"
    assert table.stats()["expirations"] == 3


@pytest.mark.timeout(10)
def test_sweep_drops_expired_entries(table, clock):
    for i in range(4):
        table.put_bytes(key(i), b"x", ttl=1.0 + i)
    clock.now += 2.5
    assert table.sweep() == 2
    assert len(table) == 2


@pytest.mark.timeout(10)
def test_a_value_over_the_budget_is_not_cached(name):
    with ShmCache.create(name, entries=8, max_bytes=1024, block_size=64,
                         max_value_bytes=256) as table:
        table.put_bytes(key(1), b"small")
        assert not table.put_bytes(key(2), b"x" * 257)
        assert not table.put_bytes(key(1), b"x" * 257)  # nor does it disturb the old entry
        assert table.get_bytes(key(1)) == b"small"
        assert table.get_bytes(key(2)) is None
        assert table.stats()["rejected"] == 2
        table.unlink()


@pytest.mark.timeout(10)
def test_byte_budget_evicts_least_recently_used(table):
    # 1024 bytes = 16 blocks of 64; entries take 4 blocks each.
    for i in range(4):
        table.put_bytes(key(i), bytes([i]) * 200)
    table.get_bytes(key(0))  # 0 becomes the most recent; 1 is now the oldest
    table.put_bytes(key(9), b"y" * 130)  # 3 blocks: evicts 1 only
    assert table.get_bytes(key(1)) is None
    assert [table.get_bytes(key(i)) is not None for i in (0, 2, 3, 9)] == [True] * 4
    stats = table.stats()
    assert (stats["evictions"], stats["blocks_used"], stats["bytes_used"]) == (1, 15, 730)


@pytest.mark.timeout(10)
def test_entry_count_evicts_least_recently_used(table):
    for i in range(8):
        table.put_bytes(key(i), b"v%d" % i)
    table.get_bytes(key(0))
    table.put_bytes(key(8), b"v8")
    assert table.get_bytes(key(1)) is None
    assert table.keys_lru()[:2] == [key(8), key(0)]
    assert table.verify() == []


@pytest.mark.timeout(10)
def test_replacing_a_key_keeps_one_entry(table):
    table.put_bytes(key(1), b"a" * 100)
    table.put_bytes(key(1), b"b" * 10)
    assert table.get_bytes(key(1)) == b"b" * 10
    assert len(table) == 1 and table.stats()["bytes_used"] == 10


@pytest.mark.timeout(10)
def test_a_damaged_value_is_a_miss_not_a_wrong_answer(table):
    table.put_bytes(key(1), b"the right translation")
    block = table._first[table._find(key(1))]
    table._blocks[block * table.block_size] ^= 0xFF  # a stray write into the value
    assert table.get_bytes(key(1)) is None
    assert table.stats()["corrupt"] == 1
    assert table.verify() == []


@pytest.mark.timeout(10)
def test_undecodable_value_is_a_miss(table):
    table.put_bytes(key(1), b"\xc1 not msgpack")
    assert table.get(key(1)) is None
    assert table.get_bytes(key(1)) == b"\xc1 not msgpack"


@pytest.mark.timeout(10)
def test_keys_must_be_digests(table):
    with pytest.raises(ValueError):
        table.get_bytes(b"short")
    with pytest.raises(ValueError):
        table.put_bytes(b"x" * 17, b"v")


@pytest.mark.timeout(10)
def test_create_refuses_an_existing_name_unless_replacing(table, name):
    table.put_bytes(key(1), b"stale")
    with pytest.raises(FileExistsError):
        ShmCache.create(name, entries=8, max_bytes=1024)
    with ShmCache.create(name, entries=8, max_bytes=1024, replace=True) as fresh:
        assert fresh.get_bytes(key(1)) is None
    assert table.get_bytes(key(1)) == b"stale"  # the old handle keeps its own (unlinked) table


@pytest.mark.timeout(10)
def test_attach_checks_what_it_attaches_to(name):
    with pytest.raises(FileNotFoundError):
        ShmCache.attach(name)
    other = shared_memory.SharedMemory(name, create=True, size=4096)
    try:
        with pytest.raises(CacheLayoutError):
            ShmCache.attach(name)
    finally:
        other.close()


@pytest.mark.timeout(10)
def test_unlink_leaves_attached_handles_working(table, name):
    other = ShmCache.attach(name)
    table.unlink()
    other.put_bytes(key(1), b"still here")
    assert table.get_bytes(key(1)) == b"still here"
    with pytest.raises(FileNotFoundError):
        ShmCache.attach(name)
    other.close()
    other.close()  # idempotent


@pytest.mark.timeout(10)
def test_an_interrupted_operation_is_repaired_by_the_next_one(table):
    for i in range(6):
        table.put_bytes(key(i), b"v%d" % i)

    def interrupt(at: str) -> None:
        raise KeyboardInterrupt

    table._failpoint = interrupt
    with pytest.raises(KeyboardInterrupt):
        table.put_bytes(key(7), b"half")
    table._failpoint = None
    assert table.get_bytes(key(7)) is None
    assert table.get_bytes(key(5)) == b"v5"
    assert table.stats()["recoveries"] == 1
    assert table.verify() == []


@pytest.mark.timeout(30)
def test_threads_sharing_one_handle(table):
    errors = []

    def hammer(seed: int) -> None:
        for n in range(300):
            i = (seed * 7 + n) % 20
            got = table.get_bytes(key(i))
            if got not in (None, b"value %d" % i):
                errors.append(got)
            table.put_bytes(key(i), b"value %d" % i)

    threads = [threading.Thread(target=hammer, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert table.verify() == []
    assert table.stats()["recoveries"] == 0
