"""The translation runtime: manifest models on ONNX Runtime, callable in-process, no sockets.

`Runtime.translate(jobs)` validates every job (a bad one becomes a `TranslationError`, never an
exception), picks a model per job, then batches: jobs are grouped by (model, source, target, beam
size), sorted by token length so rows in a batch have similar lengths, cut into batches under a
row and token budget, and padded to a multiple of `LENGTH_BUCKET` so ONNX Runtime sees few
distinct shapes over a long run (memory stays flat).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np

from workers.decoding import DecodeLimits, Hypothesis, Seq2SeqGraphs, beam_search, greedy
from workers.jobs import AUTO, Translation, TranslationError, TranslationJob
from workers.langid import detect_language
from workers.manifest import ManifestError, ModelSpec, load_specs
from workers.tokenizer import load_tokenizer

TIERS = ("basic", "medium", "premium")
LENGTH_BUCKET = 8
MAX_BEAM_SIZE = 8


class ModelLoadError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_rows: int = 32
    max_tokens: int = 4096  # padded source tokens per batch
    length_ratio: float = 2.0  # output tokens per source token, plus `length_slack`
    length_slack: int = 10
    max_new_tokens: int = 256


class Model:
    """One exported model: its graphs, tokenizer and sequence framing."""

    def __init__(self, spec: ModelSpec, threads: int = 1):
        self.spec = spec
        self.graphs = Seq2SeqGraphs(spec.directory, threads)
        self.tokenizer = load_tokenizer(spec.directory, spec.tokenizer, set(spec.special_ids))
        framing = spec.framing
        self.banned = [framing.pad_id] if framing.pad_id != framing.eos_id else []
        self.sources = tuple(sorted({src for src, _ in spec.pairs}))

    def source_ids(self, text: str, source: str, target: str) -> list[int]:
        framing = self.spec.framing
        body = self.tokenizer.encode(framing.text_prefix(source, target) + text)
        return [*framing.encoder_prefix(source), *body, *framing.source_suffix]

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
        limit = np.asarray(max_new_tokens if max_new_tokens else [256] * len(sources))
        limits = DecodeLimits(max_new_tokens=limit, min_new_tokens=min_new_tokens)
        prefix = framing.decoder_prefix(target)
        if beam_size > 1:
            return beam_search(
                self.graphs, input_ids, attention_mask, prefix, limits, framing.eos_id, self.banned, beam_size
            )
        return greedy(self.graphs, input_ids, attention_mask, prefix, limits, framing.eos_id, self.banned)

    def detokenize(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens)


@dataclass(slots=True)
class _Pending:
    index: int
    job: TranslationJob
    model: Model
    source: str
    ids: list[int]


class Runtime:
    def __init__(self, models: dict[str, Model], tiers: dict[str, str], limits: BatchLimits = BatchLimits()):
        self._models = models
        self._tiers = tiers  # tier -> model name
        self.limits = limits

    @classmethod
    def load(
        cls,
        models_dir: Path,
        tiers: dict[str, str] | None = None,
        threads: int = 1,
        limits: BatchLimits = BatchLimits(),
    ) -> "Runtime":
        try:
            specs = load_specs(Path(models_dir))
        except (ManifestError, OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(f"cannot read the model manifest in {models_dir}: {exc}") from exc
        if tiers is None:  # each serving tier gets its model from the manifest, int8 first
            tiers = {}
            for spec in sorted(specs.values(), key=lambda s: (s.quantization != "int8", s.name)):
                if spec.tier in TIERS:
                    tiers.setdefault(spec.tier, spec.name)
        missing = {tier: name for tier, name in tiers.items() if name not in specs}
        if missing:
            raise ModelLoadError(
                f"models {sorted(missing.values())} are configured for tiers {sorted(missing)} but are not in "
                f"{models_dir}/manifest.json (known: {sorted(specs)}); export them with export_models.py"
            )
        models = {}
        for name in sorted(set(tiers.values())):
            try:
                models[name] = Model(specs[name], threads)
            except Exception as exc:  # any ORT/tokenizer failure is a boot error with the model named
                raise ModelLoadError(f"cannot load model {name!r} from {specs[name].directory}: {exc}") from exc
        return cls(models, dict(tiers), limits)

    def languages(self) -> dict[str, list[tuple[str, str]]]:
        return {tier: sorted(self._models[name].spec.pairs) for tier, name in sorted(self._tiers.items())}

    def models(self) -> list[dict]:
        described = []
        for tier, name in sorted(self._tiers.items()):
            spec = self._models[name].spec
            described.append(
                {
                    "name": name,
                    "family": spec.family,
                    "tier": tier,
                    "quantization": spec.quantization,
                    "revision": spec.revision,
                    "languages": list(spec.languages),
                }
            )
        return described

    def translate(self, jobs: list[TranslationJob]) -> list[Translation | TranslationError]:
        results: list[Translation | TranslationError | None] = [None] * len(jobs)
        pending = []
        for index, job in enumerate(jobs):
            prepared = self._prepare(index, job)
            if isinstance(prepared, _Pending):
                pending.append(prepared)
            else:
                results[index] = prepared
        group_key = lambda p: (p.model.spec.name, p.source, p.job.target_language, p.job.beam_size)  # noqa: E731
        for (_, source, target, beam_size), group in groupby(sorted(pending, key=group_key), key=group_key):
            for batch in self._batches(sorted(group, key=lambda p: len(p.ids))):
                self._decode(batch, source, target, beam_size, results)
        return results  # type: ignore[return-value]

    def _prepare(self, index: int, job: TranslationJob) -> _Pending | Translation | TranslationError:
        text = job.text.strip() if isinstance(job.text, str) else ""
        if not text:
            return TranslationError("invalid_request", "text is empty")
        if not 1 <= job.beam_size <= MAX_BEAM_SIZE:
            return TranslationError("invalid_request", f"beam size must be between 1 and {MAX_BEAM_SIZE}")
        model = self._pick_model(job)
        if isinstance(model, TranslationError):
            return model
        source = job.source_language
        if source == AUTO:
            source = detect_language(text, model.sources)
        target = job.target_language
        if (source, target) not in model.spec.pairs:
            if source == target and source in model.spec.languages:
                return Translation(text, source, target, 1.0, model.spec.name, model.spec.tier)
            return TranslationError(
                "unsupported_language",
                f"model {model.spec.name!r} does not translate {source} -> {target}; "
                f"pairs: {', '.join(f'{s}-{t}' for s, t in model.spec.pairs)}",
            )
        ids = model.source_ids(text, source, target)
        if len(ids) > model.spec.max_source_tokens:
            return TranslationError(
                "text_too_long",
                f"text is {len(ids)} tokens; model {model.spec.name!r} takes at most {model.spec.max_source_tokens}",
            )
        return _Pending(index, job, model, source, ids)

    def _pick_model(self, job: TranslationJob) -> Model | TranslationError:
        if job.tier != AUTO:
            if job.tier not in TIERS:
                return TranslationError("unsupported_model", f"unknown model type {job.tier!r}; use {', '.join(TIERS)} or auto")
            if job.tier not in self._tiers:
                return TranslationError(
                    "unsupported_model", f"model type {job.tier!r} is not configured here; available: {sorted(self._tiers)}"
                )
            return self._models[self._tiers[job.tier]]
        # auto: the lowest (fastest) tier that serves the pair; a multilingual model when the source is unknown.
        ordered = [self._models[self._tiers[t]] for t in TIERS if t in self._tiers]
        for model in ordered:
            source = job.source_language
            if source == AUTO:
                source = detect_language(job.text, model.sources)
            if (source, job.target_language) in model.spec.pairs:
                return model
        known = sorted({lang for m in ordered for lang in m.spec.languages})
        if job.target_language not in known:
            return TranslationError(
                "unsupported_language", f"no model translates into {job.target_language!r}; languages: {', '.join(known)}"
            )
        return ordered[-1]  # the broadest model gives the precise unsupported-pair error

    def _batches(self, group: list[_Pending]):
        batch: list[_Pending] = []
        for item in group:  # sorted by length: the last row sets the padded width
            width = -(-len(item.ids) // LENGTH_BUCKET) * LENGTH_BUCKET
            if batch and (len(batch) >= self.limits.max_rows or width * (len(batch) + 1) > self.limits.max_tokens):
                yield batch
                batch = []
            batch.append(item)
        if batch:
            yield batch

    def _decode(self, batch: list[_Pending], source: str, target: str, beam_size: int, results: list) -> None:
        model = batch[0].model
        limits = self.limits
        cap = min(limits.max_new_tokens, model.spec.max_target_tokens)
        budget = [min(cap, int(len(p.ids) * limits.length_ratio) + limits.length_slack) for p in batch]
        hypotheses = model.generate([p.ids for p in batch], target, beam_size, budget)
        for item, hyp in zip(batch, hypotheses):
            results[item.index] = Translation(
                text=model.detokenize(hyp.tokens),
                source_language=source,
                target_language=target,
                confidence=round(hyp.confidence, 4),
                model=model.spec.name,
                tier=model.spec.tier,
            )
