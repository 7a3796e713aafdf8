"""Engine framing, differentially: on the real Apertium pipelines, a segment's answer is its own
whatever its batch mates contain. Hostile segments (any Unicode, all of the stream syntax, NUL,
noncharacters, long words) go into one pipelined stream with innocent sentences; every segment's
answer must equal its answer alone, no answer may carry an innocent segment's translation, and no
engine mark may reach the text. Skips where Apertium is not installed."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ipc.tiers import FALLBACK
from workers.apertium import ApertiumModel, data_dir, installed_modes
from workers.manifest import ModelSpec

pytestmark = pytest.mark.timeout(600)

MODES = {"eng-spa": ("en", "es"), "fr-es": ("fr", "es")}
MISSING = [mode for mode in MODES if mode not in installed_modes()]
needs_apertium = pytest.mark.skipif(
    bool(MISSING),
    reason=f"Apertium modes {MISSING} not installed: apt-get install apertium apertium-eng-spa apertium-fr-es "
    "(make system-deps does it as root)",
)

INNOCENT = {
    "eng-spa": ["Hello my friend.", "The dog sleeps in the garden.", "Good morning, how are you?",
                "My neighbour bought a new bicycle yesterday.", "I will call you tomorrow at noon."],
    "fr-es": ["Merci beaucoup pour ton message.", "Le chien du voisin dort.", "On se voit demain à la gare ?",
              "Il fait très beau aujourd'hui.", "Je t'appelle ce soir."],
}
# Apertium's stream syntax (lttoolbox's escaped characters, the text deformatter's escape and space
# characters, the readers' word marks, post-generation and multiword joins) and what its readers
# take for the end of a frame (NUL, U+FFFF: ICU's U_EOF).
SYNTAX = "\\[]^$/@<>{}*#~+=%|\0\uffff\ufffe\ufdd0\U0010ffff\r\x0b\x0c\x1c\x85\u2028\u00ad\ufeff"
hostile_text = st.one_of(
    st.text(alphabet=st.sampled_from(SYNTAX + "ab 1."), min_size=1, max_size=12),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20),
    st.builds(lambda w, s: w + s, st.sampled_from(["a" * 3000, "Supercalifragilistic" * 50]), st.sampled_from(SYNTAX)),
    st.builds(lambda w, s, e: w + s + e, st.sampled_from(["I love cats", "Bonjour", "20h30", ""]),
              st.sampled_from(SYNTAX), st.sampled_from(["", " ", "x", "[", "]"])),
)


def model_for(mode: str) -> ApertiumModel:
    source, target = MODES[mode]
    spec = ModelSpec(f"apertium-{mode}", data_dir() / "modes", "apertium", FALLBACK, "none", f"apertium:{mode}",
                     ((source, target),), {}, mode=mode)
    return ApertiumModel(spec)


def translate(model: ApertiumModel, texts: list[str]) -> list[str | None]:
    """Each text's translation in one pipelined run; None where the engine failed it."""
    (source, target), = model.spec.pairs
    chunks = [model.chunk(t, source, target, 1) for t in texts]
    model.run(source, target, 1, chunks)
    return [None if c.failure else c.text for c in chunks]


@pytest.fixture(scope="module")
def engines():
    made = {mode: model_for(mode) for mode in MODES if mode not in MISSING}
    alone: dict[tuple[str, str], str | None] = {}
    yield made, alone
    for model in made.values():
        model.close()


def check_batch(engines, mode: str, batch: list[str]) -> None:
    made, alone = engines
    model = made[mode]
    for text in [*INNOCENT[mode], *batch]:
        if (mode, text) not in alone:
            alone[(mode, text)] = translate(model, [text])[0]
    answers = translate(model, batch)
    innocent = {t: alone[(mode, t)] for t in INNOCENT[mode]}
    for text, answer in zip(batch, answers):
        # Content cannot break the framing: every frame comes back, none fails, none is foreign.
        assert answer is not None and answer == alone[(mode, text)], (text, answer, batch)
        assert all(mark in text for mark in "*#@~" if mark in answer), ("an engine mark leaked", text, answer)
        for sentence, translation in innocent.items():
            assert sentence in text or translation not in answer, ("another segment's text", text, answer, batch)
    assert (model.pipeline.starts, model.pipeline.desyncs) == (1, 0)  # nothing restarted the chain


def hostile_batches(mode: str):
    segment = st.one_of(st.sampled_from(INNOCENT[mode]), hostile_text)
    return st.lists(segment, min_size=2, max_size=8).map(lambda b: [*b, *INNOCENT[mode][:2]])


@needs_apertium
def test_a_segment_ending_in_a_caret_does_not_shift_its_mates_answers(engines):
    """The attack as found: a segment ending in `^` shifted the null-flush chain's answers by one."""
    check_batch(engines, "eng-spa", ["Hello my friend.", "I love cats ^", "The dog sleeps in the garden.",
                                     "Good morning, how are you?"])


@needs_apertium
@settings(max_examples=80)
@given(batch=hostile_batches("eng-spa"))
@example(batch=["Hello my friend.", "I love cats ^", "The dog sleeps in the garden.", "Good morning, how are you?"])
@example(batch=["a\uffffb", "Hello my friend.", "x\0y", "Good morning, how are you?"])
def test_english_to_spanish_answers_are_their_own_whatever_the_batch(engines, batch):
    check_batch(engines, "eng-spa", batch)


@needs_apertium
@settings(max_examples=60)
@given(batch=hostile_batches("fr-es"))
@example(batch=["Merci beaucoup pour ton message.", "Bonjour ^", "Le chien du voisin dort.", "{x} $ ^ /"])
def test_french_to_spanish_answers_are_their_own_whatever_the_batch(engines, batch):
    check_batch(engines, "fr-es", batch)
