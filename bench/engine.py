"""Engine benchmark: this runtime against HF PyTorch and CTranslate2, one run.

    python bench/run.py engine [--models-dir models]          # the whole engine report, below
    python bench/run.py engine --model opus-mt-base|nllb-600m [--sentences 128] [--batch 32]
                               [--new-tokens 32] [--reps 3] [--engines ours-int8,ct2-int8,...]
                               [--beams 1,4] [--invariance 32] [--models-dir models] [--profile]

Without `--model`, one run prints every table of the engine report (FULL_RUN), each from its own
process: opus-mt-base greedy and beam 4 (ours int8, CTranslate2 int8, HF PyTorch), the NLLB-600M
shape (ours int8, CTranslate2 int8; skipped, with the export command, when it is not exported),
Meeshy's real pattern on that shape (bench/meeshy_pattern.py), bench/chat_latency.py and bench/memory.py. Each writes its own JSON as when run alone.

Every engine decodes the same English sentences (`modelbuild.corpus.generate_corpus`), tokenized
once by the model's own tokenizer (CTranslate2 gets the same ids as piece strings), in batches of
`--batch`, greedy, with exactly `--new-tokens` new tokens per sentence (min = max: a random-weight
model rarely emits end-of-sequence, so its output length must be forced the same way everywhere).
The model is a synthetic one (`export_models.py --synthetic opus-mt-base --quantize int8`, or
`nllb-600m` with `--model nllb-600m`); CTranslate2's copies are converted from the same checkpoint
and cached under `<models-dir>/.build/`. Each beam size of `--beams` is a table of its own, the
same processes decoding the same batches.

Batch invariance, next to each engine's throughput: the first `--invariance` sentences decoded one
at a time and then together as one batch (greedy, the same forced length), "alone == batched:
k/N" counting the sentences whose tokens are identical both ways. RSS per engine process: after
load and warm-up, and its peak (VmHWM) at the end.

One process and one thread per engine, as the appliance runs one worker per core; the parent
drives them over pipes so that only one decodes at a time. Each engine decodes one batch to warm
up; then, in each repetition, every batch is decoded by every engine in turn, the order rotating
from batch to batch, so drift on a shared machine hits all of them; the median repetition counts.
Wall time makes the table; each worker's CPU time is recorded too (steadier under a noisy
neighbour). Results are ratios against CTranslate2 int8 and HF PyTorch measured in the same run,
never absolute bounds. Writes bench/results/engine-<timestamp>.json and latest-engine.json.

`--profile` instead profiles this engine's int8 model: cProfile split (encoder, first decoder step,
decoder-with-past, numpy work in decoding.py, Python) and ONNX Runtime's per-op profile of
decoder_with_past. Writes bench/results/engine-profile-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.pipe_child import PipeChild

REPO = Path(__file__).resolve().parent.parent

RESULTS = REPO / "bench" / "results"
MODELS = REPO / "models"
SYNTHETIC = "synthetic-opus-mt-base"
CHECKPOINT = MODELS / ".build" / SYNTHETIC
CT2_DIRS = {"int8": MODELS / ".build" / f"ct2-{SYNTHETIC}-int8", "float32": MODELS / ".build" / f"ct2-{SYNTHETIC}"}
SHAPES = ("opus-mt-base", "nllb-600m")
BASELINE = "ct2-int8"
SECOND_BASELINE = "hf-pytorch"
ENGINES = ("ours-int8", "ours-int8-shortlist", "ours-fp32", "ct2-int8", "ct2-fp32", "hf-pytorch")


def use_model(models_dir: Path, shape: str) -> None:
    """Point the module at `<models_dir>/synthetic-<shape>[-int8]` and its checkpoint (one per process)."""
    global MODELS, SYNTHETIC, CHECKPOINT, CT2_DIRS
    MODELS, SYNTHETIC = models_dir.resolve(), f"synthetic-{shape}"
    CHECKPOINT = MODELS / ".build" / SYNTHETIC
    CT2_DIRS = {"int8": MODELS / ".build" / f"ct2-{SYNTHETIC}-int8", "float32": MODELS / ".build" / f"ct2-{SYNTHETIC}"}


@dataclass(frozen=True)
class Workload:
    batches: list[list[list[int]]]  # framed source ids (eos included), `batch` rows per batch
    pieces: list[list[list[str]]]  # the same ids as vocabulary pieces, for CTranslate2
    new_tokens: int
    pad_id: int
    target: str
    target_prefix: list[str]  # forced target-language pieces after the decoder start (NLLB/M2M100), for CTranslate2

    @property
    def sentences(self) -> int:
        return sum(len(b) for b in self.batches)


def build_workload(opts) -> Workload:
    from modelbuild.corpus import generate_corpus
    from workers.manifest import load_specs
    from workers.tokenizer import load_tokenizer

    spec = load_specs(MODELS)[SYNTHETIC]
    tokenizer = load_tokenizer(spec.directory, spec.tokenizer, set(spec.special_ids))
    source, target = spec.pairs[0]
    framing = spec.framing
    texts = [row[source] for row in generate_corpus(opts.sentences, seed=opts.seed)]
    ids = [[*framing.encoder_prefix(source), *tokenizer.encode(framing.text_prefix(source, target) + t),
            *framing.source_suffix] for t in texts]
    piece_of = pieces_by_id(spec, {i for row in ids for i in row} | set(framing.decoder_prefix(target)))
    batches = [ids[i : i + opts.batch] for i in range(0, len(ids), opts.batch)]
    pieces = [[[piece_of[i] for i in row] for row in batch] for batch in batches]
    target_prefix = [piece_of[i] for i in framing.decoder_prefix(target)[1:]]
    return Workload(batches, pieces, opts.new_tokens, framing.pad_id, target, target_prefix)


def pieces_by_id(spec, wanted: set[int]) -> dict[int, str]:
    """Vocabulary pieces by id, for CTranslate2: vocab.json, and for ids past it (M2M100's language
    tokens such as `__fr__`) the HF tokenizer of the checkpoint the model was exported from."""
    vocab = json.loads((spec.directory / spec.tokenizer["vocab"]).read_text(encoding="utf-8"))
    piece_of = {index: piece for piece, index in vocab.items()}
    missing = sorted(wanted - piece_of.keys())
    if missing:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(spec.directory))
        piece_of.update(zip(missing, tokenizer.convert_ids_to_tokens(missing)))
    return piece_of


def convert_ct2(checkpoint: Path, directory: Path, quantization: str | None) -> None:
    """CTranslate2's converter on our checkpoint. For M2M100 its vocabulary is rebuilt in id order
    (vocab.json, the language tokens, the made-up words): the converter's `tokenizer.get_vocab()`
    counts the `__xx__` tokens twice when the tokenizer also lists them as additional special
    tokens (as the synthetic ones do), and once too few when it does not, and then fails on the size."""
    from ctranslate2.converters import TransformersConverter
    from ctranslate2.converters import transformers as loaders

    original = loaders.M2M100Loader.get_vocabulary

    def in_id_order(self, model, tokenizer):
        size = tokenizer.encoder_size + len(tokenizer.lang_code_to_id)
        tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
        return tokens + [f"madeupword{i}" for i in range(model.config.vocab_size - len(tokens))]

    loaders.M2M100Loader.get_vocabulary = in_id_order
    try:
        TransformersConverter(str(checkpoint)).convert(str(directory), quantization=quantization, force=True)
    finally:
        loaders.M2M100Loader.get_vocabulary = original


def invariance_rows(work: Workload, n: int) -> tuple[list[list[int]], list[list[str]]]:
    """The first `n` sentences of the workload (ids and pieces): decoded alone, then as one batch."""
    ids = [row for batch in work.batches for row in batch][:n]
    pieces = [row for batch in work.pieces for row in batch][:n]
    return ids, pieces


# --- engines: load in __init__; `run(batch_index, beam)` returns the generated token count per row,
# `decode(ids, pieces)` the greedy tokens of any rows (for the batch-invariance check) ---------------


class Ours:
    def __init__(self, work: Workload, quantization: str, shortlist: bool = False):
        from workers.manifest import load_specs
        from workers.runtime import Model

        name = SYNTHETIC if quantization == "fp32" else f"{SYNTHETIC}-{quantization}"
        self.model = Model(load_specs(MODELS)[name], threads=1, shortlist=shortlist)
        if shortlist and self.model.head(work.target) is self.model.graphs.head:
            raise ValueError(f"{name} has no vocabulary shortlist for {work.target}: export it again")
        self.work = work

    def run(self, index: int, beam: int = 1) -> list[int]:
        batch, n = self.work.batches[index], self.work.new_tokens
        hyps = self.model.generate(batch, self.work.target, beam, [n] * len(batch), n)
        return [len(h.tokens) for h in hyps]

    def decode(self, ids: list[list[int]], pieces: list[list[str]]) -> list[list]:
        n = self.work.new_tokens
        return [list(h.tokens) for h in self.model.generate(ids, self.work.target, 1, [n] * len(ids), n)]


class CTranslate2:
    def __init__(self, work: Workload, compute_type: str):
        import ctranslate2

        directory = CT2_DIRS[compute_type]
        if not (directory / "model.bin").exists():
            convert_ct2(CHECKPOINT, directory, None if compute_type == "float32" else compute_type)
        self.translator = ctranslate2.Translator(
            str(directory), device="cpu", compute_type=compute_type, intra_threads=1, inter_threads=1
        )
        self.work = work

    def _translate(self, pieces: list[list[str]], beam: int) -> list[list[str]]:
        # The forced language token (NLLB/M2M100) is a target prefix: it counts in the decoding
        # length and comes back in the hypothesis, so it is added to the bounds and cut off after.
        prefix, n = self.work.target_prefix, self.work.new_tokens
        results = self.translator.translate_batch(
            pieces, beam_size=beam, max_decoding_length=n + len(prefix), min_decoding_length=n + len(prefix),
            target_prefix=[prefix] * len(pieces) if prefix else None,
        )
        return [r.hypotheses[0][len(prefix):] for r in results]

    def run(self, index: int, beam: int = 1) -> list[int]:
        return [len(h) for h in self._translate(self.work.pieces[index], beam)]

    def decode(self, ids: list[list[int]], pieces: list[list[str]]) -> list[list]:
        return self._translate(pieces, 1)


class HFPyTorch:
    """transformers' MarianMTModel.generate: padded tensors in, the length forced."""

    def __init__(self, work: Workload):
        import torch
        from transformers import MarianMTModel

        if work.target_prefix:  # generate() would need the language token forced; not wired here
            raise NotImplementedError("the HF engine here takes Marian models (no target-language prefix)")
        self.torch = torch
        self.work = work
        self.inputs = [self._pad(batch) for batch in work.batches]
        _one_torch_thread()
        self.model = MarianMTModel.from_pretrained(str(CHECKPOINT)).eval()
        # The checkpoint's forced_eos_token_id would replace token 32 by eos; the other engines don't.
        self.model.generation_config.forced_eos_token_id = None

    def _pad(self, batch: list[list[int]]):
        torch = self.torch
        width = max(len(row) for row in batch)
        ids = torch.full((len(batch), width), self.work.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, row in enumerate(batch):
            ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
        return ids, mask

    def _generate(self, ids, mask, beam: int):
        n = self.work.new_tokens
        with self.torch.inference_mode():
            return self.model.generate(
                input_ids=ids, attention_mask=mask, num_beams=beam, do_sample=False, min_new_tokens=n,
                max_new_tokens=n,
            )

    def run(self, index: int, beam: int = 1) -> list[int]:
        out = self._generate(*self.inputs[index], beam)
        return [out.shape[1] - 1] * out.shape[0]  # minus the decoder start token; no row can end early

    def decode(self, ids: list[list[int]], pieces: list[list[str]]) -> list[list]:
        return [row[1:] for row in self._generate(*self._pad(ids), 1).tolist()]


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # can be set once per process, before any inter-op work
        pass


def load_engine(name: str, work: Workload):
    if name == "ours-int8":
        return Ours(work, "int8")
    if name == "ours-int8-shortlist":
        return Ours(work, "int8", shortlist=True)
    if name == "ours-fp32":
        return Ours(work, "fp32")
    if name == "ct2-int8":
        return CTranslate2(work, "int8")
    if name == "ct2-fp32":
        return CTranslate2(work, "float32")
    if name == "hf-pytorch":
        return HFPyTorch(work)
    raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]


def run_batch(engine, work: Workload, index: int, beam: int = 1) -> tuple[float, float, list[int]]:
    """Wall and process CPU seconds for one batch, and the generated token count of each sentence."""
    wall, cpu = time.perf_counter(), time.process_time()
    counts = engine.run(index, beam)
    return time.perf_counter() - wall, time.process_time() - cpu, counts


def alone_vs_batched(engine, work: Workload, n: int) -> dict:
    """Greedy tokens of `n` sentences decoded one at a time and together: how many agree."""
    ids, pieces = invariance_rows(work, n)
    alone = [engine.decode([i], [p])[0] for i, p in zip(ids, pieces)]
    batched = engine.decode(ids, pieces)
    same = sum(1 for a, b in zip(alone, batched) if list(a) == list(b))
    return {"alone_equals_batched": same, "sentences": len(ids), "tokens": [[int(t) for t in row] for row in batched]}


def memory_mb() -> dict:
    """This process's resident memory now and its peak (VmRSS, VmHWM), in MB."""
    values = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    values[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return {"rss_mb": round(values.get("VmRSS", 0.0), 1), "peak_rss_mb": round(values.get("VmHWM", 0.0), 1)}


class EngineProcess:
    """One engine in its own interpreter, driven over a pipe (JSON lines).

    Each engine gets a process, as in the appliance (one worker per core): PyTorch's and
    CTranslate2's OpenMP runtimes, allocators and thread pools never share an address space, so
    no engine is measured with another's libraries loaded. Only one engine runs at a time.

        parent -> child   {"batch": i, "beam": b} | {"invariance": n} | {"memory": true}
        child -> parent   {"ready": load_and_warmup_s, "rss_mb": ..} | {"wall": s, "cpu": s, "counts": [...]}
                          | {"alone_equals_batched": k, "sentences": n} | {"rss_mb": .., "peak_rss_mb": ..}
                          | {"error": why}
    """

    def __init__(self, name: str, opts):
        self.name = name
        self.child = PipeChild("bench.engine", [
            "--worker", name, "--sentences", str(opts.sentences), "--batch", str(opts.batch),
            "--new-tokens", str(opts.new_tokens), "--seed", str(opts.seed), "--model", opts.model,
            "--models-dir", str(opts.models_dir)], threads=1, what=f"{name} worker")

    def ready(self) -> dict:
        return self.child.reply()

    def run(self, index: int, beam: int = 1) -> tuple[float, float, list[int]]:
        reply = self.child.ask({"batch": index, "beam": beam})
        return reply["wall"], reply["cpu"], reply["counts"]

    def invariance(self, n: int) -> dict:
        return self.child.ask({"invariance": n})

    def memory(self) -> dict:
        return self.child.ask({"memory": True})

    def close(self) -> None:
        self.child.close()


def serve_worker(opts) -> int:
    """The child side of `EngineProcess`: load, warm up, then decode the batches asked for."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints from libraries must not corrupt the replies
    try:
        t0 = time.perf_counter()
        work = build_workload(opts)
        engine = load_engine(opts.worker, work)
        run_batch(engine, work, 0)  # warm-up: first-run allocations, lazy initialisation
        out.write(json.dumps({"ready": round(time.perf_counter() - t0, 2), **memory_mb()}) + "\n")
    except Exception as exc:  # reported to the parent, shown in the table
        out.write(json.dumps({"error": f"unavailable: {_why(exc)}"}) + "\n")
        return 1
    for line in sys.stdin:
        try:
            message = json.loads(line)
            if "invariance" in message:
                reply = alone_vs_batched(engine, work, message["invariance"])
            elif "memory" in message:
                reply = memory_mb()
            else:
                wall, cpu, counts = run_batch(engine, work, message["batch"], message.get("beam", 1))
                reply = {"wall": wall, "cpu": cpu, "counts": counts}
            out.write(json.dumps(reply) + "\n")
        except Exception as exc:
            out.write(json.dumps({"error": _why(exc)}) + "\n")
    return 0


def check_counts(work: Workload, index: int, counts: list[int]) -> None:
    wrong = [c for c in counts if c != work.new_tokens]
    assert len(counts) == len(work.batches[index]) and not wrong, (
        f"{len(wrong)} of {len(counts)} sentences got {sorted(set(wrong))} tokens, not {work.new_tokens}"
    )


def compare(opts, work: Workload) -> tuple[dict, bool]:
    """Start every engine in its own process, then time them batch by batch, rotating the order.

    Interleaving at batch granularity spreads a neighbour's burst of load over every engine instead
    of one engine's whole repetition. A repetition's time is the sum of that engine's batch times.
    Process CPU time is recorded next to wall time: on a shared machine it is the steadier of the two.
    Returns {"beam<b>": rows} for each beam size, rows carrying the invariance figure and memory.
    """
    engines = {name: EngineProcess(name, opts) for name in opts.engines}  # they load in parallel
    try:
        return _measure(opts, work, engines)
    finally:
        for engine in engines.values():
            engine.close()


def _measure(opts, work: Workload, workers: dict) -> tuple[dict, bool]:
    engines, loaded, failed = {}, {}, {}
    for name, engine in workers.items():
        try:
            ready = engine.ready()
        except RuntimeError as exc:  # one unavailable engine must not hide the others
            failed[name] = {"error": str(exc)}
            print(f"  {name:14} {failed[name]['error']}", flush=True)
            continue
        engines[name] = engine
        loaded[name] = {"load_and_warmup_s": ready["ready"], "rss_after_load_mb": ready.get("rss_mb")}
        print(f"  {name:14} loaded + warmed up in {ready['ready']:.1f}s, RSS {ready.get('rss_mb', 0):.0f} MB",
              flush=True)
    invariance = {}
    if opts.invariance:
        for name, engine in engines.items():
            try:
                invariance[name] = engine.invariance(opts.invariance)
            except RuntimeError as exc:
                invariance[name] = {"error": str(exc)}
            figure = invariance[name]
            shown = figure.get("error") or f"{figure['alone_equals_batched']}/{figure['sentences']}"
            print(f"  {name:14} alone == batched (greedy): {shown}", flush=True)
        # A shortlisted head must give the whole vocabulary's tokens: count the sentences that do.
        full = invariance.get("ours-int8", {}).get("tokens")
        for name, figure in invariance.items():
            if full and name.startswith("ours-int8-") and "tokens" in figure:
                figure["same_as_full_head"] = sum(a == b for a, b in zip(figure["tokens"], full))
                print(f"  {name:14} same tokens as ours-int8's whole head (greedy): "
                      f"{figure['same_as_full_head']}/{figure['sentences']}", flush=True)
        for figure in invariance.values():
            figure.pop("tokens", None)
    results, ok = {}, True
    for beam in opts.beams:
        rows = {name: {**loaded[name], "seconds": [], "cpu_seconds": []} for name in engines}
        rows.update(failed)
        print(f"beam {beam}:", flush=True)
        rows, beam_ok = _time_engines(opts, work, engines, rows, beam)
        ok = ok and beam_ok
        results[f"beam{beam}"] = rows
    for name, engine in engines.items():
        try:
            memory = engine.memory()
        except RuntimeError:
            continue
        for rows in results.values():
            if name in rows and "error" not in rows[name]:
                rows[name]["peak_rss_mb"] = memory["peak_rss_mb"]
                if name in invariance and "error" not in invariance[name]:
                    rows[name]["invariance"] = invariance[name]
    return results, ok


def _time_engines(opts, work: Workload, engines: dict, rows: dict, beam: int) -> tuple[dict, bool]:
    ok = True
    live = [name for name in engines if "error" not in rows[name]]
    batches = len(work.batches)
    for rep in range(opts.reps):
        wall = {name: 0.0 for name in live}
        cpu = {name: 0.0 for name in live}
        for index in range(batches):
            turn = (rep * batches + index) % max(len(live), 1)
            for name in live[turn:] + live[:turn]:
                if name not in wall:
                    continue
                try:
                    w, c, counts = engines[name].run(index, beam)
                    check_counts(work, index, counts)
                except (AssertionError, RuntimeError) as exc:
                    wrong_length = isinstance(exc, AssertionError)
                    rows[name] = {"error": f"wrong output length: {exc}" if wrong_length else str(exc)}
                    ok = ok and not wrong_length
                    del wall[name], cpu[name]
                    continue
                wall[name] += w
                cpu[name] += c
        live = [name for name in live if name in wall]
        for name in live:
            rows[name]["seconds"].append(round(wall[name], 4))
            rows[name]["cpu_seconds"].append(round(cpu[name], 4))
        done = ", ".join(f"{name} {wall[name]:.2f}s" for name in live)
        print(f"  rep {rep + 1}/{opts.reps} (load {os.getloadavg()[0]:.2f}): {done}", flush=True)
    tokens = work.sentences * work.new_tokens
    for row in rows.values():
        if "error" in row or not row["seconds"]:
            continue
        median = statistics.median(row["seconds"])
        row.update(
            median_s=median,
            median_cpu_s=statistics.median(row["cpu_seconds"]),
            sentences_per_s=work.sentences / median,
            tokens_per_s=tokens / median,
            spread=(max(row["seconds"]) - min(row["seconds"])) / median,
        )
    for base, key in ((BASELINE, "vs_ct2_int8"), (SECOND_BASELINE, "vs_hf_pytorch")):
        base_row = rows.get(base, {})
        for row in rows.values():
            if "tokens_per_s" in row and "tokens_per_s" in base_row:
                row[key] = row["tokens_per_s"] / base_row["tokens_per_s"]
                row[key + "_cpu"] = base_row["median_cpu_s"] / row["median_cpu_s"]
                # Same-repetition ratios: what drift did to both engines cancels out of each one.
                row[key + "_per_rep"] = [round(b / e, 3) for b, e in zip(base_row["seconds"], row["seconds"])]
    return rows, ok


def print_table(results: dict) -> None:
    for beam, rows in results.items():
        print(f"\n{beam}: {'engine':14} {'sent/s':>8} {'tok/s':>8} {'median s':>9} {'spread':>7}"
              f" {'vs ct2-int8':>12} {'vs hf-pytorch':>14} {'vs ct2-int8 (cpu)':>18}"
              f" {'alone==batched':>15} {'RSS load/peak MB':>17}")
        for name, row in rows.items():
            if "error" in row:
                print(f"{'':{len(beam) + 2}}{name:14} {row['error']}")
                continue
            cells = [f"{row[k]:.2f}" if k in row else "-" for k in ("vs_ct2_int8", "vs_hf_pytorch", "vs_ct2_int8_cpu")]
            figure = row.get("invariance")
            same = f"{figure['alone_equals_batched']}/{figure['sentences']}" if figure else "-"
            memory = f"{row.get('rss_after_load_mb') or 0:.0f}/{row.get('peak_rss_mb') or 0:.0f}"
            print(
                f"{'':{len(beam) + 2}}{name:14} {row['sentences_per_s']:8.1f} {row['tokens_per_s']:8.0f}"
                f" {row['median_s']:9.2f} {row['spread'] * 100:6.0f}% {cells[0]:>12} {cells[1]:>14} {cells[2]:>18}"
                f" {same:>15} {memory:>17}"
            )
        for name, row in rows.items():
            if name.startswith("ours") and "vs_ct2_int8_per_rep" in row:
                print(f"{name} vs ct2-int8, each repetition: {', '.join(f'{r:.2f}' for r in row['vs_ct2_int8_per_rep'])}")
    print("alone==batched: greedy, the first sentences decoded one at a time vs as one batch (same tokens)")


# --- profile of this engine's int8 model ---------------------------------------------------------


def _find(stats: dict, filename_end: str, func: str):
    for key, value in stats.items():
        if key[0].endswith(filename_end) and key[2] == func:
            return key, value
    return None, None


def _cprofile_split(model, work: Workload, beam: int = 1) -> dict:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for index in range(len(work.batches)):
        batch = work.batches[index]
        model.generate(batch, work.target, beam, [work.new_tokens] * len(batch), work.new_tokens)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # (file, line, func) -> (cc, nc, tottime, cumtime, callers)
    cum = lambda f, fn: (_find(stats, f, fn)[1] or (0, 0, 0.0, 0.0))[3]  # noqa: E731
    total = cum("workers/runtime.py", "generate")
    step_key, step_value = _find(stats, "workers/decoding.py", "step")
    # run_with_iobinding is called by the first step, every step and the greedy head (logits_into):
    # only the calls from step() are decoder_with_past's
    iobinding = _find(stats, "onnxruntime_inference_collection.py", "run_with_iobinding")[1]
    ort_step = iobinding[4].get(step_key, (0, 0, 0.0, 0.0))[3] if iobinding and step_key else 0.0
    search = "greedy" if beam == 1 else "beam_search"
    argmax_key = ("~", 0, "<method 'argmax' of 'numpy.ndarray' objects>")
    argmax = stats[argmax_key][4].get(_find(stats, "workers/decoding.py", "greedy")[0], (0, 0, 0.0, 0.0))[3] \
        if argmax_key in stats and beam == 1 else 0.0
    search_self = (_find(stats, "workers/decoding.py", search)[1] or (0, 0, 0.0))[2]
    parts = {
        "encoder (ORT)": cum("workers/decoding.py", "encode"),
        "first decoder step (ORT decoder_model)": cum("workers/decoding.py", "first_step"),
        "decoder_with_past (ORT run_with_iobinding)": ort_step,
        "step: bindings, buffers (Python)": (step_value[3] if step_value else 0.0) - ort_step,
        "output head (ORT head_model: logits)": cum("workers/output_head.py", "logits")
                                                + cum("workers/output_head.py", "logits_into"),
        "output head (ORT head_topk_model: log-softmax, top k)": cum("workers/output_head.py", "topk"),
        "numpy argmax (greedy)": argmax,
    }
    # Every other helper of decoding.py (log-softmax, masking, cache gathers, ...) by name, so that a
    # rewrite of the loop shows up here instead of vanishing into "other".
    structural = {"greedy", "beam_search", "_start", "encode", "first_step", "step", "__init__", "confidence"}
    for (filename, _, func), (_, _, _, cumulative, _) in stats.items():
        if filename.endswith("workers/decoding.py") and func not in structural and cumulative >= 0.001:
            parts[f"decoding.py {func}() (numpy)"] = cumulative
    parts[f"{search} loop body (Python: candidates, bookkeeping)"] = search_self
    parts["other (padding, framing, cProfile)"] = total - sum(parts.values())
    steps = (step_value[1] if step_value else 0) // max(len(work.batches), 1)
    return {"total_s": total, "parts_s": parts, "decoder_with_past_calls_per_batch": steps}


def _kv_slice_cost(model, work: Workload) -> dict:
    """What dropping one finished row costs mid-decode (never happens here: lengths are forced)."""
    import numpy as np

    rows, heads, dim, layers = len(work.batches[0]), 8, 64, model.graphs.layers
    width = -(-max(len(r) for r in work.batches[0]) // 8) * 8
    self_kv = [np.random.rand(rows, heads, work.new_tokens // 2, dim).astype(np.float32) for _ in range(2 * layers)]
    cross_kv = [np.random.rand(rows, heads, width, dim).astype(np.float32) for _ in range(2 * layers)]
    keep = np.ones(rows, dtype=bool)
    keep[0] = False
    start = time.perf_counter()
    for _ in range(20):
        [kv[keep] for kv in self_kv]
        [kv[keep] for kv in cross_kv]
    return {"ms_per_event": (time.perf_counter() - start) / 20 * 1000, "at_step": work.new_tokens // 2}


def _ort_op_profile(model, work: Workload, out_dir: Path) -> dict:
    from workers.session import session_options
    import onnxruntime as ort

    options = session_options(1)
    options.enable_profiling = True
    options.profile_file_prefix = str(out_dir / "ort-decoder_with_past")
    path = model.spec.directory / "decoder_with_past_model.onnx"
    profiled = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    original = model.graphs.decoder_with_past
    model.graphs.decoder_with_past = profiled
    try:
        batch = work.batches[0]
        for _ in range(2):  # the first run of each shape allocates; both are in the file, weighted equally
            model.generate(batch, work.target, 1, [work.new_tokens] * len(batch), work.new_tokens)
    finally:
        model.graphs.decoder_with_past = original
    trace = Path(profiled.end_profiling())
    events = json.loads(trace.read_text())
    by_op: dict[str, float] = {}
    by_part: dict[str, float] = {}
    runs = 0.0
    for event in events:
        if event.get("cat") == "Session" and event.get("name") == "model_run":
            runs += event["dur"]
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        op, node, dur = event["args"]["op_name"], event["name"][: -len("_kernel_time")], event["dur"]
        by_op[op] = by_op.get(op, 0.0) + dur
        by_part[_part_of(node, op)] = by_part.get(_part_of(node, op), 0.0) + dur
    kernels = sum(by_op.values())
    trace.unlink()
    share = lambda d: {k: round(v / kernels, 4) for k, v in sorted(d.items(), key=lambda kv: -kv[1])}  # noqa: E731
    return {
        "model_run_us": runs,
        "kernel_us": kernels,
        "outside_kernels_share": round(1 - kernels / runs, 4) if runs else None,
        "by_op_type": share(by_op),
        "by_part": share(by_part),
    }


def _part_of(node: str, op: str) -> str:
    quantized = op in {"MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "DynamicQuantizeLinear"}
    if "/quantize_rows/" in node:
        return "activation quantization (per row)"
    if "lm_head" in node or node in {"/Add"} or node.startswith("/head/"):
        return "vocabulary projection (lm_head + bias)"
    if "fc1" in node or "fc2" in node or "activation_fn" in node:
        return "feed-forward (fc1, SiLU, fc2)"
    for attn, label in (("self_attn", "self-attention"), ("encoder_attn", "cross-attention")):
        if f"/{attn}/" in node:
            if quantized or "_proj" in node:
                return f"{label}: q/k/v/out projections"
            if op in {"Concat"}:
                return f"{label}: KV cache concat"
            return f"{label}: scores, softmax, weighted sum, reshapes"
    if op == "LayerNormalization" or "layer_norm" in node:
        return "layer norms"
    if op == "DynamicQuantizeLinear":
        return "activation quantization (other)"
    return "other (embeddings, masks, shapes)"


def profile(opts, work: Workload) -> dict:
    from workers.manifest import load_specs
    from workers.runtime import Model

    model = Model(load_specs(MODELS)[f"{SYNTHETIC}-int8"], threads=1)
    model.generate(work.batches[0], work.target, 1, [work.new_tokens] * len(work.batches[0]), work.new_tokens)
    RESULTS.mkdir(parents=True, exist_ok=True)
    splits = {beam: _cprofile_split(model, work, beam) for beam in opts.beams}
    ops = _ort_op_profile(model, work, RESULTS)
    kv = _kv_slice_cost(model, work)
    for beam, split in splits.items():
        total = split["total_s"]
        print(f"\ncProfile, ours-int8, beam {beam}, {work.sentences} sentences x {work.new_tokens} tokens: {total:.2f}s")
        for part, seconds in split["parts_s"].items():
            print(f"  {part:62} {seconds:7.3f}s {seconds / total * 100:5.1f}%")
    print(f"  (dropping one finished row mid-decode would cost {kv['ms_per_event']:.2f} ms; none here)")
    kernels = 1 - (ops["outside_kernels_share"] or 0)
    print(f"\nORT per-op profile, decoder_with_past (kernels are {kernels:.0%} of run time)")
    for part, share in ops["by_part"].items():
        print(f"  {part:62} {share * 100:5.1f}%")
    print("  by op type:", ", ".join(f"{op} {s * 100:.1f}%" for op, s in list(ops["by_op_type"].items())[:8]))
    return {"cprofile": {str(b): s for b, s in splits.items()}, "ort_decoder_with_past": ops, "kv_slice": kv}


# --- entry point ----------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {','.join(ENGINES)}")
    parser.add_argument("--beams", default="1,4", help="beam sizes, one table each (default 1,4)")
    parser.add_argument("--invariance", type=int, default=32, metavar="N",
                        help="sentences decoded alone vs as one batch, per engine (0: skip)")
    parser.add_argument("--model", choices=SHAPES, help="which synthetic model; none: the whole report (FULL_RUN)")
    parser.add_argument("--models-dir", type=Path, default=MODELS, help="where the synthetic exports are")
    parser.add_argument("--profile", action="store_true", help="profile ours-int8 instead of comparing engines")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: serve one engine to the parent
    opts = parser.parse_args(argv)
    opts.engines = [e.strip() for e in opts.engines.split(",") if e.strip()]
    opts.beams = [int(b) for b in opts.beams.split(",") if b.strip()]
    unknown = [e for e in opts.engines if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engines {unknown}; choose from {', '.join(ENGINES)}")
    return opts


def environment() -> dict:
    versions = {}
    for module in ("onnxruntime", "ctranslate2", "torch", "transformers", "optimum", "numpy"):
        try:
            versions[module] = __import__(module).__version__
        except Exception as exc:  # a missing package is recorded, not fatal
            versions[module] = f"unavailable: {_why(exc)}"
    return {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "versions": versions,
    }


FULL_RUN = (  # (title, benchmark in bench/run.py, its options, the model export it needs)
    ("opus-mt-base: greedy and beam 4", "engine",
     ["--model", "opus-mt-base", "--engines", "ours-int8,ours-int8-shortlist,ct2-int8,hf-pytorch", "--beams", "1,4",
      "--sentences", "64", "--invariance", "32"], "synthetic-opus-mt-base-int8"),
    ("NLLB-600M shape", "engine",
     ["--model", "nllb-600m", "--engines", "ours-int8,ours-int8-shortlist,ct2-int8", "--beams", "1", "--sentences", "16",
      "--batch", "16", "--new-tokens", "16", "--reps", "1", "--invariance", "16"], "synthetic-nllb-600m-int8"),
    ("Meeshy's real pattern: NLLB-600M shape, chat messages x 5 targets, appliance vs HF batched as Meeshy",
     "meeshy_pattern", ["--messages", "10", "--reps", "1"], "synthetic-nllb-600m-int8"),
    ("chat latency", "chat_latency", [], "synthetic-opus-mt-base-int8"),
    ("memory", "memory", ["--model", "synthetic-opus-mt-base-int8"], "synthetic-opus-mt-base-int8"),
)


def full_run(models_dir: Path) -> int:
    from bench.run import run_one

    failed = []
    for title, benchmark, args, needs in FULL_RUN:
        print(f"\n===== {title}", flush=True)
        if not (models_dir / needs).is_dir():
            shape = needs.removeprefix("synthetic-").removesuffix("-int8")
            print(f"skipped: no {needs} in {models_dir}; export it with `python export_models.py "
                  f"--synthetic {shape} --quantize int8 --models-dir {models_dir}`", flush=True)
            continue
        if run_one(benchmark, [*args, "--models-dir", str(models_dir)]):
            failed.append(title)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    # Set before torch or CTranslate2 load: their OpenMP pools must not start one thread per core.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    opts = parse(argv)
    if opts.model is None:
        if opts.profile:
            opts.model = "opus-mt-base"
        else:
            return full_run(opts.models_dir.resolve())
    use_model(opts.models_dir, opts.model)
    opts.models_dir = MODELS
    if opts.worker:
        return serve_worker(opts)
    if not (MODELS / SYNTHETIC).exists() or not (MODELS / f"{SYNTHETIC}-int8").exists():
        print(f"missing {MODELS / SYNTHETIC}[-int8]: run `python export_models.py --synthetic {opts.model} "
              f"--quantize int8 --models-dir {MODELS}`")
        return 2
    work = build_workload(opts)
    load_before = os.getloadavg()
    started = time.time()
    report = {
        "bench": "engine-profile" if opts.profile else "engine",
        "model": SYNTHETIC,
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()},
        "workload": {"sentences": work.sentences, "batches": len(work.batches), "new_tokens": work.new_tokens,
                     "source_tokens_mean": statistics.fmean(len(r) for b in work.batches for r in b)},
        "threads": 1,
        **environment(),
    }
    print(f"{report['bench']}: {work.sentences} sentences, batch {opts.batch}, {work.new_tokens} new tokens, "
          f"1 thread, load average {load_before[0]:.2f}", flush=True)
    ok = True
    if opts.profile:
        report["profile"] = profile(opts, work)
    else:
        report["results"], ok = compare(opts, work)
        print_table(report["results"])
    report["loadavg_before"] = load_before
    report["loadavg_after"] = os.getloadavg()
    report["wall_s"] = round(time.time() - started, 1)
    print(f"\nload average {load_before[0]:.2f} -> {report['loadavg_after'][0]:.2f}, {report['wall_s']:.0f}s")
    from bench.appliance_e2e import write_results

    print(f"written {write_results(report['bench'], report).relative_to(REPO)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
