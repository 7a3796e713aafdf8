"""The appliance's translation cache: message keys, the shared table's lifecycle, the counters.

    supervisor start ──▶ ShmCache.create(<name from the run dir>) ──▶ TieredCache(table, level)
                         └▶ warm(): newest persistent rows into the table ──▶ spawn workers
    request ──▶ a message key per target ──▶ table (lookup_memory, on the event loop),
                  then persistent level (lookup_persistent: one reader thread, awaited)
                  │ every target hit: result events at once, no worker, no detection
                  └ misses: Task to a worker, which segments the message and looks each segment
                    up in the same table by its own segment key (ipc.cache_key.segment_key)
    Result from a worker ──▶ the message entry: into the table and, written behind, the
                             persistent level (this process is its only writer)
    supervisor exit ──▶ flush the write-behind, close, unlink the table

A message key covers the text byte for byte, the requested source ("auto" included: detection
is deterministic for a given text and model set), target and model type, and the *deployment*:
every loaded model's name and revision plus the settings that steer routing and detection. Any
change of models or routing therefore starts a fresh set of entries; the worker's segment
entries survive it only where the same model sees the same tokens.

This module knows models only as the workers' Ready frame reports them; it never imports
`workers/`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import msgspec

from appliance.config import Settings
from ipc.cache_key import CachedTranslation, Detection, cache_key, decode_value, encode_value
from ipc.frames import ModelInfo, Result
from ipc.persistent_cache import TieredCache, open_level
from ipc.shm_cache import ShmCache

log = logging.getLogger("meeshy.cache")


def table_name(run_dir: str) -> str:
    """The shared-memory name for the appliance using `run_dir`: unique per run directory, and
    stable, so a table left by a supervisor that was killed is replaced by the next one there
    (the run directory's lock says no live appliance still uses it)."""
    return "meeshy-cache-" + hashlib.blake2b(run_dir.encode(), digest_size=8).hexdigest()


def deployment(models: Iterable[ModelInfo], settings: Settings) -> str:
    """What every message key depends on besides the request: the models and routing settings."""
    material = msgspec.json.encode(
        [
            sorted((m.tier, m.name, m.revision) for m in models),
            msgspec.structs.asdict(settings.routing),
            msgspec.structs.asdict(settings.languages),
            settings.tier_models(),
        ]
    )
    return hashlib.blake2b(material, digest_size=16).hexdigest()


class ApplianceCache:
    """Owned by the supervisor: creates the table, reads and writes through the tiers."""

    def __init__(self, settings: Settings, run_dir: str) -> None:
        c = settings.cache
        self.name = table_name(run_dir)
        self.settings = settings
        self.deployment = ""  # set once the first worker reports its models
        self.edge_hits = 0
        self.worker_hits = 0
        self.misses = 0
        self.persistent_url = settings.persistent_cache_url()
        self.persistent_open_error: str | None = None
        self.table = ShmCache.create(
            self.name, c.entries, c.max_bytes, c.ttl_s, max_value_bytes=c.max_value_bytes, replace=True
        )
        level = None
        if self.persistent_url:
            try:
                level = open_level(self.persistent_url, **self._level_options(settings))
            except Exception as exc:  # any failure to open: serve from memory, say so
                self.persistent_open_error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "persistent cache level %s cannot be opened (%s): serving from memory only; "
                    "fix [cache] persistent / MEESHY_CACHE_URL or [server] state_dir and restart",
                    _redact(self.persistent_url), self.persistent_open_error,
                )
        self.tiers = TieredCache(self.table, level, retry_after=c.retry_after_s)
        # Persistent reads leave the event loop for this one thread: one SQLite connection (or
        # Redis client) reading, in order, never more than one blocked call at a time.
        self._reader = (
            ThreadPoolExecutor(1, thread_name_prefix="cache-persistent-read") if level is not None else None
        )
        self._closed = False
        self.loaded = self.tiers.warm() if level is not None else 0
        if level is not None:
            log.info(
                "cache: %d entries in shared memory %s, persistent level %s (%d warm entries)",
                c.entries, self.name, _redact(self.persistent_url), self.loaded,
            )

    @staticmethod
    def _level_options(settings: Settings) -> dict:
        url = settings.persistent_cache_url()
        if url.startswith(("redis://", "rediss://", "unix://")):
            return {}
        return {"max_entries": settings.cache.persistent_max_entries}

    def set_models(self, models: Iterable[ModelInfo]) -> None:
        self.deployment = deployment(models, self.settings)

    # ------------------------------------------------------------------ the request path

    def key(self, text: str, source: str, target: str, model_type: str, format: str = "text") -> bytes:
        """The message's key, or b"" before any worker reported its models (then not cached).
        An HTML message is another message than the same text as chat text."""
        if not self.deployment:
            return b""
        decoding = {"model_type": model_type, "beam_size": 1} | ({"format": format} if format != "text" else {})
        return cache_key("message", self.deployment, source, target, text, decoding)

    def lookup(self, key: bytes) -> CachedTranslation | None:
        """Table, then persistent level, in the caller's thread."""
        return _decode(self.tiers.get_bytes(key))

    def lookup_memory(self, key: bytes) -> CachedTranslation | None:
        """The shared table only: never waits on the persistent level, and on the table's lock
        at most its timeout (then a miss)."""
        return _decode(self.table.get_bytes(key))

    @property
    def has_persistent(self) -> bool:
        """Whether `lookup_persistent` may find anything now: a level is open and not sitting
        out its retry back-off."""
        return not self._closed and self.tiers.persistent_usable

    async def lookup_persistent(self, keys: list[bytes]) -> dict[bytes, CachedTranslation]:
        """The persistent level for keys the table missed, on the reader thread; hits are
        promoted into the table. Level failures degrade it (see TieredCache) and read as misses."""
        if not keys or self._reader is None or not self.has_persistent:
            return {}
        found = await asyncio.get_running_loop().run_in_executor(self._reader, self.tiers.get_persistent_many, keys)
        hits = {}
        for key, data in found.items():
            value = _decode(data)
            if value is not None:
                hits[key] = value
        return hits

    def count_edge_hit(self) -> None:
        self.edge_hits += 1

    def on_result(self, key: bytes, frame: Result, detection: Detection | None) -> None:
        """A worker's answer: count it, and store it as the message's entry (table and persistent
        level). Its segments are in the table already: the worker put them there."""
        if frame.from_cache:
            self.worker_hits += 1
        else:
            self.misses += 1
        self.store(key, frame, detection)

    def store(self, key: bytes, frame: Result, detection: Detection | None) -> None:
        """`frame` as the entry of message `key` (table and persistent level), uncounted."""
        if not key or not frame.cacheable:  # an engine exchange went wrong on the way: never kept
            return
        value = CachedTranslation(
            frame.text, frame.source_language, frame.confidence, frame.model, frame.tier, time.time(),
            frame.segments, detection,
        )
        self.tiers.put_bytes(key, encode_value(value))

    # ------------------------------------------------------------------ counters and shutdown

    def stats(self) -> dict:
        t = self.tiers.stats()
        hits = self.edge_hits + self.worker_hits
        answered = hits + self.misses
        level = t["persistent_level"] or (self.persistent_url and "unavailable") or None
        return {
            "hits": hits,
            "misses": self.misses,
            "hit_rate": round(hits / answered, 4) if answered else 0.0,
            "size": t["size"],
            "enabled": True,
            "edge_hits": self.edge_hits,
            "worker_hits": self.worker_hits,
            "capacity": t["capacity"],
            "bytes_used": t["bytes_used"],
            "evictions": t["evictions"],
            "expirations": t["expirations"],
            "persistent_level": level,
            "persistent_ok": (t["persistent_ok"] and self.persistent_open_error is None) if level else None,
            "persistent_errors": t["persistent_errors"] + (1 if self.persistent_open_error else 0),
            "persistent_hits": t["persistent_hits"],
            "persistent_written": t["write_behind_written"],
            "persistent_dropped": t["write_behind_dropped"],
            "persistent_reopened": t["persistent_reopened"],
            "persistent_repairs": t["persistent_repairs"],
            "lock_timeouts": t["lock_timeouts"],
            "warm_loaded": self.loaded,
        }

    def close(self, timeout: float = 2.0) -> None:
        self._closed = True
        if self._reader is not None:
            # Waits for a read in progress (bounded by the level's own timeouts); queued ones are
            # cancelled, so their awaiting lookup_persistent calls raise CancelledError.
            self._reader.shutdown(wait=True, cancel_futures=True)
        try:
            self.tiers.close(timeout)
        except Exception as exc:
            log.warning("persistent cache level did not close cleanly: %s", exc)
        self.table.unlink()
        self.table.close()


def _decode(data: bytes | None) -> CachedTranslation | None:
    if data is None:
        return None
    try:
        return decode_value(data)
    except Exception:  # another version's bytes: a miss
        return None


def disabled_stats() -> dict:
    return {"hits": 0, "misses": 0, "hit_rate": 0.0, "size": 0, "enabled": False}


def _redact(url: str) -> str:
    """A URL for the log without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
