"""The model manifest: `models/manifest.json`, written by `export_models.py`, read by the runtime.

One entry per exported model directory, or per registered Apertium mode:

    {"version": 1, "models": {"<name>": {
        "family": "marian" | "m2m100" | "nllb" | "t5" | "apertium",
        "tier": "basic" | "medium" | "premium" | "fallback" | "benchmark",
        "quantization": "fp32" | "int8" | "none",
        "source": hub id, local path or "builtin:<what>",
        "pairs": [["en", "fr"], ...],
        "files": {"encoder_model.onnx": "<sha256>", ...},
        "tokenizer": {"kind": "spm", "source_spm", "target_spm", "vocab", "unk_id"} | {"kind": "json", "file"},
        "framing": {...},          # see Framing
        "max_source_tokens": 510, "max_target_tokens": 510,
        "special_ids": [...],      # never shown in output text
        "vocabulary": {"en": [...]},  # optional, a closed vocabulary: the words the model knows,
                                      # per source language (the built-in models)
        "verification": {...}}}}   # what the exporter measured against PyTorch

An Apertium entry (`export_models.py --apertium`) has no tokenizer, framing or token limits; it
names its mode instead, and its files are the mode file and every data file the mode reads:

    "apertium-eng-spa": {"family": "apertium", "tier": "fallback", "quantization": "none",
        "path": "/usr/share/apertium/modes", "mode": "eng-spa", "pairs": [["en", "es"]],
        "packages": ["apertium", "apertium-eng-spa"], "files": {"<absolute path>": "<sha256>"}, ...}

The revision of a model is a digest of its file checksums: caches key on it, so a re-export with
different weights never serves stale translations.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
ANY = "*"
APERTIUM = "apertium"  # the family of rule-based entries (workers/apertium.py)


@dataclass(frozen=True, slots=True)
class Framing:
    """How bare token ids become model inputs; probed from the HF tokenizer at export time.

    encoder input  = source_prefix[src] + ids(task_prefix[src-tgt] + text) + source_suffix
    decoder start  = [decoder_start_id] + target_prefix[tgt]   (the forced language token of NLLB/M2M100)
    """

    eos_id: int
    pad_id: int
    decoder_start_id: int
    source_suffix: tuple[int, ...] = ()
    source_prefix: dict[str, tuple[int, ...]] = field(default_factory=dict)
    target_prefix: dict[str, tuple[int, ...]] = field(default_factory=dict)
    task_prefix: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict) -> "Framing":
        return cls(
            eos_id=data["eos_id"],
            pad_id=data["pad_id"],
            decoder_start_id=data["decoder_start_id"],
            source_suffix=tuple(data.get("source_suffix", ())),
            source_prefix={k: tuple(v) for k, v in data.get("source_prefix", {}).items()},
            target_prefix={k: tuple(v) for k, v in data.get("target_prefix", {}).items()},
            task_prefix=dict(data.get("task_prefix", {})),
        )

    def to_json(self) -> dict:
        return {
            "eos_id": self.eos_id,
            "pad_id": self.pad_id,
            "decoder_start_id": self.decoder_start_id,
            "source_suffix": list(self.source_suffix),
            "source_prefix": {k: list(v) for k, v in self.source_prefix.items()},
            "target_prefix": {k: list(v) for k, v in self.target_prefix.items()},
            "task_prefix": self.task_prefix,
        }

    def encoder_prefix(self, source: str) -> tuple[int, ...]:
        return self.source_prefix.get(source, self.source_prefix.get(ANY, ()))

    def decoder_prefix(self, target: str) -> tuple[int, ...]:
        return (self.decoder_start_id, *self.target_prefix.get(target, self.target_prefix.get(ANY, ())))

    def text_prefix(self, source: str, target: str) -> str:
        return self.task_prefix.get(f"{source}-{target}", "")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    directory: Path
    family: str
    tier: str
    quantization: str
    source: str
    pairs: tuple[tuple[str, str], ...]
    files: dict[str, str]
    tokenizer: dict = field(default_factory=dict)
    framing: Framing | None = None  # None: not a seq2seq model (Apertium)
    max_source_tokens: int = 0
    max_target_tokens: int = 0
    special_ids: frozenset[int] = frozenset()
    # A closed vocabulary (source language -> case-folded words), for models trained on a word
    # list (the built-in models): a segment with another word is outside the model's domain, and
    # the runtime gives it to the next route. Empty: an open vocabulary.
    vocabulary: dict[str, frozenset[str]] = field(default_factory=dict)
    mode: str = ""  # the Apertium mode (eng-spa), for family "apertium"
    packages: tuple[str, ...] = ()  # Debian packages the entry needs

    @property
    def revision(self) -> str:
        digest = hashlib.sha256(json.dumps(self.files, sort_keys=True).encode()).hexdigest()
        return digest[:16]

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(sorted({lang for pair in self.pairs for lang in pair}))


class ManifestError(Exception):
    pass


def read_manifest(models_dir: Path) -> dict:
    path = models_dir / MANIFEST_NAME
    if not path.exists():
        raise ManifestError(f"no model manifest at {path}: run `python export_models.py --builtin` first")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("version") != MANIFEST_VERSION:
        raise ManifestError(f"{path}: manifest version {data.get('version')!r}, expected {MANIFEST_VERSION}")
    return data


def load_specs(models_dir: Path) -> dict[str, ModelSpec]:
    return {name: spec_from_entry(name, models_dir, entry) for name, entry in read_manifest(models_dir)["models"].items()}


def spec_from_entry(name: str, models_dir: Path, entry: dict) -> ModelSpec:
    common = dict(
        name=name,
        directory=models_dir / entry["path"],  # an absolute path stays absolute
        family=entry["family"],
        tier=entry["tier"],
        quantization=entry["quantization"],
        source=entry["source"],
        pairs=tuple((src, tgt) for src, tgt in entry["pairs"]),
        files=entry["files"],
        vocabulary={lang: frozenset(words) for lang, words in entry.get("vocabulary", {}).items()},
    )
    if entry["family"] == APERTIUM:
        return ModelSpec(**common, mode=entry["mode"], packages=tuple(entry.get("packages", ())))
    return ModelSpec(
        **common,
        tokenizer=entry["tokenizer"],
        framing=Framing.from_json(entry["framing"]),
        max_source_tokens=entry["max_source_tokens"],
        max_target_tokens=entry["max_target_tokens"],
        special_ids=frozenset(entry["special_ids"]),
    )


def write_entry(models_dir: Path, name: str, entry: dict) -> None:
    """Add or replace one model's entry; atomic, so a reader never sees half a manifest."""
    _update(models_dir, lambda models: models.__setitem__(name, entry))


def remove_entries(models_dir: Path, names: list[str]) -> None:
    """Drop entries (a mode whose package was removed); atomic like `write_entry`."""
    if names and (models_dir / MANIFEST_NAME).exists():
        _update(models_dir, lambda models: [models.pop(n, None) for n in names])


def _update(models_dir: Path, change) -> None:
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / MANIFEST_NAME
    data = read_manifest(models_dir) if path.exists() else {"version": MANIFEST_VERSION, "models": {}}
    change(data["models"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def file_checksums(directory: Path) -> dict[str, str]:
    return {path.name: sha256_file(path) for path in sorted(directory.iterdir()) if path.is_file()}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
