"""workers.segmenter: exact round trips, protected parts never reach the model, chunks that fit."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.hostile_text import GENERATORS, slow_patterns
from workers import segmenter
from workers.segmenter import MARK_BASE, Piece, reassemble, segment, split_to_fit

pytestmark = pytest.mark.timeout(120)

# Not a shared profile: no hypothesis profile is registered for the suite, and a loaded 2-core CI
# box trips the too_slow health check and per-example deadlines.
PROPERTY = settings(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=400)

LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")  # str.splitlines() boundaries
EMOJI_PART = regex.compile(r"\p{Extended_Pictographic}|\p{Regional_Indicator}|\p{Emoji_Modifier}")


M0, M1, M2, M3 = (chr(MARK_BASE + k) for k in range(4))  # a translatable piece's inline marks


def T(text: str) -> Piece:
    return Piece(text, True)


def K(text: str) -> Piece:
    return Piece(text, False)


def check_pieces(message: str, pieces: list[Piece]) -> None:
    assert "".join(p.source for p in pieces) == message
    assert reassemble(pieces, [p.text for p in pieces if p.translatable]) == message
    assert all(p.source for p in pieces)
    assert all(a.translatable or b.translatable for a, b in zip(pieces, pieces[1:])), "kept pieces not merged"
    for p in pieces:
        if not p.translatable:
            continue
        text = p.text
        assert not LINE_BREAKS.intersection(text), p
        assert not text[0].isspace() and not text[-1].isspace(), p
        assert any(c.isalpha() for c in text), p
        assert not EMOJI_PART.search(text), p
        assert "://" not in text and "```" not in text, p


# --- property 1: any text round-trips exactly ---------------------------------------------------

SPECIAL = [
    "\n", "\r", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1f", "\t", " ", "\u00a0",
    "\u3000", "\x00", "\u200b", "\u200d", "\ufe0f", "\ufeff", "\ud800", "\udfff", "😀", "🏽", "🇫", "🇷",
    "\u20e3", "`", "*", "_", "~", "#", "@", ">", "-", "+", ".", "!", "?", "…", "。", "！", ",", ":", ";",
    "(", ")", "\"", "'", "$", "€", "%", "/", "é", "ß", "中", "я", "ا", "0", "5", "9",
]
ANY_CHAR = st.one_of(st.characters(exclude_categories=()), st.sampled_from(SPECIAL))

TOKENS = [
    "hello", "World", "the", "cat", "Dr.", "e.g.", "J.", "naïve", "Привет", "中文", "مرحبا", "I", "xD", ":)",
    "https://example.com/a_(b)?q=1", "www.example.org", "alice@example.com", "@bob", "#tag", "C#", "`code`",
    "``a`b``", "```", "```py\nx = 1\n```", "**", "__", "~~", "*", "_", "> ", "- ", "1. ", "## ", "---",
    "😀", "👨\u200d👩\u200d👧", "👍🏽", "🇫🇷", "1\ufe0f\u20e3", "12:30", "3.14", "1,000,000", "$9.99", "9,99 €", "50%",
    "+33 6 12 34 56 78", "12", "2024", ".", "!", "?", "...", "。", ",", ";", ":", "—", "(", ")", "\"",
    " ", "  ", "\t", "\n", "\n\n", "\r\n", "\u2028", "\u00a0", "\u200b",
]
GRAMMAR_TEXT = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)


@PROPERTY
@given(st.text(alphabet=ANY_CHAR, max_size=200))
def test_any_text_round_trips(message: str) -> None:
    check_pieces(message, segment(message))


@PROPERTY
@given(GRAMMAR_TEXT)
def test_chat_like_text_round_trips(message: str) -> None:
    check_pieces(message, segment(message))


# --- property 2: protected elements survive any translator --------------------------------------

PROTECTED = [
    "https://example.com/path?q=1&r=2", "http://example.org/wiki/Foo_(bar)", "www.example.net/a",
    "alice@example.com", "first.last+tag@mail.example.co.uk",
    "😀", "👨\u200d👩\u200d👧", "👍🏽", "👩🏽\u200d💻", "🇫🇷", "1\ufe0f\u20e3", "❤\ufe0f",
    "@bob", "@jane_doe", "#hashtag", "#Meeshy2024",
    "`x = 1`", "`make test`", "```\nprint('hi')\n```", "```python\nfor i in x:\n    pass\n```",
    "12:30", "2024-05-01", "01/05/2024", "3.14", "3,14", "1,000,000", "$9.99", "9,99 €", "50%", "1500",
    "+33 6 12 34 56 78", "555-1234",
]
GLUED = {"😀", "👍🏽", "🇫🇷", "❤\ufe0f"}  # emojis also come glued to a word
WORDS = ["hello", "World", "the", "cat.", "Dr.", "yes!", "why?", "ok,", "naïve", "Привет", "中文", "and", "e.g.", "I", "12"]
SEPARATORS = [" ", "  ", "\n", " \n", "\t", "\r\n", "\n\n"]


@st.composite
def messages_with_protected(draw: st.DrawFn) -> tuple[str, list[tuple[int, int]]]:
    """A message interleaving words and protected elements, with the elements' offsets."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    size = 0
    for _ in range(draw(st.integers(1, 8))):
        for word in draw(st.lists(st.sampled_from(WORDS), max_size=3)):
            parts.append(word + draw(st.sampled_from(SEPARATORS)))
            size += len(parts[-1])
        element = draw(st.sampled_from(PROTECTED))
        opening = draw(st.sampled_from(["", "", "("]))
        closing = draw(st.sampled_from(["", "", ".", ",", ")", "!"]))
        sep = draw(st.sampled_from(SEPARATORS + ([""] if element in GLUED else [])))
        parts.append(opening + element + closing + sep)
        spans.append((size + len(opening), size + len(opening) + len(element)))
        size += len(parts[-1])
    parts.append(draw(st.sampled_from(WORDS)))
    return "".join(parts), spans


@PROPERTY
@given(messages_with_protected(), st.data())
def test_protected_elements_never_reach_the_model(drawn: tuple[str, list[tuple[int, int]]], data: st.DataObject) -> None:
    message, spans = drawn
    pieces = segment(message)
    check_pieces(message, pieces)
    kept, offset = [], 0
    for p in pieces:
        if not p.translatable:
            kept.append((offset, offset + len(p.text)))
        offset += len(p.text)
    for start, end in spans:
        assert any(a <= start and end <= b for a, b in kept), f"{message[start:end]!r} leaked into a segment: {pieces}"

    count = sum(p.translatable for p in pieces)
    translations = data.draw(st.lists(st.text(max_size=12), min_size=count, max_size=count))
    out, pos = reassemble(pieces, translations), 0
    for start, end in spans:
        pos = out.find(message[start:end], pos)
        assert pos >= 0, f"{message[start:end]!r} lost"
        pos += end - start


# --- property 3: split_to_fit --------------------------------------------------------------------

FIT_CHARS = st.one_of(
    st.sampled_from(list("abcdefghij     ,;:–—，、。\n\t") + ["\u00a0", "\u3000", "中", "😀"]),
    st.characters(exclude_categories=()),
)


@PROPERTY
@given(st.text(alphabet=FIT_CHARS, max_size=300), st.integers(1, 40))
def test_split_to_fit_chunks_fit_and_concatenate(text: str, limit: int) -> None:
    calls = 0

    def fits(chunk: str) -> bool:
        nonlocal calls
        calls += 1
        return len(chunk) <= limit

    pieces = split_to_fit(text, fits)
    assert "".join(p.text for p in pieces) == text
    assert calls <= 4 * len(text) + 2
    if len(text) <= limit:
        assert pieces == [T(text)]
        return
    assert all(p.source for p in pieces)
    assert all(a.translatable or b.translatable for a, b in zip(pieces, pieces[1:]))
    for p in pieces:
        if p.translatable:
            assert len(p.text) <= limit or len(p.text) == 1
            assert not p.text[0].isspace() and not p.text[-1].isspace()
        else:
            assert p.text.isspace()


# --- segment, one rule at a time -----------------------------------------------------------------


def test_lowercase_sentences_split() -> None:
    assert segment("the cat sees the dog. the farmer feeds the cow.") == [
        T("the cat sees the dog."), K(" "), T("the farmer feeds the cow."),
    ]


def test_sentences_emoji_and_url() -> None:
    assert segment("Hello! How are you? 😀 see https://example.com") == [
        T("Hello!"), K(" "), T("How are you?"), K(" 😀 "), T("see"), K(" https://example.com"),
    ]


def test_inline_protected_part_splits_the_sentence() -> None:
    assert segment("see https://example.com today") == [T("see"), K(" https://example.com "), T("today")]
    assert segment("Go to https://example.com. Then rest.") == [
        T("Go to"), K(" https://example.com. "), T("Then rest."),
    ]


def test_mixed_chat_message() -> None:
    message = (
        "Hi @anna! Check #release notes at https://example.com/notes.\n"
        "Run `make test` first 🙂\n"
        "\n"
        "Then deploy:\n"
        "```bash\nmake deploy\n```\n"
        "Thanks!"
    )
    assert segment(message) == [
        T("Hi"), K(" @anna! "), T("Check"), K(" #release "), T("notes at"), K(" https://example.com/notes.\n"),
        T("Run"), K(" `make test` "), T("first"), K(" 🙂\n\n"),
        T("Then deploy:"), K("\n```bash\nmake deploy\n```\n"),
        T("Thanks!"),
    ]


def test_unterminated_fence_runs_to_the_end() -> None:
    assert segment("Look:\n```\ncode\n\nmore text") == [T("Look:"), K("\n```\ncode\n\nmore text")]


def test_email() -> None:
    assert segment("Write to alice@example.com, please.") == [
        T("Write to"), K(" alice@example.com, "), T("please."),
    ]


@pytest.mark.parametrize(
    ("message", "pieces"),
    [
        ("**bold** text", [Piece(f"{M0}bold{M1} text", True, ("**", "**"))]),
        ("> quote", [K("> "), T("quote")]),
        ("- item", [K("- "), T("item")]),
        ("## Heading", [K("## "), T("Heading")]),
        (
            "*italic* and _under_ snake_case",
            [Piece(f"{M0}italic{M1} and {M2}under{M3} snake_case", True, ("*", "*", "_", "_"))],
        ),
        ("~~gone~~", [Piece(f"{M0}gone{M1}", True, ("~~", "~~"))]),
        (
            "1. First\n2) Second\n* third\n---\n- [x] done",
            [K("1. "), T("First"), K("\n2) "), T("Second"), K("\n* "), T("third"), K("\n---\n- [x] "), T("done")],
        ),
    ],
)
def test_markdown(message: str, pieces: list[Piece]) -> None:
    assert segment(message) == pieces


def test_emoji_sequences_stay_whole() -> None:
    family = "👨\u200d👩\u200d👧"
    assert segment(family) == [K(family)]
    assert segment(f"Family: {family} here") == [T("Family:"), K(f" {family} "), T("here")]
    assert segment("Nice 👍🏽 job") == [T("Nice"), K(" 👍🏽 "), T("job")]
    assert segment("Paris🇫🇷 and 1\ufe0f\u20e3 cœur❤\ufe0f") == [
        T("Paris"), K("🇫🇷 "), T("and"), K(" 1\ufe0f\u20e3 "), T("cœur"), K("❤\ufe0f"),
    ]


@pytest.mark.parametrize(
    ("message", "pieces"),
    [
        (
            "Mr. Smith met Dr. Jones, e.g. at St. Paul. Then J. K. Rowling came.",
            [T("Mr. Smith met Dr. Jones, e.g. at St. Paul."), K(" "), T("Then J. K. Rowling came.")],
        ),
        ("Das ist z.B. gut. Ja.", [T("Das ist z.B. gut."), K(" "), T("Ja.")]),
        ("M. Dupont et Mme Durand arrivent. Bonjour.", [T("M. Dupont et Mme Durand arrivent."), K(" "), T("Bonjour.")]),
        ("Sra. García llegó. Hola.", [T("Sra. García llegó."), K(" "), T("Hola.")]),
        ("So am I. Yes.", [T("So am I."), K(" "), T("Yes.")]),
    ],
)
def test_abbreviations_do_not_end_sentences(message: str, pieces: list[Piece]) -> None:
    assert segment(message) == pieces


def test_other_sentence_ends() -> None:
    assert segment("“Hello.” she said. (Really?) yes") == [
        T("“Hello.”"), K(" "), T("she said."), K(" "), T("(Really?)"), K(" "), T("yes"),
    ]
    assert segment("中文句子。第二句！好吗？ yes") == [T("中文句子。"), T("第二句！"), T("好吗？"), K(" "), T("yes")]


@pytest.mark.parametrize(
    ("message", "pieces"),
    [
        (
            "Meet at 12:30 on 2024-05-01, it costs $9.99 (or 9,99 €).",
            [
                T("Meet at"), K(" 12:30 "), T("on"), K(" 2024-05-01, "), T("it costs"), K(" $9.99 "),
                T("(or"), K(" 9,99 €)."),
            ],
        ),
        (
            "Call +33 6 12 34 56 78 or (555) 123-4567, 50% off 1,000,000 items",
            [
                T("Call"), K(" +33 6 12 34 56 78 "), T("or"), K(" (555) 123-4567, 50% "), T("off"),
                K(" 1,000,000 "), T("items"),
            ],
        ),
        ("pi is 3.14 or 3,14 on 01/05/2024", [T("pi is"), K(" 3.14 "), T("or"), K(" 3,14 "), T("on"), K(" 01/05/2024")]),
        ("I have 3 cats and 12 dogs.", [T("I have 3 cats and 12 dogs.")]),
        ("In 2024 we grew.", [T("In"), K(" 2024 "), T("we grew.")]),
    ],
)
def test_numbers(message: str, pieces: list[Piece]) -> None:
    assert segment(message) == pieces


@pytest.mark.parametrize(
    ("message", "pieces"),
    [
        ("!!!", [K("!!!")]),
        ("...", [K("...")]),
        ("—", [K("—")]),
        ("(", [K("(")]),
        (":)", [K(":)")]),
        ("Wow!!! ... :)", [T("Wow!!!"), K(" ... :)")]),
        ("?? ok :D", [K("?? "), T("ok"), K(" :D")]),
        ("12", [K("12")]),
    ],
)
def test_runs_without_letters_are_kept(message: str, pieces: list[Piece]) -> None:
    assert segment(message) == pieces


def test_lines_and_whitespace() -> None:
    assert segment("") == []
    assert segment(" \n\t ") == [K(" \n\t ")]
    assert segment("  Hi there.  \n\n  Bye.\n") == [K("  "), T("Hi there."), K("  \n\n  "), T("Bye."), K("\n")]
    assert segment("a\r\nb\u2028c\x85d") == [T("a"), K("\r\n"), T("b"), K("\u2028"), T("c"), K("\x85"), T("d")]


# --- split_to_fit and reassemble ------------------------------------------------------------------


def limit(n: int) -> Callable[[str], bool]:
    return lambda chunk: len(chunk) <= n


def test_split_to_fit_returns_a_fitting_text_whole() -> None:
    assert split_to_fit("one two, three", limit(100)) == [T("one two, three")]


def test_split_to_fit_packs_clauses_then_words_then_characters() -> None:
    assert split_to_fit("one two, three four; five six", limit(20)) == [
        T("one two, three four;"), K(" "), T("five six"),
    ]
    assert split_to_fit("alpha beta gamma delta", limit(11)) == [T("alpha beta"), K(" "), T("gamma delta")]
    assert split_to_fit("abcdefghij", limit(4)) == [T("abcd"), T("efgh"), T("ij")]
    assert split_to_fit("first part — second part", limit(12)) == [
        T("first part"), K(" "), T("— second"), K(" "), T("part"),
    ]
    assert split_to_fit("第一句，第二句，第三句", limit(8)) == [T("第一句，第二句，"), T("第三句")]


def test_split_to_fit_emits_a_character_that_never_fits_alone() -> None:
    assert split_to_fit("ab c", lambda chunk: False) == [T("a"), T("b"), K(" "), T("c")]


def test_split_to_fit_calls_fits_sparingly_on_long_text() -> None:
    text = " ".join(f"word{i % 97}, clause {i} goes on" + ("." if i % 7 == 0 else "") for i in range(250))
    assert len(text) > 5000
    calls = 0

    def fits(chunk: str) -> bool:
        nonlocal calls
        calls += 1
        return len(chunk) <= 200

    pieces = split_to_fit(text, fits)
    assert "".join(p.text for p in pieces) == text
    assert calls < len(text) // 20


def test_reassemble_replaces_translatable_pieces_in_order() -> None:
    pieces = segment("Hello! How are you? 😀 see https://example.com")
    assert reassemble(pieces, ["Bonjour !", "Comment ça va ?", "voir"]) == (
        "Bonjour ! Comment ça va ? 😀 voir https://example.com"
    )


def test_reassemble_refuses_a_wrong_number_of_translations() -> None:
    pieces = segment("One. Two.")
    with pytest.raises(ValueError):
        reassemble(pieces, ["Un."])
    with pytest.raises(ValueError):
        reassemble(pieces, ["Un.", "Deux.", "Trois."])


def test_every_pattern_is_linear_on_hostile_text() -> None:
    # Before: `_PROTECTED` rescanned a run of keycaps ("1️⃣1️⃣…", digits and marks are all \w) from
    # every keycap, and `_CLAUSE_GAP` a run of whitespace from every position (both quadratic).
    assert slow_patterns(segmenter) == []


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_hostile_text_round_trips(name: str) -> None:
    text = GENERATORS[name](5000)
    pieces = segment(text)
    assert "".join(piece.source for piece in pieces) == text
    for piece in pieces:
        if piece.translatable:
            chunks = split_to_fit(piece.text, lambda chunk: len(chunk) <= 200)
            assert "".join(chunk.text for chunk in chunks) == piece.text


def test_token_starts_after_an_emoji_mark_but_not_inside_a_word() -> None:
    assert segment("love ❤\ufe0fhttps://e.com/x now") == [T("love"), K(" ❤\ufe0fhttps://e.com/x "), T("now")]
    assert segment("mail jose\u0301@x.com ok") == [T("mail"), K(" jose\u0301@x.com "), T("ok")]
    assert segment("1\ufe0f\u20e3https://e.com ok") == [K("1\ufe0f\u20e3https://e.com "), T("ok")]
