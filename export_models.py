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

This file is the command line only; each step lives in `modelbuild/` (docs/models.md, "Export"):
checkpoint.py (family, reference, framing), graphs.py (optimum's export and the ONNX surgery),
quantize.py (int8), verify.py, vocabulary.py (shortlists), export.py (one export end to end),
apertium_modes.py (Apertium registration).

torch, transformers and optimum are needed here only; the runtime never imports them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from modelbuild.apertium_modes import export_apertium
from modelbuild.checkpoint import parse_pairs
from modelbuild.export import export_builtin, export_checkpoint, export_synthetic
from modelbuild.report import ExportError, log
from modelbuild.vocabulary import read_shortlist_texts

ROOT = Path(__file__).resolve().parent
DEFAULT_MODELS_DIR = ROOT / "models"


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
