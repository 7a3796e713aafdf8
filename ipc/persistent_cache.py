"""Persistent cache levels behind the shared-memory table, and the tiered cache that uses both.

Levels (one small interface, `PersistentLevel`; keys and values are the opaque bytes of
`ipc.cache_key`, with an absolute expiry time):

- `SqliteLevel`: the embedded default, one file in the appliance's state directory, WAL mode so
  readers never wait for the writer. Bounded to about `max_entries` rows (oldest writes go
  first); `recent()` hands the newest rows back on start so a restarted appliance is warm. The
  file (and so its -wal/-shm side files) is 0600, a directory it creates 0700. An open SQLite
  handle keeps working on a file that was deleted or renamed over, so before a read or a write
  (every time, by default: one stat call) the level compares the path's inode with the
  one its connection opened; on a mismatch it closes every thread's connection and reopens the
  path (a fresh file and schema if it is gone), counting `reopened`. A corrupt file (SQLite says
  "not a database" or "malformed", or its header is not SQLite's after its size or mtime
  changed) is moved aside as `<name>.corrupt-<UTC time>` (the newest KEEP_CORRUPT kept, for a
  post-mortem), its -wal/-shm removed, and a fresh file created, counting `repaired`; the
  operation that found it runs once more on the fresh file, so the cache keeps its persistent
  level instead of serving around a broken one.
- `RedisLevel`: for several appliances behind the same gateways (a `redis://` URL in config).
  Expiry is Redis's own (`PX`); its memory bound is the server's `maxmemory` policy. It has
  nothing to warm from: the server outlives the appliance anyway.

`WriteBehind` moves writes to a level on a background thread through a bounded queue: `submit`
never blocks and drops (and counts) what does not fit, so a slow disk or a slow Redis can never
slow a translation down.

`TieredCache` reads the shared-memory table first, then the persistent level, promoting a
persistent hit into memory; it writes memory at once and the persistent level behind. When the
persistent level raises, the cache keeps serving from memory alone: it sets `persistent_ok` to
False, counts `persistent_errors`, logs once, and tries the level again after `retry_after`
seconds. `get` reads the persistent level in the caller's thread (a local SQLite read is tens
of microseconds; Redis calls have a short socket timeout); a caller on an event loop reads the
table itself and hands `get_persistent_many`, the persistent half alone, to a thread.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from ipc.cache_key import CachedTranslation, encode_value, value_or_miss
from ipc.shm_cache import ShmCache

log = logging.getLogger("ipc.cache")

Item = tuple[bytes, bytes, float]  # key, value, expires_at (wall clock; inf: never)


class PersistentLevel(Protocol):
    name: str

    def get(self, key: bytes) -> tuple[bytes, float] | None:
        """(value, expires_at) or None; expired entries are None. Raises on level failure."""

    def put_many(self, items: Sequence[Item]) -> None:
        """Store (replace) every item. Raises on level failure."""

    def recent(self, limit: int) -> list[Item]:
        """Up to `limit` live entries, newest first, to warm the memory level on start."""

    def close(self) -> None: ...


# ----------------------------------------------------------------------------------- SQLite

# The rowid orders writes: INSERT OR REPLACE deletes the old row and appends a new one, so the
# largest ids are the newest writes of every process sharing the file. A cache has nothing worth
# migrating: a file of another schema version is emptied.
SCHEMA_VERSION = 1
_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
_CORRUPT = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
KEEP_CORRUPT = 3  # corrupt files kept aside: enough to look at, not a disk filled by repeats
_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL UNIQUE,
    value BLOB NOT NULL,
    expires_at REAL NOT NULL
);
"""


FileId = tuple[int, int]  # (st_dev, st_ino)
FileState = tuple[int, int]  # (st_size, st_mtime_ns): when it changes, the header is read again


def _is_corrupt(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _CORRUPT


def _header_ok(path: Path) -> bool:
    """An empty file (SQLite writes the header on first use) or one that starts as SQLite's do."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_MAGIC))
    except FileNotFoundError:
        return True
    return not head or head == _MAGIC


class _Handle:
    """One thread's connection, the files it opened, and a lock held while the thread uses it,
    so that another thread can close it between two operations."""

    __slots__ = ("conn", "file_id", "side_ids", "checked_at", "closed", "lock", "state")

    def __init__(self, conn: sqlite3.Connection, file_id: FileId | None,
                 side_ids: set[FileId]) -> None:
        self.conn = conn
        self.file_id = file_id
        self.side_ids = side_ids  # its -wal and -shm
        self.checked_at = time.monotonic()
        self.closed = False
        self.lock = threading.Lock()
        self.state: FileState | None = None


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _file_id(path: Path) -> FileId | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st.st_dev, st.st_ino


def _make_private(path: Path, mode: int, what: str) -> None:
    """chmod `path` to `mode` if it grants group or other anything and we own it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.chmod(path, mode)
        log.warning("%s %s was mode %o: made it %o", what, path, st.st_mode & 0o777, mode)


class SqliteLevel:
    """One SQLite file shared by every process of the appliance (WAL: one writer at a time,
    readers never blocked). Each thread gets its own connection."""

    name = "sqlite"

    def __init__(
        self,
        path: str | Path,
        max_entries: int = 200_000,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout_s: float = 5.0,
        check_interval_s: float = 0.0,
    ):
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.path = Path(path)
        self.max_entries = max_entries
        self._clock = clock
        self._busy_timeout_s = busy_timeout_s
        self._check_interval_s = check_interval_s
        # Trimming once per `slack` writes keeps it cheap; the table stays under
        # max_entries + slack.
        self._slack = max(1, max_entries // 10)
        self._since_trim = 0
        self.reopened = 0  # times the file was found deleted or replaced
        self.repaired = 0  # times the file was found corrupt, moved aside and recreated
        self._local = threading.local()
        # Held to open, reopen or close connections; taken before any handle's lock, never
        # while holding one.
        self._conn_lock = threading.Lock()
        self._handles: list[_Handle] = []
        self._closed = False
        self._open()  # fail at construction on an unusable path, not at the first miss

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, reopened first if the file was deleted or replaced."""
        while True:
            handle = getattr(self._local, "handle", None)
            if handle is None or handle.closed:
                handle = self._open()
            else:
                now = time.monotonic()
                if now - handle.checked_at >= self._check_interval_s:
                    handle.checked_at = now
                    st = _stat(self.path)
                    if st is None or (st.st_dev, st.st_ino) != handle.file_id:
                        handle = self._open()
                    elif (st.st_size, st.st_mtime_ns) != handle.state:
                        # Written since last seen (by this level's checkpoints, or by someone
                        # else in place): an open connection would go on serving its page cache.
                        if not _header_ok(self.path):
                            self._repair(handle.file_id, "its header is not SQLite's")
                            continue
                        handle.state = (st.st_size, st.st_mtime_ns)
            with handle.lock:
                if handle.closed:  # another thread found the file replaced meanwhile
                    continue
                yield handle.conn
                return

    def _open(self) -> _Handle:
        with self._conn_lock:
            if self._closed:
                raise sqlite3.ProgrammingError("SqliteLevel is closed")
            current = _file_id(self.path)
            stale = [h for h in self._handles if h.file_id != current]
            if stale:
                self._drop(stale)
                self.reopened += 1
                log.warning("cache file %s was deleted or replaced: reopened", self.path)
            own = getattr(self._local, "handle", None)
            if own is not None and not own.closed:
                return own  # still on the file at the path (it was replaced back meanwhile)
            self._prepare_path()
            why = None if _header_ok(self.path) else "its header is not SQLite's"
            if why is None:
                try:
                    conn = self._connect()
                except sqlite3.DatabaseError as exc:
                    if not _is_corrupt(exc):
                        raise
                    why = str(exc)
            if why is not None:
                self._move_aside(_file_id(self.path), why)
                self._prepare_path()
                conn = self._connect()
            side_ids = {_file_id(p) for p in self._side_files()} - {None}
            handle = _Handle(conn, _file_id(self.path), side_ids)  # type: ignore[arg-type]
            if (st := _stat(self.path)) is not None:
                handle.state = (st.st_size, st.st_mtime_ns)
            self._handles.append(handle)
        self._local.handle = handle
        return handle

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread=False only so that another thread may close it (close(), or a
        # replaced file); each connection is otherwise used by the thread that opened it.
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout_s, isolation_level=None,
            check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a cache may lose its last writes
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                    conn.execute("DROP TABLE IF EXISTS cache")
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _repair(self, file_id: FileId | None, why: str) -> None:
        """Close every connection and move the corrupt file aside; the next use creates a new one."""
        with self._conn_lock:
            if self._closed:
                raise sqlite3.ProgrammingError("SqliteLevel is closed")
            self._drop(list(self._handles))
            self._move_aside(file_id, why)

    def _move_aside(self, file_id: FileId | None, why: str) -> None:
        """Rename the file at the path (if it is still `file_id`: not one another thread already
        recreated) to `<name>.corrupt-<UTC time>`; drop its -wal and -shm, which belong to it.
        Called with _conn_lock held."""
        if file_id is None or _file_id(self.path) != file_id:
            return
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        os.rename(self.path, aside)
        for side in self._side_files():
            side.unlink(missing_ok=True)
        self.repaired += 1
        log.warning("cache file %s is corrupt (%s): moved it to %s and started a new one", self.path, why, aside.name)
        kept = sorted(self.path.parent.glob(f"{self.path.name}.corrupt-*"), key=lambda p: p.stat().st_mtime_ns)
        for old in kept[:-KEEP_CORRUPT]:
            old.unlink(missing_ok=True)

    def _run(self, op: Callable[[sqlite3.Connection], object]) -> object:
        """`op` on this thread's connection; on a corrupt file, repair it and run `op` once more."""
        try:
            with self._connection() as conn:
                return op(conn)
        except sqlite3.DatabaseError as exc:
            if not _is_corrupt(exc):
                raise
            self._repair(self._own_file_id(), str(exc))
        with self._connection() as conn:
            return op(conn)

    def _own_file_id(self) -> FileId | None:
        handle = getattr(self._local, "handle", None)
        return handle.file_id if handle is not None else None

    def _side_files(self) -> tuple[Path, Path]:
        return Path(f"{self.path}-wal"), Path(f"{self.path}-shm")

    def _drop(self, handles: list[_Handle]) -> None:
        """Close `handles` (waiting for any operation in progress on them), and unlink the
        -wal/-shm files they used if those are still at the path. SQLite does not checkpoint
        nor delete the WAL of a database file that moved; left there, that WAL would be
        replayed into the file now at the path (replaced: the old rows and pages reappear in
        it) and its -shm shared with the new connections."""
        side_ids: set[FileId] = set()
        for h in handles:
            with h.lock:
                if not h.closed:
                    h.closed = True
                    h.conn.close()
            side_ids |= h.side_ids
        self._handles = [h for h in self._handles if not h.closed]
        if _file_id(self.path) in {h.file_id for h in self._handles}:
            return  # the path's file is still in use: so are its side files
        for path in self._side_files():
            if _file_id(path) in side_ids:
                path.unlink(missing_ok=True)

    def _prepare_path(self) -> None:
        """A private directory and file: 0700 and 0600 (SQLite gives the -wal and -shm files
        the database file's mode)."""
        directory = self.path.parent
        if not directory.is_dir():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Not a shared directory such as /tmp (sticky) or /: only a directory of our own.
        st = os.stat(directory)
        if not st.st_mode & 0o1000 and directory.resolve() != Path("/"):
            _make_private(directory, 0o700, "cache directory")
        os.close(os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o600))
        for path in (self.path, *self._side_files()):
            _make_private(path, 0o600, "cache file")

    def get(self, key: bytes) -> tuple[bytes, float] | None:
        row = self._run(lambda conn: conn.execute(
            "SELECT value, expires_at FROM cache WHERE key = ?", (key,)).fetchone())
        if row is None or row[1] <= self._clock():
            return None
        return bytes(row[0]), row[1]

    def put_many(self, items: Sequence[Item]) -> None:
        if not items:
            return
        def write(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT OR REPLACE INTO cache (key, value, expires_at) VALUES (?, ?, ?)", items)

        self._run(write)
        self._since_trim += len(items)
        if self._since_trim >= self._slack:
            self.trim()

    def trim(self) -> None:
        """Drop expired rows, then the oldest writes beyond max_entries."""
        now = self._clock()

        def delete(conn: sqlite3.Connection) -> None:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM cache WHERE expires_at <= ?", (now,))
                conn.execute(
                    "DELETE FROM cache WHERE id <= (SELECT id FROM cache ORDER BY id DESC"
                    " LIMIT 1 OFFSET ?)", (self.max_entries,))

        self._run(delete)
        self._since_trim = 0

    def recent(self, limit: int) -> list[Item]:
        rows = self._run(lambda conn: conn.execute(
            "SELECT key, value, expires_at FROM cache WHERE expires_at > ?"
            " ORDER BY id DESC LIMIT ?", (self._clock(), limit)).fetchall())
        return [(bytes(k), bytes(v), exp) for k, v, exp in rows]

    def __len__(self) -> int:
        return self._run(lambda conn: conn.execute("SELECT count(*) FROM cache").fetchone()[0])

    def close(self) -> None:
        with self._conn_lock:
            self._closed = True
            for h in self._handles:
                with h.lock:
                    h.closed = True
                    h.conn.close()
            self._handles.clear()


# ----------------------------------------------------------------------------------- Redis

_EXPIRY = struct.Struct(">d")  # stored in front of the value: promotion needs the expiry


class RedisLevel:
    """A Redis server shared by several appliances. Needs the `redis` package."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "meeshy:cache:",
        clock: Callable[[], float] = time.time,
        socket_timeout_s: float = 0.25,
    ):
        import redis  # optional dependency: only a Redis-backed appliance needs it

        self.url = url
        self._prefix = prefix.encode()
        self._clock = clock
        self._client = redis.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s)

    def get(self, key: bytes) -> tuple[bytes, float] | None:
        raw = self._client.get(self._prefix + key)
        if raw is None or len(raw) < _EXPIRY.size:
            return None
        (expires_at,) = _EXPIRY.unpack_from(raw)
        if expires_at <= self._clock():
            return None
        return raw[_EXPIRY.size:], expires_at

    def put_many(self, items: Sequence[Item]) -> None:
        now = self._clock()
        pipe = self._client.pipeline(transaction=False)
        for key, value, expires_at in items:
            left_ms = math.inf if math.isinf(expires_at) else int((expires_at - now) * 1000)
            if left_ms <= 0:
                continue
            payload = _EXPIRY.pack(expires_at) + value
            if math.isinf(left_ms):
                pipe.set(self._prefix + key, payload)
            else:
                pipe.set(self._prefix + key, payload, px=left_ms)
        pipe.execute()

    def recent(self, limit: int) -> list[Item]:
        return []

    def close(self) -> None:
        self._client.close()


def open_level(url: str, *, clock: Callable[[], float] = time.time,
               **options: object) -> PersistentLevel:
    """A level from a config string: `redis://...`/`rediss://...`/`unix://...` or a file path
    (optionally `sqlite:///abs/path`)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisLevel(url, clock=clock, **options)  # type: ignore[arg-type]
    path = url.removeprefix("sqlite://")
    return SqliteLevel(path, clock=clock, **options)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- write-behind

_STOP = object()


class WriteBehind:
    """A background thread writing batches to a level. `submit` never blocks."""

    def __init__(
        self,
        level: PersistentLevel,
        *,
        max_queue: int = 10_000,
        max_batch: int = 256,
        on_error: Callable[[BaseException], None] | None = None,
        on_success: Callable[[], None] | None = None,
    ):
        self._level = level
        self._queue: queue.Queue = queue.Queue(max_queue)
        self._max_batch = max_batch
        self._on_error = on_error
        self._on_success = on_success
        self._idle = threading.Condition()
        self._pending = 0
        self.written = 0
        self.failed = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="cache-write-behind", daemon=True)
        self._thread.start()

    def submit(self, key: bytes, value: bytes, expires_at: float) -> bool:
        """Queue one write; False (counted in `dropped`) when the queue is full."""
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait((key, value, expires_at))
            return True
        except queue.Full:
            with self._idle:
                self._pending -= 1
                self.dropped += 1
                self._idle.notify_all()
            return False

    @property
    def queued(self) -> int:
        return self._pending

    def flush(self, timeout: float) -> bool:
        """Wait until everything submitted so far is written or has failed."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (within `timeout`), then stop the thread."""
        self.flush(timeout)
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return  # the thread is stuck on the level; it is a daemon and dies with us
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            try:
                self._level.put_many(batch)
            except Exception as exc:  # any level failure: count, report, keep the thread alive
                self.failed += len(batch)
                if self._on_error is not None:
                    self._on_error(exc)
            else:
                self.written += len(batch)
                if self._on_success is not None:
                    self._on_success()
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()
            if stop:
                return


# ----------------------------------------------------------------------------------- tiered

class TieredCache:
    """Memory first, then the persistent level; degrades to memory alone on persistent errors.

    Does not own `memory` (the caller closes it); `close()` closes the write-behind thread and
    the persistent level.
    """

    def __init__(
        self,
        memory: ShmCache,
        persistent: PersistentLevel | None,
        *,
        clock: Callable[[], float] = time.time,
        retry_after: float = 30.0,
        max_queue: int = 10_000,
        max_batch: int = 256,
    ):
        self.memory = memory
        self.persistent = persistent
        self._clock = clock
        self._retry_after = retry_after
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self.persistent_ok = persistent is not None
        self.persistent_errors = 0
        self.persistent_hits = 0
        self.persistent_misses = 0
        self._writer = None
        if persistent is not None:
            self._writer = WriteBehind(
                persistent, max_queue=max_queue, max_batch=max_batch,
                on_error=self._persistent_failed, on_success=self._persistent_recovered)

    # ------------------------------------------------------------------ degradation

    @property
    def persistent_usable(self) -> bool:
        """A persistent level is open and not in its retry back-off: reading it may hit."""
        if self.persistent is None:
            return False
        return self.persistent_ok or self._clock() >= self._retry_at

    def _persistent_failed(self, exc: BaseException) -> None:
        with self._lock:
            self.persistent_errors += 1
            self._retry_at = self._clock() + self._retry_after
            was_ok, self.persistent_ok = self.persistent_ok, False
        if was_ok:
            log.warning(
                "persistent cache level %s failed (%s: %s): serving from memory only,"
                " retrying in %.0f s", self.persistent.name, type(exc).__name__, exc,
                self._retry_after)

    def _persistent_recovered(self) -> None:
        if self.persistent_ok:
            return
        with self._lock:
            was_ok, self.persistent_ok = self.persistent_ok, True
        if not was_ok:
            log.warning("persistent cache level %s is back", self.persistent.name)

    # ------------------------------------------------------------------ API

    def get(self, key: bytes) -> CachedTranslation | None:
        return value_or_miss(self.get_bytes(key))

    def get_bytes(self, key: bytes) -> bytes | None:
        data = self.memory.get_bytes(key)
        if data is not None:
            return data
        return self.get_persistent(key)

    def get_persistent_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        """`get_persistent` of each key: the hits, promoted into memory. After a failure the
        other keys are skipped: the level sits out its back-off."""
        found = {}
        for key in keys:
            data = self.get_persistent(key)
            if data is not None:
                found[key] = data
        return found

    def get_persistent(self, key: bytes) -> bytes | None:
        """The persistent level alone (for a key memory missed): a hit is promoted into memory.
        None on a miss, while degraded, or when the level fails (which degrades it)."""
        if not self.persistent_usable:
            return None
        try:
            found = self.persistent.get(key)
        except Exception as exc:
            self._persistent_failed(exc)
            return None
        self._persistent_recovered()
        if found is None:
            self.persistent_misses += 1
            return None
        self.persistent_hits += 1
        value, expires_at = found
        self.memory.put_bytes(key, value, expires_at=expires_at)
        # Written back so the persistent level's own bound (oldest write first) keeps it.
        self._submit(key, value, expires_at)
        return value

    def put(self, key: bytes, value: CachedTranslation, ttl: float | None = None) -> None:
        self.put_bytes(key, encode_value(value), ttl=ttl)

    def put_bytes(self, key: bytes, data: bytes, ttl: float | None = None) -> None:
        expires_at = self._clock() + (self.memory.default_ttl if ttl is None else ttl)
        self.memory.put_bytes(key, data, expires_at=expires_at)
        self._submit(key, data, expires_at)

    def _submit(self, key: bytes, data: bytes, expires_at: float) -> None:
        # While degraded, writes are not queued: the queue would fill with doomed batches.
        if self._writer is not None and self.persistent_usable:
            self._writer.submit(key, data, expires_at)

    def warm(self, limit: int | None = None) -> int:
        """Load the persistent level's newest entries into memory; returns how many."""
        if not self.persistent_usable:
            return 0
        try:
            items = self.persistent.recent(limit or self.memory.entries)
        except Exception as exc:
            self._persistent_failed(exc)
            return 0
        loaded = 0
        for key, value, expires_at in reversed(items):  # oldest first: newest ends up MRU
            loaded += self.memory.put_bytes(key, value, expires_at=expires_at)
        return loaded

    def flush(self, timeout: float = 5.0) -> bool:
        return self._writer.flush(timeout) if self._writer is not None else True

    def stats(self) -> dict[str, object]:
        out: dict[str, object] = dict(self.memory.stats())
        w = self._writer
        out.update(
            persistent_level=self.persistent.name if self.persistent is not None else None,
            persistent_ok=self.persistent_ok,
            persistent_errors=self.persistent_errors,
            persistent_hits=self.persistent_hits,
            persistent_misses=self.persistent_misses,
            # Levels that notice their storage vanishing (SqliteLevel) count it.
            persistent_reopened=getattr(self.persistent, "reopened", 0),
            persistent_repairs=getattr(self.persistent, "repaired", 0),
            write_behind_queued=w.queued if w else 0,
            write_behind_written=w.written if w else 0,
            write_behind_failed=w.failed if w else 0,
            write_behind_dropped=w.dropped if w else 0,
        )
        return out

    def close(self, timeout: float = 5.0) -> None:
        if self._writer is not None:
            self._writer.close(timeout)
        if self.persistent is not None:
            self.persistent.close()
