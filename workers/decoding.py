"""Greedy and beam-search decoding over an exported encoder, decoder-with-past pair and output head.

The exporter writes five graphs per model (optimum's `text2text-generation-with-past`, with the
output projection split out of the decoders by modelbuild.graphs.split_output_projection):

    encoder_model.onnx            input_ids, attention_mask            -> last_hidden_state
    decoder_model.onnx            input_ids, encoder_hidden_states,    -> hidden, present.{i}.{decoder,encoder}.{key,value}
                                  encoder_attention_mask
    decoder_with_past_model.onnx  input_ids (one token), encoder_attention_mask,
                                  past_key_values.{i}.{decoder,encoder}.{key,value}
                                                                       -> hidden, present.{i}.decoder.{key,value}
    head_model.onnx               hidden [rows, d]                     -> logits [rows, vocabulary]
    head_topk_model.onnx          hidden [rows, d], k                  -> the k best log-probabilities, ids

The first step runs the whole decoder prefix (start token, forced language token) through
`decoder_model` and keeps the cross-attention keys/values it returns; every later step feeds one
token per row to `decoder_with_past`, so the prefix is never recomputed. Rows that finish leave the
batch (their key/value rows are dropped), so a long sentence never makes its finished neighbours
pay for more steps. The head (workers/output_head.py) projects each step's last hidden state onto
the vocabulary, or onto a target language's shortlist of it.

Scores are natural-log probabilities from the model's own softmax; a result's confidence is the
geometric mean probability of the tokens it chose (forced tokens excluded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from workers.output_head import HEAD_GRAPH, TOPK_GRAPH, Buffer, OutputHead
from workers.session import open_graphs

NEG_INF = np.float32(-np.inf)
DECODER_GRAPHS = ("encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx")
GRAPHS = (*DECODER_GRAPHS, HEAD_GRAPH, TOPK_GRAPH)


@dataclass(slots=True)
class Hypothesis:
    tokens: list[int]  # generated ids, forced prefix excluded, end-of-sequence included when emitted
    logprob: float  # sum of the chosen tokens' log-probabilities

    @property
    def confidence(self) -> float:
        return float(np.exp(self.logprob / max(len(self.tokens), 1)))


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_new_tokens: np.ndarray  # per row
    min_new_tokens: int = 0  # benchmarks force the length: random-weight models rarely emit eos


@dataclass(frozen=True, slots=True)
class DecodeBatch:
    """One decode call's sentences: padded source rows, the target's decoder prefix, the bounds."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    prefix: tuple[int, ...]
    limits: DecodeLimits
    eos_id: int
    banned: list[int]  # never chosen (pad, unk, ...)


class Seq2SeqGraphs:
    def __init__(self, directory: Path, threads: int = 1, packed_dir: Path | None = None):
        if not (directory / HEAD_GRAPH).exists():
            raise FileNotFoundError(f"{directory} has no {HEAD_GRAPH}: it was exported before the output projection "
                                    "was split from the decoders; export it again with export_models.py")
        sessions = open_graphs(directory, GRAPHS, threads, packed_dir)
        self.encoder, self.decoder, self.decoder_with_past = sessions[:3]
        self.head = OutputHead(*sessions[3:])  # the whole vocabulary
        self._hidden_size = sessions[3].get_inputs()[0].shape[1]
        past_names = [i.name for i in self.decoder_with_past.get_inputs() if i.name.startswith("past_key_values.")]
        self.layers = len(past_names) // 4
        self._self_names = [f"past_key_values.{i}.decoder.{kv}" for i in range(self.layers) for kv in ("key", "value")]
        self._cross_names = [f"past_key_values.{i}.encoder.{kv}" for i in range(self.layers) for kv in ("key", "value")]
        first_outputs = [o.name for o in self.decoder.get_outputs()]
        self._first_outputs = ["hidden"]
        self._first_outputs += [f"present.{i}.decoder.{kv}" for i in range(self.layers) for kv in ("key", "value")]
        self._first_outputs += [f"present.{i}.encoder.{kv}" for i in range(self.layers) for kv in ("key", "value")]
        assert set(self._first_outputs) <= set(first_outputs), first_outputs
        self._next_outputs = ["hidden"] + [f"present.{i}.decoder.{kv}" for i in range(self.layers) for kv in ("key", "value")]
        key_shape = next(o.shape for o in self.decoder.get_outputs() if o.name == "present.0.decoder.key")
        self._kv_shape = (int(key_shape[1]), int(key_shape[3]))  # heads, head width: fixed by the export

    def release_memory(self) -> None:
        """A tiny run that shrinks the CPU arena: its free chunks go back to the heap."""
        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        self.head.logits(np.zeros((1, self._hidden_size), np.float32), options)

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.encoder.run(["last_hidden_state"], {"input_ids": input_ids, "attention_mask": attention_mask})[0]

    def first_step(self, decoder_ids: np.ndarray, hidden: np.ndarray, mask: np.ndarray):
        """The decoder prefix: each row's last hidden state, its self- and cross-attention keys/values.

        The outputs are written into arrays of our own (I/O binding): as ONNX Runtime outputs the
        cross-attention keys/values of a batch (32 sentences of 64 tokens: 48 MB) took chunks of
        its arena that it kept after the batch, until the worker's idle release."""
        rows, prefix, source = decoder_ids.shape[0], decoder_ids.shape[1], hidden.shape[1]
        heads, width = self._kv_shape
        binding = self.decoder.io_binding()
        binding.bind_cpu_input("input_ids", np.ascontiguousarray(decoder_ids))
        binding.bind_cpu_input("encoder_hidden_states", np.ascontiguousarray(hidden))
        binding.bind_cpu_input("encoder_attention_mask", np.ascontiguousarray(mask))
        n = 2 * self.layers
        shapes = [(rows, prefix, self._hidden_size)] + [(rows, heads, prefix, width)] * n + [(rows, heads, source, width)] * n
        out = [np.empty(shape, np.float32) for shape in shapes]
        for name, value in zip(self._first_outputs, out):
            binding.bind_output(name, "cpu", 0, np.float32, list(value.shape), value.ctypes.data)
        self.decoder.run_with_iobinding(binding)
        return out[0][:, -1, :], out[1 : 1 + n], out[1 + n :]

class _SelfCache:
    """The self-attention keys/values of the rows decoding, in two sets of reused buffers.

    `decoder_with_past` writes each step's present keys/values (the past one step longer) straight
    into one set (ONNX Runtime's I/O binding: no copy out of its arena); a beam reordering or rows
    leaving gathers them into the other set with `np.take(out=)`. Before, every step allocated
    fresh arrays for both (ORT's outputs, then the fancy-indexed gather): at beam 4, batch 32 the
    gather alone was 15 % of the decode, most of it page faults on the new arrays. Each tensor is
    a view of a `Buffer`, so any shape fits without copying. They are the decode's own: a finished
    batch gives them back.
    """

    def __init__(self, graphs: Seq2SeqGraphs, self_kv: list[np.ndarray]):
        self._graphs = graphs
        self._binding = graphs.decoder_with_past.io_binding()
        self._sets = [[Buffer() for _ in self_kv] for _ in range(2)]
        self._current = -1  # the set holding `kv`; -1: the first step's own arrays
        self.kv = self_kv

    def _views(self, shape: tuple[int, ...]) -> list[np.ndarray]:
        index = 1 if self._current == 0 else 0  # its contents are dead: the other set holds the cache
        self._current = index
        return [buffer.view(shape) for buffer in self._sets[index]]

    def select(self, rows: np.ndarray) -> None:
        """Keep these rows, in this order (beam reordering, finished rows leaving)."""
        kept = self._views((len(rows), *self.kv[0].shape[1:]))
        for source, target in zip(self.kv, kept):
            np.take(source, rows, axis=0, out=target)
        self.kv = kept

    def step(self, tokens: np.ndarray, mask: np.ndarray, cross_kv: list) -> np.ndarray:
        """One `decoder_with_past` step: the rows' last hidden states; the cache grows by one."""
        graphs, binding = self._graphs, self._binding
        rows, heads, length, width = self.kv[0].shape
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        binding.bind_cpu_input("input_ids", np.ascontiguousarray(tokens[:, None]))
        binding.bind_cpu_input("encoder_attention_mask", np.ascontiguousarray(mask))
        for name, value in zip(graphs._self_names, self.kv):
            binding.bind_cpu_input(name, value)
        for name, value in zip(graphs._cross_names, cross_kv):
            binding.bind_cpu_input(name, value)
        hidden = np.empty((rows, 1, graphs._hidden_size), np.float32)
        binding.bind_output("hidden", "cpu", 0, np.float32, list(hidden.shape), hidden.ctypes.data)
        present = self._views((rows, heads, length + 1, width))
        for name, value in zip(graphs._next_outputs[1:], present):
            binding.bind_output(name, "cpu", 0, np.float32, list(value.shape), value.ctypes.data)
        graphs.decoder_with_past.run_with_iobinding(binding)
        self.kv = present
        return hidden[:, -1, :]


def _start(graphs: Seq2SeqGraphs, batch: DecodeBatch, beam_size: int = 1):
    """Encode, and run the decoder prefix once per sentence; for beam search each sentence's row
    is then repeated `beam_size` times (every beam starts from the same prefix, so the prefix is
    not decoded once per beam: at beam 4, batch 32 the prefix step over every beam was most of
    the 10 % the start took)."""
    attention_mask = batch.attention_mask
    encoded = graphs.encode(batch.input_ids, attention_mask)
    decoder_ids = np.tile(np.asarray(batch.prefix, dtype=np.int64), (encoded.shape[0], 1))
    hidden, self_kv, cross_kv = graphs.first_step(decoder_ids, encoded, attention_mask)
    if beam_size > 1:
        repeat = lambda a: np.repeat(a, beam_size, axis=0)  # noqa: E731
        hidden, attention_mask = repeat(hidden), repeat(attention_mask)
        self_kv, cross_kv = [repeat(kv) for kv in self_kv], [repeat(kv) for kv in cross_kv]
    return hidden, _SelfCache(graphs, self_kv), cross_kv, attention_mask


def greedy(graphs: Seq2SeqGraphs, head: OutputHead, batch: DecodeBatch) -> list[Hypothesis]:
    limits, eos_id = batch.limits, batch.eos_id
    hidden, cache, cross_kv, mask = _start(graphs, batch)
    banned_columns, eos_columns = head.columns(batch.banned), head.columns([eos_id])
    results = [Hypothesis([], 0.0) for _ in range(len(batch.input_ids))]
    alive = np.arange(len(batch.input_ids))
    max_new = limits.max_new_tokens
    buffer = Buffer()
    step = 0
    while True:
        logits = head.logits_into(hidden, buffer)
        logits[:, banned_columns] = NEG_INF
        if step < limits.min_new_tokens:
            logits[:, eos_columns] = NEG_INF
        columns = logits.argmax(axis=-1)
        chosen = _chosen_logprobs(logits, columns)
        tokens = head.vocabulary_ids(columns)
        for row, token, logprob in zip(alive, tokens.tolist(), chosen.tolist()):
            results[row].tokens.append(token)
            results[row].logprob += logprob
        step += 1
        done = (tokens == eos_id) | (step >= max_new[alive])
        if done.all():
            return results
        if done.any():
            keep = ~done
            alive, tokens, mask = alive[keep], tokens[keep], mask[keep]
            cache.select(np.flatnonzero(keep))
            cross_kv = [kv[keep] for kv in cross_kv]
        hidden = cache.step(tokens, mask, cross_kv)


def _chosen_logprobs(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """log softmax at the argmax: -log(sum(exp(logits - max))), computed in place.

    The full log-softmax over a 58k vocabulary cost a sixth of each greedy step; this takes three
    passes instead of six and overwrites `logits`, which the caller no longer needs.
    """
    best = logits[np.arange(len(tokens)), tokens]
    logits -= best[:, None]
    np.exp(logits, out=logits)
    return -np.log(logits.sum(axis=-1))


def beam_search(
    graphs: Seq2SeqGraphs, head: OutputHead, batch: DecodeBatch, beam_size: int, length_penalty: float = 1.0
) -> list[Hypothesis]:
    """Standard beam search; a hypothesis is ranked by logprob / length ** length_penalty.

    Each beam's 2 x beam_size best next tokens come from the head's TopK (plus room for the
    banned ones, dropped here); a sentence's best 2 x beam_size candidates are among them.
    A sentence stops when it has `beam_size` finished hypotheses and no running beam can still beat
    the worst of them (Hugging Face's `early_stopping=False` rule), or at its length bound.
    """
    limits, eos_id, banned = batch.limits, batch.eos_id, batch.banned
    count = len(batch.input_ids)
    hidden, cache, cross_kv, mask = _start(graphs, batch, beam_size)
    wanted = 2 * beam_size
    # Only beam 0 of each sentence is live at the first step, so the first expansion picks distinct tokens.
    scores = np.tile(np.array([0.0] + [-np.inf] * (beam_size - 1), dtype=np.float32), count)
    beams: list[list[int]] = [[] for _ in range(count * beam_size)]
    finished: list[list[tuple[float, Hypothesis]]] = [[] for _ in range(count)]
    alive = np.arange(count)  # sentence ids still decoding, in row-block order
    step = 0
    while True:
        excluded = set(banned) | ({eos_id} if step < limits.min_new_tokens else set())
        values, ids = head.topk(hidden, wanted + len(excluded))
        if excluded:
            values = np.where(np.isin(ids, list(excluded)), NEG_INF, values)
        width = values.shape[1]
        candidates = (scores[:, None] + values).reshape(len(alive), beam_size * width)
        ids = ids.reshape(len(alive), beam_size * width)
        step += 1
        next_rows, next_tokens, next_scores, next_beams, still = [], [], [], [], []
        for block, sentence in enumerate(alive.tolist()):
            chosen = 0
            for flat in np.argsort(-candidates[block], kind="stable").tolist():
                score = float(candidates[block, flat])
                if score == -np.inf:
                    break
                row = block * beam_size + flat // width
                token = int(ids[block, flat])
                tokens = beams[row] + [token]
                if token == eos_id:
                    _add_finished(finished[sentence], Hypothesis(tokens, score), beam_size, length_penalty)
                    continue
                next_rows.append(row)
                next_tokens.append(token)
                next_scores.append(score)
                next_beams.append(tokens)
                chosen += 1
                if chosen == beam_size:
                    break
            running = next_scores[-chosen:] if chosen else []
            at_limit = step >= limits.max_new_tokens[sentence]
            if at_limit or _sentence_done(finished[sentence], running, step, beam_size, length_penalty) or chosen < beam_size:
                for tokens, score in zip(next_beams[-chosen:] if chosen else [], running):
                    _add_finished(finished[sentence], Hypothesis(tokens, score), beam_size, length_penalty)
                del next_rows[len(next_rows) - chosen :], next_tokens[len(next_tokens) - chosen :]
                del next_scores[len(next_scores) - chosen :], next_beams[len(next_beams) - chosen :]
            else:
                still.append(sentence)
        if not still:
            break
        if len(still) < len(alive):
            # Every beam of a sentence has the same cross-attention keys/values and mask: they are
            # re-selected only when sentences leave, not on every reordering of the beams.
            blocks = np.flatnonzero(np.isin(alive, still))
            kept_rows = (blocks[:, None] * beam_size + np.arange(beam_size)).reshape(-1)
            mask = mask[kept_rows]
            cross_kv = [kv[kept_rows] for kv in cross_kv]
        alive = np.asarray(still)
        cache.select(np.asarray(next_rows))
        scores = np.asarray(next_scores, dtype=np.float32)
        beams = next_beams
        hidden = cache.step(np.asarray(next_tokens, dtype=np.int64), mask, cross_kv)
    return [max(hyps, key=lambda pair: pair[0])[1] for hyps in finished]


def _add_finished(hyps: list, hypothesis: Hypothesis, beam_size: int, length_penalty: float) -> None:
    hyps.append((hypothesis.logprob / len(hypothesis.tokens) ** length_penalty, hypothesis))
    if len(hyps) > beam_size:
        hyps.remove(min(hyps, key=lambda pair: pair[0]))


def _sentence_done(hyps: list, running: list[float], step: int, beam_size: int, length_penalty: float) -> bool:
    if len(hyps) < beam_size:
        return False
    best_running = max(running) if running else -np.inf
    return min(score for score, _ in hyps) >= best_running / step**length_penalty
