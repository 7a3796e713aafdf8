"""One export: a checkpoint exported, verified and registered in the manifest (and its int8 twin);
the built-in models (trained here) and the synthetic benchmark models take the same path.

    export_checkpoint  load the PyTorch reference, export the graphs (modelbuild.graphs), probe
                       the framing (modelbuild.checkpoint), write the shortlists, verify
                       (modelbuild.verify), register; `quantize="int8"`: then export_int8
    export_builtin     train the stale built-in recipes (modelbuild.builtin), export each one
    export_synthetic   a random-weight benchmark model (modelbuild.synthetic)

Only a verified export reaches the manifest."""

from __future__ import annotations

from pathlib import Path

from modelbuild.checkpoint import load_reference, parse_pairs, probe_framing, tokenizer_spec
from modelbuild.graphs import export_graphs
from modelbuild.quantize import INT8_SCHEME, quantize_graphs
from modelbuild.report import ExportError, Steps, log
from modelbuild.verify import verify
from modelbuild.vocabulary import builtin_vocabulary, corpus_texts, write_shortlists
from workers.decoding import HEAD_GRAPH
from workers.manifest import file_checksums, read_manifest, write_entry
from workers.packed_weights import WEIGHTS_FILE

MIN_INT8_CHRF = 70.0  # int8 output vs fp32 PyTorch on the samples; below this the export fails


def export_checkpoint(
    source: str,
    models_dir: Path,
    name: str,
    tier: str,
    pairs: list[tuple[str, str]] | None = None,
    languages: list[str] | None = None,
    quantize: str | None = None,
    samples: dict[str, list[str]] | None = None,
    source_label: str | None = None,
    min_int8_chrf: float = MIN_INT8_CHRF,
    extra: dict | None = None,
    shortlist_texts: dict[str, list[str]] | None = None,
) -> list[str]:
    """Export, verify and register one checkpoint (and its int8 twin); returns the manifest names.
    `shortlist_texts`: target language -> text of that language, for its vocabulary shortlist."""
    steps = Steps(name, 5 if quantize else 4)
    steps.next(f"loading the PyTorch reference from {source}")
    reference = load_reference(source)
    config, tokenizer, _, family, checkpoint = reference
    pairs = [tuple(p) for p in pairs] if pairs else parse_pairs(None, languages, source, family)
    out_dir = models_dir / name
    steps.next("exporting encoder, decoder and decoder-with-past graphs with optimum")
    export_graphs(checkpoint, out_dir, tokenizer)
    framing = probe_framing(family, tokenizer, config, pairs)
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 512)
    special_ids = set(tokenizer.all_special_ids) | {i for ids in framing.target_prefix.values() for i in ids}
    entry = {
        "path": name,
        "family": family,
        "tier": tier,
        "quantization": "fp32",
        "source": source_label or source,
        "pairs": [list(p) for p in pairs],
        "tokenizer": tokenizer_spec(family, tokenizer, out_dir),
        "framing": framing.to_json(),
        "max_source_tokens": positions - 2,
        "max_target_tokens": positions - len(framing.decoder_prefix(pairs[0][1])),
        "special_ids": sorted(special_ids),
        **(extra or {}),
    }
    write_shortlists(out_dir, entry, shortlist_texts or {})
    entry["files"] = file_checksums(out_dir)
    steps.next(f"verifying fp32 against PyTorch on {len(pairs)} language pair(s)")
    entry["verification"] = verify(models_dir, name, entry, reference, samples or {}, min_int8_chrf)
    log(f"{name}: fp32 verified, {entry['verification']}")
    write_entry(models_dir, name, entry)
    names = [name]
    if quantize == "int8":
        steps.next("quantizing MatMuls to int8 (per-row activations, per-column weights)")
        names.append(export_int8(models_dir, name, entry, reference, samples or {}, min_int8_chrf))
    steps.next(f"registered {', '.join(names)} in {models_dir / 'manifest.json'}")
    return names


def export_int8(models_dir: Path, name: str, entry: dict, reference, samples: dict[str, list[str]],
                min_chrf: float, quantize=quantize_graphs) -> str:
    """Quantize a verified fp32 export into `<name>-int8`, verify and register it; `quantize` is a
    seam for tests."""
    int8_name = f"{name}-int8"
    quantize(models_dir / entry["path"], models_dir / int8_name)
    int8_entry = {**entry, "path": int8_name, "quantization": "int8", "quantization_scheme": INT8_SCHEME,
                  "files": file_checksums(models_dir / int8_name)}
    int8_entry["verification"] = verify(models_dir, int8_name, int8_entry, reference, samples, min_chrf)
    log(f"{int8_name}: int8 checked, {int8_entry['verification']}")
    write_entry(models_dir, int8_name, int8_entry)
    return int8_name


def export_builtin(models_dir: Path, quantize: str | None) -> list[str]:
    """Train the stale built-in recipes in parallel processes; export each one as its training ends."""
    from modelbuild.builtin import RECIPES, build_checkpoints, recipe_digest, sample_texts

    names, stale = [], []
    for recipe in RECIPES:
        wanted = [recipe.name] + ([f"{recipe.name}-int8"] if quantize else [])
        if _up_to_date(models_dir, wanted, recipe_digest(recipe), read_manifest):
            log(f"{recipe.name}: exported model is up to date")
            models = read_manifest(models_dir)["models"]
            for name in wanted:  # an entry written before the vocabulary was recorded gets it
                if "vocabulary" not in models[name]:
                    write_entry(models_dir, name, {**models[name], "vocabulary": builtin_vocabulary(recipe)})
            names += wanted
        else:
            stale.append(recipe)
    if not stale:
        return names
    import torch

    torch.set_num_threads(1)  # the cores belong to the training processes; an export is light work
    for recipe, checkpoint in build_checkpoints(stale, models_dir / ".build", log=log):
        samples = {lang: sample_texts(lang) for pair in recipe.pairs for lang in pair}
        names += export_checkpoint(
            str(checkpoint), models_dir, recipe.name, recipe.tier, pairs=list(recipe.pairs), quantize=quantize,
            samples=samples, source_label=f"builtin:{recipe.name}",
            extra={"build_digest": recipe_digest(recipe), "vocabulary": builtin_vocabulary(recipe)},
            shortlist_texts=corpus_texts(recipe.corpus_size, recipe.pairs),
        )
    return names


def _up_to_date(models_dir: Path, names: list[str], digest: str, read_manifest) -> bool:
    try:
        models = read_manifest(models_dir)["models"]
    except Exception:
        return False
    for name in names:
        entry = models.get(name)
        if not entry or entry.get("build_digest") != digest:
            return False
        if entry.get("quantization") == "int8" and entry.get("quantization_scheme") != INT8_SCHEME:
            return False  # an int8 export made the old way: its translations depend on batch mates
        if WEIGHTS_FILE not in entry["files"] or HEAD_GRAPH not in entry["files"]:
            return False  # an export from before share_weights or the split output head
        directory = models_dir / entry["path"]  # a deleted export is re-exported, not a crash
        if not directory.is_dir() or file_checksums(directory) != entry["files"]:
            return False
    return True


def export_synthetic(shape_name: str, models_dir: Path, quantize: str | None) -> list[str]:
    from modelbuild.synthetic import SHAPES, build_synthetic

    if shape_name not in SHAPES:
        raise ExportError(f"unknown synthetic model {shape_name!r}; choose from {sorted(SHAPES)}")
    checkpoint, shape = build_synthetic(shape_name, models_dir / ".build", log=log)
    # Random weights: int8 output is noise compared with fp32 noise, so its agreement is reported only.
    return export_checkpoint(
        str(checkpoint), models_dir, f"synthetic-{shape_name}", shape["tier"], pairs=list(shape["pairs"]),
        quantize=quantize, source_label=f"synthetic:{shape_name}", min_int8_chrf=0.0,
        shortlist_texts=corpus_texts(20_000, shape["pairs"], seed=0),  # the text its tokenizer learned
    )
