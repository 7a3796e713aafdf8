"""The events published on 5556, as types: what the appliance builds and what a client decodes.

One frame of UTF-8 JSON per event (docs/protocol.md, "Events on 5556"). The field names, renamed
to camelCase, are the wire's keys and their order is the wire's order; `type` (the struct's tag)
comes first, so a SUB prefix filter on `{"type":"translation_completed"` works:

    Completed  {"type":"translation_completed","taskId","messageId","targetLanguage","timestamp",
                "result":{Result},"metadata":{Metadata},"conversationId"?}
    Failed     {"type":"translation_error","taskId","messageId","targetLanguage","timestamp",
                "error":{"code","message"},"conversationId"?}

A field whose value is UNSET is left out of the JSON (the keys docs/protocol.md marks "only
when ..."); None is written as null. Only append fields, with UNSET or another default: a client
built against an older list ignores keys it does not know.

Here, not in appliance/, because both sides use it: the appliance's dispatcher builds and
encodes one value per outcome (appliance/core/events.py), its compat front maps the value to
Meeshy's gateway shape in-process, and the client library (which imports nothing of the server)
decodes the JSON into the same types.
"""

from __future__ import annotations

from typing import Union

import msgspec
from msgspec import UNSET, UnsetType

__all__ = ["UNSET", "Completed", "ErrorBody", "Event", "Failed", "Metadata", "Result", "decode", "encode"]


class Result(msgspec.Struct, rename="camel", gc=False):
    """A translation (also each item of a synchronous reply's `results`)."""

    message_id: str
    translated_text: str
    source_language: str
    target_language: str
    confidence_score: float
    processing_time: float  # ms: the worker's batch, or the cache lookup
    model_type: str
    translator_model: str
    from_cache: bool
    worker_id: int | None  # None (null): the edge answered
    segments_count: int = 0
    truncated_segments: list[int] | UnsetType = UNSET
    untranslated_segments: list[int] | UnsetType = UNSET
    retried_segments: list[int] | UnsetType = UNSET
    fallback: bool | UnsetType = UNSET
    requested_model_type: str | UnsetType = UNSET
    pivot: str | UnsetType = UNSET
    engine: str | UnsetType = UNSET
    unknown_words: int | UnsetType = UNSET
    detected_language: str | None | UnsetType = UNSET
    detection_confidence: float | UnsetType = UNSET
    default_source_used: bool | UnsetType = UNSET
    same_language: bool | UnsetType = UNSET


class Metadata(msgspec.Struct, rename="camel", gc=False):
    attempts: int
    queue_time: float  # ms from acceptance to dispatch
    conversation_id: str | UnsetType = UNSET


class ErrorBody(msgspec.Struct, gc=False):
    code: str
    message: str


class Completed(msgspec.Struct, tag_field="type", tag="translation_completed", rename="camel", gc=False):
    task_id: str
    message_id: str
    target_language: str
    timestamp: float
    result: Result
    metadata: Metadata
    conversation_id: str | UnsetType = UNSET


class Failed(msgspec.Struct, tag_field="type", tag="translation_error", rename="camel", gc=False):
    task_id: str
    message_id: str
    target_language: str
    timestamp: float
    error: ErrorBody
    conversation_id: str | UnsetType = UNSET


Event = Union[Completed, Failed]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes) -> Event:
    """An event's JSON as its type; raises msgspec.DecodeError / ValidationError on anything else."""
    return _decoder.decode(data)
