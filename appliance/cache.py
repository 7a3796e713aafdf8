"""The appliance's translation cache: key routing, the shared table's lifecycle, the counters.

    supervisor start ──▶ ShmCache.create(<name from the run dir>) ──▶ TieredCache(table, level)
                         └▶ warm(): newest persistent rows into the table ──▶ spawn workers
    request ──▶ keys (one per target) ──▶ table, then persistent level
                  │ every target hit: result events at once, no worker
                  └ misses only: Task(cache_key=…) to a worker, which looks the key up again just
                    before decoding and puts what it decodes into the table
    Result from a worker (decoded) ──▶ persistent level, written behind (this process is its only
                                       writer)
    supervisor exit ──▶ flush the write-behind, close, unlink the table

Keys (`ipc.cache_key.cache_key`) name the model that will serve the task, so the edge must pick
it without a worker, the way `workers.runtime.Runtime` does: an explicit tier is that tier's
model; `auto` with a known source is the lowest tier whose pairs hold (source, target), else the
highest tier's model (the runtime's fallback). `auto` with source `auto` depends on language
detection, which lives in the workers; such a task is keyed by the whole tier route (every
loaded model's name and revision, lowest tier first) and the literal source "auto". The same text
and models always give the same detection, so that key is as correct as an explicit one; it is
just a different entry. Decoding settings in the key: the beam size.

This module knows model names and tiers only as the workers' Ready frame reports them; it never
imports `workers/`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable

from appliance.config import TIERS, Settings
from ipc.cache_key import CachedTranslation, cache_key, decode_value, encode_value
from ipc.frames import ModelInfo, Result
from ipc.persistent_cache import TieredCache, open_level
from ipc.shm_cache import ShmCache

log = logging.getLogger("meeshy.cache")

AUTO = "auto"


def table_name(run_dir: str) -> str:
    """The shared-memory name for the appliance using `run_dir`: unique per run directory, and
    stable, so a table left by a supervisor that was killed is replaced by the next one there
    (the run directory's lock says no live appliance still uses it)."""
    return "meeshy-cache-" + hashlib.blake2b(run_dir.encode(), digest_size=8).hexdigest()


class KeyRouter:
    """Which model serves (tier, source, target), and so which cache key a task has."""

    def __init__(self, languages: dict[str, list[tuple[str, str]]], models: Iterable[ModelInfo]) -> None:
        self.pairs = {tier: {tuple(p) for p in pairs} for tier, pairs in languages.items()}
        self.models = {m.tier: (m.name, m.revision) for m in models}
        ordered = [t for t in TIERS if t in self.pairs and t in self.models]
        self.ordered = ordered
        if ordered:
            self.route = (
                "auto:" + "+".join(self.models[t][0] for t in ordered),
                "+".join(self.models[t][1] for t in ordered),
            )
        else:
            self.route = None

    def model_for(self, tier: str, source: str, target: str) -> tuple[str, str] | None:
        """(model name, revision) serving the task, the route for auto/auto, or None."""
        if tier != AUTO:
            return self.models.get(tier)
        if source == AUTO:
            return self.route
        for t in self.ordered:
            if (source, target) in self.pairs[t]:
                return self.models[t]
        return self.models[self.ordered[-1]] if self.ordered else None

    def key(self, text: str, source: str, target: str, tier: str, beam_size: int = 1) -> bytes | None:
        model = self.model_for(tier, source, target)
        if model is None:
            return None
        return cache_key(model[0], model[1], source, target, text, {"beam_size": beam_size})


class ApplianceCache:
    """Owned by the supervisor: creates the table, reads and writes through the tiers."""

    def __init__(self, settings: Settings, run_dir: str) -> None:
        c = settings.cache
        self.name = table_name(run_dir)
        self.router: KeyRouter | None = None
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

    def set_models(self, languages: dict[str, list[tuple[str, str]]], models: Iterable[ModelInfo]) -> None:
        self.router = KeyRouter(languages, models)

    # ------------------------------------------------------------------ the request path

    def key(self, text: str, source: str, target: str, tier: str) -> bytes:
        """The task's key, or b"" when no model is known for it (then it is never cached)."""
        if self.router is None:
            return b""
        return self.router.key(text, source, target, tier) or b""

    def lookup(self, key: bytes) -> CachedTranslation | None:
        data = self.tiers.get_bytes(key)
        if data is None:
            return None
        try:
            return decode_value(data)
        except Exception:  # another version's bytes: a miss
            return None

    def count_edge_hit(self) -> None:
        self.edge_hits += 1

    def on_result(self, key: bytes, frame: Result) -> None:
        """A worker's answer: count it; a fresh translation goes to the persistent level (the
        worker has put it into the table already)."""
        if frame.from_cache:
            self.worker_hits += 1
            return
        self.misses += 1
        if key:
            value = CachedTranslation(
                frame.text, frame.source_language, frame.confidence, frame.model, frame.tier, time.time()
            )
            self.tiers.persist(key, encode_value(value))

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
            "warm_loaded": self.loaded,
        }

    def close(self, timeout: float = 2.0) -> None:
        try:
            self.tiers.close(timeout)
        except Exception as exc:
            log.warning("persistent cache level did not close cleanly: %s", exc)
        self.table.unlink()
        self.table.close()


def disabled_stats() -> dict:
    return {"hits": 0, "misses": 0, "hit_rate": 0.0, "size": 0, "enabled": False}


def _redact(url: str) -> str:
    """A URL for the log without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
