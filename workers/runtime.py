"""The translation runtime: chat messages in, chat messages out, on manifest models, in-process.

`Runtime.translate(jobs, cache)` answers every job with a `Translation` or a `TranslationError`
(never an exception). One job is one message into one target language:

    message ─segment─▶ pieces: translatable segments + kept parts (workers.segmenter)
    routes = registry.routes(source, target, tier)   neural direct, neural pivots, then the
                                                     rule-based fallback (workers.registry)
    every segment of every job ─▶ leg 1 of its route ─▶ (pivot) leg 2 ─▶ reassemble with kept parts
                    │ a segment too long for the model is split to fit (clauses, then words)
                    │ a model that fails on a segment (exception, non-finite scores, a dead
                    │ pipeline): the segment moves to the job's next route; with none left, the
                    │ job fails and says why
                    │ a closed-vocabulary model (the built-ins) given a word outside its
                    │ vocabulary, or answering below CLOSED_VOCABULARY_FLOOR: the next route;
                    │ with none left, the segment comes back as typed (untranslated_segments)
                    │ the segments of one sentence always move together: one engine per sentence
                    │ marks (inline markup) ride through Apertium legs; a neural leg gets the
                    │ plain text and `place_marks` puts them back
                    ▼
    one round per leg: chunks grouped by (model, source, target, beam), deduplicated, looked up
    in the segment cache, the misses handed to the model's engine:
      seq2seq (`Model`, ONNX Runtime): sorted by length and decoded in batches under a row and
        token budget, padded to a multiple of `LENGTH_BUCKET` (few distinct shapes: flat memory)
      rule-based (`workers.apertium.ApertiumModel`): pipelined through the mode's Apertium chain

An engine is anything with `spec`, `engine`, `revision`, `fit`, `chunk`, `run` and `close`
(`Engine`). All segments of all jobs go through the same rounds, so a message's segments share
batches. The segment cache (`SegmentCache`, the worker's shared table) is keyed by what the
engine receives (token ids, or for Apertium the segment's text) under the engine's revision
(`ipc.cache_key.segment_key`); a chunk an engine marks uncacheable (an Apertium exchange that
died or desynced) is never put there, and its job's `Translation.cacheable` is False. The source
language must be given: the edge detects it.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import regex

from ipc.cache_key import CachedTranslation, Segments, segment_key
from ipc.frames import FORMATS
from ipc.tiers import AUTO, FALLBACK, MODEL_TYPES, TIERS, tier_of
from workers.apertium import ApertiumError, ApertiumModel
from workers.decoding import DecodeBatch, DecodeLimits, Hypothesis, Seq2SeqGraphs, beam_search, greedy
from workers.output_head import SHORTLISTS_FILE, OutputHead
from workers.session import session_options
from workers.jobs import Chunk, Translation, TranslationError, TranslationJob
from workers.manifest import APERTIUM, ManifestError, ModelSpec, load_specs
from workers.registry import AutoTiers, Registry, Route
from workers.segmenter import Piece, place_marks, reassemble, segment, split_to_fit, strip_marks
from workers.tokenizer import load_tokenizer

LENGTH_BUCKET = 8
MAX_BEAM_SIZE = 8
# A closed-vocabulary model (the built-ins) answering below this confidence is guessing: the
# segment goes to the next route, or comes back untranslated. Measured by bench/confidence.py:
# on held-out in-domain sentences the built-ins' p10 is 0.92-0.94 (0-2.5% fall below 0.9); the
# wrong answers to out-of-domain chat that passes the vocabulary gate mostly score 0.31-0.80.
CLOSED_VOCABULARY_FLOOR = 0.9


class ModelLoadError(Exception):
    pass


class SegmentCache(Protocol):
    def get(self, key: bytes) -> CachedTranslation | None: ...
    def put(self, key: bytes, value: CachedTranslation) -> object: ...


class Engine(Protocol):
    """What the runtime needs of a model, whatever translates it."""

    spec: ModelSpec
    engine: str  # "onnx" | "apertium": reported in results
    revision: str  # what its cache keys and the Ready frame carry: its files, and for Apertium its code

    def fit(self, text: str, source: str, target: str) -> list[Piece]: ...
    def chunk(self, text: str, source: str, target: str, beam: int, limits: "BatchLimits") -> Chunk: ...
    def run(self, source: str, target: str, beam: int, chunks: list[Chunk], limits: "BatchLimits") -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_rows: int = 32
    max_tokens: int = 4096  # padded source tokens per batch
    length_ratio: float = 2.0  # output tokens per source token, plus `length_slack`, up to the model's limit
    length_slack: int = 10


class Model:
    """One exported seq2seq model: its graphs, tokenizer and sequence framing."""

    engine = "onnx"

    def __init__(self, spec: ModelSpec, threads: int = 1, packed_dir: Path | None = None, shortlist: bool = False):
        self.spec = spec
        self.revision = spec.revision
        self.graphs = Seq2SeqGraphs(spec.directory, threads, packed_dir)
        shortlists = spec.directory / SHORTLISTS_FILE
        self._heads: dict[str, OutputHead] = {}  # target language -> its shortlisted head
        if shortlist and shortlists.exists():
            self._heads = OutputHead.per_language(spec.directory, json.loads(shortlists.read_text()),
                                                  session_options(threads))
        self.tokenizer = load_tokenizer(spec.directory, spec.tokenizer, set(spec.special_ids))
        framing = spec.framing
        self.banned = [framing.pad_id] if framing.pad_id != framing.eos_id else []

    def head(self, target: str) -> OutputHead:
        """The output head decoding into `target`: over its shortlist when one is in use."""
        return self._heads.get(target, self.graphs.head)

    def source_ids(self, text: str, source: str, target: str) -> list[int]:
        framing = self.spec.framing
        body = self.tokenizer.encode(framing.text_prefix(source, target) + text)
        return [*framing.encoder_prefix(source), *body, *framing.source_suffix]

    def max_new_tokens(self, target: str) -> int:
        """The output bound the model's positions allow after its forced decoder prefix."""
        return self.spec.max_target_tokens - len(self.spec.framing.decoder_prefix(target))

    def generate(
        self,
        sources: list[list[int]],
        target: str,
        beam_size: int = 1,
        max_new_tokens: list[int] | None = None,
        min_new_tokens: int = 0,
    ) -> list[Hypothesis]:
        """Decode a batch of framed source id lists into the target language."""
        framing = self.spec.framing
        width = -(-max(len(ids) for ids in sources) // LENGTH_BUCKET) * LENGTH_BUCKET
        input_ids = np.full((len(sources), width), framing.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(sources), width), dtype=np.int64)
        for row, ids in enumerate(sources):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        bound = self.max_new_tokens(target)
        limit = np.asarray(max_new_tokens if max_new_tokens else [bound] * len(sources))
        limits = DecodeLimits(max_new_tokens=limit, min_new_tokens=min_new_tokens)
        batch = DecodeBatch(input_ids, attention_mask, framing.decoder_prefix(target), limits, framing.eos_id, self.banned)
        head = self.head(target)
        if beam_size > 1:
            return beam_search(self.graphs, head, batch, beam_size)
        return greedy(self.graphs, head, batch)

    def detokenize(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens)

    # ---------------------------------------------------------------- the engine interface

    def fit(self, text: str, source: str, target: str) -> list[Piece]:
        limit = self.spec.max_source_tokens
        return split_to_fit(text, lambda chunk: len(self.source_ids(chunk, source, target)) <= limit)

    def chunk(self, text: str, source: str, target: str, beam: int, limits: BatchLimits) -> Chunk:
        spec = self.spec
        ids = self.source_ids(text, source, target)
        if len(ids) > spec.max_source_tokens:  # one character that alone does not fit
            ids = ids[: spec.max_source_tokens - len(spec.framing.source_suffix)] + list(spec.framing.source_suffix)
        budget = min(self.max_new_tokens(target), int(len(ids) * limits.length_ratio) + limits.length_slack)
        key = segment_key(spec.name, spec.revision, source, target, ids, {"beam_size": beam, "max_new_tokens": budget})
        return Chunk(ids, key, budget)

    def run(self, source: str, target: str, beam: int, chunks: list[Chunk], limits: BatchLimits) -> None:
        """Decode distinct chunks in length-sorted batches under the row and token budget."""
        for batch in _batches(sorted(chunks, key=lambda c: len(c.ids)), limits):
            self._decode(target, beam, batch)

    def close(self) -> None:
        pass

    def _decode(self, target: str, beam: int, batch: list[Chunk]) -> None:
        try:
            hypotheses = self.generate([c.ids for c in batch], target, beam, [c.budget for c in batch])
        except Exception as exc:
            if len(batch) > 1:  # halve until the failing rows stand alone: the others still translate
                self._decode(target, beam, batch[: len(batch) // 2])
                self._decode(target, beam, batch[len(batch) // 2 :])
                return
            batch[0].failure = f"model {self.spec.name!r} failed: {type(exc).__name__}: {exc}"
            return
        eos = self.spec.framing.eos_id
        for chunk, hyp in zip(batch, hypotheses):
            if not math.isfinite(hyp.logprob):
                chunk.failure = f"model {self.spec.name!r} produced non-finite scores"
                continue
            chunk.text = self.detokenize(hyp.tokens)
            chunk.truncated = len(hyp.tokens) >= chunk.budget and hyp.tokens[-1] != eos
            chunk.confidence = round(hyp.confidence, 4)


def _batches(chunks: list[Chunk], limits: BatchLimits):
    batch: list[Chunk] = []
    for chunk in chunks:  # sorted by length: the last row sets the padded width
        width = -(-len(chunk.ids) // LENGTH_BUCKET) * LENGTH_BUCKET
        if batch and (len(batch) >= limits.max_rows or width * (len(batch) + 1) > limits.max_tokens):
            yield batch
            batch = []
        batch.append(chunk)
    if batch:
        yield batch


# ---------------------------------------------------------------------------------- bookkeeping


@dataclass(slots=True)
class _Segment:
    """One translatable segment of a message, on its way through its routes' legs."""

    message: "_Message"
    index: int  # among the message's translatable segments
    source_text: str
    text: str = ""  # input of the current leg
    route: int = 0
    leg: int = 0
    confidence: float = 1.0  # product over legs
    truncated: bool = False
    cached: bool = True  # every chunk of every leg came from the cache
    cacheable: bool = True  # no chunk of any leg came from an exchange that went wrong
    retried: bool = False
    unknown: int = 0  # words a rule-based leg did not know
    outside: bool = False  # a word outside the leg's model vocabulary: the route is skipped
    failure: str = ""
    sentence: int = 0  # the segments of one sentence move through the routes together
    untranslated: bool = False  # no route knows its words: it comes back as typed


@dataclass(slots=True)
class _Message:
    job: TranslationJob
    pieces: list[Piece]
    routes: list[Route]
    segments: list[_Segment] = field(default_factory=list)
    failure: str = ""


class Runtime:
    def __init__(
        self,
        models: dict[str, Engine],
        registry: Registry,
        limits: BatchLimits = BatchLimits(),
        auto_tiers: AutoTiers = AutoTiers(),
    ):
        self._models = models
        self.registry = registry
        self.limits = limits
        self.auto_tiers = auto_tiers

    @classmethod
    def load(
        cls,
        models_dir: Path,
        tiers: dict[str, str | list[str]] | None = None,
        threads: int = 1,
        limits: BatchLimits = BatchLimits(),
        auto_tiers: AutoTiers = AutoTiers(),
        packed_dir: Path | None = None,
        shortlist: bool = False,
    ) -> "Runtime":
        """Load the models serving each tier: `tiers` (tier -> model name or names), or else every
        model of a serving tier in the manifest (an int8 export instead of its fp32 original),
        the registered Apertium modes (tier `fallback`) included. `packed_dir`: where this host's
        packed copies of the weights live (workers.packed_weights); None packs them on the heap.
        `shortlist`: decode over each target language's vocabulary shortlist where the export has one."""
        try:
            specs = load_specs(Path(models_dir))
        except (ManifestError, OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"cannot read the model manifest in {models_dir}: {exc}") from exc
        if tiers is None:
            chosen = {
                tier: [n for n, s in sorted(specs.items()) if s.tier == tier and f"{n}-int8" not in specs]
                for tier in TIERS
            }
        else:
            chosen = {tier: [names] if isinstance(names, str) else list(names) for tier, names in tiers.items()}
        unknown = sorted({n for names in chosen.values() for n in names if n not in specs})
        if unknown:
            raise ModelLoadError(
                f"models {unknown} are configured in [workers.tiers] but are not in {models_dir}/manifest.json "
                f"(known: {sorted(specs)}); export them with export_models.py"
            )
        models: dict[str, Engine] = {}
        for name in sorted({n for names in chosen.values() for n in names}):
            spec = specs[name]
            try:
                models[name] = ApertiumModel(spec) if spec.family == APERTIUM else Model(spec, threads, packed_dir, shortlist)
            except ApertiumError as exc:
                raise ModelLoadError(f"cannot load model {name!r}: {exc}") from exc
            except Exception as exc:  # any ORT/tokenizer failure is a boot error with the model named
                raise ModelLoadError(f"cannot load model {name!r} from {spec.directory}: {exc}") from exc
        if not models:
            raise ModelLoadError(f"no model of tier {', '.join(TIERS)} in {models_dir}/manifest.json")
        registry = Registry({tier: {n: specs[n].pairs for n in names} for tier, names in chosen.items()})
        return cls(models, registry, limits, auto_tiers)

    def release_memory(self) -> None:
        """Return the sessions' free arena memory to the heap (the worker trims the heap next)."""
        for model in self._models.values():
            if isinstance(model, Model):
                model.graphs.release_memory()

    def languages(self) -> dict[str, list[tuple[str, str]]]:
        return self.registry.pairs()

    def close(self) -> None:
        """Stop what the models keep running (Apertium pipelines); they also stop with the process."""
        for model in self._models.values():
            model.close()

    def models(self) -> list[dict]:
        described = []
        for tier, names in self.registry.models().items():
            for name in names:
                model = self._models[name]
                spec = model.spec
                described.append(
                    {
                        "name": name,
                        "family": spec.family,
                        "tier": tier,
                        "quantization": spec.quantization,
                        "revision": model.revision,
                        "languages": [f"{s}-{t}" for s, t in spec.pairs],
                    }
                )
        return described

    # ------------------------------------------------------------------------------ translate

    def translate(
        self, jobs: list[TranslationJob], cache: SegmentCache | None = None
    ) -> list[Translation | TranslationError]:
        results: list[Translation | TranslationError | None] = [None] * len(jobs)
        messages: list[tuple[int, _Message]] = []
        segmented: dict[tuple[str, str], list[Piece]] = {}  # a message sent to several targets is segmented once
        for index, job in enumerate(jobs):
            planned = self._plan(job, segmented)
            if isinstance(planned, _Message):
                messages.append((index, planned))
            else:
                results[index] = planned
        active = [seg for _, m in messages for seg in m.segments]
        while active:
            self._run_leg(active, cache)
            self._one_route_per_sentence(active)
            active = [seg for seg in active if self._advance(seg)]
        for index, message in messages:
            results[index] = self._finish(message)
        return results  # type: ignore[return-value]

    def _plan(self, job: TranslationJob, segmented: dict[tuple[str, str], list[Piece]]) -> _Message | Translation | TranslationError:
        text = job.text if isinstance(job.text, str) else ""
        if not text.strip():
            return TranslationError("invalid_request", "text is empty")
        if not 1 <= job.beam_size <= MAX_BEAM_SIZE:
            return TranslationError("invalid_request", f"beam size must be between 1 and {MAX_BEAM_SIZE}")
        source, target = job.source_language, job.target_language
        if source == AUTO:
            return TranslationError("invalid_request", "the source language must be given (the edge detects it)")
        if job.tier not in MODEL_TYPES and job.tier not in TIERS:
            return TranslationError(
                "unsupported_model", f"unknown model type {job.tier!r}; use {', '.join(MODEL_TYPES)}"
            )
        if job.format not in FORMATS:
            return TranslationError("invalid_request", f"format {job.format!r} is not one of {', '.join(FORMATS)}")
        if (job.format, text) not in segmented:
            segmented[job.format, text] = segment(text, job.format)
        pieces = segmented[job.format, text]
        count = sum(p.translatable for p in pieces)
        if source == target:
            return Translation(text, source, target, 1.0, "", "", segments=count)
        preferred = tier_of(job.tier) if job.tier != AUTO else self.auto_tiers.choose(len(text), count)
        routes = self.registry.routes(source, target, preferred)
        if not routes:
            served = ", ".join(f"{s}-{t}" for s, t in sorted({p for ps in self.languages().values() for p in ps}))
            return TranslationError(
                "unsupported_language",
                f"no model translates {source} -> {target}, directly or through another language; pairs: {served}",
            )
        message = _Message(job, pieces, routes)
        translatable = [p for p in pieces if p.translatable]
        message.segments = [_Segment(message, i, p.text, p.text, sentence=p.sentence) for i, p in enumerate(translatable)]
        return message

    @staticmethod
    def _one_route_per_sentence(segments: list[_Segment]) -> None:
        """A sentence is one unit of routing: when a leg fails on one of its segments or meets a
        word its model does not know, every segment of that sentence leaves the route with it
        (a failure stays the failed segment's own)."""
        leaving = {(id(s.message), s.sentence) for s in segments if s.failure or s.outside}
        for seg in segments:
            if not (seg.failure or seg.outside) and (id(seg.message), seg.sentence) in leaving:
                seg.outside = True

    def _advance(self, seg: _Segment) -> bool:
        """After a leg: move the segment on (next leg, or next route after a failure or a word its
        model does not know); False when done."""
        message = seg.message
        if message.failure:
            return False
        if seg.failure or seg.outside:
            if seg.route + 1 >= len(message.routes):
                if seg.failure:
                    message.failure = f"segment {seg.index}: {seg.failure}; no other model serves the pair"
                else:  # no route knows its words: as typed, and the result says so
                    seg.text, seg.confidence, seg.untranslated, seg.truncated = seg.source_text, 0.0, True, False
                return False
            retried = seg.retried or bool(seg.failure)
            seg.route, seg.leg, seg.text, seg.confidence = seg.route + 1, 0, seg.source_text, 1.0
            seg.failure, seg.outside, seg.retried, seg.truncated, seg.cached, seg.unknown = (
                "", False, retried, False, True, 0
            )
            return True
        seg.leg += 1
        return seg.leg < len(message.routes[seg.route].legs)

    def _run_leg(self, segments: list[_Segment], cache: SegmentCache | None) -> None:
        """Translate every segment's current leg; a segment's input is split into chunks that fit."""
        plans: list[tuple[_Segment, Engine, list[Piece], list[Chunk], bool]] = []
        groups: dict[tuple, list[Chunk]] = {}
        for seg in segments:
            leg = seg.message.routes[seg.route].legs[seg.leg]
            model, beam = self._models[leg.model], seg.message.job.beam_size
            if not _knows(model.spec, seg.text, leg.source):
                seg.outside = True  # a closed-vocabulary model would only guess: the next route takes it
                continue
            # An engine that carries marks (Apertium: in superblanks) gets them in place; any other
            # gets the plain text and the marks are placed back by position after the leg.
            carried = model.engine == "apertium"
            text = seg.text if carried else strip_marks(seg.text)
            pieces = self._fit(model, text, leg.source, leg.target)
            chunks = []
            for piece in pieces:
                if piece.translatable:
                    chunks.append(self._chunk(model, piece.text, leg.source, leg.target, beam))
            plans.append((seg, model, pieces, chunks, carried))
            groups.setdefault((leg.model, leg.source, leg.target, beam), []).extend(chunks)
        for (name, source, target, beam), chunks in groups.items():
            self._run_group(self._models[name], source, target, beam, chunks, cache)
        for seg, model, pieces, chunks, carried in plans:
            failed = next((c.failure for c in chunks if c.failure), "")
            seg.cacheable &= all(c.cacheable for c in chunks)  # a failed route's exchange taints too
            if failed:
                seg.failure = failed
                continue
            weights = [len(c.ids) for c in chunks]
            confidence = sum(c.confidence * w for c, w in zip(chunks, weights)) / max(sum(weights), 1)
            if model.spec.vocabulary and confidence < CLOSED_VOCABULARY_FLOOR:
                seg.outside = True  # in its words but not in its domain: a guess, the next route takes it
                continue
            translated = reassemble(pieces, [c.text for c in chunks])
            seg.text = translated if carried else place_marks(seg.text, translated)
            seg.confidence *= confidence
            seg.truncated |= any(c.truncated for c in chunks)
            seg.cached &= all(c.cached for c in chunks)
            seg.unknown += sum(c.unknown for c in chunks)

    def _fit(self, model: Engine, text: str, source: str, target: str) -> list[Piece]:
        return model.fit(text, source, target)

    def _chunk(self, model: Engine, text: str, source: str, target: str, beam: int) -> Chunk:
        return model.chunk(text, source, target, beam, self.limits)

    def _run_group(
        self, model: Engine, source: str, target: str, beam: int, chunks: list[Chunk], cache: SegmentCache | None
    ) -> None:
        """Answer each distinct chunk once: from the cache, else by the model's engine; a failed
        chunk is never cached (its segment moves to another route), nor one the engine marked
        uncacheable (an Apertium chain that died or desynced during its exchange)."""
        by_key: dict[bytes, list[Chunk]] = {}
        for chunk in chunks:
            by_key.setdefault(chunk.key, []).append(chunk)
        todo: list[list[Chunk]] = []
        for key, same in by_key.items():
            hit = cache.get(key) if cache is not None else None
            if hit is not None:
                info = hit.segments
                for chunk in same:
                    chunk.text, chunk.confidence, chunk.truncated, chunk.unknown, chunk.cached = (
                        hit.translated_text, hit.confidence, bool(info and info.truncated),
                        info.unknown_words if info else 0, True,
                    )
            else:
                todo.append(same)
        if not todo:
            return
        model.run(source, target, beam, [same[0] for same in todo], self.limits)
        for same in todo:
            leader = same[0]
            for chunk in same[1:]:
                chunk.text, chunk.confidence, chunk.truncated, chunk.unknown, chunk.failure, chunk.cacheable = (
                    leader.text, leader.confidence, leader.truncated, leader.unknown, leader.failure, leader.cacheable,
                )
            if cache is not None and not leader.failure and leader.cacheable:
                cache.put(leader.key, _segment_value(leader, model.spec))

    def _finish(self, message: _Message) -> Translation | TranslationError:
        job = message.job
        if message.failure:
            return TranslationError("translation_failed", message.failure)
        segments = message.segments
        weights = [len(s.source_text) for s in segments]
        confidence = sum(s.confidence * w for s, w in zip(segments, weights)) / sum(weights) if segments else 1.0
        # The route that served most segments names the result (the first route on a tie).
        served = Counter(s.route for s in segments if not s.untranslated)
        order = sorted(served, key=lambda r: (-served[r], r))
        route = message.routes[order[0]] if served else None
        engines = list(dict.fromkeys(self._models[leg.model].engine for r in order for leg in message.routes[r].legs))
        requested = tier_of(job.tier)
        rule_based = any(leg.tier == FALLBACK for r in order for leg in message.routes[r].legs)
        return Translation(
            text=reassemble(message.pieces, [s.text for s in segments]),
            source_language=job.source_language,
            target_language=job.target_language,
            confidence=round(confidence, 4),
            model="+".join(leg.model for leg in route.legs) if route else "",  # "": nothing to translate
            tier=route.tier if route else "",
            segments=len(segments),
            truncated_segments=tuple(s.index for s in segments if s.truncated),
            retried_segments=tuple(s.index for s in segments if s.retried),
            cached_segments=sum(s.cached for s in segments),
            # Another tier than the job named served the naming route; or, unless the job asked
            # for the rule-based engine, any segment needed it.
            fallback=route is not None and (
                (job.tier != AUTO and route.tier != requested) or (requested != FALLBACK and rule_based)
            ),
            pivot=route.pivot if route else "",
            engine="+".join(engines),
            unknown_words=sum(s.unknown for s in segments),
            cacheable=all(s.cacheable for s in segments),
            untranslated_segments=tuple(s.index for s in segments if s.untranslated),
        )


_WORD = regex.compile(r"[\p{L}\p{M}]+")


def _knows(spec: ModelSpec, text: str, language: str) -> bool:
    """Whether every word of `text` is in the model's closed vocabulary for `language` (a model
    without one, an open vocabulary, knows every word)."""
    vocabulary = spec.vocabulary.get(language)
    return vocabulary is None or all(word.lower() in vocabulary for word in _WORD.findall(text))


def _segment_value(chunk: Chunk, spec: ModelSpec) -> CachedTranslation:
    segments = Segments(truncated=(0,) if chunk.truncated else (), unknown_words=chunk.unknown)
    return CachedTranslation(chunk.text, "", chunk.confidence, spec.name, spec.tier, time.time(), segments)
