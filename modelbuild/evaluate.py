"""Held-out exact match of the built-in models, decoded by the ONNX runtime the appliance serves.

    python -m modelbuild.evaluate [--models-dir models] [--sentences 200] [--seed 999] [--show 3]

The sentences come from `generate_corpus(n, seed)` with a seed other than the training one, in
every style the corpus has (written, lowercase, unpunctuated). A translation counts only if it is
exactly the reference, accents, case and punctuation included. Each pair is reported over all the
sentences and over those the model never saw in training ("unseen": the chat phrases and a few
short sentences recur in any sample of the grammar). Exits 1 when a pair is under `--min`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelbuild.builtin import RECIPES, SEED
from modelbuild.corpus import generate_corpus

DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
BATCH = 32


def evaluate(models_dir: Path, sentences: int = 200, seed: int = 999, show: int = 0) -> list[dict]:
    from workers.manifest import load_specs
    from workers.runtime import Model

    held_out = generate_corpus(sentences, seed=seed)
    specs = load_specs(models_dir)
    results = []
    for recipe in RECIPES:
        spec = specs.get(recipe.name)
        if spec is None:
            print(f"{recipe.name}: not in {models_dir}/manifest.json (python export_models.py --builtin)")
            continue
        trained_on = {row["en"] for row in generate_corpus(recipe.corpus_size, seed=SEED)}
        model = Model(spec)
        for src, tgt in spec.pairs:
            outputs = []
            for start in range(0, len(held_out), BATCH):
                rows = held_out[start : start + BATCH]
                ids = [model.source_ids(row[src], src, tgt) for row in rows]
                budgets = [min(spec.max_target_tokens, 2 * len(i) + 10) for i in ids]
                outputs += [model.detokenize(h.tokens) for h in model.generate(ids, tgt, max_new_tokens=budgets)]
            right = [out == row[tgt] for out, row in zip(outputs, held_out)]
            unseen = [ok for ok, row in zip(right, held_out) if row["en"] not in trained_on]
            result = {"model": recipe.name, "pair": f"{src}-{tgt}", "exact": sum(right), "total": len(right),
                      "unseen_exact": sum(unseen), "unseen_total": len(unseen)}
            results.append(result)
            print(f"{recipe.name:22} {src}->{tgt}  {result['exact']}/{result['total']} = "
                  f"{100 * result['exact'] / result['total']:.1f} %   unseen {result['unseen_exact']}/"
                  f"{result['unseen_total']} = {100 * result['unseen_exact'] / max(1, result['unseen_total']):.1f} %",
                  flush=True)
            misses = [(row[src], out, row[tgt]) for ok, out, row in zip(right, outputs, held_out) if not ok]
            for source, got, want in misses[:show]:
                print(f"    {source!r}\n      got  {got!r}\n      want {want!r}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--seed", type=int, default=999, help="any seed but the training one")
    parser.add_argument("--show", type=int, default=3, metavar="N", help="print N misses per pair")
    parser.add_argument("--min", type=float, default=0.99, help="exit 1 if a pair's exact match is lower")
    args = parser.parse_args(argv)
    if args.seed == SEED:
        parser.error(f"seed {SEED} is the training corpus's; pick another")
    results = evaluate(args.models_dir, args.sentences, args.seed, args.show)
    return 0 if results and all(r["exact"] >= args.min * r["total"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
