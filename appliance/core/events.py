"""The one place a task's event is built: a target's outcome as an `ipc.events` value.

    worker's Result frame   ──from_worker──┐
    message-cache hit       ──from_cache───┼──completed──▶ Completed ─┐
    source == target        ──same_language┘                          ├──▶ the dispatcher encodes it
    timeout, crash, failure ──failed──────────────────────▶ Failed ───┘    once and publishes both
                                                                           (appliance/core/dispatcher.py)

The wire's keys and which are present when are documented in docs/protocol.md ("Events on 5556")
and typed in ipc/events.py; this module decides the values: rounding, `workerId` null when the
edge answered, the segment details a worker or the cache reported, the detection of an "auto"
request. Nothing here touches a socket or a clock but `time.time()` for the timestamp.
"""

from __future__ import annotations

import time

from appliance.core.tasks import RequestRecord, TargetTask
from ipc.cache_key import CachedTranslation, Detection, Segments
from ipc.events import UNSET, Completed, ErrorBody, Failed, Metadata, Result
from ipc.frames import Result as ResultFrame


def completed(
    record: RequestRecord,
    target: str,
    *,
    text: str,
    source: str,
    confidence: float,
    processing_ms: float,
    tier: str,
    model: str,
    segments: Segments | None,
    detection: Detection | None,
    from_cache: bool = False,
    slot: int | None = None,
    attempts: int = 0,
    queued_ms: float = 0.0,
    same_language: bool = False,
) -> Completed:
    conversation_id = UNSET if record.conversation_id is None else record.conversation_id
    result = Result(
        message_id=record.message_id,
        translated_text=text,
        source_language=source,
        target_language=target,
        confidence_score=round(confidence, 6),
        processing_time=round(processing_ms, 3),
        model_type=tier,
        translator_model=model,
        from_cache=from_cache,
        worker_id=slot,
        segments_count=segments.count if segments is not None else 0,
    )
    if segments is not None:
        result.truncated_segments = list(segments.truncated)
        if segments.untranslated:
            result.untranslated_segments = list(segments.untranslated)
        if segments.retried:
            result.retried_segments = list(segments.retried)
        result.fallback = segments.fallback
        if segments.fallback:
            result.requested_model_type = record.model_type
        if segments.pivot:
            result.pivot = segments.pivot
        if segments.engine:
            result.engine = segments.engine
            if "apertium" in segments.engine:
                result.unknown_words = segments.unknown_words
    if detection is not None:
        result.detected_language = detection.language or None  # None: no letters to detect from
        result.detection_confidence = round(detection.confidence, 4)
        result.default_source_used = detection.defaulted
    if same_language:
        result.same_language = True
    return Completed(
        task_id=record.task_id,
        message_id=record.message_id,
        target_language=target,
        timestamp=time.time(),
        result=result,
        metadata=Metadata(attempts=attempts, queue_time=round(queued_ms, 3), conversation_id=conversation_id),
        conversation_id=conversation_id,
    )


def from_worker(unit: TargetTask, frame: ResultFrame, ran: TargetTask | None = None) -> Completed:
    """A worker's translation of `unit`, run by `unit` itself or by the identical unit it followed
    (`ran`, its leader: attempts and queue time are the run's; a follower admitted after the
    leader was sent waited 0 ms)."""
    record, ran = unit.request, ran or unit
    return completed(
        record, unit.target, text=frame.text, source=frame.source_language, confidence=frame.confidence,
        processing_ms=frame.processing_ms, tier=frame.tier, model=frame.model, segments=frame.segments,
        detection=record.detection, from_cache=frame.from_cache, slot=frame.slot, attempts=ran.attempt,
        queued_ms=max(0.0, ran.dispatched_at - record.accepted_at) * 1000.0,
    )


def from_cache(record: RequestRecord, target: str, value: CachedTranslation, lookup_ms: float) -> Completed:
    """A message-cache hit at the edge: every field the cached translation's, no worker, no queue."""
    return completed(
        record, target, text=value.translated_text, source=value.source_language, confidence=value.confidence,
        processing_ms=lookup_ms, tier=value.tier, model=value.model, segments=value.segments,
        detection=value.detection, from_cache=True,
    )


def same_language(record: RequestRecord, target: str) -> Completed:
    """A message already in the target language: the text unchanged, without a worker."""
    return completed(
        record, target, text=record.text, source=target, confidence=1.0, processing_ms=0.0, tier="", model="",
        segments=None, detection=record.detection, same_language=True,
    )


def failed(record: RequestRecord, target: str, code: str, message: str) -> Failed:
    return Failed(
        task_id=record.task_id,
        message_id=record.message_id,
        target_language=target,
        timestamp=time.time(),
        error=ErrorBody(code=code, message=message),
        conversation_id=UNSET if record.conversation_id is None else record.conversation_id,
    )
