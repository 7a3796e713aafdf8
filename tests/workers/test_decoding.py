"""Decoding's reused key/value buffers and shared decoder prefix: the same tokens and scores as a
plain step-by-step decode, and a row's result independent of its batch mates, at greedy and beam."""

from __future__ import annotations

import numpy as np
import pytest

from modelbuild.corpus import generate_corpus
from workers.manifest import load_specs
from workers.runtime import Model

pytestmark = pytest.mark.timeout(300)

HELD_OUT = generate_corpus(12, seed=777)


@pytest.fixture(scope="module")
def model(builtin_models_dir):
    return Model(load_specs(builtin_models_dir)["builtin-m2m-mini"])


def _sources(model, target="de"):
    return [model.source_ids(s["en"], "en", target) for s in HELD_OUT]


def _plain_greedy(model: Model, ids: list[int], target: str, max_new: int) -> tuple[list[int], float]:
    """One row, every step through `InferenceSession.run` with fresh arrays: the reference."""
    graphs, framing = model.graphs, model.spec.framing
    input_ids, mask = np.asarray([ids], np.int64), np.ones((1, len(ids)), np.int64)
    encoded = graphs.encode(input_ids, mask)
    hidden, self_kv, cross_kv = graphs.first_step(np.asarray([framing.decoder_prefix(target)], np.int64), encoded, mask)
    tokens, logprob = [], 0.0
    while True:
        logits = graphs.head.logits(hidden).astype(np.float64)
        logits[:, model.banned] = -np.inf
        token = int(logits[0].argmax())
        logprob += float(logits[0, token] - np.log(np.exp(logits[0] - logits[0].max()).sum()) - logits[0].max())
        tokens.append(token)
        if token == framing.eos_id or len(tokens) >= max_new:
            return tokens, logprob
        feed = {"input_ids": np.asarray([[token]], np.int64), "encoder_attention_mask": mask}
        feed.update(zip(graphs._self_names, self_kv))
        feed.update(zip(graphs._cross_names, cross_kv))
        out = graphs.decoder_with_past.run(graphs._next_outputs, feed)
        hidden, self_kv = out[0][:, -1, :], out[1:]


def test_greedy_equals_a_plain_step_by_step_decode(model):
    sources = _sources(model)
    budgets = [4 + 3 * i for i in range(len(sources))]  # rows leave the batch at different steps
    batched = model.generate(sources, "de", 1, budgets)
    for ids, budget, hyp in zip(sources, budgets, batched):
        tokens, logprob = _plain_greedy(model, ids, "de", budget)
        assert hyp.tokens == tokens
        assert hyp.logprob == pytest.approx(logprob, abs=1e-4)


@pytest.mark.parametrize("beam", [1, 2, 4])
def test_a_row_decodes_the_same_alone_and_in_a_batch(model, beam):
    sources = _sources(model)
    budgets = [30 - 2 * i for i in range(len(sources))]  # sentences stop at different steps
    batched = model.generate(sources, "de", beam, budgets)
    alone = [model.generate([ids], "de", beam, [budget])[0] for ids, budget in zip(sources, budgets)]
    assert [(h.tokens, h.logprob) for h in batched] == [(h.tokens, h.logprob) for h in alone]


def test_forced_length_decodes_reuse_buffers_across_batches(model):
    """Two decodes in a row (the buffers of the first are gone) give identical results."""
    sources = _sources(model)[:6]
    first = model.generate(sources, "fr", 4, [12] * 6, 12)
    second = model.generate(sources, "fr", 4, [12] * 6, 12)
    assert [(h.tokens, h.logprob) for h in first] == [(h.tokens, h.logprob) for h in second]
    assert all(len(h.tokens) == 12 for h in first)
