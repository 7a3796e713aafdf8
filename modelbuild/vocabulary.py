"""What an export records of a model's vocabulary: per target language, the shortlist of the
vocabulary ids its text uses (workers/output_head.py), and the closed vocabulary of a built-in
model (the words it was trained on)."""

from __future__ import annotations

import json
from pathlib import Path

from ipc.languages import canonical
from modelbuild.report import ExportError, log


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
