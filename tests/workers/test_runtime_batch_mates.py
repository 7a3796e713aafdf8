"""Neural batches with hostile batch mates, differentially: on the built-in models, a message's
translation is the same alone as in one batch with any other messages (any Unicode, NUL,
noncharacters, stream syntax, texts long enough to be split), so no batch mate can alter, take or
receive another's text. The Apertium side of the property is in test_apertium_framing.py."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from modelbuild.corpus import generate_corpus
from workers.jobs import Translation, TranslationJob
from workers.runtime import Runtime

pytestmark = pytest.mark.timeout(600)

INNOCENT = [s["en"] for s in generate_corpus(6, seed=1616)]
HOSTILE = st.one_of(
    st.text(alphabet=st.sampled_from("\\[]^$/@<>{}*#~+=%|\0\uffff\ufdd0 ab."), min_size=1, max_size=16),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
    st.sampled_from(["the cat " * 120, "x" * 2000, "the dog sees the cat ^", "the cat\0sees the dog"]),
)


@pytest.fixture(scope="module")
def runtime(builtin_models_dir):
    rt = Runtime.load(builtin_models_dir, tiers={"basic": "builtin-marian-en-fr", "medium": "builtin-m2m-mini"})
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def alone(runtime):
    found: dict[tuple[str, str, str], object] = {}

    def translate(text: str, target: str, tier: str):
        if (text, target, tier) not in found:
            found[(text, target, tier)] = runtime.translate([TranslationJob(text, target, "en", tier)])[0]
        return found[(text, target, tier)]

    return translate


@settings(max_examples=40)
@given(mates=st.lists(st.tuples(HOSTILE, st.sampled_from(["fr", "es", "de"]), st.sampled_from(["basic", "medium"])),
                      min_size=1, max_size=6),
       order=st.randoms(use_true_random=False))
@example(mates=[("the dog sees the cat ^", "fr", "basic"), ("\0\uffff", "fr", "basic")], order=None)
def test_an_innocent_message_is_translated_the_same_alone_and_among_hostile_mates(runtime, alone, mates, order):
    jobs = [TranslationJob(text, "fr", "en", "basic") for text in INNOCENT[:3]]
    jobs += [TranslationJob(text, target, "en", tier) for text, target, tier in mates]
    if order is not None:
        order.shuffle(jobs)
    together = runtime.translate(jobs)
    for job, result in zip(jobs, together):
        assert result == alone(job.text, job.target_language, job.tier), (job, result)
        if job.text in INNOCENT:
            assert isinstance(result, Translation) and result.text
    innocent = {alone(t, "fr", "basic").text for t in INNOCENT[:3]}
    for job, result in zip(jobs, together):
        if job.text not in INNOCENT and isinstance(result, Translation):
            assert result.text not in innocent or job.text in INNOCENT, (job, result)
