"""Greedy and beam-search decoding over an exported encoder + decoder-with-past pair.

The exporter writes three graphs per model (optimum's `text2text-generation-with-past`):

    encoder_model.onnx            input_ids, attention_mask            -> last_hidden_state
    decoder_model.onnx            input_ids, encoder_hidden_states,    -> logits, present.{i}.{decoder,encoder}.{key,value}
                                  encoder_attention_mask
    decoder_with_past_model.onnx  input_ids (one token), encoder_attention_mask,
                                  past_key_values.{i}.{decoder,encoder}.{key,value}
                                                                       -> logits, present.{i}.decoder.{key,value}

The first step runs the whole decoder prefix (start token, forced language token) through
`decoder_model` and keeps the cross-attention keys/values it returns; every later step feeds one
token per row to `decoder_with_past`, so the prefix is never recomputed. Rows that finish leave the
batch (their key/value rows are dropped), so a long sentence never makes its finished neighbours
pay for more steps.

Scores are natural-log probabilities from the model's own softmax; a result's confidence is the
geometric mean probability of the tokens it chose (forced tokens excluded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.session import open_graphs

NEG_INF = np.float32(-np.inf)
GRAPHS = ("encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx")


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


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class Seq2SeqGraphs:
    def __init__(self, directory: Path, threads: int = 1, packed_dir: Path | None = None):
        self.encoder, self.decoder, self.decoder_with_past = open_graphs(directory, GRAPHS, threads, packed_dir)
        past_names = [i.name for i in self.decoder_with_past.get_inputs() if i.name.startswith("past_key_values.")]
        self.layers = len(past_names) // 4
        self._self_names = [f"past_key_values.{i}.decoder.{kv}" for i in range(self.layers) for kv in ("key", "value")]
        self._cross_names = [f"past_key_values.{i}.encoder.{kv}" for i in range(self.layers) for kv in ("key", "value")]
        first_outputs = [o.name for o in self.decoder.get_outputs()]
        self._first_outputs = ["logits"]
        self._first_outputs += [f"present.{i}.decoder.{kv}" for i in range(self.layers) for kv in ("key", "value")]
        self._first_outputs += [f"present.{i}.encoder.{kv}" for i in range(self.layers) for kv in ("key", "value")]
        assert set(self._first_outputs) <= set(first_outputs), first_outputs
        self._next_outputs = ["logits"] + [f"present.{i}.decoder.{kv}" for i in range(self.layers) for kv in ("key", "value")]

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.encoder.run(["last_hidden_state"], {"input_ids": input_ids, "attention_mask": attention_mask})[0]

    def first_step(self, decoder_ids: np.ndarray, hidden: np.ndarray, mask: np.ndarray):
        out = self.decoder.run(
            self._first_outputs,
            {"input_ids": decoder_ids, "encoder_hidden_states": hidden, "encoder_attention_mask": mask},
        )
        n = 2 * self.layers
        return out[0][:, -1, :], out[1 : 1 + n], out[1 + n :]

    def next_step(self, tokens: np.ndarray, mask: np.ndarray, self_kv: list, cross_kv: list):
        feed = {"input_ids": tokens[:, None], "encoder_attention_mask": mask}
        feed.update(zip(self._self_names, self_kv))
        feed.update(zip(self._cross_names, cross_kv))
        out = self.decoder_with_past.run(self._next_outputs, feed)
        return out[0][:, -1, :], out[1:]


def _start(graphs: Seq2SeqGraphs, input_ids, attention_mask, prefix, rows):
    hidden = graphs.encode(input_ids, attention_mask)
    if rows is not None:  # beam search: every beam of a sentence starts from the same encoding
        hidden, attention_mask = hidden[rows], attention_mask[rows]
    decoder_ids = np.tile(np.asarray(prefix, dtype=np.int64), (hidden.shape[0], 1))
    logits, self_kv, cross_kv = graphs.first_step(decoder_ids, hidden, attention_mask)
    return logits, self_kv, cross_kv, attention_mask


def _mask_logits(logits: np.ndarray, banned: list[int], eos_id: int, step: int, limits: DecodeLimits) -> None:
    logits[:, banned] = NEG_INF
    if step < limits.min_new_tokens:
        logits[:, eos_id] = NEG_INF


def greedy(
    graphs: Seq2SeqGraphs,
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    prefix: tuple[int, ...],
    limits: DecodeLimits,
    eos_id: int,
    banned: list[int],
) -> list[Hypothesis]:
    logits, self_kv, cross_kv, mask = _start(graphs, input_ids, attention_mask, prefix, None)
    results = [Hypothesis([], 0.0) for _ in range(len(input_ids))]
    alive = np.arange(len(input_ids))
    max_new = limits.max_new_tokens
    step = 0
    while True:
        _mask_logits(logits, banned, eos_id, step, limits)
        tokens = logits.argmax(axis=-1)
        chosen = _chosen_logprobs(logits, tokens)
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
            self_kv = [kv[keep] for kv in self_kv]
            cross_kv = [kv[keep] for kv in cross_kv]
        logits, self_kv = graphs.next_step(tokens, mask, self_kv, cross_kv)


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
    graphs: Seq2SeqGraphs,
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    prefix: tuple[int, ...],
    limits: DecodeLimits,
    eos_id: int,
    banned: list[int],
    beam_size: int,
    length_penalty: float = 1.0,
) -> list[Hypothesis]:
    """Standard beam search; a hypothesis is ranked by logprob / length ** length_penalty.

    A sentence stops when it has `beam_size` finished hypotheses and no running beam can still beat
    the worst of them (Hugging Face's `early_stopping=False` rule), or at its length bound.
    """
    count = len(input_ids)
    rows = np.repeat(np.arange(count), beam_size)
    logits, self_kv, cross_kv, mask = _start(graphs, input_ids, attention_mask, prefix, rows)
    vocab = logits.shape[-1]
    # Only beam 0 of each sentence is live at the first step, so the first expansion picks distinct tokens.
    scores = np.tile(np.array([0.0] + [-np.inf] * (beam_size - 1), dtype=np.float32), count)
    beams: list[list[int]] = [[] for _ in range(count * beam_size)]
    finished: list[list[tuple[float, Hypothesis]]] = [[] for _ in range(count)]
    alive = np.arange(count)  # sentence ids still decoding, in row-block order
    step = 0
    while True:
        logprobs = log_softmax(logits)
        _mask_logits(logprobs, banned, eos_id, step, limits)
        candidates = (scores[:, None] + logprobs).reshape(len(alive), beam_size * vocab)
        top = np.argpartition(-candidates, 2 * beam_size, axis=1)[:, : 2 * beam_size]
        step += 1
        next_rows, next_tokens, next_scores, next_beams, still = [], [], [], [], []
        for block, sentence in enumerate(alive.tolist()):
            order = top[block][np.argsort(-candidates[block, top[block]], kind="stable")]
            chosen = 0
            for flat in order.tolist():
                score = float(candidates[block, flat])
                if score == -np.inf:
                    break
                beam, token = divmod(flat, vocab)
                row = block * beam_size + beam
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
        alive = np.asarray(still)
        take = np.asarray(next_rows)
        mask = mask[take]
        self_kv = [kv[take] for kv in self_kv]
        cross_kv = [kv[take] for kv in cross_kv]
        scores = np.asarray(next_scores, dtype=np.float32)
        beams = next_beams
        logits, self_kv = graphs.next_step(np.asarray(next_tokens, dtype=np.int64), mask, self_kv, cross_kv)
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
