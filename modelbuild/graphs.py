"""The ONNX graphs of an export: optimum's export, then the surgery the runtime relies on.

`export_graphs` writes the encoder, decoder and decoder-with-past graphs, then
`split_output_projection` moves the output projection out of the decoders into the head graphs
and `share_weights` stores every distinct weight once, page-aligned, in one file.
`fuse_attention` (int8 exports only) replaces each decoder layer's attention core with one
MultiHeadAttention node; `save_rewritten` saves a graph whose nodes were rewritten."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from modelbuild.report import ExportError, log
from workers.decoding import DECODER_GRAPHS, GRAPHS, HEAD_GRAPH, TOPK_GRAPH
from workers.packed_weights import WEIGHTS_FILE  # the export's weights file, named like a packed copy's


def export_graphs(checkpoint: str, out_dir: Path, tokenizer) -> None:
    from optimum.exporters.onnx import main_export

    if out_dir.exists():
        shutil.rmtree(out_dir)
    # no_post_process: no merged decoder. The runtime runs decoder_model for the first step and
    # decoder_with_past after it (two plain graphs avoid an If node on every step), and the merge
    # writes one protobuf, which fails past 2 GB (the NLLB-600M shape).
    main_export(checkpoint, output=out_dir, task="text2text-generation-with-past", do_validation=False,
                no_post_process=True)
    tokenizer.save_pretrained(out_dir)
    missing = [g for g in DECODER_GRAPHS if not (out_dir / g).exists()]
    if missing:
        raise ExportError(f"optimum did not write {missing} in {out_dir}")
    split_output_projection(out_dir)
    share_weights(out_dir)


def split_output_projection(directory: Path) -> None:
    """Move the output projection (hidden -> vocabulary logits) out of both decoder graphs.

    The decoders then return `hidden`, the last layer's output, and two head graphs project it:
    HEAD_GRAPH gives the logits (greedy picks in numpy: faster than ORT's ArgMax), TOPK_GRAPH the
    k best log-probabilities and their ids per row (beam search: TopK inside ORT instead of a
    log-softmax and argpartition over 4 x batch x vocabulary in numpy). Out of the decoders, the
    projection can also run over a shortlist of the vocabulary (workers/output_head.py). The
    logits are bit-identical to the decoders' own.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = bias = None
    for graph_name in DECODER_GRAPHS[1:]:
        model = onnx.load(str(directory / graph_name))
        graph = model.graph
        producers = {out: node for node in graph.node for out in node.output}
        weights = {init.name: init for init in graph.initializer}
        last = producers["logits"]
        if last.op_type == "Add":  # Marian: + final_logits_bias
            projection = next(producers[i] for i in last.input if i in producers)
            bias_name = next(i for i in last.input if i in weights)
            bias = numpy_helper.to_array(weights[bias_name]).reshape(-1).astype(np.float32)
            removed = {id(last), id(projection)}
        else:  # M2M100, NLLB: no bias
            projection, removed = last, {id(last)}
        if projection.op_type != "MatMul" or projection.input[1] not in weights:
            raise ExportError(f"{graph_name}: the logits do not come from a MatMul by a weight; cannot split the head")
        weight = numpy_helper.to_array(weights[projection.input[1]]).astype(np.float32)
        kept = [node for node in graph.node if id(node) not in removed]
        kept.append(helper.make_node("Identity", [projection.input[0]], ["hidden"], name="/hidden/Identity"))
        index = [o.name for o in graph.output].index("logits")
        graph.output.remove(graph.output[index])
        graph.output.insert(index, helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "length", weight.shape[0]]))
        save_rewritten(model, kept, directory / graph_name)
    d, vocab = weight.shape
    bias = np.zeros(vocab, np.float32) if bias is None else bias
    hidden = helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["rows", d])
    initializers = [numpy_helper.from_array(weight, "output_projection.weight"),
                    numpy_helper.from_array(bias, "output_projection.bias")]
    logits = [helper.make_node("MatMul", ["hidden", "output_projection.weight"], ["projected"], name="/head/MatMul"),
              helper.make_node("Add", ["projected", "output_projection.bias"], ["logits"], name="/head/Add")]
    opset = [helper.make_opsetid("", 18)]
    head = helper.make_graph(logits, "output_head", [hidden],
                             [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["rows", vocab])], initializers)
    onnx.save(helper.make_model(head, opset_imports=opset, ir_version=9), str(directory / HEAD_GRAPH))
    topk = helper.make_graph(
        logits + [helper.make_node("LogSoftmax", ["logits"], ["logprobs"], axis=-1, name="/head/LogSoftmax"),
                  helper.make_node("TopK", ["logprobs", "k"], ["values", "ids"], axis=-1, name="/head/TopK")],
        "output_head_topk", [hidden, helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["rows", "k"]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, ["rows", "k"])], initializers)
    onnx.save(helper.make_model(topk, opset_imports=opset, ir_version=9), str(directory / TOPK_GRAPH))


def share_weights(directory: Path, align: int = 4096, inline_below: int = 1024) -> None:
    """Move the initializers of all five graphs into one file, each distinct tensor once.

    The decoder and decoder-with-past graphs carry the same weights, the encoder and decoders the
    same embedding, and the int8 heads the embedding's bytes: self-contained graphs stored them
    again and again (opus-mt-base int8: 467 MB for 186 MB of weights, before the int8 embedding). Each tensor starts on a page boundary, so onnxruntime memory-maps it
    instead of copying it to the heap: every worker on the host reads the same page-cache pages,
    and a weight costs its memory once per host, not once per worker (docs/models.md, "Memory").
    Tensors under `inline_below` bytes stay in their graph.
    """
    import hashlib

    import onnx
    from onnx import TensorProto, numpy_helper

    stored: dict[tuple, int] = {}  # (data type, size, digest) -> offset in the new file
    with open(directory / f"{WEIGHTS_FILE}.tmp", "wb") as out:
        for graph in GRAPHS:  # one at a time: an NLLB-sized graph is gigabytes in memory
            model = onnx.load(str(directory / graph))  # with the external data it had
            for tensor in model.graph.initializer:
                data = tensor.raw_data if tensor.HasField("raw_data") else numpy_helper.to_array(tensor).tobytes()
                if len(data) < inline_below:
                    continue
                key = (tensor.data_type, len(data), hashlib.blake2b(data, digest_size=32).digest())
                if key not in stored:
                    out.write(bytes(-out.tell() % align))
                    stored[key] = out.tell()
                    out.write(data)
                for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
                    tensor.ClearField(field)
                del tensor.external_data[:]
                tensor.data_location = TensorProto.EXTERNAL
                for k, v in (("location", WEIGHTS_FILE), ("offset", stored[key]), ("length", len(data))):
                    tensor.external_data.add(key=k, value=str(v))
            (directory / f"{graph}.tmp").write_bytes(model.SerializeToString())
            del model
    for path in [*directory.glob("*.onnx_data"), *directory.glob("*.onnx.data")]:  # the old external data
        path.unlink()
    os.replace(directory / f"{WEIGHTS_FILE}.tmp", directory / WEIGHTS_FILE)
    for graph in GRAPHS:
        os.replace(directory / f"{graph}.tmp", directory / graph)


def fuse_attention(source: Path, target: Path) -> bool:
    """Write `source` (an fp32 decoder_with_past graph of the BART family: Marian, M2M100, NLLB)
    to `target` with each layer's attention core, Q·Kᵀ to softmax to ·V and the reshapes around it,
    replaced by one com.microsoft MultiHeadAttention node; the q/k/v/out projections stay MatMuls
    for quantize_graph. Returns False, writing nothing, when the graph is not the expected one.

        self-attention:  MHA(q, k, v, past_key=past.i.decoder.key, past_value=…) -> out, present.i.decoder.*
        cross-attention: MHA(q, past.i.encoder.key, past.i.encoder.value [B, heads, S, dh],
                             key_padding_mask=encoder_attention_mask as int32) -> out

    Synthetic opus-mt-base int8, `bench/run.py engine` (batch 32), speed vs CTranslate2 int8 in the
    same run, mean of three alternating runs: greedy 0.94x -> 0.96x, beam 4 1.06x -> 1.11x (a
    prototype measured greedy +4-8 %, beam 4 1.18x -> 1.33x). Every row attends over its own keys only, so
    batch invariance holds; the int8 export alone uses it (the fp32 one is checked token for token
    against PyTorch, and stays as optimum wrote it).
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(source))
    graph = model.graph
    nodes = list(graph.node)
    index = {node.name: k for k, node in enumerate(nodes)}
    produced = {out for node in nodes for out in node.output}
    inputs = {i.name: i for i in graph.input}
    first_key = inputs.get("past_key_values.0.decoder.key")
    heads = first_key.type.tensor_type.shape.dim[1].dim_value if first_key is not None else 0
    layers = sum(name.startswith("past_key_values.") for name in inputs) // 4
    fusions = []  # (index of the out projection, MultiHeadAttention node)
    for i in range(layers):
        for part, kind in (("self_attn", "decoder"), ("encoder_attn", "encoder")):
            base = f"/model/decoder/layers.{i}/{part}"
            q, k, v = (f"{base}/{p}_proj/Add_output_0" for p in "qkv")
            past = [f"past_key_values.{i}.{kind}.key", f"past_key_values.{i}.{kind}.value"]
            if f"{base}/out_proj/MatMul" not in index or q not in produced or not set(past) <= set(inputs):
                log(f"{source.name}: attention left unfused (no {base} of the expected shape)")
                return False
            out_proj = nodes[index[f"{base}/out_proj/MatMul"]]
            if kind == "decoder":
                mha_inputs = [q, k, v, "", "", "", *past]
                outputs = [out_proj.input[0], f"present.{i}.decoder.key", f"present.{i}.decoder.value"]
            else:
                mha_inputs = [q, *past, "", "mha.mask"]
                outputs = [out_proj.input[0]]
            fusions.append((index[out_proj.name], helper.make_node(
                "MultiHeadAttention", mha_inputs, outputs, domain="com.microsoft", num_heads=heads,
                name=f"{base}/MultiHeadAttention")))
    if not layers or heads <= 0 or "encoder_attention_mask" not in inputs:
        log(f"{source.name}: attention left unfused (no past key/value inputs with a fixed head count)")
        return False
    # Each MHA goes just before its out projection (every input of it is made earlier); the nodes
    # that made its outputs are dropped, then every node no graph output needs any more.
    replaced = {out for _, mha in fusions for out in mha.output}
    at = dict(fusions)
    rewritten = [helper.make_node("Cast", ["encoder_attention_mask"], ["mha.mask"], to=TensorProto.INT32,
                                  name="/mha/mask_int32")]
    for k, node in enumerate(nodes):
        rewritten += [at[k]] if k in at else []
        if not set(node.output) & replaced:
            rewritten.append(node)
    needed, live = {out.name for out in graph.output}, []
    for node in reversed(rewritten):
        if set(node.output) & needed:
            live.append(node)
            needed.update(node.input)
    live.reverse()
    if any(node.op_type == "Softmax" for node in live):
        log(f"{source.name}: attention left unfused (a Softmax outside the replaced attention)")
        return False
    save_rewritten(model, live, target)
    log(f"{source.name}: attention of {layers} layers fused into MultiHeadAttention ({heads} heads)")
    return True


def save_rewritten(model, nodes: list, target: Path) -> None:
    """Save `model` with `nodes` as its graph: the initializers no node reads any more are dropped,
    the com.microsoft opset is declared when a node uses it, and the weights go to external data
    past protobuf's 2 GB bound (an NLLB-sized fp32 embedding); share_weights moves them later."""
    import onnx
    from onnx import helper

    graph = model.graph
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    if any(node.domain == "com.microsoft" for node in nodes) and not any(
            opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    large = model.ByteSize() > 2**31 - 2**26
    onnx.save(model, str(target), save_as_external_data=large, location=f"{target.name}_data" if large else None)
