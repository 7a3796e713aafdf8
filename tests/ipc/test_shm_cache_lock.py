"""A holder of the table's lock that is stopped, not killed: everyone else times out, misses and
skips, and carries on; the table works again as soon as the holder is gone."""

from __future__ import annotations

import fcntl
import itertools
import logging
import multiprocessing as mp
import os
import signal

import pytest

from ipc.cache_key import CachedTranslation, cache_key
from ipc.persistent_cache import TieredCache
from ipc.shm_cache import CacheLockTimeout, ShmCache

pytestmark = pytest.mark.timeout(30)

_names = itertools.count()
VALUE = CachedTranslation("Bonjour", "en", 0.9, "opus-mt-en-fr", "basic", 1.0)


def key(i: int) -> bytes:
    return cache_key("opus-mt-en-fr", "r1", "en", "fr", f"message {i}")


def hold_then_stop(name: str, locked) -> None:
    """Take the table's lock the way an operation does, then stop, holding it."""
    cache = ShmCache.attach(name)
    fcntl.flock(cache._fd, fcntl.LOCK_EX)
    locked.set()
    os.kill(os.getpid(), signal.SIGSTOP)


@pytest.fixture
def table():
    name = f"meeshy-lock-{os.getpid()}-{next(_names)}"
    cache = ShmCache.create(name, entries=8, max_bytes=4096, ttl=60.0, lock_timeout_s=0.05)
    yield cache
    cache.unlink()
    cache.close()


@pytest.fixture
def stopped_holder(table):
    """A child process holding the table's lock, SIGSTOPped; killed at the end (or earlier)."""
    ctx = mp.get_context("spawn")
    locked = ctx.Event()
    child = ctx.Process(target=hold_then_stop, args=(table.name, locked), daemon=True)
    child.start()
    try:
        assert locked.wait(20), "the child never took the lock"
        yield child
    finally:
        child.kill()
        child.join(10)


def test_get_and_put_miss_and_skip_while_a_stopped_process_holds_the_lock(
        table, stopped_holder, caplog):
    with caplog.at_level(logging.WARNING, logger="ipc.cache"):
        assert table.get_bytes(key(1)) is None
        assert table.put_bytes(key(1), b"v") is False
        assert table.get(key(1)) is None
        assert table.put(key(1), VALUE) is False
        stats = table.stats()  # an unlocked snapshot rather than a wait
    assert stats["lock_timeouts"] == 5 and stats["puts"] == 0 and stats["misses"] == 0
    # One warning for the episode: after the first wait the handle only tries once.
    assert len([r for r in caplog.records if "lock not acquired" in r.getMessage()]) == 1


def test_the_other_operations_raise_a_named_timeout(table, stopped_holder):
    with pytest.raises(CacheLockTimeout, match=table.name) as caught:
        table.delete(key(1))
    assert isinstance(caught.value, TimeoutError)
    with pytest.raises(CacheLockTimeout):
        table.keys_lru()


def test_a_tiered_cache_serves_from_the_persistent_level_meanwhile(table, stopped_holder):
    class DictLevel:
        name = "dict"

        def __init__(self):
            self.data = {}

        def get(self, k):
            return self.data.get(k)

        def put_many(self, items):
            self.data.update({k: (v, exp) for k, v, exp in items})

        def recent(self, limit):
            return []

        def close(self):
            pass

    cache = TieredCache(table, DictLevel())
    cache.put(key(1), VALUE)  # the table skips it; the level takes it
    assert cache.flush(10)
    assert cache.get(key(1)) == VALUE and cache.persistent_hits == 1
    assert cache.get(key(2)) is None
    assert cache.persistent_ok and cache.stats()["lock_timeouts"] >= 3
    cache.close()


def test_the_table_works_again_once_the_holder_is_gone(table, stopped_holder, caplog):
    with ShmCache.attach(table.name, lock_timeout_s=0.05) as other:
        assert table.get_bytes(key(1)) is None and other.put_bytes(key(1), b"v") is False
        stopped_holder.kill()
        stopped_holder.join(10)  # the kernel drops a dead process's flock
        with caplog.at_level(logging.WARNING, logger="ipc.cache"):
            assert other.put_bytes(key(1), b"v") is True
            assert table.get_bytes(key(1)) == b"v"
        assert len([r for r in caplog.records if "free again" in r.getMessage()]) == 2
        assert table.stats()["lock_timeouts"] == 2


def test_an_uncontended_lock_is_one_non_blocking_flock(table, monkeypatch):
    calls = []
    real = fcntl.flock
    monkeypatch.setattr(fcntl, "flock", lambda fd, op: (calls.append(op), real(fd, op))[1])
    assert table.put_bytes(key(1), b"v") and table.get_bytes(key(1)) == b"v"
    assert calls == [fcntl.LOCK_EX | fcntl.LOCK_NB, fcntl.LOCK_UN] * 2
