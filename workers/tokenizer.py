"""Text <-> token ids for the model families, without torch or transformers.

Two kinds, matching what Hugging Face saves next to a checkpoint:

- `SpmVocabTokenizer`: sentencepiece pieces looked up in a `vocab.json` (Marian's and M2M100's
  "slow" tokenizers). Marian has separate source and target sentencepiece models.
- `JsonTokenizer`: a `tokenizer.json` from the `tokenizers` library (NLLB, T5 fast tokenizers).

Both return bare ids (no language tokens, no end-of-sequence): the framing of a sequence is the
model's business and lives in `workers.manifest.Framing`. The exporter checks on sample sentences
that these ids equal the Hugging Face tokenizer's, so the runtime cannot silently drift from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import sentencepiece
import tokenizers

SPIECE_UNDERLINE = "\u2581"


class SpmVocabTokenizer:
    def __init__(self, source_spm: Path, target_spm: Path, vocab_file: Path, unk_id: int, special_ids: set[int]):
        self._source = sentencepiece.SentencePieceProcessor(model_file=str(source_spm))
        self._target = (
            self._source if target_spm == source_spm else sentencepiece.SentencePieceProcessor(model_file=str(target_spm))
        )
        self._vocab: dict[str, int] = json.loads(vocab_file.read_text(encoding="utf-8"))
        self._pieces = {index: piece for piece, index in self._vocab.items()}
        self._unk_id = unk_id
        self._special_ids = special_ids

    def encode(self, text: str) -> list[int]:
        vocab, unk = self._vocab, self._unk_id
        return [vocab.get(piece, unk) for piece in self._source.encode(text, out_type=str)]

    def encode_target(self, text: str) -> list[int]:
        """Ids of target-language text as the model writes it (Marian: its target sentencepiece)."""
        vocab, unk = self._vocab, self._unk_id
        return [vocab.get(piece, unk) for piece in self._target.encode(text, out_type=str)]

    def decode(self, ids: list[int]) -> str:
        pieces = [self._pieces[i] for i in ids if i not in self._special_ids and i in self._pieces]
        return self._target.decode_pieces(pieces).replace(SPIECE_UNDERLINE, " ").strip()


class JsonTokenizer:
    def __init__(self, tokenizer_file: Path):
        self._tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    encode_target = encode  # one vocabulary and one tokenizer for both sides

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True).strip()


def load_tokenizer(model_dir: Path, spec: dict, special_ids: set[int]) -> SpmVocabTokenizer | JsonTokenizer:
    if spec["kind"] == "json":
        return JsonTokenizer(model_dir / spec["file"])
    return SpmVocabTokenizer(
        model_dir / spec["source_spm"],
        model_dir / spec["target_spm"],
        model_dir / spec["vocab"],
        unk_id=spec["unk_id"],
        special_ids=special_ids,
    )
