"""Hugging Face tokenizers for the built-in and synthetic models, made from our own corpus.

Each is saved with `save_pretrained`, exactly as a downloaded checkpoint's tokenizer would be, so
the export path cannot tell a built-in model from a real one.

- Marian: a sentencepiece model per side (`source.spm`, `target.spm`) and one `vocab.json`
  (`</s>` = 0, `<unk>` = 1, `<pad>` last), like opus-mt.
- M2M100: one joint sentencepiece model and a fairseq-style `vocab.json` (`<s>`, `<pad>`, `</s>`,
  `<unk>` = 0..3); the tokenizer appends the `__xx__` language tokens after the vocabulary.

`pad_to` fills the vocabulary with unused pieces so a synthetic model gets the real vocabulary
size (58k for opus-mt, 256k for NLLB) while still tokenizing real text.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import sentencepiece as spm

SPIECE_UNDERLINE = "\u2581"


def train_sentencepiece(lines: list[str], vocab_size: int) -> bytes:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=vocab_size,
        # BPE, as M2M100's own sentencepiece.bpe.model: on a few hundred words per language it
        # learns every word whole, while unigram stops at ~300 pieces and splits "the" in two.
        model_type="bpe",
        character_coverage=1.0,
        hard_vocab_limit=False,  # a small corpus caps the vocabulary; take what it has
        unk_id=0,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        num_threads=1,  # the trained model depends on the thread count; one keeps builds reproducible
        minloglevel=2,
    )
    return model.getvalue()


def _pieces(model: bytes) -> list[str]:
    processor = spm.SentencePieceProcessor(model_proto=model)
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size()) if not processor.is_unknown(i)]


def _padded(vocab: dict[str, int], pad_to: int | None, reserved: int) -> dict[str, int]:
    while pad_to and len(vocab) < pad_to - reserved:
        vocab[f"<unused{len(vocab)}>"] = len(vocab)
    return vocab


def marian_tokenizer(directory: Path, source_lines: list[str], target_lines: list[str], vocab_size: int, pad_to: int | None = None):
    from transformers import MarianTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    source_model = train_sentencepiece(source_lines, vocab_size)
    target_model = train_sentencepiece(target_lines, vocab_size)
    (directory / "source.spm").write_bytes(source_model)
    (directory / "target.spm").write_bytes(target_model)
    vocab = {"</s>": 0, "<unk>": 1}
    for piece in _pieces(source_model) + _pieces(target_model):
        vocab.setdefault(piece, len(vocab))
    vocab = _padded(vocab, pad_to, reserved=1)
    vocab["<pad>"] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = MarianTokenizer(
        source_spm=str(directory / "source.spm"), target_spm=str(directory / "target.spm"), vocab=str(directory / "vocab.json")
    )
    tokenizer.save_pretrained(directory)
    return tokenizer


# M2M100Tokenizer appends 100 language tokens and 8 "madeup words" after vocab.json; `len()` of
# the tokenizer counts neither, so the model's embedding size comes from here.
M2M100_EXTRA_TOKENS = 108


def m2m100_vocab_size(tokenizer) -> int:
    return tokenizer.encoder_size + M2M100_EXTRA_TOKENS


def m2m100_tokenizer(directory: Path, lines: list[str], vocab_size: int, pad_to: int | None = None):
    from transformers import M2M100Tokenizer

    directory.mkdir(parents=True, exist_ok=True)
    model = train_sentencepiece(lines, vocab_size)
    (directory / "sentencepiece.bpe.model").write_bytes(model)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for piece in _pieces(model):
        vocab.setdefault(piece, len(vocab))
    vocab = _padded(vocab, pad_to, reserved=M2M100_EXTRA_TOKENS)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    files = {"vocab_file": str(directory / "vocab.json"), "spm_file": str(directory / "sentencepiece.bpe.model")}
    # A real M2M100/NLLB checkpoint lists its language tokens as special, so decode(skip_special_tokens)
    # drops `__fr__` as the runtime does; a random-weight model emits them, and the export's
    # detokenizer check would otherwise fail on them.
    languages = list(M2M100Tokenizer(**files).lang_token_to_id)
    tokenizer = M2M100Tokenizer(**files, additional_special_tokens=languages)
    tokenizer.save_pretrained(directory)
    return tokenizer
