"""Export Hugging Face seq2seq checkpoints to ONNX for the appliance, verify them, register them.

    python export_models.py Helsinki-NLP/opus-mt-en-fr --tier basic            # hub id
    python export_models.py ./opus-mt-en-fr --pairs en-fr --quantize int8      # local directory
    python export_models.py facebook/nllb-200-distilled-600M --languages en fr es de --tier medium
    python export_models.py --builtin        # the built-in models, trained here, offline
    python export_models.py --synthetic opus-mt-base --quantize int8           # benchmark model
    python export_models.py --apertium       # the installed Apertium modes (rule-based fallback)

Every export takes the same path: optimum writes the encoder, the decoder and the
decoder-with-past graphs (`text2text-generation-with-past`); the tokenizer files are saved beside
them; the sequence framing (language tokens, end of sequence, decoder start) is probed from the
Hugging Face tokenizer; then the export is verified on sample sentences: the runtime's token ids
must equal the HF tokenizer's, and its greedy output must equal PyTorch's token for token (fp32).
Every sample must also translate the same alone and in one batch with the others: a sentence's
translation may not depend on its batch mates. An int8 export (`--quantize int8`: the MatMuls by
constant weights rewritten with per-column int8 weights and per-row int8 activations) is written
beside the fp32 one as `<name>-int8`, with its agreement and chrF against PyTorch recorded.
Only a verified export reaches `models/manifest.json`.

`--apertium [MODE ...]` registers installed Apertium modes instead (Debian packages apertium,
apertium-eng-spa, apertium-fr-es, ...): one entry per plain translation mode, its pair in our
language codes (eng-spa -> en-es, fr-es -> fr-es), tier `fallback`, the checksums of the mode
file and every data file it reads (the revision caches key on), and a sample translated through
the engine as its verification. Variants (`eco-fr-es`, `spa-eng_US`) are left out; entries of
modes no longer installed are removed.

torch, transformers and optimum are needed here only; the runtime never imports them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from ipc.languages import canonical, three_letter_codes
from workers.decoding import DECODER_GRAPHS, GRAPHS, HEAD_GRAPH, TOPK_GRAPH
from workers.manifest import (
    APERTIUM,
    Framing,
    file_checksums,
    read_manifest,
    remove_entries,
    sha256_file,
    spec_from_entry,
    write_entry,
)
from workers.packed_weights import WEIGHTS_FILE  # the export's weights file, named like a packed copy's

ROOT = Path(__file__).resolve().parent
DEFAULT_MODELS_DIR = ROOT / "models"
SUPPORTED = {"marian": "marian", "m2m_100": "m2m100", "t5": "t5", "mt5": "t5"}
MIN_INT8_CHRF = 70.0  # int8 output vs fp32 PyTorch on the samples; below this the export fails
INT8_SCHEME = "int8 per-row activations, per-column weights"  # recorded in an int8 entry (see quantize_graph)

# The appliance speaks ISO 639-1 codes; NLLB names languages by FLORES-200 codes.
NLLB_CODES = {
    "en": "eng_Latn", "fr": "fra_Latn", "es": "spa_Latn", "de": "deu_Latn", "it": "ita_Latn", "pt": "por_Latn",
    "nl": "nld_Latn", "ru": "rus_Cyrl", "zh": "zho_Hans", "ja": "jpn_Jpan", "ko": "kor_Hang", "ar": "arb_Arab",
    "tr": "tur_Latn", "pl": "pol_Latn", "uk": "ukr_Cyrl", "hi": "hin_Deva", "sv": "swe_Latn", "vi": "vie_Latn",
}
# T5 was trained with English task prefixes for these pairs.
T5_LANGUAGE_NAMES = {"en": "English", "fr": "French", "de": "German", "ro": "Romanian"}

FALLBACK_SAMPLES = {
    "en": ["Hello, how are you?", "The meeting starts at nine tomorrow morning.", "Thank you very much!"],
    "fr": ["Bonjour, comment allez-vous ?", "La réunion commence demain à neuf heures.", "Merci beaucoup !"],
    "es": ["Hola, ¿cómo estás?", "La reunión empieza mañana a las nueve.", "¡Muchas gracias!"],
    "de": ["Hallo, wie geht es dir?", "Das Treffen beginnt morgen um neun Uhr.", "Vielen Dank!"],
    # The languages of Debian's other Apertium pairs (apertium-es-pt, -spa-ita, -spa-cat, -es-gl, -es-ro):
    # each registered mode is verified on a sentence in its own source language.
    "pt": ["Olá, como estás?", "A reunião começa amanhã às nove horas.", "Muito obrigado!"],
    "it": ["Ciao, come stai?", "La riunione comincia domani alle nove.", "Grazie mille!"],
    "ca": ["Hola, com estàs?", "La reunió comença demà a les nou.", "Moltes gràcies!"],
    "gl": ["Ola, como estás?", "A reunión comeza mañá ás nove.", "Moitas grazas!"],
    "ro": ["Bună ziua, ce mai faci?", "Întâlnirea începe mâine la ora nouă.", "Mulțumesc foarte mult!"],
}


class ExportError(Exception):
    """A failed export, with a message that says what to do."""


def log(message: str) -> None:
    print(f"[export] {message}", flush=True)


class Steps:
    """Numbered progress lines with elapsed time, for steps that take minutes on big models."""

    def __init__(self, name: str, total: int):
        self.name, self.total, self.done, self.started = name, total, 0, time.monotonic()

    def next(self, what: str) -> None:
        self.done += 1
        log(f"{self.name} [{self.done}/{self.total}] {what} ({time.monotonic() - self.started:.0f}s)")


# --- loading the reference ----------------------------------------------------------------------


def load_reference(source: str):
    """Config, tokenizer and PyTorch model of a hub id or local directory, with actionable errors."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

    local = Path(source).expanduser()
    looks_local = source.startswith((".", "/", "~")) or local.exists()
    if looks_local and not local.is_dir():
        raise ExportError(f"no such directory: {source}")
    try:
        config = AutoConfig.from_pretrained(str(local) if looks_local else source)
    except OSError as exc:
        if looks_local:
            raise ExportError(f"{source} is not a Hugging Face checkpoint directory (no readable config.json): {exc}")
        raise ExportError(
            f"cannot fetch {source!r} from the Hugging Face Hub ({str(exc).splitlines()[0]}).\n"
            f"  If this machine has no access to the Hub, download the checkpoint elsewhere\n"
            f"  (`huggingface-cli download {source} --local-dir ./{source.split('/')[-1]}`), copy the folder here,\n"
            f"  and export it from the local directory: python export_models.py ./{source.split('/')[-1]} ..."
        ) from exc
    if config.model_type not in SUPPORTED:
        raise ExportError(
            f"unsupported architecture {config.model_type!r} in {source}: supported families are "
            "Marian (opus-mt), M2M100/NLLB and T5/mT5 seq2seq checkpoints"
        )
    path = str(local) if looks_local else source
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path)
    model.eval()
    family = SUPPORTED[config.model_type]
    if family == "m2m100" and "nllb" in type(tokenizer).__name__.lower():
        family = "nllb"
    return config, tokenizer, model, family, path


# --- sequence framing ---------------------------------------------------------------------------


def language_token(family: str, tokenizer, lang: str) -> str:
    if family == "nllb":
        if lang not in NLLB_CODES:
            raise ExportError(f"no FLORES-200 code known for {lang!r}; add it to NLLB_CODES")
        return NLLB_CODES[lang]
    return tokenizer.get_lang_token(lang)


def set_source_language(family: str, tokenizer, lang: str) -> None:
    if family == "nllb":
        tokenizer.src_lang = NLLB_CODES[lang]
    elif family == "m2m100":
        tokenizer.src_lang = lang


def marian_target_tokens(vocab: dict[str, int], pairs) -> dict[str, str]:
    """A multi-target opus-mt model picks its output language from a `>>xxx<<` token at the start
    of the source text, spelled as its vocabulary spells it (`>>fra<<`, `>>fr<<`, `>>pt_br<<`).
    A single-target model has none of these tokens: no prefix."""
    if not any(token.startswith(">>") and token.endswith("<<") for token in vocab):
        return {}
    prefixes = {}
    for src, tgt in pairs:
        spellings = list(dict.fromkeys(f">>{code}<<" for code in (tgt, tgt.replace("-", "_"), *three_letter_codes(tgt))))
        token = next((t for t in spellings if t in vocab), None)
        if token is None:
            raise ExportError(f"this multi-target model has no target token for {tgt!r} (tried {', '.join(spellings)})")
        prefixes[f"{src}-{tgt}"] = token + " "
    return prefixes


def probe_framing(family: str, tokenizer, config, pairs) -> Framing:
    """Read how the HF tokenizer frames a sentence, per source language, by diffing two encodings."""
    probe = "hello world"
    source_prefix, source_suffix = {}, ()
    for src in sorted({src for src, _ in pairs}):
        set_source_language(family, tokenizer, src)
        full = tokenizer(probe)["input_ids"]
        bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
        start = next((i for i in range(len(full) - len(bare) + 1) if full[i : i + len(bare)] == bare), None)
        if start is None:
            raise ExportError(f"cannot find the text inside the tokenizer's framed sequence: {full} vs {bare}")
        source_prefix[src] = tuple(full[:start])
        source_suffix = tuple(full[start + len(bare) :])
    target_prefix, task_prefix = {}, {}
    if family == "marian":
        task_prefix = marian_target_tokens(tokenizer.get_vocab(), pairs)
    if family in ("m2m100", "nllb"):
        for _, tgt in pairs:
            target_prefix[tgt] = (tokenizer.convert_tokens_to_ids(language_token(family, tokenizer, tgt)),)
    if family == "t5":
        for src, tgt in pairs:
            if src not in T5_LANGUAGE_NAMES or tgt not in T5_LANGUAGE_NAMES:
                raise ExportError(f"T5 has no task prefix for {src}-{tgt}; T5 knows {sorted(T5_LANGUAGE_NAMES)}")
            task_prefix[f"{src}-{tgt}"] = f"translate {T5_LANGUAGE_NAMES[src]} to {T5_LANGUAGE_NAMES[tgt]}: "
    return Framing(
        eos_id=config.eos_token_id,
        pad_id=config.pad_token_id,
        decoder_start_id=config.decoder_start_token_id,
        source_suffix=source_suffix,
        source_prefix=source_prefix,
        target_prefix=target_prefix,
        task_prefix=task_prefix,
    )


def tokenizer_spec(family: str, tokenizer, out_dir: Path) -> dict:
    files = set(os.listdir(out_dir))
    if family == "marian":
        return {"kind": "spm", "source_spm": "source.spm", "target_spm": "target.spm", "vocab": "vocab.json",
                "unk_id": tokenizer.unk_token_id}
    if family == "m2m100" and "sentencepiece.bpe.model" in files:
        return {"kind": "spm", "source_spm": "sentencepiece.bpe.model", "target_spm": "sentencepiece.bpe.model",
                "vocab": "vocab.json", "unk_id": tokenizer.unk_token_id}
    if "tokenizer.json" not in files:
        raise ExportError(f"{family} tokenizer saved no tokenizer.json in {out_dir}; the runtime needs one")
    return {"kind": "json", "file": "tokenizer.json"}


# --- graphs -------------------------------------------------------------------------------------


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


def write_shortlists(out_dir: Path, entry: dict, texts: dict[str, list[str]]) -> None:
    """SHORTLISTS_FILE: per target language with text, the vocabulary ids its text uses, plus the
    special and language tokens (workers/output_head.py)."""
    from workers.output_head import SHORTLISTS_FILE, build_shortlist
    from workers.tokenizer import load_tokenizer

    targets = sorted({tgt for _, tgt in entry["pairs"]} & set(texts))
    if not targets:
        return
    tokenizer = load_tokenizer(out_dir, entry["tokenizer"], set(entry["special_ids"]))
    always = set(entry["special_ids"])
    lists = {lang: build_shortlist(tokenizer.encode_target, texts[lang], always) for lang in targets}
    (out_dir / SHORTLISTS_FILE).write_text(json.dumps(lists, separators=(",", ":")))
    log(f"{entry['path']}: vocabulary shortlists " + ", ".join(f"{lang} {len(ids)}" for lang, ids in lists.items()))


def read_shortlist_texts(options: list[str]) -> dict[str, list[str]]:
    texts = {}
    for option in options:
        lang, sep, path = option.partition("=")
        if not sep or not Path(path).is_file():
            raise ExportError(f"--shortlist {option!r}: give LANG=FILE with an existing text file")
        texts[canonical(lang)] = Path(path).read_text(encoding="utf-8").splitlines()
    return texts


# --- int8 ---------------------------------------------------------------------------------------
#
# int8 must not make a sentence's translation depend on the other sentences in its batch: with
# onnxruntime's dynamic quantization (one activation scale per tensor, i.e. per batch) 26 of 32
# sentences of the synthetic opus-mt-base model came out the same alone and batched, and the
# segment cache kept whichever variant came first. Here every activation row (one token of one
# sentence) gets its own scale, and the integer product is exact, so a row's output depends on that
# row only. Measured against the alternatives in docs/models.md ("int8").


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


def _is_vocabulary_table(table, gather) -> bool:
    """A token embedding: a 2-D float table with many more rows than columns, gathered by rows
    (position tables are about square and stay fp32)."""
    from onnx import TensorProto

    axis = next((a.i for a in gather.attribute if a.name == "axis"), 0)
    return (table.data_type == TensorProto.FLOAT and len(table.dims) == 2 and axis == 0
            and table.dims[0] >= 4 * table.dims[1])


# --- verification -------------------------------------------------------------------------------


def torch_greedy(model, tokenizer, family: str, framing: Framing, ids: list[int], tgt: str, budget: int) -> list[int]:
    import torch
    from transformers import GenerationConfig

    prefix = framing.decoder_prefix(tgt)
    # Marian checkpoints force </s> at the length limit; the runtime stops there without it, so
    # the reference must not force it either (the model default would otherwise override None).
    model.generation_config.forced_eos_token_id = None
    config = GenerationConfig(
        decoder_start_token_id=framing.decoder_start_id,
        eos_token_id=framing.eos_id,
        pad_token_id=framing.pad_id,
        forced_bos_token_id=prefix[1] if len(prefix) > 1 else None,
        bad_words_ids=[[framing.pad_id]] if framing.pad_id != framing.eos_id else None,
        num_beams=1,
        do_sample=False,
        max_new_tokens=budget + len(prefix) - 1,
    )
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             generation_config=config)[0].tolist()
    tokens = out[len(prefix) :]
    if framing.eos_id in tokens:
        tokens = tokens[: tokens.index(framing.eos_id) + 1]
    return tokens


def verify(models_dir: Path, name: str, entry: dict, reference, samples: dict[str, list[str]], min_chrf: float) -> dict:
    """Compare the exported model, run by the runtime, with PyTorch on every pair's samples, and
    check that each sample translates the same alone and in one batch with the others."""
    from workers.runtime import Model

    config, tokenizer, model, family, _ = reference
    spec = spec_from_entry(name, models_dir, entry)
    runtime_model = Model(spec)
    framing = spec.framing
    compared = agreeing = 0
    engine_texts, torch_texts = [], []
    for src, tgt in spec.pairs:
        texts = samples.get(src, FALLBACK_SAMPLES.get(src, FALLBACK_SAMPLES["en"]))
        sources, budgets, alone = [], [], []
        for text in texts:
            ids = runtime_model.source_ids(text, src, tgt)
            set_source_language(family, tokenizer, src)
            hf_ids = tokenizer(framing.text_prefix(src, tgt) + text)["input_ids"]
            if ids != hf_ids:
                raise ExportError(f"{name}: runtime tokenizer disagrees with {type(tokenizer).__name__} on {text!r}: "
                                  f"{ids} != {hf_ids}")
            budget = min(spec.max_target_tokens, 2 * len(ids) + 10)
            expected = torch_greedy(model, tokenizer, family, framing, ids, tgt, budget)
            got = runtime_model.generate([ids], tgt, max_new_tokens=[budget])[0].tokens
            sources.append(ids)
            budgets.append(budget)
            alone.append(got)
            expected_text = tokenizer.decode(expected, skip_special_tokens=True).strip()
            got_text = runtime_model.detokenize(got)
            compared += 1
            agreeing += got == expected
            engine_texts.append(got_text)
            torch_texts.append(expected_text)
            if spec.quantization == "fp32" and got != expected:
                raise ExportError(
                    f"{name}: ONNX greedy output differs from PyTorch for {src}->{tgt} {text!r}:\n"
                    f"  onnx:    {got} {got_text!r}\n  pytorch: {expected} {expected_text!r}"
                )
            if got == expected and got_text != expected_text:
                raise ExportError(f"{name}: runtime detokenizer gives {got_text!r}, HF gives {expected_text!r}")
        batched = [hyp.tokens for hyp in runtime_model.generate(sources, tgt, max_new_tokens=budgets)]
        differ = [text for text, one, many in zip(texts, alone, batched) if one != many]
        if differ:
            raise ExportError(
                f"{name}: {len(differ)} of {len(texts)} {src}->{tgt} samples translate differently alone and in one "
                f"batch (first: {differ[0]!r}): a sentence's translation must not depend on its batch mates"
            )
    import sacrebleu

    chrf = sacrebleu.corpus_chrf(engine_texts, [torch_texts]).score
    report = {"sentences": compared, "exact_match": round(agreeing / compared, 4), "chrf_vs_pytorch": round(chrf, 2),
              "alone_equals_batched": compared}
    if spec.quantization != "fp32" and chrf < min_chrf:
        raise ExportError(f"{name}: int8 output agrees too little with PyTorch (chrF {chrf:.1f} < {min_chrf}); "
                          "export without --quantize or check the quantized graphs")
    return report


# --- one export ---------------------------------------------------------------------------------


def parse_pairs(pairs: list[str] | None, languages: list[str] | None, source: str, family: str) -> list[tuple[str, str]]:
    if pairs:
        parsed = [tuple(p.split("-", 1)) for p in pairs]
        if any(len(p) != 2 or not all(p) for p in parsed):
            raise ExportError(f"--pairs takes SRC-TGT items such as en-fr, got {pairs}")
        return [(canonical(s), canonical(t)) for s, t in parsed]
    if languages:
        languages = [canonical(lang) for lang in languages]
        return [(s, t) for s in languages for t in languages if s != t]
    if family == "marian":
        parts = Path(source).name.split("-")
        if len(parts) >= 2 and "opus" in source.lower():
            return [(canonical(parts[-2]), canonical(parts[-1]))]
    raise ExportError("say which languages the model serves: --pairs en-fr ... or --languages en fr es")


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


# --- built-in and synthetic models --------------------------------------------------------------


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


def corpus_texts(size: int, pairs, seed: int | None = None) -> dict[str, list[str]]:
    """The target side of a built-in or synthetic model's corpus, per target language (seed: the
    built-in training seed by default)."""
    from modelbuild.builtin import SEED
    from modelbuild.corpus import generate_corpus

    rows = generate_corpus(size, seed=SEED if seed is None else seed)
    return {tgt: [row[tgt] for row in rows] for _, tgt in pairs}


def builtin_vocabulary(recipe) -> dict[str, list[str]]:
    """The words a built-in model was trained on, per source language, case-folded: its whole
    domain. The runtime hands a segment with any other word to the next route (an Apertium pair
    when one serves it), since the model could only guess; on in-domain text it stays first."""
    import regex

    from modelbuild.builtin import SEED
    from modelbuild.corpus import generate_corpus

    rows = generate_corpus(recipe.corpus_size, seed=SEED)  # the training corpus
    word = regex.compile(r"[\p{L}\p{M}]+")
    return {
        lang: sorted({w.lower() for row in rows for w in word.findall(row[lang])})
        for lang in sorted({src for src, _ in recipe.pairs})
    }


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


# --- Apertium modes -----------------------------------------------------------------------------


def export_apertium(models_dir: Path, only: list[str] | None = None) -> list[str]:
    """Register the installed Apertium modes (all plain ones, or `only`) as fallback-tier entries."""
    from ipc.tiers import FALLBACK
    from workers.apertium import (
        DEBIAN_PACKAGES, ApertiumError, ApertiumModel, data_dir, data_files, install_hint, installed_modes,
        mode_languages, mode_packages, read_stages,
    )

    if shutil.which("apertium") is None and shutil.which("lt-proc") is None:
        raise ExportError(f"Apertium is not installed: {install_hint(DEBIAN_PACKAGES)}")
    modes = installed_modes()
    if only:
        absent = [m for m in only if m not in modes]
        if absent:
            raise ExportError(f"Apertium modes {absent} are not installed in {data_dir() / 'modes'} "
                              f"(installed: {sorted(modes) or 'none'}): {install_hint(DEBIAN_PACKAGES)}")
    wanted = {m: path for m, path in modes.items() if (m in only if only else mode_languages(m) is not None)}
    if not wanted:
        raise ExportError(f"no Apertium language pair is installed in {data_dir() / 'modes'}: "
                          f"{install_hint(DEBIAN_PACKAGES)}")
    names, taken = [], set()
    for mode, mode_file in sorted(wanted.items()):
        codes = mode_languages(mode) or tuple(mode.split("-", 1))
        pair = (canonical(codes[0]), canonical(codes[-1]))
        if pair in taken or pair[0] == pair[1]:
            log(f"apertium-{mode}: {pair[0]}-{pair[1]} is served by another mode already; skipped")
            continue
        try:
            stages = read_stages(mode_file)
        except ApertiumError as exc:
            raise ExportError(str(exc)) from exc
        files = [mode_file, *sorted(set(data_files(stages)))]
        name = f"apertium-{mode}"
        entry = {
            "path": str(mode_file.parent),
            "family": APERTIUM,
            "tier": FALLBACK,
            "quantization": "none",
            "source": f"apertium:{mode}",
            "mode": mode,
            "pairs": [list(pair)],
            "packages": mode_packages(stages),
            "files": {str(p): sha256_file(p) for p in files if p.is_file()},
        }
        sample = FALLBACK_SAMPLES.get(pair[0], FALLBACK_SAMPLES["en"])[0]
        try:
            engine = ApertiumModel(spec_from_entry(name, models_dir, entry))
            try:
                output = engine.translate([sample])[0]
            finally:
                engine.close()
        except ApertiumError as exc:
            raise ExportError(f"{name}: {exc}") from exc
        if not output.strip():
            raise ExportError(f"{name}: Apertium translated {sample!r} to nothing; check the {mode} mode")
        entry["verification"] = {"sample": sample, "output": output}
        write_entry(models_dir, name, entry)
        log(f"{name}: {pair[0]} -> {pair[1]} registered, tier {FALLBACK}: {sample!r} -> {output!r}")
        names.append(name)
        taken.add(pair)
    if not only:
        stale = _stale_apertium_entries(models_dir, names)
        remove_entries(models_dir, stale)
        for name in stale:
            log(f"{name}: its mode is no longer installed; removed from the manifest")
    return names


def _stale_apertium_entries(models_dir: Path, keep: list[str]) -> list[str]:
    try:
        models = read_manifest(models_dir)["models"]
    except Exception:
        return []
    return [name for name, entry in models.items() if entry.get("family") == APERTIUM and name not in keep]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("checkpoint", nargs="?", help="Hugging Face hub id or local checkpoint directory")
    what.add_argument("--builtin", action="store_true", help="train and export the built-in models, offline")
    what.add_argument("--synthetic", metavar="SHAPE", help="random-weight benchmark model: opus-mt-base or nllb-600m")
    what.add_argument("--apertium", nargs="*", metavar="MODE",
                      help="register the installed Apertium modes (every plain pair, or those named) as the fallback tier")
    parser.add_argument("--name", help="manifest name (default: the checkpoint's folder or repo name)")
    parser.add_argument("--tier", default="basic", choices=("basic", "medium", "premium"))
    parser.add_argument("--pairs", nargs="+", metavar="SRC-TGT", help="language pairs served, e.g. en-fr")
    parser.add_argument("--languages", nargs="+", metavar="LANG", help="multilingual: every pair among these")
    parser.add_argument("--quantize", choices=("int8",), help="also write an int8 copy, <name>-int8")
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--shortlist", nargs="+", metavar="LANG=FILE", default=[],
                        help="target-language text (UTF-8, any size) whose pieces make that language's "
                             "vocabulary shortlist ([workers] vocabulary_shortlist)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        if args.builtin:
            names = export_builtin(args.models_dir, args.quantize)
        elif args.synthetic:
            names = export_synthetic(args.synthetic, args.models_dir, args.quantize)
        elif args.apertium is not None:
            names = export_apertium(args.models_dir, args.apertium)
        else:
            name = args.name or Path(args.checkpoint.rstrip("/")).name
            pairs = parse_pairs(args.pairs, args.languages, args.checkpoint, "marian") if (args.pairs or args.languages) else None
            names = export_checkpoint(args.checkpoint, args.models_dir, name, args.tier, pairs=pairs,
                                      quantize=args.quantize, shortlist_texts=read_shortlist_texts(args.shortlist))
    except ExportError as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 2
    log(f"done: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
