"""What the runtime takes and gives back: plain data, no model or socket knowledge.

A `TranslationJob` is one text into one target language. The runtime answers each job with either
a `Translation` or a `TranslationError` (errors are data: a bad job never raises into the caller).
"""

from __future__ import annotations

from dataclasses import dataclass

AUTO = "auto"


@dataclass(frozen=True, slots=True)
class TranslationJob:
    text: str
    target_language: str
    source_language: str = AUTO
    tier: str = AUTO  # "basic" | "medium" | "premium" | "auto"
    beam_size: int = 1


@dataclass(frozen=True, slots=True)
class Translation:
    text: str
    source_language: str  # the detected language when the job said "auto"
    target_language: str
    confidence: float  # geometric mean of the chosen tokens' probabilities, in [0, 1]
    model: str  # manifest name of the model that produced it
    tier: str


@dataclass(frozen=True, slots=True)
class TranslationError:
    code: str  # "invalid_request" | "text_too_long" | "unsupported_language" | "unsupported_model"
    message: str
