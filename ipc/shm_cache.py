"""Shared-memory translation cache: one fixed-capacity LRU table shared by every process.

The supervisor `create`s the table (and `unlink`s it at shutdown); the edge and every worker
`attach` to it by name. A hit costs one lock round trip and a copy, never a worker. The table is
bounded twice: by entries (`entries`) and by value bytes (`max_bytes`, kept in fixed-size blocks);
whichever runs out first evicts the least recently used entry. Each entry has its own expiry time.
Keys are the 16-byte digests of `ipc.cache_key`; values are opaque bytes (`get`/`put` wrap them in
`CachedTranslation`).

Memory layout (one POSIX shared-memory object, struct-of-arrays, every array 64-byte aligned;
E = entries, B = hash buckets (power of two >= E), N = blocks, S = block size):

    offset 0  header      64 x int64   magic, version, geometry, dirty flag, list heads, counters
              state        E x uint8   0 free, 1 used (set last when writing, first when freeing)
              digest       E x 16 B    the key
              expires      E x float64 wall-clock expiry (inf: never)
              tick         E x uint64  last use, from a global counter: rebuilds LRU order
              vlen         E x uint32  value length in bytes
              crc          E x uint32  CRC-32 of digest + value
              first_block  E x int32   head of the entry's block chain
              lru_prev     E x int32   doubly linked LRU list (head = most recent)
              lru_next     E x int32   ... also the free-entry list's link
              hash_next    E x int32   bucket chains
              buckets      B x int32   chain heads, -1 empty
              block_next   N x int32   block chains and the free-block list
              blocks       N x S bytes value bytes, chunked

Concurrency and crash safety. Every operation (a get too: it moves the entry to the LRU head and
counts a hit) runs under `flock` on the shared-memory object's own file descriptor. The kernel
drops that lock when its holder dies, so a `kill -9` can never leave it held. What a dead holder
can leave is a half-done mutation, so the holder raises the header's `dirty` flag before touching
anything and lowers it only after finishing: whoever next takes the lock and finds it raised runs
`_recover`, which treats the per-entry arrays as the only truth. It keeps an entry only if its
state is "used", its block chain is in range and shared with no kept entry, and its CRC matches
digest + value; it then rebuilds the buckets, the LRU list (from the ticks), and both free lists.
A writer sets an entry's state to "used" only after its value, digest and CRC are in place, so
a half-written entry is dropped rather than served: after a crash a reader may miss, never get a
wrong value. Readers also check the CRC on every hit, against stray writes. An exception (or a
KeyboardInterrupt) inside an operation leaves the flag raised for the same reason.

flock is per open file description: each `ShmCache` opens its own descriptor, so two instances in
one process exclude each other too, and a `threading.Lock` covers threads sharing an instance.
Open the table after forking, never before (a forked child would share the parent's descriptor
and so its lock); the appliance uses `spawn` anyway.

A holder that is stopped rather than killed (SIGSTOP, a debugger) keeps the lock, so acquisition
is bounded: one non-blocking `flock` when the lock is free (the common case: one system call),
else retries with a short backoff for up to `lock_timeout_s`, then `CacheLockTimeout`. `get`
and `put` turn a timeout into a miss and a skipped write (counted in `lock_timeouts`), so no
caller blocks or crashes on a stuck holder; the other operations raise it (`stats` falls back to
an unlocked snapshot). After a timeout the handle tries only once, without waiting, until it
next gets the lock: a stopped holder costs each handle one wait, not one per lookup.

Linux only (POSIX shared memory through `_posixshmem`, as `multiprocessing.shared_memory` does).
The object is opened directly, not through `SharedMemory`, because in Python 3.11 the resource
tracker of a merely attaching process unlinks the segment when that process exits.
"""

from __future__ import annotations

import _posixshmem
import array
import fcntl
import logging
import math
import mmap
import os
import threading
import time
import zlib
from collections.abc import Callable

from ipc.cache_key import KEY_SIZE, CachedTranslation, encode_value, value_or_miss

MAGIC = 0x4D45455348594331  # "MEESHYC1"
LAYOUT_VERSION = 1

DEFAULT_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_BLOCK_SIZE = 128
DEFAULT_MAX_VALUE_BYTES = 16 * 1024
DEFAULT_TTL = 7 * 24 * 3600.0
DEFAULT_LOCK_TIMEOUT = 0.5

FREE, USED = 0, 1
NIL = -1

# Header slots (int64 each).
H_MAGIC, H_VERSION, H_ENTRIES, H_BUCKETS, H_NBLOCKS, H_BLOCK_SIZE, H_MAX_VALUE = range(7)
H_TTL_MS, H_SIZE, H_DIRTY, H_COUNT, H_BLOCKS_USED, H_BYTES_USED = range(7, 13)
H_LRU_HEAD, H_LRU_TAIL, H_FREE_ENTRY, H_FREE_BLOCK, H_TICK = range(13, 18)
H_HITS, H_MISSES, H_EVICTIONS, H_EXPIRATIONS, H_PUTS, H_REJECTED, H_RECOVERIES = range(18, 25)
H_CORRUPT = 25
# Incremented without the lock (its holder is the one that is stuck): approximate under races.
H_LOCK_TIMEOUTS = 26
HEADER_SLOTS = 64

_ALIGN = 64
_COUNTERS = {
    "hits": H_HITS,
    "misses": H_MISSES,
    "evictions": H_EVICTIONS,
    "expirations": H_EXPIRATIONS,
    "puts": H_PUTS,
    "rejected": H_REJECTED,
    "recoveries": H_RECOVERIES,
    "corrupt": H_CORRUPT,
    "lock_timeouts": H_LOCK_TIMEOUTS,
}

Failpoint = Callable[[str], None]

log = logging.getLogger("ipc.cache")


class CacheLayoutError(RuntimeError):
    """The named object is not a cache table of this layout version."""


class CacheLockTimeout(TimeoutError):
    """The table's lock was not acquired within `lock_timeout_s` (a holder is stopped or
    stuck). `get`/`put` never raise it: they miss and skip instead."""


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _layout(entries: int, buckets: int, nblocks: int, block_size: int) -> tuple[dict, int]:
    """Offsets of each array and the total size; the one place the layout is defined."""
    spec = [
        ("header", 8 * HEADER_SLOTS),
        ("state", entries),
        ("digest", KEY_SIZE * entries),
        ("expires", 8 * entries),
        ("tick", 8 * entries),
        ("vlen", 4 * entries),
        ("crc", 4 * entries),
        ("first_block", 4 * entries),
        ("lru_prev", 4 * entries),
        ("lru_next", 4 * entries),
        ("hash_next", 4 * entries),
        ("buckets", 4 * buckets),
        ("block_next", 4 * nblocks),
        ("blocks", block_size * nblocks),
    ]
    offsets = {}
    pos = 0
    for name, size in spec:
        offsets[name] = (pos, size)
        pos = _align(pos + size)
    return offsets, pos


def _crc(digest: bytes | memoryview, data: bytes) -> int:
    return zlib.crc32(data, zlib.crc32(digest))


class ShmCache:
    """A handle on the shared table; open one per process (or per thread group) after fork."""

    def __init__(self, name: str, fd: int, size: int, clock: Callable[[], float],
                 lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT):
        if lock_timeout_s < 0:
            raise ValueError("lock_timeout_s must be >= 0")
        self.name = name
        self._fd = fd
        self._clock = clock
        self.lock_timeout_s = lock_timeout_s
        self._stalled = False  # the last acquisition timed out: try once, do not wait
        self._tlock = threading.Lock()
        self._failpoint: Failpoint | None = None  # test hook: called at points inside mutations
        self._mm = mmap.mmap(fd, size)
        self._buf = memoryview(self._mm)
        self._views: list[memoryview] = [self._buf]
        h = self._view(0, 8 * HEADER_SLOTS, "q")
        if h[H_MAGIC] != MAGIC or h[H_VERSION] != LAYOUT_VERSION:
            self._unmap()
            raise CacheLayoutError(f"shared memory {name!r} is not a cache table v{LAYOUT_VERSION}")
        entries, buckets, nblocks, block_size = (
            h[H_ENTRIES], h[H_BUCKETS], h[H_NBLOCKS], h[H_BLOCK_SIZE])
        offsets, total = _layout(entries, buckets, nblocks, block_size)
        if total != h[H_SIZE] or total > size:
            self._unmap()
            raise CacheLayoutError(f"shared memory {name!r}: size {size} does not match its header")
        self._h = h
        self.entries = entries
        self.nblocks = nblocks
        self.block_size = block_size
        self.max_value_bytes = h[H_MAX_VALUE]
        self.default_ttl = math.inf if h[H_TTL_MS] < 0 else h[H_TTL_MS] / 1000.0
        self._bmask = buckets - 1
        v = self._view
        self._state = v(*offsets["state"], "B")
        self._digest = v(*offsets["digest"], "B")
        self._expires = v(*offsets["expires"], "d")
        self._tick = v(*offsets["tick"], "Q")
        self._vlen = v(*offsets["vlen"], "I")
        self._crcs = v(*offsets["crc"], "I")
        self._first = v(*offsets["first_block"], "i")
        self._prev = v(*offsets["lru_prev"], "i")
        self._next = v(*offsets["lru_next"], "i")
        self._hnext = v(*offsets["hash_next"], "i")
        self._buckets = v(*offsets["buckets"], "i")
        self._bnext = v(*offsets["block_next"], "i")
        self._blocks = v(*offsets["blocks"], "B")

    def _view(self, offset: int, size: int, fmt: str) -> memoryview:
        view = self._buf[offset:offset + size].cast(fmt)
        self._views.append(view)
        return view

    # ----------------------------------------------------------------------------- lifecycle

    @classmethod
    def create(
        cls,
        name: str,
        entries: int = DEFAULT_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        ttl: float = DEFAULT_TTL,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        replace: bool = False,
        clock: Callable[[], float] = time.time,
        lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT,
    ) -> ShmCache:
        """Create and initialize the table; `replace` first unlinks a stale one of that name
        (left by a supervisor that died without cleaning up)."""
        if entries < 1 or block_size < 8 or max_bytes < block_size:
            raise ValueError("entries >= 1, block_size >= 8 and max_bytes >= block_size")
        if ttl <= 0:
            raise ValueError("ttl must be positive (math.inf: never expire)")
        nblocks = max_bytes // block_size
        buckets = 1 << max(1, (entries - 1).bit_length())
        offsets, size = _layout(entries, buckets, nblocks, block_size)
        path = "/" + name
        if replace:
            try:
                _posixshmem.shm_unlink(path)
            except FileNotFoundError:
                pass
        fd = _posixshmem.shm_open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, size)
            with mmap.mmap(fd, size) as mm, memoryview(mm) as buf:
                _initialize(buf, offsets, entries, buckets, nblocks, block_size,
                            min(max_value_bytes, nblocks * block_size), size, ttl)
            return cls(name, fd, size, clock, lock_timeout_s)
        except BaseException:
            os.close(fd)
            _posixshmem.shm_unlink(path)
            raise

    @classmethod
    def attach(cls, name: str, *, clock: Callable[[], float] = time.time,
               lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT) -> ShmCache:
        fd = _posixshmem.shm_open("/" + name, os.O_RDWR, 0)
        try:
            return cls(name, fd, os.fstat(fd).st_size, clock, lock_timeout_s)
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        """Detach this handle (the table lives on until `unlink`). Idempotent."""
        if self._fd < 0:
            return
        self._unmap()
        os.close(self._fd)
        self._fd = -1

    def _unmap(self) -> None:
        for view in reversed(self._views):
            view.release()
        self._views.clear()
        self._mm.close()

    def unlink(self) -> None:
        """Remove the name (the creator's job); attached handles keep working until closed."""
        try:
            _posixshmem.shm_unlink("/" + self.name)
        except FileNotFoundError:
            pass

    @staticmethod
    def unlink_name(name: str) -> None:
        """Remove a table by name without attaching it (a stale one whose creator died)."""
        try:
            _posixshmem.shm_unlink("/" + name)
        except FileNotFoundError:
            pass

    def __enter__(self) -> ShmCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------- locking

    def _lock(self) -> None:
        """Take the lock within `lock_timeout_s`, or raise CacheLockTimeout."""
        # A thread of this process holds _tlock only for an operation or a bounded flock wait.
        if not self._tlock.acquire(timeout=self.lock_timeout_s):
            raise self._timed_out()
        try:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._wait_flock()
        except BaseException:
            self._tlock.release()
            raise
        if self._stalled:
            self._stalled = False
            log.warning("shared-memory cache %s: the lock is free again", self.name)
        try:
            if self._h[H_DIRTY]:
                self._recover()
            self._h[H_DIRTY] = 1
        except BaseException:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._tlock.release()
            raise

    def _wait_flock(self) -> None:
        if self._stalled:
            raise self._timed_out()
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.0001
        while True:
            time.sleep(delay)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise self._timed_out() from None
                delay = min(delay * 2, 0.005)

    def _timed_out(self) -> CacheLockTimeout:
        self._h[H_LOCK_TIMEOUTS] += 1
        if not self._stalled:
            self._stalled = True
            log.warning(
                "shared-memory cache %s: lock not acquired within %.3g s (a holder is stopped or"
                " stuck): lookups miss and writes are skipped until it is free", self.name,
                self.lock_timeout_s)
        return CacheLockTimeout(
            f"shared-memory cache {self.name!r}: lock not acquired within"
            f" {self.lock_timeout_s:.3g} s")

    def _unlock(self, completed: bool) -> None:
        # An operation that did not complete leaves the flag up: the next holder repairs.
        if completed:
            self._h[H_DIRTY] = 0
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._tlock.release()

    # ----------------------------------------------------------------------------- public API

    def get(self, key: bytes) -> CachedTranslation | None:
        return value_or_miss(self.get_bytes(key))

    def put(self, key: bytes, value: CachedTranslation, ttl: float | None = None) -> bool:
        return self.put_bytes(key, encode_value(value), ttl=ttl)

    def get_bytes(self, key: bytes) -> bytes | None:
        """The value stored under `key`, or None (absent, expired, failed its CRC, or the lock
        timed out)."""
        self._check_key(key)
        now = self._clock()
        try:
            self._lock()
        except CacheLockTimeout:
            return None
        done = False
        try:
            h = self._h
            e = self._find(key)
            if e == NIL:
                h[H_MISSES] += 1
                data = None
            elif self._expires[e] <= now:
                self._remove(e)
                h[H_EXPIRATIONS] += 1
                h[H_MISSES] += 1
                data = None
            else:
                data = self._read(e)
                if _crc(key, data) != self._crcs[e]:
                    self._remove(e)
                    h[H_CORRUPT] += 1
                    h[H_MISSES] += 1
                    data = None
                else:
                    self._touch(e)
                    h[H_HITS] += 1
            done = True
            return data
        finally:
            self._unlock(done)

    def put_bytes(
        self, key: bytes, data: bytes, *, ttl: float | None = None, expires_at: float | None = None
    ) -> bool:
        """Store `data` as the most recent entry, evicting LRU entries until it fits.

        Returns False (and changes nothing) for a value larger than `max_value_bytes`, one
        already expired, or when the lock timed out. `expires_at` (absolute, same clock) wins
        over `ttl`; the default is the table's TTL.
        """
        self._check_key(key)
        now = self._clock()
        if expires_at is None:
            expires_at = now + (self.default_ttl if ttl is None else ttl)
        n = len(data)
        try:
            self._lock()
        except CacheLockTimeout:
            return False
        done = False
        try:
            h = self._h
            if n > self.max_value_bytes or expires_at <= now:
                h[H_REJECTED] += 1
                done = True
                return False
            old = self._find(key)
            if old != NIL:
                self._remove(old)
            self._insert(key, data, expires_at, now)
            h[H_PUTS] += 1
            done = True
            return True
        finally:
            self._unlock(done)

    def delete(self, key: bytes) -> bool:
        self._check_key(key)
        self._lock()
        done = False
        try:
            e = self._find(key)
            if e != NIL:
                self._remove(e)
            done = True
            return e != NIL
        finally:
            self._unlock(done)

    def sweep(self) -> int:
        """Drop every expired entry now (otherwise they go when read or evicted)."""
        now = self._clock()
        self._lock()
        done = False
        try:
            dropped = 0
            e = self._h[H_LRU_TAIL]
            while e != NIL:
                prev = self._prev[e]
                if self._expires[e] <= now:
                    self._remove(e)
                    dropped += 1
                e = prev
            self._h[H_EXPIRATIONS] += dropped
            done = True
            return dropped
        finally:
            self._unlock(done)

    def stats(self) -> dict[str, int | float]:
        """Counters since creation, shared by every process: hits, misses, hit_rate, size,
        evictions, expirations, puts, rejected (too large), recoveries, corrupt, lock_timeouts,
        bytes_used... When the lock times out, an unlocked (possibly inconsistent) snapshot."""
        try:
            self._lock()
        except CacheLockTimeout:
            out = self._counters()
        else:
            done = False
            try:
                out = self._counters()
                done = True
            finally:
                self._unlock(done)
        lookups = out["hits"] + out["misses"]
        out["hit_rate"] = out["hits"] / lookups if lookups else 0.0
        return out

    def _counters(self) -> dict[str, int | float]:
        h = self._h
        out: dict[str, int | float] = {k: h[i] for k, i in _COUNTERS.items()}
        out["size"] = h[H_COUNT]
        out["capacity"] = self.entries
        out["bytes_used"] = h[H_BYTES_USED]
        out["blocks_used"] = h[H_BLOCKS_USED]
        out["capacity_bytes"] = self.nblocks * self.block_size
        return out

    def keys_lru(self) -> list[bytes]:
        """Keys from most to least recently used (for tests, and for copying the table)."""
        self._lock()
        done = False
        try:
            keys = []
            e = self._h[H_LRU_HEAD]
            while e != NIL and len(keys) <= self.entries:
                keys.append(bytes(self._digest[e * KEY_SIZE:(e + 1) * KEY_SIZE]))
                e = self._next[e]
            done = True
            return keys
        finally:
            self._unlock(done)

    def __len__(self) -> int:
        return self._h[H_COUNT]

    # ----------------------------------------------------------------------------- internals
    # Everything below runs with the lock held.

    @staticmethod
    def _check_key(key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"cache keys are {KEY_SIZE}-byte digests (see ipc.cache_key)")

    def _find(self, key: bytes) -> int:
        digest = self._digest
        hnext = self._hnext
        e = self._buckets[int.from_bytes(key[:8], "little") & self._bmask]
        steps = 0
        while e != NIL:
            if digest[e * KEY_SIZE:(e + 1) * KEY_SIZE] == key:
                return e
            e = hnext[e]
            steps += 1
            if steps > self.entries:  # a cycle: the structure is damaged, not just dirty
                self._recover()
                return self._find(key)
        return NIL

    def _read(self, e: int) -> bytes:
        n = self._vlen[e]
        bs = self.block_size
        blocks = self._blocks
        b = self._first[e]
        if n <= bs:
            return bytes(blocks[b * bs:b * bs + n]) if n else b""
        bnext = self._bnext
        parts = []
        left = n
        while left > 0:
            take = bs if left > bs else left
            parts.append(blocks[b * bs:b * bs + take])
            left -= take
            b = bnext[b]
        return b"".join(parts)

    def _touch(self, e: int) -> None:
        h = self._h
        h[H_TICK] += 1
        self._tick[e] = h[H_TICK]
        if h[H_LRU_HEAD] == e:
            return
        self._lru_unlink(e)
        if self._failpoint is not None:
            self._failpoint("touch")
        self._lru_push_head(e)

    def _lru_unlink(self, e: int) -> None:
        h, prev, nxt = self._h, self._prev, self._next
        p, n = prev[e], nxt[e]
        if p != NIL:
            nxt[p] = n
        else:
            h[H_LRU_HEAD] = n
        if n != NIL:
            prev[n] = p
        else:
            h[H_LRU_TAIL] = p

    def _lru_push_head(self, e: int) -> None:
        h, prev, nxt = self._h, self._prev, self._next
        head = h[H_LRU_HEAD]
        prev[e] = NIL
        nxt[e] = head
        if head != NIL:
            prev[head] = e
        else:
            h[H_LRU_TAIL] = e
        h[H_LRU_HEAD] = e

    def _remove(self, e: int) -> None:
        h = self._h
        # Freed first: from here on a crash can only lose this entry, never serve it half-freed.
        self._state[e] = FREE
        bucket = int.from_bytes(self._digest[e * KEY_SIZE:e * KEY_SIZE + 8], "little") & self._bmask
        hnext = self._hnext
        cur = self._buckets[bucket]
        if cur == e:
            self._buckets[bucket] = hnext[e]
        else:
            while cur != NIL and hnext[cur] != e:
                cur = hnext[cur]
            if cur != NIL:
                hnext[cur] = hnext[e]
        self._lru_unlink(e)
        n = self._vlen[e]
        need = (n + self.block_size - 1) // self.block_size
        if need:
            first = last = self._first[e]
            for _ in range(need - 1):
                last = self._bnext[last]
            self._bnext[last] = h[H_FREE_BLOCK]
            h[H_FREE_BLOCK] = first
        self._next[e] = h[H_FREE_ENTRY]
        h[H_FREE_ENTRY] = e
        h[H_COUNT] -= 1
        h[H_BLOCKS_USED] -= need
        h[H_BYTES_USED] -= n

    def _insert(self, key: bytes, data: bytes, expires_at: float, now: float) -> None:
        h = self._h
        bs = self.block_size
        n = len(data)
        need = (n + bs - 1) // bs
        fp = self._failpoint
        while h[H_COUNT] >= self.entries or self.nblocks - h[H_BLOCKS_USED] < need:
            victim = h[H_LRU_TAIL]
            if victim == NIL:  # accounting says full but nothing to evict: let recovery rebuild
                raise RuntimeError("cache table accounting is inconsistent")
            expired = self._expires[victim] <= now
            self._remove(victim)
            h[H_EXPIRATIONS if expired else H_EVICTIONS] += 1
            if fp is not None:
                fp("evict")
        e = h[H_FREE_ENTRY]
        h[H_FREE_ENTRY] = self._next[e]
        first = NIL
        if need:
            # The free list is already a chain: take its first `need` blocks as they are.
            bnext = self._bnext
            blocks = self._blocks
            first = b = h[H_FREE_BLOCK]
            for i in range(need):
                chunk = data[i * bs:(i + 1) * bs]
                blocks[b * bs:b * bs + len(chunk)] = chunk
                if i == need // 2 and fp is not None:
                    fp("value")
                if i == need - 1:
                    h[H_FREE_BLOCK] = bnext[b]
                    bnext[b] = NIL
                else:
                    b = bnext[b]
        self._digest[e * KEY_SIZE:(e + 1) * KEY_SIZE] = key
        self._vlen[e] = n
        self._first[e] = first
        self._expires[e] = expires_at
        self._crcs[e] = _crc(key, data)
        h[H_TICK] += 1
        self._tick[e] = h[H_TICK]
        if fp is not None:
            fp("publish")
        self._state[e] = USED  # the commit point: only now may recovery keep this entry
        bucket = int.from_bytes(key[:8], "little") & self._bmask
        self._hnext[e] = self._buckets[bucket]
        self._buckets[bucket] = e
        if fp is not None:
            fp("link")
        self._lru_push_head(e)
        h[H_COUNT] += 1
        h[H_BLOCKS_USED] += need
        h[H_BYTES_USED] += n

    def _recover(self) -> None:
        """Rebuild every derived structure from the entries that validate (see module doc)."""
        h = self._h
        E, NB, bs = self.entries, self.nblocks, self.block_size
        state, vlen, first, bnext = self._state, self._vlen, self._first, self._bnext
        claimed = bytearray(NB)
        used = sorted((e for e in range(E) if state[e] == USED), key=lambda e: -self._tick[e])
        kept: list[int] = []
        seen: set[bytes] = set()
        for e in used:
            n = vlen[e]
            digest = bytes(self._digest[e * KEY_SIZE:(e + 1) * KEY_SIZE])
            chain = []
            ok = n <= self.max_value_bytes and digest not in seen
            b = first[e]
            for _ in range((n + bs - 1) // bs if ok else 0):
                if not 0 <= b < NB or claimed[b] or b in chain:
                    ok = False
                    break
                chain.append(b)
                b = bnext[b]
            if ok:
                data = b"".join(
                    self._blocks[c * bs:c * bs + min(bs, n - i * bs)] for i, c in enumerate(chain))
                ok = _crc(digest, data) == self._crcs[e]
            if not ok:
                state[e] = FREE
                continue
            for c in chain:
                claimed[c] = 1
            if chain:
                bnext[chain[-1]] = NIL
            else:
                first[e] = NIL
            seen.add(digest)
            kept.append(e)
        buckets = self._buckets
        for i in range(len(buckets)):
            buckets[i] = NIL
        h[H_LRU_HEAD] = h[H_LRU_TAIL] = NIL
        blocks_used = bytes_used = 0
        for e in reversed(kept):  # oldest first, so the newest ends at the head
            bucket = int.from_bytes(self._digest[e * KEY_SIZE:e * KEY_SIZE + 8], "little")
            bucket &= self._bmask
            self._hnext[e] = buckets[bucket]
            buckets[bucket] = e
            self._lru_push_head(e)
            blocks_used += (vlen[e] + bs - 1) // bs
            bytes_used += vlen[e]
        free_head = NIL
        for e in range(E - 1, -1, -1):
            if state[e] != USED:
                self._next[e] = free_head
                free_head = e
        h[H_FREE_ENTRY] = free_head
        free_head = NIL
        for b in range(NB - 1, -1, -1):
            if not claimed[b]:
                bnext[b] = free_head
                free_head = b
        h[H_FREE_BLOCK] = free_head
        h[H_COUNT] = len(kept)
        h[H_BLOCKS_USED] = blocks_used
        h[H_BYTES_USED] = bytes_used
        h[H_RECOVERIES] += 1

    def verify(self) -> list[str]:
        """Check every structural invariant; returns the problems found (empty when sound).
        Slow (walks the whole table): for tests and diagnostics."""
        self._lock()
        done = False
        try:
            problems = self._check()
            done = True
            return problems
        finally:
            self._unlock(done)

    def _check(self) -> list[str]:
        h = self._h
        E, NB, bs = self.entries, self.nblocks, self.block_size
        problems = []
        used = {e for e in range(E) if self._state[e] == USED}
        if len(used) != h[H_COUNT]:
            problems.append(f"count {h[H_COUNT]} != {len(used)} used entries")
        order, e, prev = [], h[H_LRU_HEAD], NIL
        while e != NIL and len(order) <= E:
            if self._prev[e] != prev:
                problems.append(f"lru_prev of {e} is {self._prev[e]}, expected {prev}")
            order.append(e)
            prev, e = e, self._next[e]
        if h[H_LRU_TAIL] != prev:
            problems.append("lru tail does not end the list")
        if set(order) != used or len(order) != len(used):
            problems.append("lru list does not hold exactly the used entries")
        ticks = [self._tick[e] for e in order]
        if ticks != sorted(ticks, reverse=True):
            problems.append("lru order disagrees with ticks")
        hashed = []
        for bucket in range(len(self._buckets)):
            e = self._buckets[bucket]
            while e != NIL and len(hashed) <= E:
                home = int.from_bytes(self._digest[e * KEY_SIZE:e * KEY_SIZE + 8], "little")
                if home & self._bmask != bucket:
                    problems.append(f"entry {e} in bucket {bucket}, not its own")
                hashed.append(e)
                e = self._hnext[e]
        if sorted(hashed) != sorted(used):
            problems.append("hash chains do not hold exactly the used entries")
        claimed = bytearray(NB)
        blocks_used = bytes_used = 0
        for e in used:
            b, n = self._first[e], self._vlen[e]
            chain = []
            for _ in range((n + bs - 1) // bs):
                if not 0 <= b < NB or claimed[b]:
                    problems.append(f"entry {e}: bad or shared block {b}")
                    break
                claimed[b] = 1
                chain.append(b)
                b = self._bnext[b]
            blocks_used += len(chain)
            bytes_used += n
            data = self._read(e) if len(chain) == (n + bs - 1) // bs else b""
            digest = self._digest[e * KEY_SIZE:(e + 1) * KEY_SIZE]
            if _crc(digest, data) != self._crcs[e]:
                problems.append(f"entry {e}: crc mismatch")
        if (blocks_used, bytes_used) != (h[H_BLOCKS_USED], h[H_BYTES_USED]):
            problems.append("block or byte accounting is off")
        free, b = 0, h[H_FREE_BLOCK]
        while b != NIL and free <= NB:
            if claimed[b]:
                problems.append(f"free block {b} is in use")
                break
            free += 1
            b = self._bnext[b]
        if free != NB - blocks_used:
            problems.append(f"{free} free blocks, expected {NB - blocks_used}")
        free, e = 0, h[H_FREE_ENTRY]
        while e != NIL and free <= E:
            if e in used:
                problems.append(f"free entry {e} is in use")
                break
            free += 1
            e = self._next[e]
        if free != E - len(used):
            problems.append(f"{free} free entries, expected {E - len(used)}")
        return problems


def _initialize(buf: memoryview, offsets: dict, entries: int, buckets: int, nblocks: int,
                block_size: int, max_value: int, size: int, ttl: float) -> None:
    """Lay out a zero-filled segment: every entry and block free, then the magic, last, so an
    early attacher sees an invalid table rather than a half-built one."""

    def put_ints(name: str, values: array.array) -> None:
        off, length = offsets[name]
        buf[off:off + length] = values.tobytes()

    put_ints("buckets", array.array("i", [NIL]) * buckets)
    put_ints("lru_prev", array.array("i", [NIL]) * entries)
    put_ints("hash_next", array.array("i", [NIL]) * entries)
    put_ints("first_block", array.array("i", [NIL]) * entries)
    put_ints("lru_next", array.array("i", range(1, entries + 1)[:-1]) + array.array("i", [NIL]))
    put_ints("block_next", array.array("i", range(1, nblocks + 1)[:-1]) + array.array("i", [NIL]))
    with buf[0:8 * HEADER_SLOTS].cast("q") as h:
        h[H_VERSION] = LAYOUT_VERSION
        h[H_ENTRIES] = entries
        h[H_BUCKETS] = buckets
        h[H_NBLOCKS] = nblocks
        h[H_BLOCK_SIZE] = block_size
        h[H_MAX_VALUE] = max_value
        h[H_TTL_MS] = -1 if math.isinf(ttl) else round(ttl * 1000)
        h[H_SIZE] = size
        h[H_LRU_HEAD] = h[H_LRU_TAIL] = NIL
        h[H_FREE_ENTRY] = 0
        h[H_FREE_BLOCK] = 0
        h[H_MAGIC] = MAGIC
