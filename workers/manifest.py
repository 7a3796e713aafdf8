"""The model manifest: `models/manifest.json`, written by `export_models.py`, read by the runtime.

One entry per exported model directory:

    {"version": 1, "models": {"<name>": {
        "family": "marian" | "m2m100" | "nllb" | "t5",
        "tier": "basic" | "medium" | "premium",
        "quantization": "fp32" | "int8",
        "source": hub id, local path or "builtin:<what>",
        "pairs": [["en", "fr"], ...],
        "files": {"encoder_model.onnx": "<sha256>", ...},
        "tokenizer": {"kind": "spm", "source_spm", "target_spm", "vocab", "unk_id"} | {"kind": "json", "file"},
        "framing": {...},          # see Framing
        "max_source_tokens": 510, "max_target_tokens": 510,
        "special_ids": [...],      # never shown in output text
        "verification": {...}}}}   # what the exporter measured against PyTorch

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
    tokenizer: dict
    framing: Framing
    max_source_tokens: int
    max_target_tokens: int
    special_ids: frozenset[int]

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
    return ModelSpec(
        name=name,
        directory=models_dir / entry["path"],
        family=entry["family"],
        tier=entry["tier"],
        quantization=entry["quantization"],
        source=entry["source"],
        pairs=tuple((src, tgt) for src, tgt in entry["pairs"]),
        files=entry["files"],
        tokenizer=entry["tokenizer"],
        framing=Framing.from_json(entry["framing"]),
        max_source_tokens=entry["max_source_tokens"],
        max_target_tokens=entry["max_target_tokens"],
        special_ids=frozenset(entry["special_ids"]),
    )


def write_entry(models_dir: Path, name: str, entry: dict) -> None:
    """Add or replace one model's entry; atomic, so a reader never sees half a manifest."""
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / MANIFEST_NAME
    data = read_manifest(models_dir) if path.exists() else {"version": MANIFEST_VERSION, "models": {}}
    data["models"][name] = entry
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def file_checksums(directory: Path) -> dict[str, str]:
    checksums = {}
    for path in sorted(directory.iterdir()):
        if path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            checksums[path.name] = digest.hexdigest()
    return checksums
