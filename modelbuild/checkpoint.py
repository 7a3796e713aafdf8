"""A Hugging Face seq2seq checkpoint: its family (Marian, M2M100, NLLB, T5/mT5) and loading,
the language pairs it serves, and the sequence framing and tokenizer files the runtime needs.

`load_reference` loads a hub id or a local directory as the PyTorch reference an export is
verified against, with errors that say what to do; `probe_framing` reads how the Hugging Face
tokenizer frames a sentence (language tokens, end of sequence, decoder start) per language."""

from __future__ import annotations

import os
from pathlib import Path

from ipc.languages import canonical, three_letter_codes
from modelbuild.report import ExportError
from workers.manifest import Framing

SUPPORTED = {"marian": "marian", "m2m_100": "m2m100", "t5": "t5", "mt5": "t5"}
# The appliance speaks ISO 639-1 codes; NLLB names languages by FLORES-200 codes.
NLLB_CODES = {
    "en": "eng_Latn", "fr": "fra_Latn", "es": "spa_Latn", "de": "deu_Latn", "it": "ita_Latn", "pt": "por_Latn",
    "nl": "nld_Latn", "ru": "rus_Cyrl", "zh": "zho_Hans", "ja": "jpn_Jpan", "ko": "kor_Hang", "ar": "arb_Arab",
    "tr": "tur_Latn", "pl": "pol_Latn", "uk": "ukr_Cyrl", "hi": "hin_Deva", "sv": "swe_Latn", "vi": "vie_Latn",
}
# T5 was trained with English task prefixes for these pairs.
T5_LANGUAGE_NAMES = {"en": "English", "fr": "French", "de": "German", "ro": "Romanian"}


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
