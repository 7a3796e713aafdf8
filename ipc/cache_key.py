"""Cache keys and cached values: what identifies a translation and what a hit gives back.

A key is a 16-byte BLAKE2b digest of everything that can change a translation's output: model id
and revision, source and target language, the normalized text, and the decoding settings. Two
requests that differ only by Unicode composition or by runs of whitespace share a key, so
"Hello  world " and "Hello world" hit the same entry.

The value is `CachedTranslation`, a msgspec struct encoded as msgpack (`array_like`, so field
order is the stored format: only append fields, with defaults). It carries what a result event
needs without touching a worker: translated text, confidence, model, tier, detected source.

Both the shared-memory table and the persistent levels store keys and values as these opaque
bytes; neither knows what a model is.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping

import msgspec

KEY_SIZE = 16
# Bumped whenever normalization or the key's encoding changes: old entries then simply miss.
KEY_VERSION = 1

_WHITESPACE = re.compile(r"\s+")
_key_encoder = msgspec.msgpack.Encoder(order="sorted")


class CachedTranslation(msgspec.Struct, array_like=True, gc=False, frozen=True):
    translated_text: str
    source_language: str  # the detected language when the request said "auto"
    confidence: float
    model: str  # manifest name of the model that produced it
    tier: str = ""
    created_at: float = 0.0  # wall-clock seconds when it was translated


_value_encoder = msgspec.msgpack.Encoder()
_value_decoder = msgspec.msgpack.Decoder(CachedTranslation)


def encode_value(value: CachedTranslation) -> bytes:
    return _value_encoder.encode(value)


def decode_value(data: bytes | memoryview) -> CachedTranslation:
    """Raises msgspec.DecodeError (or ValidationError) on bytes that are not a value."""
    return _value_decoder.decode(data)


def normalize_text(text: str) -> str:
    """NFC, every whitespace run collapsed to one space, stripped."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


DecodingValue = str | int | float | bool | None


def cache_key(
    model_id: str,
    revision: str,
    source_language: str,
    target_language: str,
    text: str,
    decoding: Mapping[str, DecodingValue] | None = None,
) -> bytes:
    """The 16-byte key of one translation.

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
            normalize_text(text),
            dict(decoding or {}),
        )
    )
    return hashlib.blake2b(material, digest_size=KEY_SIZE).digest()
