"""Counters for the `stats` request, GET /stats and GET /metrics (Prometheus text format).

The JSON shape follows DESIGN.md:

    {"service": {"total_requests", "requests_per_second", "avg_processing_time", "errors", ...},
     "cache":   {"hits", "misses", "hit_rate", "size"},
     "workers": {"max_workers", "active_workers", "slots": [...]},
     "tasks":   {...}}

`requests_per_second` is the mean over the last minute (one-second buckets); `avg_processing_time`
is the mean worker-side milliseconds per completed task. The `cache` section comes from
`appliance.cache.ApplianceCache.stats()`.
"""

from __future__ import annotations

import time
from collections import deque

RATE_WINDOW_S = 60


class Metrics:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.total_requests = 0  # every request on 5555 and HTTP, valid or not
        self.translation_requests = 0  # accepted translation requests
        self.duplicate_requests = 0
        self.request_errors = 0  # error replies
        self.tasks_completed = 0
        self.tasks_failed = 0  # error events
        self.processing_ms_total = 0.0
        self.processing_ms_ewma = 0.0
        self._buckets: deque[list[int]] = deque()  # [second, count]

    def count_request(self) -> None:
        self.total_requests += 1
        second = int(time.monotonic())
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([second, 1])
        while self._buckets and self._buckets[0][0] <= second - RATE_WINDOW_S:
            self._buckets.popleft()

    def requests_per_second(self) -> float:
        now = time.monotonic()
        span = min(RATE_WINDOW_S, max(1.0, now - self.started))
        recent = sum(c for s, c in self._buckets if s > now - RATE_WINDOW_S)
        return recent / span

    def count_completed(self, processing_ms: float) -> None:
        self.tasks_completed += 1
        self.processing_ms_total += processing_ms
        alpha = 0.1
        self.processing_ms_ewma = (
            processing_ms if self.tasks_completed == 1 else (1 - alpha) * self.processing_ms_ewma + alpha * processing_ms
        )

    def avg_processing_ms(self) -> float:
        return self.processing_ms_total / self.tasks_completed if self.tasks_completed else 0.0

    def service(self, status: str) -> dict:
        return {
            "status": status,
            "total_requests": self.total_requests,
            "translation_requests": self.translation_requests,
            "duplicate_requests": self.duplicate_requests,
            "requests_per_second": round(self.requests_per_second(), 3),
            "avg_processing_time": round(self.avg_processing_ms(), 3),
            "errors": self.request_errors + self.tasks_failed,
            "request_errors": self.request_errors,
            "uptime_s": round(time.monotonic() - self.started, 3),
        }


def prometheus(stats: dict) -> str:
    """Render a stats document (the JSON shape above) as Prometheus text exposition format."""
    out: list[str] = []

    def metric(name: str, kind: str, help_: str, value: float, labels: str = "") -> None:
        full = f"meeshy_{name}"
        if not any(line.startswith(f"# TYPE {full} ") for line in out):
            out.append(f"# HELP {full} {help_}")
            out.append(f"# TYPE {full} {kind}")
        out.append(f"{full}{labels} {float(value):g}")

    svc, cache, workers, tasks = stats["service"], stats["cache"], stats["workers"], stats["tasks"]
    metric("requests_total", "counter", "Requests received on 5555 and HTTP.", svc["total_requests"])
    metric("request_errors_total", "counter", "Requests answered with an error.", svc["request_errors"])
    metric("requests_per_second", "gauge", "Mean request rate over the last minute.", svc["requests_per_second"])
    metric("avg_processing_time_ms", "gauge", "Mean worker milliseconds per task.", svc["avg_processing_time"])
    metric("uptime_seconds", "gauge", "Seconds since the appliance started.", svc["uptime_s"])
    metric("tasks_completed_total", "counter", "Targets published as translation_completed.", tasks["completed"])
    metric("tasks_failed_total", "counter", "Targets published as translation_error.", tasks["failed"])
    metric("tasks_redispatched_total", "counter", "Tasks dispatched again after a worker died.", tasks["redispatched"])
    metric("tasks_in_flight", "gauge", "Accepted targets not yet published.", tasks["in_flight"])
    metric("tasks_pending", "gauge", "Accepted targets waiting for a worker.", tasks["pending"])
    edge = stats["edge"]
    metric("dropped_replies_total", "counter", "Replies dropped: the client's budget was full or it left.", edge["dropped_replies"])
    metric("cache_hits_total", "counter", "Targets answered from the cache (edge or worker).", cache["hits"])
    metric("cache_misses_total", "counter", "Targets a worker had to translate.", cache["misses"])
    metric("cache_entries", "gauge", "Entries in the shared-memory cache.", cache["size"])
    if cache.get("enabled"):
        metric("cache_edge_hits_total", "counter", "Targets answered from the cache without a worker.", cache["edge_hits"])
        metric("cache_evictions_total", "counter", "Cache entries evicted (LRU).", cache["evictions"])
        metric("cache_expirations_total", "counter", "Cache entries dropped at their TTL.", cache["expirations"])
        metric("cache_bytes", "gauge", "Value bytes in the shared-memory cache.", cache["bytes_used"])
        metric("cache_lock_timeouts_total", "counter", "Cache lookups given up on a lock held too long.", cache["lock_timeouts"])
        if cache["persistent_level"] is not None:
            metric("cache_persistent_ok", "gauge", "1 while the persistent cache level works.", bool(cache["persistent_ok"]))
            metric("cache_persistent_errors_total", "counter", "Persistent cache level failures.", cache["persistent_errors"])
            metric("cache_persistent_reopened_total", "counter", "Persistent cache file found deleted or replaced and reopened.", cache["persistent_reopened"])
    metric("workers_max", "gauge", "Configured worker processes.", workers["max_workers"])
    metric("workers_active", "gauge", "Worker processes ready to serve.", workers["active_workers"])
    per_slot = (
        ("worker_restarts_total", "counter", "Respawns of a worker slot.", lambda w: w["restarts"]),
        ("worker_tasks_held", "gauge", "Tasks a worker holds.", lambda w: w["held"]),
        ("worker_up", "gauge", "1 when the slot's worker is ready.", lambda w: w["state"] == "ready"),
    )
    for name, kind, help_, value in per_slot:  # a family's samples must be contiguous
        for slot in workers["slots"]:
            metric(name, kind, help_, value(slot), f'{{slot="{slot["slot"]}"}}')
    return "\n".join(out) + "\n"
