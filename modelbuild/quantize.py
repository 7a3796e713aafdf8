"""int8 exports: `quantize_graphs` writes an fp32 export's graphs as `<name>-int8`, every MatMul by
a constant weight (and the vocabulary embedding) rewritten by `quantize_graph` with per-column
int8 weights and per-row int8 activations.

int8 must not make a sentence's translation depend on the other sentences in its batch: with
onnxruntime's dynamic quantization (one activation scale per tensor, i.e. per batch) 26 of 32
sentences of the synthetic opus-mt-base model came out the same alone and batched, and the
segment cache kept whichever variant came first. Here every activation row (one token of one
sentence) gets its own scale, and the integer product is exact, so a row's output depends on that
row only. Measured against the alternatives in docs/models.md ("int8").
"""

from __future__ import annotations

import shutil
from pathlib import Path

from modelbuild.graphs import fuse_attention, save_rewritten, share_weights
from workers.decoding import DECODER_GRAPHS, GRAPHS
from workers.packed_weights import WEIGHTS_FILE

INT8_SCHEME = "int8 per-row activations, per-column weights"  # recorded in an int8 entry (see quantize_graph)


def quantize_graphs(fp32_dir: Path, int8_dir: Path) -> None:
    if int8_dir.exists():
        shutil.rmtree(int8_dir)
    shutil.copytree(fp32_dir, int8_dir, ignore=shutil.ignore_patterns("*.onnx", "*.onnx_data", WEIGHTS_FILE))
    fused = int8_dir / "decoder_with_past_model.fused.onnx"  # attention fused, still fp32
    for graph in GRAPHS:
        if graph == DECODER_GRAPHS[2] and fuse_attention(fp32_dir / graph, fused):
            quantize_graph(fused, int8_dir / graph)
            for path in int8_dir.glob(f"{fused.name}*"):  # the graph and any external data
                path.unlink()
        else:
            quantize_graph(fp32_dir / graph, int8_dir / graph)
    share_weights(int8_dir)


def quantize_graph(source: Path, target: Path) -> None:
    """Rewrite every MatMul by a constant 2-D weight W, and the vocabulary embedding; the rest
    (attention, positions, norms) stays fp32.

        W ─▶ Wq int8, symmetric, one scale per output column (at export)
        x ─Abs─ReduceMax(last axis)─▶ m                          one scale per row
        x · 127/m ─Round─ +128 ─Cast─▶ xq uint8                  (u8 × s8: the fast integer GEMM)
        MatMulIntegerToFloat(xq, Wq, 1, W scales, zero point 128) · m/127 ─▶ y

    MatMulIntegerToFloat applies the column scales inside the GEMM; the row scale is one more Mul
    (its own a_scale input takes a scalar or one scale per column of x, not per row).

    The vocabulary embedding E [vocab, d] (a Gather table with at least 4 rows per column) is
    stored as the int8 of E transposed, one scale per token: the very bytes the output projection
    gets when it is tied to the embedding (W = Eᵀ, as in Marian, M2M100 and NLLB), so share_weights
    stores the two once (opus-mt-base: 30 MB instead of 119 MB fp32 + 30 MB):

        Gather(Eᵀq, ids, axis=1) ─Transpose─Cast─▶ · Gather(scales, ids) ─▶ embedding rows

    Each token's row depends on that token only, so batch invariance holds.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 18)
    axes_input, axes_attribute = (["int8.axes"], {}) if opset >= 18 else ([], {"axes": [-1]})  # an input since opset 18
    unsqueeze_axes = (["int8.axes"], {}) if opset >= 13 else ([], {"axes": [-1]})  # an input since opset 13
    constants = {
        "int8.axes": np.array([-1], np.int64),
        "int8.levels": np.array(127.0, np.float32),
        "int8.step": np.array(1 / 127.0, np.float32),
        "int8.offset": np.array(128.0, np.float32),
        "int8.zero_point": np.array(128, np.uint8),
        "int8.one": np.array(1.0, np.float32),
        "int8.tiny": np.array(1e-30, np.float32),  # an all-zero row: a finite scale, zeros out
    }
    nodes, quantized, rows = [], set(), {}

    def quantize_columns(w: str, values) -> None:  # -> initializers f"{w}.int8" and f"{w}.int8_scale"
        if w in quantized:
            return
        values = values.astype(np.float32)
        scale = np.abs(values).max(axis=0) / 127.0
        scale[scale == 0] = 1.0
        graph.initializer.extend([
            numpy_helper.from_array(np.clip(np.round(values / scale), -127, 127).astype(np.int8), f"{w}.int8"),
            numpy_helper.from_array(scale.astype(np.float32), f"{w}.int8_scale"),
        ])
        quantized.add(w)

    for index, node in enumerate(graph.node):
        table = weights.get(node.input[0]) if node.op_type == "Gather" else None
        if table is not None and _is_vocabulary_table(table, node):
            e, ids, r = f"{table.name}.T", node.input[1], f"int8.{index}."
            quantize_columns(e, numpy_helper.to_array(table).T)
            at = f"{node.name}/int8_embedding/"  # node names: the profile groups the ops by them
            nodes += [
                helper.make_node("Gather", [f"{e}.int8", ids], [r + "columns"], axis=1, name=at + "columns"),  # [d, batch, length]
                helper.make_node("Transpose", [r + "columns"], [r + "rows"], perm=[1, 2, 0], name=at + "rows"),
                helper.make_node("Cast", [r + "rows"], [r + "float"], to=TensorProto.FLOAT, name=at + "float"),
                helper.make_node("Gather", [f"{e}.int8_scale", ids], [r + "scale0"], name=at + "scales"),
                helper.make_node("Unsqueeze", [r + "scale0", *unsqueeze_axes[0]], [r + "scale"], **unsqueeze_axes[1],
                                 name=at + "unsqueeze"),
                helper.make_node("Mul", [r + "float", r + "scale"], [node.output[0]], name=at + "scaled"),
            ]
            continue
        weight = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2:
            nodes.append(node)
            continue
        x, w = node.input[0], weight.name
        quantize_columns(w, numpy_helper.to_array(weight))
        if x not in rows:  # the q, k and v projections read the same input: quantize it once
            r = rows[x] = f"int8.{index}."
            at = f"{node.name}/quantize_rows/"
            nodes += [
                helper.make_node("Abs", [x], [r + "abs"], name=at + "abs"),
                helper.make_node("ReduceMax", [r + "abs", *axes_input], [r + "max0"], keepdims=1, **axes_attribute,
                                 name=at + "max0"),
                helper.make_node("Max", [r + "max0", "int8.tiny"], [r + "max"], name=at + "max"),
                helper.make_node("Mul", [r + "max", "int8.step"], [r + "scale"], name=at + "scale"),
                helper.make_node("Div", ["int8.levels", r + "max"], [r + "inverse"], name=at + "inverse"),
                helper.make_node("Mul", [x, r + "inverse"], [r + "scaled"], name=at + "scaled"),
                helper.make_node("Round", [r + "scaled"], [r + "rounded"], name=at + "rounded"),
                helper.make_node("Add", [r + "rounded", "int8.offset"], [r + "shifted"], name=at + "shifted"),
                helper.make_node("Cast", [r + "shifted"], [r + "q"], to=TensorProto.UINT8, name=at + "q"),
            ]
        r, y = rows[x], node.output[0]
        nodes += [
            helper.make_node("MatMulIntegerToFloat", [r + "q", f"{w}.int8", "int8.one", f"{w}.int8_scale", "int8.zero_point"],
                             [y + ".int8"], domain="com.microsoft", name=f"{node.name}/int8"),
            helper.make_node("Mul", [y + ".int8", r + "scale"], [y], name=f"{node.name}/row_scale"),
        ]
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in constants.items())
    save_rewritten(model, nodes, target)


def _is_vocabulary_table(table, gather) -> bool:
    """A token embedding: a 2-D float table with many more rows than columns, gathered by rows
    (position tables are about square and stay fp32)."""
    from onnx import TensorProto

    axis = next((a.i for a in gather.attribute if a.name == "axis"), 0)
    return (table.data_type == TensorProto.FLOAT and len(table.dims) == 2 and axis == 0
            and table.dims[0] >= 4 * table.dims[1])
