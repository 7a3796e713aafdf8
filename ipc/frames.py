"""Frame types for the internal channels between the supervisor and its workers.

Two channels, one tagged union per direction, every frame one msgpack message:

    supervisor ──PUSH tasks-<slot>.ipc──▶ worker <slot>       ToWorker   = Task | Drain
    supervisor ◀──PULL results.ipc────── every worker         FromWorker = Ready | Result
                                                                          | TaskFailed | Heartbeat
                                                                          | Stats | Fatal

Every struct is `array_like=True` (the tag is element 0, then the fields in order), so the field
order *is* the wire format: only ever append fields, with defaults. Decoders ignore trailing
elements they do not know, which is what lets a worker built against a newer protocol still say
`Ready` with its version; the supervisor refuses any `protocol_version` other than its own.

`WorkerSpec` is not a frame on a socket: it is the worker's start arguments, msgpack-encoded and
handed to the spawned process, so nothing pickled ever crosses a process boundary.

Task identity: `uid` is the supervisor's key for one (request, target language) unit; `attempt`
counts dispatches of that unit (a unit is dispatched again when its worker dies). Workers echo
both, plus their `slot` and `pid`, so the supervisor can tell a live worker's answer from a late
answer of a dead one.
"""

from __future__ import annotations

import msgspec

from ipc.cache_key import Segments

PROTOCOL_VERSION = 4  # 2: messages segmented by the worker, Result.segments, no Task.cache_key;
# 3: no Stopped frame, Heartbeat without `queued`; 4: Segments.engine and .unknown_words, tier
# "fallback" in Ready.languages, Task.tier "rule-based"


class WorkerSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything a worker process needs to start; encoded once per spawn."""

    slot: int
    protocol_version: int
    tasks_endpoint: str
    results_endpoint: str
    runtime_factory: str  # "package.module:callable[.attr]" returning a runtime
    models_dir: str
    tiers: dict[str, list[str]] | None = None  # tier -> model names; None: the manifest's tiers
    threads: int = 1
    cpu: int | None = None  # core to pin to; None leaves the affinity alone
    heartbeat_interval_s: float = 1.0
    batch_token_budget: int = 2048
    max_batch_size: int = 32
    hwm: int = 1000
    linger_ms: int = 0
    supervisor_pid: int = 0
    cache_name: str = ""  # shared-memory cache table to attach; "" runs without a cache
    auto_tiers: dict[str, int] = {}  # [routing] thresholds for modelType auto; {}: the runtime's defaults
    packed_weights_dir: str = ""  # this host's packed copies of the weights; "": each worker packs its own
    vocabulary_shortlist: bool = False  # decode over each target language's shortlist where exported


# ---------------------------------------------------------------- supervisor -> worker

# What a Task's text is: "text", chat text (inline markdown markers ride in their sentence), or
# "html", an HTML fragment (tags, attributes, script, style and code kept verbatim; block elements
# end sentences, inline ones ride in their sentence). workers.segmenter.segment(text, format).
FORMATS = ("text", "html")



class Task(msgspec.Struct, tag="task", array_like=True, gc=False, frozen=True):
    """Translate the message `text` into `target_language`; answered by exactly one Result or
    TaskFailed. `source_language` is a language code, never "auto" (the edge detects it); `tier`
    is the requested model type (basic, medium, premium, rule-based or auto)."""

    uid: int
    attempt: int
    text: str
    source_language: str
    target_language: str
    tier: str
    beam_size: int = 1
    format: str = "text"  # "text": chat text (markdown marks) | "html": an HTML fragment


class Drain(msgspec.Struct, tag="drain", array_like=True, gc=False, frozen=True):
    """Finish every task already received, answer them, exit 0."""


ToWorker = Task | Drain


# ---------------------------------------------------------------- worker -> supervisor


class ModelInfo(msgspec.Struct, array_like=True, gc=False, frozen=True):
    name: str
    family: str
    tier: str
    quantization: str
    languages: list[str]
    revision: str = ""  # digest of the model's files: part of every cache key


class Ready(msgspec.Struct, tag="ready", array_like=True, gc=False, frozen=True):
    """The handshake: models are loaded, the worker takes tasks from now on.

    `protocol_version` stays the first field forever, so any version can be read and refused.
    `languages` maps tier -> sorted [source, target] pairs the worker serves.
    """

    protocol_version: int
    slot: int
    pid: int
    languages: dict[str, list[tuple[str, str]]]
    models: list[ModelInfo]


class Result(msgspec.Struct, tag="result", array_like=True, gc=False, frozen=True):
    uid: int
    attempt: int
    slot: int
    pid: int
    text: str
    source_language: str
    target_language: str
    confidence: float
    model: str  # "a+b" when translated through a pivot language
    tier: str  # the tier that served it ("fallback": the rule-based engine)
    processing_ms: float  # wall time of the batch that produced it
    from_cache: bool = False  # every segment answered from the shared cache: nothing decoded
    segments: Segments | None = None  # how the message was segmented and routed
    # False: some segment came from an engine exchange that went wrong (a restarted or desynced
    # Apertium chain); its text is the message's own, but no cache level may keep it.
    cacheable: bool = True


class TaskFailed(msgspec.Struct, tag="failed", array_like=True, gc=False, frozen=True):
    """The runtime answered the task with an error; the worker keeps serving."""

    uid: int
    attempt: int
    slot: int
    pid: int
    code: str
    message: str


class Heartbeat(msgspec.Struct, tag="heartbeat", array_like=True, gc=False, frozen=True):
    """Sent when the worker is idle for a heartbeat interval, and between batches."""

    slot: int
    pid: int


class Stats(msgspec.Struct, tag="stats", array_like=True, gc=False, frozen=True):
    """Cumulative counters since the worker started; sent every few heartbeats."""

    slot: int
    pid: int
    tasks: int
    failures: int
    batches: int
    busy_s: float
    rss_bytes: int


class Fatal(msgspec.Struct, tag="fatal", array_like=True, gc=False, frozen=True):
    """The worker cannot go on; sent just before it exits with `exit_code`."""

    slot: int
    pid: int
    code: str  # "model_load_error" | "runtime_error" | ...
    message: str
    exit_code: int


FromWorker = Ready | Result | TaskFailed | Heartbeat | Stats | Fatal
