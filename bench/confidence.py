"""What a built-in model's confidence says: its distribution on in-domain and on out-of-domain text.

    python -m bench.confidence [--sentences 200] [--no-json]

The built-in models are trained on a tiny synthetic vocabulary (modelbuild). For each built-in
pair, every segment is decoded by the model itself (no vocabulary gate, no fallback: what the
model would answer), and its confidence (geometric-mean token probability) recorded for:

- `in-domain`: held-out sentences of the synthetic corpus (a seed the models were not built on);
- `out-of-domain`: the hand-written chat messages of bench/data/langid_chat.tsv in the pair's
  source language, segmented as the runtime segments them.

Per set: quantiles of the confidence, the share the runtime's vocabulary criterion
(`workers.runtime._knows`: every word in the model's closed vocabulary) lets through to the model,
and the share the model answers (through the gate and at or above `CLOSED_VOCABULARY_FLOOR`).
Out-of-domain segments it lets through are listed with their output: what the gate cannot see.
Writes JSON to bench/results/ (`latest-confidence.json`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from modelbuild.corpus import generate_corpus
from workers.runtime import CLOSED_VOCABULARY_FLOOR, BatchLimits, Model, _knows
from workers.manifest import load_specs
from workers.segmenter import segment, strip_marks

REPO = Path(__file__).resolve().parent.parent

HELD_OUT_SEED = 99_1807  # modelbuild trains on its own seeds; this one is for evaluation only


def confidences(model: Model, texts: list[str], source: str, target: str) -> list[tuple[str, float, str]]:
    limits = BatchLimits()
    chunks = [model.chunk(t, source, target, 1, limits) for t in texts]
    model.run(source, target, 1, chunks, limits)
    return [(t, c.confidence, c.text) for t, c in zip(texts, chunks)]


def summary(rows: list[tuple[str, float, str]], known: list[bool]) -> dict:
    values = sorted(c for _, c, _ in rows)
    q = statistics.quantiles(values, n=10) if len(values) > 1 else values * 9
    return {
        "n": len(values), "min": round(values[0], 3), "p10": round(q[0], 3), "p50": round(statistics.median(values), 3),
        "p90": round(q[-1], 3), "max": round(values[-1], 3), "gate_passes": round(sum(known) / len(known), 3),
        # what the model keeps: through the vocabulary gate and at or above the confidence floor
        "answered": round(sum(k and c >= CLOSED_VOCABULARY_FLOOR for (_, c, _), k in zip(rows, known)) / len(rows), 3),
    }


def chat_segments(lang: str) -> list[str]:
    out = []
    for line in (REPO / "bench/data/langid_chat.tsv").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        code, text = line.split("\t", 1)
        if code == lang:
            out += [strip_marks(p.text) for p in segment(text) if p.translatable]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--models-dir", default=str(REPO / "models"))
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args()
    specs = {n: s for n, s in load_specs(Path(args.models_dir)).items() if n.startswith("builtin-") and s.vocabulary}
    corpus = generate_corpus(args.sentences, seed=HELD_OUT_SEED)
    report: dict = {}
    print(f"{'pair':8} {'model':22} {'set':14} {'n':>4} {'min':>6} {'p10':>6} {'p50':>6} {'p90':>6} {'max':>6} "
          f"{'gate passes':>11} {'answered':>8}")
    for name, spec in sorted(specs.items()):
        model = Model(spec)
        for source, target in spec.pairs:
            sets = {
                "in-domain": [row[source] for row in corpus],
                "out-of-domain": chat_segments(source),
            }
            for label, texts in sets.items():
                rows = confidences(model, texts, source, target)
                known = [_knows(spec, t, source) for t in texts]
                s = summary(rows, known)
                s["let_through"] = [
                    {"text": t, "output": out, "confidence": c} for (t, c, out), k in zip(rows, known) if k
                ][:20] if label == "out-of-domain" else []
                report[f"{source}-{target}/{label}"] = {"model": name, **s}
                print(f"{source}-{target:5} {name:22} {label:14} {s['n']:4} {s['min']:6} {s['p10']:6} {s['p50']:6} "
                      f"{s['p90']:6} {s['max']:6} {s['gate_passes']:11} {s['answered']:8}")
    print(f"\nout-of-domain segments the vocabulary criterion lets through (* : at or above the floor "
          f"{CLOSED_VOCABULARY_FLOOR}, the model's answer is kept):")
    for key, s in report.items():
        for row in s["let_through"]:
            kept = "*" if row["confidence"] >= CLOSED_VOCABULARY_FLOOR else " "
            print(f" {kept} {key.split('/')[0]}: {row['text']!r} -> {row['output']!r} ({row['confidence']})")
    if not args.no_json:
        from bench.appliance_e2e import write_results

        print(f"wrote {write_results('confidence', {'sentences': args.sentences, 'results': report})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
