"""export_models.py: verified exports in the manifest, a failed check fails, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelbuild.corpus import SAMPLE_SENTENCES, generate_corpus
from tests.conftest import BUILTIN_MODELS, REPO
from workers.manifest import MANIFEST_NAME, file_checksums, load_specs, read_manifest

pytestmark = pytest.mark.timeout(300)


def export(*args, env=None):
    return subprocess.run([sys.executable, str(REPO / "export_models.py"), *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **(env or {})}, timeout=240)


def test_builtin_exports_are_registered_verified_and_checksummed(builtin_models_dir):
    models = read_manifest(builtin_models_dir)["models"]
    for name in BUILTIN_MODELS:
        entry = models[name]
        assert entry["quantization"] == "fp32" and entry["source"] == f"builtin:{name}"
        assert entry["verification"]["exact_match"] == 1.0
        assert entry["files"] == file_checksums(builtin_models_dir / entry["path"])
        assert {"encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx"} <= set(entry["files"])
    assert models["builtin-m2m-mini"]["family"] == "m2m100"
    assert ["en", "de"] in models["builtin-m2m-mini"]["pairs"]
    assert models["builtin-marian-en-fr"]["pairs"] == [["en", "fr"]]


def stored_tensors(directory: Path) -> dict[str, list[tuple[int, int]]]:
    """graph -> (offset, length) of each initializer it reads from weights.bin."""
    import onnx

    from workers.decoding import GRAPHS

    stored = {}
    for graph in GRAPHS:
        model = onnx.load(str(directory / graph), load_external_data=False)
        external = [{e.key: e.value for e in t.external_data} for t in model.graph.initializer
                    if t.data_location == onnx.TensorProto.EXTERNAL]
        assert {e["location"] for e in external} == {"weights.bin"}
        stored[graph] = [(int(e["offset"]), int(e["length"])) for e in external]
    return stored


def check_stored_once(directory: Path) -> None:
    stored = stored_tensors(directory)
    distinct = {place for places in stored.values() for place in places}
    assert all(offset % 4096 == 0 for offset, _ in distinct)  # page-aligned: memory-mapped, not copied
    # Each weight once: the file holds the distinct tensors and alignment padding only.
    assert (directory / "weights.bin").stat().st_size <= 1.2 * sum(length for _, length in distinct)
    # The two decoder graphs read the same weights, and the embedding is shared with the encoder.
    assert set(stored["decoder_with_past_model.onnx"]) <= set(stored["decoder_model.onnx"])
    assert set(stored["encoder_model.onnx"]) & set(stored["decoder_model.onnx"])
    assert not list(directory.glob("*.onnx_data"))


def test_every_export_stores_each_weight_once_in_one_page_aligned_file(builtin_models_dir, int8_models_dir):
    for name in BUILTIN_MODELS:
        check_stored_once(builtin_models_dir / name)
        check_stored_once(int8_models_dir / f"{name}-int8")


def test_a_second_builtin_run_reuses_the_cache(builtin_models_dir):
    result = export("--builtin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("up to date") == len(BUILTIN_MODELS)


def test_verification_fails_when_the_export_disagrees_with_pytorch(builtin_models_dir):
    import torch

    from export_models import ExportError, load_reference, verify

    name = "builtin-marian-en-fr"
    reference = load_reference(str(builtin_models_dir / ".build" / name))
    with torch.no_grad():  # a reference that no longer matches the exported graphs
        reference[2].final_logits_bias.add_(torch.randn_like(reference[2].final_logits_bias) * 5)
    entry = read_manifest(builtin_models_dir)["models"][name]
    with pytest.raises(ExportError, match="differs from PyTorch"):
        verify(builtin_models_dir, name, entry, reference, {"en": ["the cat sees the dog"]}, 70.0)


def int8_export(builtin_models_dir, models_dir, name, **seam):
    """Quantize a built-in model's fp32 export, copied into `models_dir`, as `--quantize int8` does."""
    from export_models import MIN_INT8_CHRF, export_int8, load_reference

    entry = read_manifest(builtin_models_dir)["models"][name]
    shutil.copytree(builtin_models_dir / name, models_dir / name)
    reference = load_reference(str(builtin_models_dir / ".build" / name))
    samples = {lang: [s[lang] for s in SAMPLE_SENTENCES] for pair in entry["pairs"] for lang in pair}
    return export_int8(models_dir, name, entry, reference, samples, MIN_INT8_CHRF, **seam)


@pytest.fixture(scope="module")
def int8_models_dir(builtin_models_dir, tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("int8")
    for name in BUILTIN_MODELS:
        int8_export(builtin_models_dir, models_dir, name)
    return models_dir


def test_int8_exports_are_verified_batch_invariant_and_per_row(int8_models_dir):
    import onnx

    from export_models import INT8_SCHEME

    models = read_manifest(int8_models_dir)["models"]
    for name in BUILTIN_MODELS:
        entry = models[f"{name}-int8"]
        assert (entry["quantization"], entry["quantization_scheme"]) == ("int8", INT8_SCHEME)
        check = entry["verification"]
        assert check["alone_equals_batched"] == check["sentences"] == 24 * len(entry["pairs"])
        assert check["exact_match"] >= 0.9 and check["chrf_vs_pytorch"] >= 90, check
        graph = onnx.load(str(int8_models_dir / entry["path"] / "decoder_with_past_model.onnx")).graph
        ops = {node.op_type for node in graph.node}
        assert "MatMulIntegerToFloat" in ops and "DynamicQuantizeLinear" not in ops
        # Every MatMul left multiplies two activations (attention), never a weight.
        assert not [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in {i.name for i in graph.initializer}]
        # The token embedding is int8 too, in the output projection's very bytes: stored once for both.
        def bare(graph_name):
            return onnx.load(str(int8_models_dir / entry["path"] / graph_name), load_external_data=False).graph

        def place(graph, name):
            return next(tuple(e.value for e in t.external_data) for t in graph.initializer if t.name == name)

        decoder, head = bare("decoder_with_past_model.onnx"), bare("head_model.onnx")
        embedding = next(n for n in decoder.node if n.op_type == "Gather" and n.input[0].endswith(".int8"))
        projection = next(n for n in head.node if n.op_type == "MatMulIntegerToFloat")
        assert place(decoder, embedding.input[0]) == place(head, projection.input[1])


def test_int8_batch_gives_the_same_tokens_as_one_by_one(int8_models_dir):
    from workers.runtime import Model

    specs = load_specs(int8_models_dir)
    held_out = generate_corpus(40, seed=4242)
    for name in BUILTIN_MODELS:
        model = Model(specs[f"{name}-int8"])
        for src, tgt in model.spec.pairs:
            sources = [model.source_ids(s[src], src, tgt) for s in held_out]  # mixed lengths, one batch
            batched = [hyp.tokens for hyp in model.generate(sources, tgt)]
            alone = [model.generate([ids], tgt)[0].tokens for ids in sources]
            assert batched == alone, (name, src, tgt)


def mix_batch_rows(fp32_dir, int8_dir):
    """A quantizer whose decoder lets each row's logits depend on its batch mates (as one activation
    scale per batch does, more strongly): alone, logits + 10 * batch mean has the same argmax."""
    import onnx
    from onnx import helper, numpy_helper

    from export_models import quantize_graphs

    quantize_graphs(fp32_dir, int8_dir)
    path = int8_dir / "head_model.onnx"  # the logits of every greedy step
    model = onnx.load(str(path))
    graph = model.graph
    producer = next(node for node in graph.node if "logits" in node.output)
    producer.output[list(producer.output).index("logits")] = "logits.own"
    graph.initializer.extend([numpy_helper.from_array(np.array([0], np.int64), "mix.axes"),
                              numpy_helper.from_array(np.array(10.0, np.float32), "mix.weight")])
    graph.node.extend([
        helper.make_node("ReduceMean", ["logits.own", "mix.axes"], ["mix.mean"], keepdims=1),
        helper.make_node("Mul", ["mix.mean", "mix.weight"], ["mix.weighted"]),
        helper.make_node("Add", ["logits.own", "mix.weighted"], ["logits"]),
    ])
    onnx.save(model, str(path))


def test_the_int8_export_fails_when_a_batch_mate_changes_a_translation(builtin_models_dir, tmp_path):
    from export_models import ExportError

    name = "builtin-marian-en-fr"
    with pytest.raises(ExportError, match="translate differently alone and in one batch"):
        int8_export(builtin_models_dir, tmp_path, name, quantize=mix_batch_rows)
    assert not (tmp_path / MANIFEST_NAME).exists()  # nothing registered


def test_int8_decoder_with_past_runs_attention_fused_and_fp32_stays_as_exported(builtin_models_dir, int8_models_dir):
    import onnx

    for name in BUILTIN_MODELS:  # Marian and M2M100: both fuse
        ops = [n.op_type for n in onnx.load(str(int8_models_dir / f"{name}-int8" / "decoder_with_past_model.onnx"),
                                            load_external_data=False).graph.node]
        assert ops.count("MultiHeadAttention") == 2 * 2 and "Softmax" not in ops  # self + cross, 2 layers
        fp32 = [n.op_type for n in onnx.load(str(builtin_models_dir / name / "decoder_with_past_model.onnx"),
                                             load_external_data=False).graph.node]
        assert "MultiHeadAttention" not in fp32 and "Softmax" in fp32
    assert not list(int8_models_dir.glob("*/*.fused.onnx*"))


def test_attention_fusion_leaves_a_graph_of_another_shape_alone(builtin_models_dir, tmp_path, capsys):
    from export_models import fuse_attention

    # decoder_model has no past keys and values: not the graph the fusion knows.
    assert not fuse_attention(builtin_models_dir / "builtin-marian-en-fr" / "decoder_model.onnx", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists() and "attention left unfused" in capsys.readouterr().out


def test_missing_directory_is_a_clear_error(tmp_path):
    result = export(str(tmp_path / "nope"), "--pairs", "en-fr", "--models-dir", str(tmp_path / "models"))
    assert result.returncode == 2
    assert "no such directory" in result.stderr


def test_unsupported_architecture_is_a_clear_error(tmp_path):
    checkpoint = tmp_path / "bert"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "bert"}))
    result = export(str(checkpoint), "--pairs", "en-fr", "--models-dir", str(tmp_path / "models"))
    assert result.returncode == 2
    assert "unsupported architecture 'bert'" in result.stderr


def test_unreachable_hub_says_how_to_export_from_a_local_directory(tmp_path):
    result = export("Helsinki-NLP/opus-mt-en-fr", "--models-dir", str(tmp_path / "models"), env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2
    assert "cannot fetch 'Helsinki-NLP/opus-mt-en-fr'" in result.stderr
    assert "python export_models.py ./opus-mt-en-fr" in result.stderr
    assert not (tmp_path / "models").exists()


def test_a_multi_target_opus_mt_model_gets_its_target_token_as_its_vocabulary_spells_it():
    from export_models import ExportError, marian_target_tokens, parse_pairs

    vocab = {">>fra<<": 1, ">>spa<<": 2, ">>pt_br<<": 3, "▁hello": 4}
    assert marian_target_tokens(vocab, [("en", "fr"), ("en", "es")]) == {"en-fr": ">>fra<< ", "en-es": ">>spa<< "}
    assert marian_target_tokens({"▁hello": 4}, [("en", "fr")]) == {}  # single target: no token
    with pytest.raises(ExportError, match=">>de<<, >>deu<<, >>ger<<"):
        marian_target_tokens(vocab, [("en", "de")])
    assert parse_pairs(["EN-fr", "eng-deu"], None, "x", "marian") == [("en", "fr"), ("en", "de")]


def test_builtin_entries_record_their_closed_vocabulary(builtin_models_dir):
    models = read_manifest(builtin_models_dir)["models"]
    assert set(models["builtin-m2m-to-en"]["vocabulary"]) == {"fr", "es", "de"}
    english = set(models["builtin-marian-en-fr"]["vocabulary"]["en"])
    assert {"the", "cat", "sees", "dog", "hello"} <= english and "neighbour" not in english


APERTIUM_MODES = Path(os.environ.get("APERTIUM_DATADIR") or "/usr/share/apertium") / "modes"
APERTIUM_MISSING = [m for m in ("eng-spa", "spa-eng", "fr-es", "es-fr") if not (APERTIUM_MODES / f"{m}.mode").exists()]


@pytest.mark.skipif(bool(APERTIUM_MISSING), reason=f"Apertium modes {APERTIUM_MISSING} not installed: "
                    "apt-get install apertium apertium-eng-spa apertium-fr-es (make system-deps does it as root)")
def test_apertium_modes_are_registered_as_the_fallback_tier_with_checksums(tmp_path):
    models_dir = tmp_path / "models"
    result = export("--apertium", "--models-dir", str(models_dir))
    assert result.returncode == 0, result.stderr
    models = read_manifest(models_dir)["models"]
    # Every plain mode installed is registered (more with the other Debian pairs), variants never.
    assert {"apertium-eng-spa", "apertium-es-fr", "apertium-fr-es", "apertium-spa-eng"} <= set(models)
    assert all("_" not in name and name.count("-") == 2 for name in models)
    entry = models["apertium-eng-spa"]
    assert (entry["family"], entry["tier"], entry["mode"]) == ("apertium", "fallback", "eng-spa")
    assert entry["pairs"] == [["en", "es"]]
    assert models["apertium-spa-eng"]["pairs"] == [["es", "en"]] and models["apertium-fr-es"]["pairs"] == [["fr", "es"]]
    assert entry["packages"] == ["apertium", "apertium-eng-spa"]
    mode_file = str(Path(entry["path"]) / "eng-spa.mode")
    assert mode_file in entry["files"] and any(f.endswith("eng-spa.automorf.bin") for f in entry["files"])
    assert entry["verification"]["output"] == "Hola, cómo eres?"
    assert "eco-fr-es" not in result.stdout  # variants are not registered
    # A mode whose package went away leaves the manifest on the next registration.
    stale = {**entry, "mode": "xxx-yyy", "source": "apertium:xxx-yyy"}
    from workers.manifest import write_entry

    write_entry(models_dir, "apertium-xxx-yyy", stale)
    assert export("--apertium", "--models-dir", str(models_dir)).returncode == 0
    assert "apertium-xxx-yyy" not in read_manifest(models_dir)["models"]
    only = export("--apertium", "fr-es", "--models-dir", str(tmp_path / "one"))
    assert only.returncode == 0 and list(read_manifest(tmp_path / "one")["models"]) == ["apertium-fr-es"]


def test_registering_apertium_without_its_packages_names_them(tmp_path):
    empty = tmp_path / "no-apertium"
    empty.mkdir()
    result = export("--apertium", "--models-dir", str(tmp_path / "models"),
                    env={"PATH": str(empty), "APERTIUM_DATADIR": str(empty)})
    assert result.returncode == 2
    assert "Apertium is not installed" in result.stderr
    assert "apt-get install apertium apertium-eng-spa apertium-fr-es" in result.stderr
    assert not (tmp_path / "models").exists()
    # No language data (with or without the programs): the same advice.
    for modes in ([], ["xx-yy"]):
        result = export("--apertium", *modes, "--models-dir", str(tmp_path / "models"), env={"APERTIUM_DATADIR": str(empty)})
        assert result.returncode == 2 and "apt-get install apertium apertium-eng-spa apertium-fr-es" in result.stderr
