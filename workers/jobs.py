"""What the runtime takes and gives back: plain data, no model or socket knowledge.

A `TranslationJob` is one text into one target language. The runtime answers each job with either
a `Translation` or a `TranslationError` (errors are data: a bad job never raises into the caller).
"""

from __future__ import annotations

from dataclasses import dataclass

from ipc.tiers import AUTO


@dataclass(frozen=True, slots=True)
class TranslationJob:
    text: str
    target_language: str
    source_language: str = AUTO  # the runtime needs it given; the edge detects "auto"
    tier: str = AUTO  # "basic" | "medium" | "premium" | "auto"
    beam_size: int = 1


@dataclass(frozen=True, slots=True)
class Translation:
    text: str
    source_language: str
    target_language: str
    confidence: float  # per segment the geometric mean token probability; weighted by segment length
    model: str  # manifest name of the model that produced it ("a+b" through a pivot; "" if none was needed)
    tier: str
    segments: int = 1  # translatable segments in the message
    truncated_segments: tuple[int, ...] = ()  # segments whose output hit the length bound
    retried_segments: tuple[int, ...] = ()  # segments another tier translated after a model failed
    cached_segments: int = 0  # segments answered from the segment cache
    fallback: bool = False  # served by another tier than the job named
    pivot: str = ""  # translated through this language ("en"), or ""


@dataclass(frozen=True, slots=True)
class TranslationError:
    code: str  # "invalid_request" | "unsupported_language" | "unsupported_model" | "translation_failed"
    message: str
