"""Chat messages through the runtime on the built-in models: segments, kept parts, long messages,
tier fallback, pivot, a failing model, the segment cache and its keys."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelbuild.corpus import generate_corpus
from tests.fakes.segment_cache import DictCache
from workers.decoding import Hypothesis
from workers.jobs import Translation, TranslationError, TranslationJob
from workers.runtime import BatchLimits, Runtime
from workers.segmenter import place_marks, reassemble, segment, strip_marks

pytestmark = pytest.mark.timeout(300)

SENTENCES = generate_corpus(120, seed=2024)
BASIC, MEDIUM, TO_EN = "builtin-marian-en-fr", "builtin-m2m-mini", "builtin-m2m-to-en"


@pytest.fixture(scope="module")
def runtime(builtin_models_dir):
    return Runtime.load(builtin_models_dir, tiers={"basic": [BASIC], "medium": [MEDIUM, TO_EN]})


def job(text, target, source="en", tier="auto"):
    return TranslationJob(text, target, source_language=source, tier=tier)


def alone(runtime, texts, target, source="en", tier="auto"):
    """Each text translated as a message of its own."""
    out = runtime.translate([job(t, target, source, tier) for t in texts])
    assert all(isinstance(r, Translation) for r in out), out
    return [r.text for r in out]


def sentence(row: dict, lang: str = "en") -> str:
    text = row[lang]
    return text if text[-1] in ".!?" else text + "."


def test_each_sentence_and_every_kept_part_come_back_in_place(runtime):
    first, second, third, fourth = (sentence(SENTENCES[i]) for i in range(4))
    message = (
        f"  {first} {second} 😀\n"
        f"\n"
        f"> {third} https://example.com/a?b=1 @alice #news `x = 1`\n"
        f"```\nprint('hello the cat')\n```\n"
        f"- **{fourth}** 👨‍👩‍👧 12:30\n"
    )
    pieces = segment(message)
    texts = [p.text for p in pieces if p.translatable]
    assert [strip_marks(t) for t in texts] == [first, second, third, fourth]
    (result,) = runtime.translate([job(message, "fr", tier="basic")])
    assert isinstance(result, Translation), result
    alone_texts = alone(runtime, [strip_marks(t) for t in texts], "fr", tier="basic")
    assert result.text == reassemble(pieces, [place_marks(m, t) for m, t in zip(texts, alone_texts)])
    for kept in (" 😀\n\n> ", " https://example.com/a?b=1 @alice #news `x = 1`\n```\nprint('hello the cat')\n```\n- **",
                 "** 👨‍👩‍👧 12:30\n"):
        assert kept in result.text
    assert result.text.startswith("  ")
    assert result.segments == 4 and result.truncated_segments == () and 0 < result.confidence <= 1


def test_a_message_of_only_kept_parts_never_reaches_a_model(runtime, monkeypatch):
    monkeypatch.setattr(runtime._models[BASIC], "generate", lambda *a, **k: pytest.fail("a model was called"))
    (result,) = runtime.translate([job("😀 https://example.com @bob 12:30 !!!", "fr", tier="basic")])
    assert result.text == "😀 https://example.com @bob 12:30 !!!" and result.segments == 0


def test_a_4000_character_message_is_translated_completely_in_order(runtime):
    sentences, length = [], 0
    for s in generate_corpus(400, seed=7):
        sentences.append(sentence(s))
        length += len(sentences[-1]) + 1
        if length > 4000:
            break
    message = " ".join(sentences)
    assert len(message) > 4000
    (result,) = runtime.translate([job(message, "es", tier="medium")])
    assert isinstance(result, Translation), result
    assert result.text == " ".join(alone(runtime, sentences, "es", tier="medium"))
    assert result.segments == len(sentences) and result.truncated_segments == ()


def test_a_segment_longer_than_the_model_takes_is_split_not_refused(runtime):
    words = " ".join(s["en"].rstrip(".!?").lower() for s in SENTENCES[:60])  # no sentence end: one long segment
    model = runtime._models[BASIC]
    assert len(model.source_ids(words, "en", "fr")) > model.spec.max_source_tokens
    chunks = [p.text for p in runtime._fit(model, words, "en", "fr") if p.translatable]
    assert len(chunks) > 1 and all(len(model.source_ids(c, "en", "fr")) <= model.spec.max_source_tokens for c in chunks)
    assert " ".join(chunks) == words
    (result,) = runtime.translate([job(words, "fr", tier="basic")])
    assert isinstance(result, Translation), result  # never text_too_long
    assert result.segments == 1 and result.text


def test_output_that_hits_the_bound_is_marked(builtin_models_dir):
    tight = Runtime.load(builtin_models_dir, tiers={"basic": [BASIC]}, limits=BatchLimits(length_ratio=0.0, length_slack=2))
    (result,) = tight.translate([job(f"{sentence(SENTENCES[0])} {sentence(SENTENCES[1])}", "fr")])
    assert result.truncated_segments == (0, 1)


def test_a_tier_that_does_not_serve_the_pair_falls_back_to_the_next(runtime):
    (result,) = runtime.translate([job(SENTENCES[0]["en"], "es", tier="basic")])
    assert (result.tier, result.model, result.fallback) == ("medium", MEDIUM, True)
    (direct,) = runtime.translate([job(SENTENCES[0]["en"], "fr", tier="basic")])
    assert (direct.tier, direct.fallback) == ("basic", False)


def test_a_pair_no_model_serves_goes_through_english_segment_by_segment(runtime):
    french = [sentence(SENTENCES[i], "fr") for i in range(3)]
    (result,) = runtime.translate([job("\n".join(french), "es", source="fr")])
    assert isinstance(result, Translation), result
    assert (result.pivot, result.model) == ("en", f"{TO_EN}+{MEDIUM}")
    english = alone(runtime, french, "en", source="fr")
    assert result.text == "\n".join(alone(runtime, english, "es"))
    assert result.segments == 3


def test_unsupported_pair_names_what_is_served(builtin_models_dir):
    only_basic = Runtime.load(builtin_models_dir, tiers={"basic": [BASIC]})
    (error,) = only_basic.translate([job("le chat", "es", source="fr")])
    assert isinstance(error, TranslationError) and error.code == "unsupported_language"
    assert "fr -> es" in error.message and "en-fr" in error.message


def test_a_failing_model_hands_its_segments_to_another_tier(runtime, monkeypatch):
    text = f"{sentence(SENTENCES[0])} {sentence(SENTENCES[1])}"
    expected = runtime.translate([job(text, "fr", tier="medium")])[0].text

    def broken(*args, **kwargs):
        raise RuntimeError("onnx runtime exploded")

    monkeypatch.setattr(runtime._models[BASIC], "generate", broken)
    (result,) = runtime.translate([job(text, "fr", tier="basic")])
    assert isinstance(result, Translation), result
    assert result.text == expected and result.retried_segments == (0, 1) and result.tier == "medium"


def test_non_finite_scores_count_as_a_failure_and_with_no_other_model_the_job_fails(builtin_models_dir, monkeypatch):
    only_basic = Runtime.load(builtin_models_dir, tiers={"basic": [BASIC]})
    model = only_basic._models[BASIC]
    monkeypatch.setattr(model, "generate", lambda sources, *a, **k: [Hypothesis([5, 0], float("nan")) for _ in sources])
    error, good = only_basic.translate([job(SENTENCES[0]["en"], "fr"), job("hello", "en", source="en")])
    assert isinstance(error, TranslationError) and error.code == "translation_failed"
    assert "non-finite" in error.message and "no other model" in error.message
    assert isinstance(good, Translation)  # the same batch's other jobs are unaffected


def test_segments_are_cached_and_shared_across_messages(runtime):
    cache = DictCache()
    a, b = sentence(SENTENCES[5]), sentence(SENTENCES[6])
    (first,) = runtime.translate([job(f"{a} {b}", "de", tier="medium")], cache)
    assert first.cached_segments == 0 and len(cache.entries) == 2
    (second,) = runtime.translate([job(f"{b}\n\n{a} 😀", "de", tier="medium")], cache)
    assert second.cached_segments == 2
    assert second.text == reassemble(segment(f"{b}\n\n{a} 😀"), alone(runtime, [b, a], "de", tier="medium"))


SEPARATORS = st.sampled_from([" ", "  ", "\t", "\u001f", "\u001c", "\u0085", "\u00a0", "\u2003", "\u200b", ""])


@settings(derandomize=True, deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(st.lists(SEPARATORS, min_size=4, max_size=4), st.lists(SEPARATORS, min_size=4, max_size=4))
def test_two_texts_share_a_segment_key_only_if_the_model_sees_the_same_tokens(runtime, seps_a, seps_b):
    words = ["the", "farmer", "feeds", "the", "cow"]
    a = words[0] + "".join(s + w for s, w in zip(seps_a, words[1:]))
    b = words[0] + "".join(s + w for s, w in zip(seps_b, words[1:]))
    model = runtime._models[BASIC]
    chunk_a, chunk_b = runtime._chunk(model, a, "en", "fr", 1), runtime._chunk(model, b, "en", "fr", 1)
    assert (chunk_a.key == chunk_b.key) == (chunk_a.ids == chunk_b.ids)


def test_a_separator_spelling_cannot_poison_the_plain_sentence(runtime):
    cache = DictCache()
    garbled, plain = "the\u001ffarmer\u001ffeeds\u001fthe\u001fcow", "the farmer feeds the cow"
    runtime.translate([job(garbled, "fr", tier="basic")], cache)
    (result,) = runtime.translate([job(plain, "fr", tier="basic")], cache)
    (fresh,) = runtime.translate([job(plain, "fr", tier="basic")])
    assert result.text == fresh.text
    model = runtime._models[BASIC]
    if model.source_ids(garbled, "en", "fr") != model.source_ids(plain, "en", "fr"):
        assert result.cached_segments == 0


def test_mixed_batches_give_the_same_messages_as_one_by_one(runtime):
    rng = np.random.default_rng(3)
    jobs = []
    for i in range(12):
        picks = rng.choice(len(SENTENCES), int(rng.integers(1, 4)))
        text = "\n".join(sentence(SENTENCES[p]) for p in picks)
        jobs.append(job(text, ["fr", "es", "de"][i % 3], tier=["basic", "medium", "auto"][i % 3]))
    assert runtime.translate(jobs) == [runtime.translate([j])[0] for j in jobs]
