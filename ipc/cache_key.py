"""Cache keys and cached values: what identifies a translation and what a hit gives back.

A key is a 16-byte BLAKE2b digest of everything that can change a translation's output. Two
kinds, one per level of the appliance:

- a *segment* key (`segment_key`, workers): model id and revision, source and target language,
  the decoding settings, and the token ids the model receives for the segment. Two segments share
  an entry only if the model would see exactly the same input, so no spelling of a text (control
  characters, odd whitespace) can land on another text's translation.
- a *message* key (`cache_key`, the edge): the routing identity of the loaded models, the
  requested source, target and model type, and the message text byte for byte (no
  normalization: a message is only ever the same message).

The value is `CachedTranslation`, a msgspec struct encoded as msgpack (`array_like`, so field
order is the stored format: only append fields, with defaults). It carries what a result event
needs without touching a worker: translated text, confidence, model, tier, detected source, and
for a whole message how it was segmented and routed (`Segments`) and detected (`Detection`).

Both the shared-memory table and the persistent levels store keys and values as these opaque
bytes; neither knows what a model is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import msgspec

KEY_SIZE = 16
# Bumped whenever what a key covers or its encoding changes: old entries then simply miss.
# 2: exact text for messages, token ids for segments (1 folded whitespace runs: a poisoning hole).
KEY_VERSION = 2

_key_encoder = msgspec.msgpack.Encoder(order="sorted")


class Segments(msgspec.Struct, array_like=True, gc=False, frozen=True):
    """How a message was translated, segment by segment (indices count translatable segments)."""

    count: int = 1
    truncated: tuple[int, ...] = ()  # output hit the length bound
    retried: tuple[int, ...] = ()  # the first model failed; another tier translated them
    cached: int = 0  # answered from the segment cache
    fallback: bool = False  # served by another tier than the one the request named
    pivot: str = ""  # the language translated through ("en"), or ""
    engine: str = ""  # the engines that produced the text ("onnx", "apertium", "onnx+apertium")
    unknown_words: int = 0  # words the rule-based engine did not know
    untranslated: tuple[int, ...] = ()  # no route knew their words: as typed, confidence 0


class Detection(msgspec.Struct, array_like=True, gc=False, frozen=True):
    """The source-language detection of a request that said "auto"."""

    language: str  # the detected language (before the default applies)
    confidence: float
    defaulted: bool = False  # below the confidence threshold: the configured default source served


class CachedTranslation(msgspec.Struct, array_like=True, gc=False, frozen=True):
    translated_text: str
    source_language: str  # the detected language when the request said "auto"
    confidence: float
    model: str  # manifest name of the model that produced it
    tier: str = ""
    created_at: float = 0.0  # wall-clock seconds when it was translated
    segments: Segments | None = None  # a message's segmentation; a segment entry's truncation
    detection: Detection | None = None  # message entries of "auto" requests only


_value_encoder = msgspec.msgpack.Encoder()
_value_decoder = msgspec.msgpack.Decoder(CachedTranslation)


def encode_value(value: CachedTranslation) -> bytes:
    return _value_encoder.encode(value)


def decode_value(data: bytes | memoryview) -> CachedTranslation:
    """Raises msgspec.DecodeError (or ValidationError) on bytes that are not a value."""
    return _value_decoder.decode(data)


def value_or_miss(data: bytes | None) -> CachedTranslation | None:
    """A stored value, or None for a miss: no bytes, or bytes an incompatible version wrote (a
    miss, never an error)."""
    if data is None:
        return None
    try:
        return _value_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


DecodingValue = str | int | float | bool | None


def cache_key(
    model_id: str,
    revision: str,
    source_language: str,
    target_language: str,
    text: str,
    decoding: Mapping[str, DecodingValue] | None = None,
) -> bytes:
    """The 16-byte key of one translation of `text`, taken byte for byte.

    `decoding` holds the settings that change the output (beam size, length penalty, max
    tokens...); key order does not matter. At 128 bits a collision is not a practical concern,
    which is why the tables store only the digest, not the full key.
    """
    material = _key_encoder.encode(
        (
            KEY_VERSION,
            model_id,
            revision,
            source_language,
            target_language,
            text,
            dict(decoding or {}),
        )
    )
    return hashlib.blake2b(material, digest_size=KEY_SIZE).digest()


def segment_key(
    model_id: str,
    revision: str,
    source_language: str,
    target_language: str,
    ids: Sequence[int],
    decoding: Mapping[str, DecodingValue] | None = None,
) -> bytes:
    """The key of one segment's translation: over the token ids the model receives."""
    material = _key_encoder.encode(
        (KEY_VERSION, "segment", model_id, revision, source_language, target_language, list(ids), dict(decoding or {}))
    )
    return hashlib.blake2b(material, digest_size=KEY_SIZE).digest()
