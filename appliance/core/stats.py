"""The appliance's metrics: counters for the `stats` request and GET /stats, and the Prometheus
families of GET /metrics, kept in a `CollectorRegistry` of this appliance's own (never
prometheus_client's global one, so two appliances in one process, or a test, never mix).

The JSON shape follows DESIGN.md:

    {"service": {"total_requests", "requests_per_second", "avg_processing_time", "errors", ...},
     "cache":   {"hits", "misses", "hit_rate", "size"},
     "workers": {"max_workers", "active_workers", "slots": [...]},
     "tasks":   {...}}

`requests_per_second` is the mean over the last minute (one-second buckets); `avg_processing_time`
is the mean worker-side milliseconds per completed task. The `cache` section comes from
`appliance.cache.ApplianceCache.stats()`.

/metrics has two kinds of families (docs/operations.md, Monitoring, lists them all):

    observed    counted as things happen: errors by code, latency, queue and worker time
                histograms, translations per model and language pair, HTTP responses
    collected   read at scrape time from the stats document (StatsCollector): cache counters,
                tasks in flight, and the per-slot figures workers send in their Stats frames
                (tasks, batches, busy time, RSS; cumulative since the worker started, so a
                respawn is a counter reset, which rate() handles)

Workers report no per-batch sizes and no token counts (ipc/frames.py Stats): the mean batch size
is rate(meeshy_worker_tasks_total) / rate(meeshy_worker_batches_total); a batch-size histogram or
tokens/s would need a frame change.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator

import prometheus_client
import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

RATE_WINDOW_S = 60
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds: cache hits answer in microseconds, a long message on a loaded appliance in tens of
# seconds; the last finite bucket is near [limits] task_timeout_s' default (120 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    def __init__(self) -> None:
        # A `_created` series per counter and histogram doubles the series and no panel reads
        # them. This switch is process-wide in prometheus_client (it has no per-registry one).
        prometheus_client.disable_created_metrics()
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
        self._process = psutil.Process()

        self.registry = CollectorRegistry()
        r = self.registry
        self.errors_by_code = Counter(
            "meeshy_request_errors", "Requests answered with an error, by error code.", ["code"], registry=r
        )
        self.failed_by_code = Counter(
            "meeshy_tasks_failed", "Targets published as translation_error, by error code.", ["code"], registry=r
        )
        self.latency = Histogram(
            "meeshy_latency_seconds",
            "Acceptance of a request to the event of one of its targets (completed or failed).",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "meeshy_queue_seconds",
            "Acceptance of a request to the first dispatch of one of its targets to a worker.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.processing_time = Histogram(
            "meeshy_processing_seconds",
            "Worker wall time of the batch that translated a target.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.translations = Counter(
            "meeshy_translations",
            "Completed translations (worker results and cache hits) by model and language pair.",
            ["model", "source", "target"],
            registry=r,
        )
        self._translation_children: dict[tuple[str, str, str], Counter] = {}
        self._latency_children: dict[bool, Histogram] = {}
        self.http_responses = Counter(
            "meeshy_http_responses", "HTTP responses by route and status.", ["route", "status"], registry=r
        )
        self.http_connections = Gauge("meeshy_http_connections", "Open HTTP connections.", registry=r)
        self.http_refused = Counter(
            "meeshy_http_connections_refused",
            "HTTP connections refused at [http] max_connections or max_connections_per_peer, none evictable (answered 503).",
            registry=r,
        )
        self.http_evicted = Counter(
            "meeshy_http_connections_evicted",
            "Unauthenticated HTTP connections waiting for a request head, closed to make room at a connection cap.",
            registry=r,
        )

    def collect_from(self, stats: Callable[[], dict]) -> None:
        """Export the stats document's figures (called once, by the service that builds it)."""
        self.registry.register(StatsCollector(stats))

    def exposition(self) -> bytes:
        """GET /metrics: the Prometheus text format."""
        return generate_latest(self.registry)

    # ------------------------------------------------------------------ observations

    def count_request(self) -> None:
        self.total_requests += 1
        second = int(time.monotonic())
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([second, 1])
        while self._buckets and self._buckets[0][0] <= second - RATE_WINDOW_S:
            self._buckets.popleft()

    def count_error(self, code: str) -> None:
        self.request_errors += 1
        self.errors_by_code.labels(code).inc()

    def count_failed(self, code: str) -> None:
        self.tasks_failed += 1
        self.failed_by_code.labels(code).inc()

    def count_completed(self, processing_ms: float) -> None:
        self.tasks_completed += 1
        self.processing_ms_total += processing_ms
        self.processing_time.observe(processing_ms / 1000.0)
        alpha = 0.1
        self.processing_ms_ewma = (
            processing_ms if self.tasks_completed == 1 else (1 - alpha) * self.processing_ms_ewma + alpha * processing_ms
        )

    def count_translation(self, model: str, source: str, target: str) -> None:
        """Label values come from the loaded models and the served languages: a bounded set, so
        each child is looked up once (`labels` costs more than the increment, per cache hit)."""
        key = (model, source, target)
        child = self._translation_children.get(key)
        if child is None:
            child = self._translation_children[key] = self.translations.labels(model, source, target)
        child.inc()

    def observe_latency(self, seconds: float, ok: bool) -> None:
        child = self._latency_children.get(ok)
        if child is None:
            child = self._latency_children[ok] = self.latency.labels("completed" if ok else "failed")
        child.observe(max(0.0, seconds))

    def observe_queue_time(self, seconds: float) -> None:
        self.queue_time.observe(max(0.0, seconds))

    def count_http(self, route: str, status: int) -> None:
        self.http_responses.labels(route, str(status)).inc()

    # ------------------------------------------------------------------ the JSON document

    def requests_per_second(self) -> float:
        now = time.monotonic()
        span = min(RATE_WINDOW_S, max(1.0, now - self.started))
        recent = sum(c for s, c in self._buckets if s > now - RATE_WINDOW_S)
        return recent / span

    def avg_processing_ms(self) -> float:
        return self.processing_ms_total / self.tasks_completed if self.tasks_completed else 0.0

    def rss_bytes(self) -> int:
        try:
            return self._process.memory_info().rss
        except psutil.Error:
            return 0

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
            "rss_bytes": self.rss_bytes(),
        }


COMPAT_COUNTERS = (
    ("requests", "Gateway messages read on the compat pull port."),
    ("refused", "Gateway translations answered with a translation_error (pool full included)."),
    ("pool_full", "Gateway translations refused at once: the gateways could not read their events in time."),
    ("dropped_events", "Gateway events dropped: over [compat] event_buffer_bytes."),
    ("republished", "Gateway events sent for a language a re-push asked for again."),
    ("suppressed_repeats", "Re-pushed languages answered with nothing: sent within retry_window_s, or running."),
    ("withheld_failures", "Failed languages not published to the gateway (its re-push runs them again)."),
    ("unserved", "Languages no model serves, settled with an unserved: event."),
    ("unreadable", "Gateway messages that were not a JSON object, or too large to decode."),
    ("forgotten_tasks", "Gateway tasks forgotten at a count bound."),
    ("dropped_messages", "Gateway messages dropped whole: over a frame, message or frame-count bound."),
    ("refused_connections", "Connections to the compat pull port closed at max_connections."),
    ("protocol_errors", "Compat pull port connections closed for breaking ZMTP."),
)
COMPAT_GAUGES = (
    ("gateways", "Gateways subscribed to the compat PUB."),
    ("events_owed", "Languages of gateway tasks still owed an event."),
    ("events_buffered", "Gateway events waiting for a full pipe (the outbox)."),
    ("delivery_delay_s", "Estimated seconds before the gateways read an event sent now."),
)


class StatsCollector:
    """Families read from the stats document at each scrape (prometheus_client custom collector)."""

    def __init__(self, stats: Callable[[], dict]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        svc, cache, workers, tasks, edge = stats["service"], stats["cache"], stats["workers"], stats["tasks"], stats["edge"]

        def counter(name: str, help_: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"meeshy_{name}", help_, value=value)

        def gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"meeshy_{name}", help_, value=float(value))

        yield counter("requests", "Requests received on 5555 and HTTP.", svc["total_requests"])
        yield counter("translation_requests", "Translation requests accepted.", svc["translation_requests"])
        yield counter("duplicate_requests", "Requests naming a taskId already known.", svc["duplicate_requests"])
        yield gauge("requests_per_second", "Mean request rate over the last minute.", svc["requests_per_second"])
        yield gauge("avg_processing_time_ms", "Mean worker milliseconds per task.", svc["avg_processing_time"])
        yield gauge("uptime_seconds", "Seconds since the appliance started.", svc["uptime_s"])
        yield gauge("supervisor_rss_bytes", "Resident memory of the supervisor process.", svc["rss_bytes"])
        yield counter("tasks_completed", "Targets a worker translated (published as translation_completed).", tasks["completed"])
        yield counter("tasks_redispatched", "Tasks dispatched again after a worker died.", tasks["redispatched"])
        yield counter("tasks_coalesced", "Targets answered by an identical task's run, never sent to a worker.", tasks["coalesced"])
        yield gauge("tasks_following", "Targets in flight waiting on an identical task's run.", tasks["following"])
        yield gauge("tasks_in_flight", "Accepted targets not yet published.", tasks["in_flight"])
        yield gauge("tasks_pending", "Accepted targets waiting for a worker (the queue).", tasks["pending"])
        yield gauge("tasks_capacity", "Targets that may be in flight at once ([limits] max_inflight_tasks).", tasks["capacity"])
        yield gauge("tasks_in_flight_bytes", "Bytes the texts and ids of tasks in flight hold ([limits] max_inflight_bytes).", tasks["in_flight_bytes"])
        yield counter("tasks_refused_for_bytes", "Requests refused as overloaded by [limits] max_inflight_bytes.", tasks["refused_for_bytes"])
        yield counter("dropped_replies", "Replies dropped: the client's budget was full or it left.", edge["dropped_replies"])

        yield counter("cache_hits", "Targets answered from the cache (edge or worker).", cache["hits"])
        yield counter("cache_misses", "Targets a worker had to translate.", cache["misses"])
        yield gauge("cache_entries", "Entries in the shared-memory cache.", cache["size"])
        if cache.get("enabled"):
            yield counter("cache_edge_hits", "Targets answered from the cache without a worker.", cache["edge_hits"])
            yield counter("cache_worker_hits", "Targets a worker answered wholly from the cache.", cache["worker_hits"])
            yield gauge("cache_capacity", "Entries the shared-memory cache can hold.", cache["capacity"])
            yield counter("cache_evictions", "Cache entries evicted (LRU).", cache["evictions"])
            yield counter("cache_expirations", "Cache entries dropped at their TTL.", cache["expirations"])
            yield gauge("cache_bytes", "Value bytes in the shared-memory cache.", cache["bytes_used"])
            yield counter("cache_lock_timeouts", "Cache lookups given up on a lock held too long.", cache["lock_timeouts"])
            if cache["persistent_level"] is not None:
                yield gauge("cache_persistent_ok", "1 while the persistent cache level works.", bool(cache["persistent_ok"]))
                yield counter("cache_persistent_errors", "Persistent cache level failures.", cache["persistent_errors"])
                yield counter("cache_persistent_reopened", "Persistent cache file found deleted or replaced and reopened.", cache["persistent_reopened"])
                yield counter("cache_persistent_repairs", "Corrupt persistent cache files moved aside and recreated.", cache["persistent_repairs"])
                yield counter("cache_persistent_hits", "Lookups the persistent level answered.", cache["persistent_hits"])
                yield counter("cache_persistent_written", "Entries written behind to the persistent level.", cache["persistent_written"])
                yield counter("cache_persistent_dropped", "Write-behind entries dropped (queue full or level down).", cache["persistent_dropped"])

        compat = stats.get("compat")
        if compat is not None:  # [compat] on: Meeshy's gateway door (appliance/edge/compat.py)
            for key, help_ in COMPAT_COUNTERS:
                yield counter(f"compat_{key}", help_, compat[key])
            for key, help_ in COMPAT_GAUGES:
                yield gauge(f"compat_{key}", help_, compat[key])

        yield gauge("workers_max", "Configured worker processes.", workers["max_workers"])
        yield gauge("workers_active", "Worker processes ready to serve.", workers["active_workers"])
        per_slot = (
            (CounterMetricFamily, "worker_restarts", "Respawns of a worker slot.", lambda w: w["restarts"]),
            (GaugeMetricFamily, "worker_tasks_held", "Tasks a worker holds (dispatched, not answered).", lambda w: w["held"]),
            (GaugeMetricFamily, "worker_up", "1 when the slot's worker is ready.", lambda w: w["state"] == "ready"),
            (CounterMetricFamily, "worker_tasks", "Tasks the slot's worker answered (its Stats frames).", lambda w: w["tasks"]),
            (CounterMetricFamily, "worker_batches", "Batches the slot's worker decoded (its Stats frames).", lambda w: w["batches"]),
            (CounterMetricFamily, "worker_failures", "Tasks the slot's worker answered with an error.", lambda w: w["failures"]),
            (CounterMetricFamily, "worker_busy_seconds", "Seconds the slot's worker spent on batches.", lambda w: w["busy_s"]),
            (GaugeMetricFamily, "worker_rss_bytes", "Resident memory of the slot's worker (its Stats frames).", lambda w: w["rss_bytes"]),
        )
        for family, name, help_, value in per_slot:
            metric = family(f"meeshy_{name}", help_, labels=["slot"])
            for slot in workers["slots"]:
                metric.add_metric([str(slot["slot"])], float(value(slot)))
            yield metric
