"""modelbuild.quantize (and the graph rewrites it runs on): int8 exports verified, batch-invariant,
per-row, attention fused; every export's weights stored once."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from modelbuild.corpus import SAMPLE_SENTENCES, generate_corpus
from tests.conftest import BUILTIN_MODELS
from workers.manifest import MANIFEST_NAME, load_specs, read_manifest

pytestmark = pytest.mark.timeout(300)


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


def int8_export(builtin_models_dir, models_dir, name, **seam):
    """Quantize a built-in model's fp32 export, copied into `models_dir`, as `--quantize int8` does."""
    from modelbuild.checkpoint import load_reference
    from modelbuild.export import MIN_INT8_CHRF, export_int8

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

    from modelbuild.quantize import INT8_SCHEME

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

    from modelbuild.quantize import quantize_graphs

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
    from modelbuild.report import ExportError

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
    from modelbuild.graphs import fuse_attention

    # decoder_model has no past keys and values: not the graph the fusion knows.
    assert not fuse_attention(builtin_models_dir / "builtin-marian-en-fr" / "decoder_model.onnx", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists() and "attention left unfused" in capsys.readouterr().out
