"""Random-weight checkpoints with the real dimensions of production models, for benchmarks only.

Their weights are random, so their output is noise, but every matrix has the size of the real
model, so time per token is what the real model would cost. The tokenizer is built from the
synthetic corpus and padded to the real vocabulary size, so real text goes in and the full export
path (tokenizer files included) is exercised. Their manifest tier is `benchmark`, which no
appliance serves unless its config names the model for a tier explicitly.
"""

from __future__ import annotations

from pathlib import Path

from modelbuild import tokenizer_files
from modelbuild.corpus import generate_corpus

SHAPES = {
    # Helsinki-NLP/opus-mt-*: Marian base.
    "opus-mt-base": dict(
        family="marian", vocab=58101, d_model=512, layers=6, heads=8, ffn=2048, max_positions=512,
        pairs=(("en", "fr"),), tier="benchmark",
    ),
    # facebook/nllb-200-distilled-600M (M2M100 architecture).
    "nllb-600m": dict(
        family="m2m100", vocab=256206, d_model=1024, layers=12, heads=16, ffn=4096, max_positions=1024,
        pairs=(("en", "fr"), ("en", "es"), ("en", "de"), ("fr", "en"), ("es", "en"), ("de", "en")), tier="benchmark",
    ),
}


def build_synthetic(name: str, build_dir: Path, log=print) -> tuple[Path, dict]:
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration, MarianConfig, MarianMTModel

    shape = SHAPES[name]
    checkpoint = build_dir / f"synthetic-{name}"
    if (checkpoint / "config.json").exists():
        log(f"synthetic-{name}: checkpoint exists ({checkpoint})")
        return checkpoint, shape
    torch.manual_seed(0)
    sentences = generate_corpus(20_000, seed=0)
    dims = dict(
        d_model=shape["d_model"], encoder_layers=shape["layers"], decoder_layers=shape["layers"],
        encoder_attention_heads=shape["heads"], decoder_attention_heads=shape["heads"],
        encoder_ffn_dim=shape["ffn"], decoder_ffn_dim=shape["ffn"], max_position_embeddings=shape["max_positions"],
    )
    log(f"synthetic-{name}: building a random {shape['family']} model, d_model {shape['d_model']}, "
        f"{shape['layers']}+{shape['layers']} layers, vocabulary {shape['vocab']}")
    if shape["family"] == "marian":
        tokenizer = tokenizer_files.marian_tokenizer(
            checkpoint, [s["en"] for s in sentences], [s["fr"] for s in sentences], 2000, pad_to=shape["vocab"]
        )
        pad = tokenizer.pad_token_id
        model = MarianMTModel(MarianConfig(
            vocab_size=len(tokenizer), pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad,
            forced_eos_token_id=0, activation_function="swish", **dims,
        ))
    else:
        lines = [s[lang] for s in sentences for lang in ("en", "fr", "es", "de")]
        tokenizer = tokenizer_files.m2m100_tokenizer(checkpoint, lines, 4000, pad_to=shape["vocab"])
        model = M2M100ForConditionalGeneration(M2M100Config(
            vocab_size=tokenizer_files.m2m100_vocab_size(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id, scale_embedding=True,
            **dims,
        ))
    model.eval()
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    return checkpoint, shape
