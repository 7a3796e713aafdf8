"""What the runtime takes and gives back: plain data, no model or socket knowledge.

A `TranslationJob` is one text into one target language. The runtime answers each job with either
a `Translation` or a `TranslationError` (errors are data: a bad job never raises into the caller).
A `Chunk` is what the runtime hands an engine (a seq2seq model, an Apertium pipeline): one piece
of one leg's input, answered in place with a text or a failure.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipc.tiers import AUTO


@dataclass(frozen=True, slots=True)
class TranslationJob:
    text: str
    target_language: str
    source_language: str = AUTO  # the runtime needs it given; the edge detects "auto"
    tier: str = AUTO  # "basic" | "medium" | "premium" | "rule-based" | "auto"
    beam_size: int = 1
    format: str = "text"  # "text": chat text (markdown); "html": an HTML fragment (workers.segmenter)


@dataclass(frozen=True, slots=True)
class Translation:
    text: str
    source_language: str
    target_language: str
    # Per segment: a neural model's geometric-mean token probability, or the share of words the
    # rule-based engine knew; the product over a pivot's legs; weighted by segment length.
    confidence: float
    model: str  # manifest name of the model that produced it ("a+b" through a pivot; "" if none was needed)
    tier: str
    segments: int = 1  # translatable segments in the message
    truncated_segments: tuple[int, ...] = ()  # segments whose output hit the length bound
    retried_segments: tuple[int, ...] = ()  # segments another tier translated after a model failed
    cached_segments: int = 0  # segments answered from the segment cache
    fallback: bool = False  # served by another tier than the job named, or partly by the rule-based fallback
    pivot: str = ""  # translated through this language ("en"), or ""
    engine: str = ""  # engines that produced the text: "onnx", "apertium", "onnx+apertium" ("" if none was needed)
    unknown_words: int = 0  # words the rule-based engine did not know (their marks removed)
    # False when an engine answered some segment from an exchange that went wrong (a restarted or
    # desynced Apertium chain): the text is checked to be the segment's own, but never cached.
    cacheable: bool = True
    # Segments no route could translate (a word outside every closed vocabulary that serves the
    # pair): they come back as typed, with confidence 0, instead of a model's fluent guess.
    untranslated_segments: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class TranslationError:
    code: str  # "invalid_request" | "unsupported_language" | "unsupported_model" | "translation_failed"
    message: str


@dataclass(slots=True)
class Chunk:
    """A piece of one leg's input that fits the engine: what one decoder row (or one pipeline
    round trip) translates. `ids` is what the engine receives (token ids), or for Apertium the
    text's UTF-8 bytes (its framing is a function of them): the segment cache keys on it, and it
    weighs confidence."""

    ids: list[int]
    key: bytes
    budget: int = 0  # output tokens allowed (seq2seq)
    source: str = ""  # the input text (engines that read text)
    text: str = ""
    confidence: float = 0.0
    truncated: bool = False
    cached: bool = False
    unknown: int = 0  # words marked unknown by a rule-based engine
    failure: str = ""
    cacheable: bool = True  # False: answered by an exchange that went wrong; kept out of every cache
