"""The SQLite level, the write-behind thread, and the tiered cache (including degradation)."""

from __future__ import annotations

import functools
import logging
import math
import os
import sqlite3
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ipc.cache_key import CachedTranslation, cache_key
from ipc.persistent_cache import KEEP_CORRUPT, RedisLevel, SqliteLevel, TieredCache, WriteBehind, open_level
from tests.fakes.clock import Clock



def key(i: int) -> bytes:
    return cache_key("opus-mt-en-fr", "r1", "en", "fr", f"message {i}")


def value(i: int) -> CachedTranslation:
    return CachedTranslation(f"traduction {i}", "en", 0.5 + i / 1000, "opus-mt-en-fr", "basic")


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def new_table(clock, shm_tables):
    """Factory: a fresh shared-memory table per call (a restarted appliance gets a new one)."""
    return functools.partial(shm_tables, clock)


class FlakyLevel:
    """A level that raises while `broken`; records what it stored."""

    name = "flaky"

    def __init__(self) -> None:
        self.broken = False
        self.data: dict[bytes, tuple[bytes, float]] = {}
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.broken:
            raise OSError("disk I/O error")

    def get(self, key):
        self._check()
        return self.data.get(key)

    def put_many(self, items):
        self._check()
        for k, v, exp in items:
            self.data[k] = (v, exp)

    def recent(self, limit):
        self._check()
        return [(k, v, exp) for k, (v, exp) in list(self.data.items())[-limit:]][::-1]

    def close(self):
        pass


# ------------------------------------------------------------------------------- SQLite level

@pytest.mark.timeout(20)
def test_restarted_appliance_is_warm(tmp_path, new_table, clock):
    db = tmp_path / "state" / "cache.sqlite"
    first = TieredCache(new_table(), SqliteLevel(db, clock=clock), clock=clock)
    for i in range(10):
        first.put(key(i), value(i))
    first.close()  # flushes the write-behind queue

    second = TieredCache(new_table(), SqliteLevel(db, clock=clock), clock=clock)
    assert second.warm() == 10
    # Loaded in write order: the newest write is the most recently used.
    assert second.memory.keys_lru() == [key(i) for i in reversed(range(10))]
    assert [second.get(key(i)) for i in range(10)] == [value(i) for i in range(10)]
    assert second.persistent_hits == 0
    second.close()


@pytest.mark.timeout(20)
def test_memory_miss_is_served_and_promoted_from_sqlite(tmp_path, new_table, clock):
    db = tmp_path / "cache.sqlite"
    writer = TieredCache(new_table(), SqliteLevel(db, clock=clock), clock=clock)
    writer.put(key(1), value(1), ttl=100.0)
    assert writer.flush(10)

    reader = TieredCache(new_table(), SqliteLevel(db, clock=clock), clock=clock)
    assert reader.get(key(1)) == value(1)
    assert reader.persistent_hits == 1
    assert reader.memory.get(key(1)) == value(1)  # promoted, with the remaining TTL
    clock.now += 101.0
    assert reader.memory.get(key(1)) is None
    assert reader.get(key(1)) is None
    writer.close()
    reader.close()


@pytest.mark.timeout(20)
def test_sqlite_level_honours_expiry(tmp_path, clock):
    level = SqliteLevel(tmp_path / "c.sqlite", clock=clock)
    level.put_many([(key(1), b"a", clock.now + 10), (key(2), b"b", math.inf)])
    clock.now += 11
    assert level.get(key(1)) is None
    assert level.get(key(2)) == (b"b", math.inf)
    assert [k for k, _, _ in level.recent(10)] == [key(2)]
    level.close()


@pytest.mark.timeout(20)
def test_sqlite_level_is_bounded_keeping_the_newest(tmp_path, clock):
    level = SqliteLevel(tmp_path / "c.sqlite", max_entries=50, clock=clock)
    for batch in range(20):
        clock.now += 1
        level.put_many([(key(batch * 25 + i), b"v", math.inf) for i in range(25)])
    assert len(level) <= 50 + 5  # max_entries + the trim slack
    level.trim()
    assert len(level) == 50
    assert level.get(key(499)) is not None and level.get(key(0)) is None
    level.close()


@pytest.mark.timeout(20)
def test_open_level_picks_the_level_from_the_url(tmp_path):
    level = open_level(str(tmp_path / "c.sqlite"))
    assert isinstance(level, SqliteLevel)
    level.close()
    level = open_level(f"sqlite://{tmp_path}/d.sqlite")
    assert isinstance(level, SqliteLevel) and level.path == tmp_path / "d.sqlite"
    level.close()
    pytest.importorskip("redis")
    level = open_level("redis://127.0.0.1:1/0")  # connects lazily
    assert isinstance(level, RedisLevel)
    level.close()


# ------------------------------------------------------------------------------- write-behind

class BlockingLevel(FlakyLevel):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def put_many(self, items):
        self.entered.set()
        self.release.wait(30)
        super().put_many(items)


@pytest.mark.timeout(20)
def test_write_behind_never_blocks_and_counts_drops():
    level = BlockingLevel()
    writer = WriteBehind(level, max_queue=4, max_batch=2)
    assert writer.submit(key(0), b"v", math.inf)
    assert level.entered.wait(10)  # the thread is now stuck in put_many with item 0
    accepted = [writer.submit(key(i), b"v", math.inf) for i in range(1, 11)]
    assert accepted == [True] * 4 + [False] * 6
    assert writer.dropped == 6
    assert not writer.flush(0.01)
    level.release.set()
    assert writer.flush(10)
    assert writer.written == 5 and sorted(level.data) == sorted(key(i) for i in range(5))
    writer.close()


# ------------------------------------------------------------------------------- degradation

@pytest.mark.timeout(20)
def test_failing_persistent_level_degrades_to_memory(new_table, clock, caplog):
    level = FlakyLevel()
    cache = TieredCache(new_table(), level, clock=clock, retry_after=30.0)
    cache.put(key(1), value(1))
    assert cache.flush(10)
    level.broken = True

    with caplog.at_level(logging.WARNING, logger="ipc.cache"):
        cache.put(key(2), value(2))  # memory takes it; the write-behind batch fails
        assert cache.flush(10)
        assert not cache.persistent_ok
        assert cache.get(key(2)) == value(2)
        assert cache.get(key(3)) is None  # a miss, not an exception
    assert [r.getMessage() for r in caplog.records if "memory only" in r.getMessage()]
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 1  # logged once

    calls = level.calls
    assert cache.get(key(4)) is None and cache.put(key(5), value(5)) is None
    assert cache.flush(10)
    assert level.calls == calls  # not retried before retry_after
    stats = cache.stats()
    assert stats["persistent_ok"] is False and stats["persistent_errors"] >= 1
    assert stats["write_behind_failed"] == 1

    level.broken = False
    clock.now += 31.0
    assert cache.get(key(1)) == value(1)  # from memory: persistent not needed
    assert cache.get(key(6)) is None  # a memory miss retries the level, which now works
    assert cache.persistent_ok
    cache.close()


@pytest.mark.timeout(20)
def test_warm_on_a_broken_level_starts_cold(new_table, clock):
    level = FlakyLevel()
    level.broken = True
    cache = TieredCache(new_table(), level, clock=clock)
    assert cache.warm() == 0
    assert not cache.persistent_ok
    cache.put(key(1), value(1))
    assert cache.get(key(1)) == value(1)
    cache.close()


@pytest.mark.timeout(20)
def test_memory_only_tiered_cache(new_table, clock):
    cache = TieredCache(new_table(), None, clock=clock)
    cache.put(key(1), value(1))
    assert cache.get(key(1)) == value(1) and cache.get(key(2)) is None
    assert cache.warm() == 0 and cache.flush()
    stats = cache.stats()
    assert stats["persistent_level"] is None and stats["hits"] == 1
    cache.close()


# ------------------------------------------------------------------------------- the file itself

def rows_in(path) -> list[bytes]:
    """Keys in the file now at `path`, read through a connection of its own."""
    conn = sqlite3.connect(path)
    try:
        return sorted(bytes(k) for (k,) in conn.execute("SELECT key FROM cache"))
    finally:
        conn.close()


def checked_cache(tmp_path, new_table, clock) -> tuple[Path, SqliteLevel, TieredCache]:
    """A tiered cache over tmp_path/cache.sqlite whose level checks the file on every operation."""
    db = tmp_path / "cache.sqlite"
    level = SqliteLevel(db, clock=clock, check_interval_s=0)
    return db, level, TieredCache(new_table(), level, clock=clock)


@pytest.mark.timeout(20)
def test_a_deleted_sqlite_file_is_recreated_and_written(tmp_path, new_table, clock, caplog):
    db, level, cache = checked_cache(tmp_path, new_table, clock)
    cache.put(key(1), value(1))
    assert cache.flush(10) and rows_in(db) == [key(1)]

    db.unlink()
    with caplog.at_level(logging.WARNING, logger="ipc.cache"):
        cache.put(key(2), value(2))
        assert cache.flush(10)
        assert cache.get_persistent(key(1)) is None  # the new file is empty but for key 2
    assert rows_in(db) == [key(2)]
    stats = cache.stats()
    assert stats["persistent_reopened"] == 1 and stats["persistent_ok"] is True
    assert stats["write_behind_failed"] == 0
    assert len([r for r in caplog.records if "deleted or replaced" in r.getMessage()]) == 1
    cache.close()


@pytest.mark.timeout(20)
def test_a_replaced_sqlite_file_is_reopened_without_the_old_wal(tmp_path, new_table, clock):
    db, level, cache = checked_cache(tmp_path, new_table, clock)
    cache.put(key(1), value(1))
    assert cache.flush(10)
    other = tmp_path / "restored.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE unrelated (x)")
    conn.commit()
    conn.close()

    os.replace(other, db)
    cache.put(key(2), value(2))
    assert cache.flush(10)
    # Row 1 lives in the old file's WAL, which is not replayed into the new one.
    assert rows_in(db) == [key(2)]
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT count(*) FROM unrelated").fetchone() == (0,)  # the same file
    conn.close()
    assert cache.stats()["persistent_reopened"] == 1
    cache.close()


@pytest.mark.timeout(20)
def test_every_threads_connection_moves_to_the_new_file(tmp_path, clock):
    db = tmp_path / "cache.sqlite"
    level = SqliteLevel(db, clock=clock, check_interval_s=0)
    reader = ThreadPoolExecutor(1)
    level.put_many([(key(1), b"one", math.inf)])
    assert reader.submit(level.get, key(1)).result(10) == (b"one", math.inf)

    db.unlink()
    assert reader.submit(level.get, key(1)).result(10) is None  # noticed, reopened: empty
    level._check_interval_s = 3600.0  # the main thread no longer looks for itself
    level.put_many([(key(2), b"two", math.inf)])  # its connection was closed for it
    assert rows_in(db) == [key(2)]
    assert reader.submit(level.get, key(2)).result(10) == (b"two", math.inf)
    assert level.reopened == 1  # one event, however many connections it closed
    reader.shutdown()
    level.close()


@pytest.mark.timeout(20)
def test_the_sqlite_file_and_its_directory_are_private(tmp_path, clock):
    db = tmp_path / "state" / "cache.sqlite"
    level = SqliteLevel(db, clock=clock)
    level.put_many([(key(1), b"v", math.inf)])
    assert stat.S_IMODE(os.stat(db.parent).st_mode) == 0o700
    for path in (db, f"{db}-wal", f"{db}-shm"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    level.close()


@pytest.mark.timeout(20)
def test_an_existing_open_directory_and_file_are_made_private(tmp_path, clock, caplog):
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o755)
    db = state / "cache.sqlite"
    sqlite3.connect(db).close()
    os.chmod(db, 0o644)
    with caplog.at_level(logging.WARNING, logger="ipc.cache"):
        level = SqliteLevel(db, clock=clock)
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    assert len([r for r in caplog.records if "made it" in r.getMessage()]) == 2
    level.close()


# ------------------------------------------------------------------------------- a corrupt file

def aside_files(db) -> list:
    return sorted(db.parent.glob(f"{db.name}.corrupt-*"))


def garbage(size: int) -> bytes:
    return bytes((i * 7919 + 13) % 251 for i in range(size))  # not random: the same file every run


@pytest.mark.timeout(20)
def test_a_garbage_file_at_start_is_moved_aside_and_recreated(tmp_path, new_table, clock, caplog):
    db = tmp_path / "cache.sqlite"
    db.write_bytes(garbage(64 * 1024))
    (tmp_path / "cache.sqlite-wal").write_bytes(garbage(4096))  # belongs to the garbage
    with caplog.at_level(logging.WARNING, logger="ipc.cache"):
        level = SqliteLevel(db, clock=clock, check_interval_s=0)
    assert level.repaired == 1
    [aside] = aside_files(db)
    assert aside.read_bytes() == garbage(64 * 1024)  # kept as it was, for a post-mortem
    assert not (tmp_path / "cache.sqlite-wal").exists() or (tmp_path / "cache.sqlite-wal").read_bytes() != garbage(4096)
    cache = TieredCache(new_table(), level, clock=clock)
    cache.put(key(1), value(1))
    assert cache.flush(10) and rows_in(db) == [key(1)]
    assert cache.stats()["persistent_repairs"] == 1 and cache.stats()["persistent_ok"] is True
    assert any("is corrupt" in r.getMessage() for r in caplog.records)
    cache.close()


@pytest.mark.timeout(20)
def test_a_file_overwritten_with_garbage_while_open_is_repaired(tmp_path, new_table, clock):
    db, level, cache = checked_cache(tmp_path, new_table, clock)
    for i in range(50):
        cache.put(key(i), value(i))
    assert cache.flush(10)
    level.trim()  # as a long-running appliance would have: rows checkpointed into the file
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db.stat().st_size
    with open(db, "r+b") as f:  # in place: the same inode, so no "deleted or replaced"
        f.write(garbage(size))

    # The open connection's page cache would go on answering; the level notices the header.
    assert cache.get_persistent(key(1)) is None
    stats = cache.stats()
    assert stats["persistent_repairs"] == 1 and stats["persistent_ok"] is True and stats["persistent_errors"] == 0
    assert len(aside_files(db)) == 1
    cache.put(key(99), value(99))
    assert cache.flush(10) and rows_in(db) == [key(99)]
    cache.close()


@pytest.mark.timeout(20)
def test_pages_sqlite_finds_malformed_are_repaired_and_the_operation_retried(tmp_path, clock):
    db = tmp_path / "cache.sqlite"
    level = SqliteLevel(db, clock=clock, check_interval_s=0)
    level.put_many([(key(i), b"x" * 500, math.inf) for i in range(400)])
    level.close()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(db, "r+b") as f:  # keep page 1 (header and schema), break the table's pages
        f.seek(4096)
        f.write(garbage(db.stat().st_size - 4096))

    level = SqliteLevel(db, clock=clock, check_interval_s=0)
    assert level.get(key(3)) is None  # "malformed": moved aside, asked again of the new file
    assert level.repaired == 1 and len(level) == 0
    level.put_many([(key(1), b"v", math.inf)])
    assert level.get(key(1)) == (b"v", math.inf)
    level.close()


@pytest.mark.timeout(20)
def test_only_the_newest_corrupt_files_are_kept(tmp_path, clock):
    db = tmp_path / "cache.sqlite"
    for _ in range(KEEP_CORRUPT + 2):
        db.write_bytes(garbage(8192))
        SqliteLevel(db, clock=clock).close()
    assert len(aside_files(db)) == KEEP_CORRUPT
