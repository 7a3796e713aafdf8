"""Markup kept whole and honest output, in-process: HTML segmentation (pure), placing marks back
(pure, properties), and through the runtime on the built-in models and the real Apertium pairs:
an inline marker no longer splits its sentence, every HTML tag and attribute comes back in
place, one engine per sentence, and a segment no route knows comes back as typed."""

from __future__ import annotations

import regex
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.apertium import installed_modes
from workers.jobs import Translation, TranslationJob
from workers.runtime import Runtime
from workers.segmenter import MARK_BASE, place_marks, reassemble, segment, strip_marks

pytestmark = pytest.mark.timeout(300)

PROPERTY = settings(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60)
MISSING = [m for m in ("eng-spa", "spa-eng") if m not in installed_modes()]
needs_apertium = pytest.mark.skipif(bool(MISSING), reason=f"Apertium modes {MISSING} not installed (make system-deps)")
TAG = regex.compile(r"<[^>]*>")
M = [chr(MARK_BASE + k) for k in range(8)]

HTML = (
    '<p>I <b>really</b> like <a href="https://example.org/a?b=1" title="the song">this song</a>. '
    "Tom &amp; Jerry are here.</p>\n<ul><li>The dog eats the <i>red</i> apple.</li>"
    "<li>Run <code>make run</code> now</li></ul><script>var x = \"hello world\";</script>"
    '<style>p { color: red }</style><p class="note">The cat sees <b>the dog</b>.</p>'
)


# ------------------------------------------------------------------------------ pure


def test_html_inline_tags_ride_in_their_sentence_and_blocks_end_it():
    pieces = segment(HTML, "html")
    assert "".join(p.source for p in pieces) == HTML
    texts = [p.text for p in pieces if p.translatable]
    assert [strip_marks(t) for t in texts] == [
        "I really like this song.", "Tom & Jerry are here.", "The dog eats the red apple.", "Run  now", "The cat sees the dog.",
    ]
    first = next(p for p in pieces if p.translatable)
    assert first.marks == ("<b>", "</b>", '<a href="https://example.org/a?b=1" title="the song">', "</a>")
    kept = "".join(p.text for p in pieces if not p.translatable)
    assert 'var x = "hello world";' in kept and "color: red" in kept  # never reaches an engine
    run = next(p for p in pieces if p.translatable and p.text.startswith("Run"))
    assert run.marks == ("<code>make run</code>",)  # code rides whole in its sentence, never translated


def test_markdown_markers_ride_in_their_sentence():
    (piece,) = segment("I **really** like this song")
    assert piece.text == f"I {M[0]}really{M[1]} like this song" and piece.marks == ("**", "**")
    assert reassemble([piece], [f"Me gusta {M[0]}mucho{M[1]} esta canción"]) == "Me gusta **mucho** esta canción"


def test_a_message_that_holds_mark_characters_gets_no_marks():
    text = f"odd {M[0]} and **bold** here"
    pieces = segment(text)
    assert "".join(p.source for p in pieces) == text and all(not p.marks for p in pieces)


@PROPERTY
@given(st.text(alphabet=st.sampled_from("ab <>/\"'=&;!-p b i a code script\n"), max_size=60))
def test_any_html_round_trips(fragment):
    pieces = segment(fragment, "html")
    assert "".join(p.source for p in pieces) == fragment
    assert reassemble(pieces, [p.text for p in pieces if p.translatable]) == fragment


@PROPERTY
@given(
    st.lists(st.sampled_from(["w", "word", "x1"]), min_size=1, max_size=6),
    st.lists(st.integers(0, 6), min_size=1, max_size=4),
    st.lists(st.sampled_from(["un", "deux", "trois", "quatre"]), min_size=0, max_size=7),
)
def test_every_mark_is_placed_once_in_order_and_the_words_are_untouched(words, at, translated):
    marked = list(words)
    for k, i in enumerate(sorted(at)):
        marked.insert(min(i + k, len(marked)), M[k])
    source = " ".join(marked)
    translation = " ".join(translated)
    placed = place_marks(source, translation)
    assert strip_marks(placed) == translation
    assert [c for c in placed if ord(c) >= MARK_BASE] == M[: len(at)]


def test_a_span_the_translation_holds_verbatim_is_marked_there():
    assert place_marks(f"I like {M[0]}Paris{M[1]} a lot", "J'aime beaucoup Paris") == f"J'aime beaucoup {M[0]}Paris{M[1]}"
    assert place_marks(f"{M[0]}Hello there{M[1]}", "Bonjour à tous") == f"{M[0]}Bonjour à tous{M[1]}"


# ------------------------------------------------------------------------------ runtime


@pytest.fixture(scope="module")
def runtime(builtin_models_dir):
    runtime = Runtime.load(builtin_models_dir)
    yield runtime
    runtime.close()


def translate(runtime, text, target, source="en", tier="auto", format="text") -> Translation:
    (result,) = runtime.translate([TranslationJob(text, target, source, tier, format=format)])
    assert isinstance(result, Translation), result
    return result


def test_an_inline_marker_does_not_split_its_sentence(runtime):
    result = translate(runtime, "The cat sees **the dog**.", "fr")
    assert result.segments == 1 and result.text == "Le chat voit **le chien**." and result.engine == "onnx"


@needs_apertium
def test_a_sentence_with_a_word_the_model_does_not_know_goes_whole_to_apertium(runtime):
    result = translate(runtime, "I **really** like this song", "es")
    assert result.segments == 1 and result.engine == "apertium" and result.text.count("**") == 2
    # An emoji cuts the sentence into two pieces; the second has a word no model knows: both go
    # to the same engine (before: "El perro come" neural, the rest Apertium).
    mixed = translate(runtime, "The dog eats 😀 the flurgleblax.", "es")
    assert mixed.segments == 2 and mixed.engine == "apertium", mixed


@needs_apertium
@pytest.mark.parametrize("tier", ["auto", "rule-based"])
def test_an_html_round_trip_keeps_every_tag_and_attribute_in_place(runtime, tier):
    for target in ("es", "fr"):
        result = translate(runtime, HTML, target, tier=tier, format="html")
        assert TAG.findall(result.text) == TAG.findall(HTML), result.text
        assert 'var x = "hello world";' in result.text and "<code>make run</code>" in result.text
        assert "&amp;" in result.text and "this song" not in result.text


def test_a_segment_no_route_knows_comes_back_as_typed(runtime):
    text = "Das Wetter ist heute schön. Der Hund frisst den Apfel."
    result = translate(runtime, text, "en", source="de")
    assert result.text == "Das Wetter ist heute schön. The dog eats the apple."
    assert result.untranslated_segments == (0,) and result.segments == 2
    assert 0 < result.confidence < 0.6  # the untranslated segment counts as 0, weighted by its length
    alone = translate(runtime, "Ich habe morgen keine Zeit, sorry.", "en", source="de")
    assert (alone.text, alone.confidence, alone.untranslated_segments, alone.model) == (
        "Ich habe morgen keine Zeit, sorry.", 0.0, (0,), "")
