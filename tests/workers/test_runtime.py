"""The runtime on the built-in models: equivalence with PyTorch, batching, beam search, bad input."""

from __future__ import annotations

import numpy as np
import psutil
import pytest

from modelbuild.corpus import SAMPLE_SENTENCES, generate_corpus
from workers.jobs import Translation, TranslationError, TranslationJob
from workers.manifest import load_specs
from workers.runtime import Model, Runtime

pytestmark = pytest.mark.timeout(300)

HELD_OUT = generate_corpus(40, seed=4242)  # not the training seed: sentences the model never saw verbatim


@pytest.fixture(scope="module")
def runtime(builtin_models_dir):
    return Runtime.load(builtin_models_dir, tiers={"basic": "builtin-marian-en-fr", "medium": "builtin-m2m-mini"})


def job(text, target, source="en", **kw):
    return TranslationJob(text, target, source_language=source, **kw)


@pytest.fixture(scope="module")
def references(builtin_models_dir):
    """The PyTorch checkpoints the built-in exports came from."""
    from modelbuild.checkpoint import load_reference

    return {name: load_reference(str(builtin_models_dir / ".build" / name)) for name in ("builtin-marian-en-fr", "builtin-m2m-mini")}


@pytest.mark.parametrize("name, pairs", [("builtin-marian-en-fr", [("en", "fr")]),
                                         ("builtin-m2m-mini", [("en", "fr"), ("en", "es"), ("en", "de")])])
def test_greedy_output_equals_pytorch_token_for_token(builtin_models_dir, references, name, pairs):
    from modelbuild.verify import torch_greedy

    model = Model(load_specs(builtin_models_dir)[name])
    _, tokenizer, torch_model, family, _ = references[name]
    for src, tgt in pairs:
        texts = [s[src] for s in HELD_OUT[:10]] + [s[src] for s in SAMPLE_SENTENCES[:4]]
        sources = [model.source_ids(text, src, tgt) for text in texts]
        budgets = [2 * len(ids) + 10 for ids in sources]
        got = model.generate(sources, tgt, max_new_tokens=budgets)  # one batch, mixed lengths
        for ids, budget, hyp in zip(sources, budgets, got):
            assert hyp.tokens == torch_greedy(torch_model, tokenizer, family, model.spec.framing, ids, tgt, budget)


def test_builtin_models_really_translate_in_domain_sentences(runtime):
    jobs = [job("the cat sees the dog", "fr", tier="basic")]
    jobs += [job("the cat sees the dog", lang, tier="medium") for lang in ("fr", "es", "de")]
    texts = [r.text for r in runtime.translate(jobs)]
    assert texts == ["le chat voit le chien", "le chat voit le chien", "el gato ve al perro", "die katze sieht den hund"]
    held_out = runtime.translate([job(s["en"], "fr") for s in HELD_OUT])
    exact = sum(r.text == s["fr"] for r, s in zip(held_out, HELD_OUT))
    assert exact >= 0.8 * len(HELD_OUT), [(r.text, s["fr"]) for r, s in zip(held_out, HELD_OUT) if r.text != s["fr"]]


def test_mixed_length_batch_gives_the_same_outputs_as_one_by_one(runtime):
    texts = ["hello", "the cat sees the dog", "the old farmer feeds the small black cow in the garden", "thank you"]
    texts += [s["en"] for s in HELD_OUT[:12]]
    jobs = [job(text, tgt, tier="medium") for text in texts for tgt in ("fr", "de")]
    together = runtime.translate(jobs)
    alone = [runtime.translate([job])[0] for job in jobs]
    assert together == alone
    assert all(isinstance(r, Translation) for r in together)


def test_results_come_back_in_job_order_with_model_and_confidence(runtime):
    jobs = [job("the cat sees the dog", "es", tier="medium"), job("", "fr"),
            job("the dog sees the cat", "fr", tier="basic")]
    first, error, last = runtime.translate(jobs)
    assert (first.model, first.target_language, first.source_language) == ("builtin-m2m-mini", "es", "en")
    assert isinstance(error, TranslationError)
    assert last.model == "builtin-marian-en-fr" and last.text == "le chien voit le chat"
    assert 0.0 < first.confidence <= 1.0


def test_confidence_comes_from_the_model_and_drops_on_gibberish(runtime):
    good, noise = runtime.translate([job("the cat sees the dog", "fr", tier="basic"),
                                     job("zqx vvv plomf krr", "fr", tier="basic")])
    assert good.confidence > noise.confidence
    assert good.confidence > 0.5


def test_beam_search_finds_the_translation_and_scores_at_least_greedy(builtin_models_dir):
    model = Model(load_specs(builtin_models_dir)["builtin-m2m-mini"])
    for sample in SAMPLE_SENTENCES[:6]:
        ids = model.source_ids(sample["en"], "en", "de")
        greedy = model.generate([ids], "de", beam_size=1, max_new_tokens=[40])[0]
        beam = model.generate([ids], "de", beam_size=4, max_new_tokens=[40])[0]
        assert model.detokenize(beam.tokens) == sample["de"]
        assert beam.logprob / len(beam.tokens) >= greedy.logprob / len(greedy.tokens) - 1e-4


def test_beam_search_batches_like_one_by_one(runtime):
    jobs = [job(s["en"], "fr", tier="medium", beam_size=3) for s in HELD_OUT[:8]]
    assert runtime.translate(jobs) == [runtime.translate([job])[0] for job in jobs]


def test_output_length_is_bounded_by_the_input_length(builtin_models_dir):
    model = Model(load_specs(builtin_models_dir)["builtin-marian-en-fr"])
    ids = model.source_ids("a", "en", "fr")
    # min_new_tokens keeps the model from stopping, so only the bound can end decoding.
    hyp = model.generate([ids], "fr", max_new_tokens=[2 * len(ids) + 10], min_new_tokens=1000)[0]
    assert len(hyp.tokens) == 2 * len(ids) + 10


@pytest.mark.parametrize(
    "bad, code",
    [
        (job("", "fr"), "invalid_request"),
        (job("   \n\t ", "fr"), "invalid_request"),
        (job(None, "fr"), "invalid_request"),  # type: ignore[arg-type]
        (job("the cat", "xx"), "unsupported_language"),
        (job("the cat", "de", source="fr", tier="medium"), "unsupported_language"),
        (job("the cat", "fr", tier="deluxe"), "unsupported_model"),
        (job("the cat", "fr", source="auto"), "invalid_request"),  # the edge detects; the runtime needs it given
        (job("the cat", "fr", beam_size=0), "invalid_request"),
        (job("the cat", "fr", beam_size=99), "invalid_request"),
    ],
)
def test_bad_input_gets_a_clear_error_not_an_exception(runtime, bad, code):
    good = job("the cat sees the dog", "fr")
    result, after = runtime.translate([bad, good])
    assert isinstance(result, TranslationError) and result.code == code and result.message
    assert after.text == "le chat voit le chien"


def test_same_language_comes_back_unchanged(runtime):
    same = runtime.translate([job("le chat voit le chien", "fr", source="fr", tier="medium")])[0]
    assert same.text == "le chat voit le chien" and same.confidence == 1.0


def test_languages_and_models_describe_what_is_served(runtime):
    assert runtime.languages()["basic"] == [("en", "fr")]
    assert ("en", "de") in runtime.languages()["medium"]
    described = {m["name"]: m for m in runtime.models()}
    assert described["builtin-m2m-mini"]["family"] == "m2m100"
    assert len(described["builtin-marian-en-fr"]["revision"]) == 16


@pytest.mark.timeout(600)
def test_memory_stays_flat_over_many_varied_batches(runtime):
    rng = np.random.default_rng(0)
    sentences = generate_corpus(400, seed=77)
    process = psutil.Process()

    def run(rounds):
        for _ in range(rounds):
            size = int(rng.integers(1, 24))
            picks = rng.choice(len(sentences), size)
            texts = [" ".join(sentences[i]["en"] for i in picks[: int(rng.integers(1, 4))])] + [sentences[i]["en"] for i in picks]
            runtime.translate([job(t, "fr", tier="basic") for t in texts])

    run(60)  # warm-up: every length bucket and batch size seen once
    before = process.memory_info().rss
    run(200)
    growth_mb = (process.memory_info().rss - before) / 2**20
    assert growth_mb < 40, f"RSS grew {growth_mb:.1f} MiB over 200 varied batches"
