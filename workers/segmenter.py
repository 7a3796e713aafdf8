"""Chat-message segmentation and exact reassembly: pure text logic, no model knowledge.

A message is cut into `Piece`s whose texts concatenate back to the message byte for byte:

    "Hello! How are you? 😀 see https://example.com"
    T"Hello!"  K" "  T"How are you?"  K" 😀 "  T"see"  K" https://example.com"    (T translatable, K kept)

Translatable pieces are what the model sees: one sentence (or the part of a sentence between two
kept parts) with its final punctuation, no line break, no whitespace at either end, at least one
letter. Kept pieces never reach the model and come back verbatim: line breaks, the whitespace
between sentences, fenced and inline code, URLs, e-mail addresses, @mentions, #hashtags, emojis,
numbers a model would mangle, and runs without letters ("!!!", ":)").
Adjacent kept parts are merged into one piece; no piece is empty.

Inline markdown markers do not cut a sentence: each rides in it as a mark (`MARK_BASE`), the
piece's `marks` hold their markup, and `reassemble` puts them back; `Piece.source` is the piece
as typed, and the pieces' sources concatenate to the message:

    "I **really** like it"   T"I ⟨0⟩really⟨1⟩ like it" marks ("**", "**")

`segment(text, "html")` cuts an HTML fragment the same way: tags, comments and the content of
script/style/pre/textarea/code kept, block tags ending sentences, inline tags as marks, entities
unescaped for the engine and escaped back. `place_marks` puts a sentence's marks into the
translation of its plain text (for an engine that cannot carry them).

`split_to_fit` cuts one translatable piece the model cannot take whole (clauses, then words,
then characters); `reassemble` puts translations back between the kept pieces.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
import html
from dataclasses import dataclass, field

import regex

# An inline marker inside a sentence ("**", "_", an inline HTML tag) rides in the translatable
# text as one character of Supplementary Private Use Area-A: MARK_BASE + k is the piece's k-th
# mark. No tokenizer or rule reads it as a word; Apertium carries it in a superblank (workers.
# apertium slots every private-use character); a neural leg strips it and places it back
# (`place_marks`). A message that already holds such characters gets no marks (split as before).
MARK_BASE = 0xF0000
MARK_LIMIT = 0xFFFFE
_MARK_CHARS = regex.compile(r"[\U000f0000-\U000ffffd]")
_MARK_SPLIT = regex.compile(r"([\U000f0000-\U000ffffd])")


@dataclass(frozen=True, slots=True)
class Piece:
    text: str
    translatable: bool
    # The markup of the mark characters in `text` (mark k is chr(MARK_BASE + k)); `source` is the
    # piece as typed.
    marks: tuple[str, ...] = ()
    # Translatable pieces of one sentence share it (a URL or an emoji may cut a sentence into
    # several pieces): the runtime routes a sentence as one unit, one engine for all its pieces.
    sentence: int = field(default=0, compare=False)
    # HTML text: the engine sees it unescaped; its translation is escaped back (& < >), and
    # `typed` keeps the piece as it was written (entities and all).
    escaped: bool = False
    typed: str = field(default="", compare=False)

    @property
    def source(self) -> str:
        if self.typed:
            return self.typed
        return unmark(self.text, self.marks) if self.marks else self.text


# Exactly str.isspace(): the regex module's \s is Unicode White_Space, which leaves out the
# information separators U+001C..U+001F that Python (and so every caller's .strip()) counts.
_WS = r"[\s\x1c-\x1f]"
# Exactly the boundaries of str.splitlines().
_LINE_BREAK = regex.compile(r"(\r\n|[\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029])")

# Stripped from the ends of a segment besides whitespace: controls and invisible format characters
# (zero-width space, joiners, bidi marks, BOM, soft hyphen) carry nothing a model should translate,
# and tokenizers drop or mangle them, so they would not come back.
_EDGE = "".join(c for c in map(chr, range(0x3001)) if c.isspace()) + (
    "".join(map(chr, range(0x20)))
    + "\x7f\xad\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    + "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)

# A fence runs to the next run of at least as many backticks, or to the end of the message: an
# unterminated fence is still code, and code must not reach the model.
_FENCE = regex.compile(r"(`{3,})[\s\S]*?(?:\1`*|\Z)")

# Markdown at the start of a line: indentation, quote markers, then a bullet, a number, a task box
# or a heading marker. Horizontal rules need no rule: they have no letters.
_LINE_PREFIX = regex.compile(
    r"""
    [ \t]*
    (?:>[ \t]*)*
    (?:
        (?:[-*+•]|\d{1,9}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?
      | \#{1,6}(?:[ \t]+|\Z)
    )?
    """,
    regex.VERBOSE,
)

_CLOSERS = r"\"'”’»)\]}」』）】〕〉》＂＇\U000f0000-\U000ffffd"  # with marks: "**Done.** Next"

# Emoji sequences: flags (regional-indicator pairs), keycaps, pictographs with their variation
# selectors, skin tones and tag sequences, joined by ZWJ into families and professions.
_PICT = r"(?:\p{Regional_Indicator}{1,2}|[0-9\#*]\ufe0f?\u20e3|[\p{Extended_Pictographic}\p{Emoji_Modifier}])"
_EMOJI = rf"{_PICT}(?:[\ufe0e\ufe0f\u20e3\U000e0020-\U000e007f\p{{Emoji_Modifier}}]|\u200d{_PICT}?)*"

# Everything protected inside a line, tried left to right; at one position the first alternative
# that matches wins, so code beats URLs beats e-mails beats mentions, and so on. Lookbehinds on
# _WORD keep a pattern from starting inside a word, which also keeps the scan linear. _WORD leaves
# out combining marks: U+FE0F ends many emojis, and "❤️https://…" must still start a URL.
#
# `plain` and `letters` match what is not protected; the caller skips them. `plain` comes first
# and strides over whole stretches of words, whitespace and common punctuation in one match: trying
# every alternative at every word costs most of the scan otherwise. Only URLs, e-mails and "xD"
# start with a letter, so `plain` stops before a token that could be one of them (the lookahead)
# and the alternatives decide there; `letters` then steps over such a word when none of them
# matched. What can start anything else (digits, symbols, @ # ` * _ ~ : ; = ( + -) is not in
# `plain`, nor is "." which may start a URL's or an e-mail's token.
#
# A URL takes its whole token up to "://"; a "://" whose token start another protected part took
# ("#tag" in "#taghttps://…") is still a URL. Trailing punctuation and brackets stay outside it.
#
# Linear time on hostile text: a URL, an e-mail (and `plain`'s look for one) scans `[\w.+\-]*` from
# where a token may start, so no start may lie inside a run such a scan already crossed, or every
# start rescans the rest of the run (quadratic: "1️⃣1️⃣…" is one run of \w, digits and marks). _START
# allows a start after a character outside the run's class, or after one mark that follows such a
# character: the U+FE0F ending "❤️" before "https://…", not a mark inside a run of word characters.
_WORD = r"\p{L}\p{N}_"
_START = r"(?:(?<![\p{L}\p{N}\p{M}_.+\-])|(?<=(?:^|[^\w.+\-])\p{M}))"
_PROTECTED = regex.compile(
    rf"""
      (?P<plain>(?:
          {_WS}+
        | [,!?'"…¿¡’”“‘»«)\]]+
        | (?!{_START}(?:[\w.+\-]*(?:@|://)|(?i:www\.))|(?<!\S)[xX]D+(?!\S))[\p{{L}}\p{{M}}]+
      )++)
    | (?P<code>``(?:[^`]|`(?!`))+``|`[^`]+`)
    | (?P<url>(?:{_START}(?:[\w.+\-]*://|[._+\-]*(?i:www\.))|://)
        (?:\([^\s()<>"`]*\)|[^\s<>"`])+?
        (?=[.,;:!?'")\]}}>»”’]{{0,16}}(?:[\s<>"`]|\Z)))
    | (?P<email>{_START}[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+)
    | (?P<mention>(?<![{_WORD}@])@\w+(?:[.\-]\w+)*(?:@[\w\-]+(?:\.[\w\-]+)+)?)
    | (?P<hashtag>(?<![{_WORD}\#&])\#(?=\w*\p{{L}})\w+)
    | (?P<emoji>{_EMOJI})
    | (?P<phone>
        (?<![{_WORD}+])\+\d{{1,3}}(?>[ .\-]?(?:\(\d{{1,4}}\)|\d{{1,4}})){{2,6}}
      | (?<![{_WORD}])\(\d{{2,4}}\)[ ]?\d{{2,4}}(?:[ .\-]\d{{2,4}})+
      )(?!\d|[.,:/\-'’]\d)
    | (?P<number>(?<![{_WORD}])
        (?P<currency>\p{{Sc}}[ \u00a0]?)?
        [+\-−]?(?P<digits>\d+(?:(?:[.,:/\-]|[\u00a0\u202f\u2009'’](?=\d{{3}}))\d+)*)
        (?P<unit>[ \u00a0\u202f]?[%‰\p{{Sc}}])?
        \p{{L}}*)
    | (?P<emoticon>(?<!\S)(?:[:;=][\-^']?[)(\]\[DPpOo3/\\|*]+|<3+|\^_*\^|[xX]D+)(?!\S))
    | (?P<markup>
        \*{{2,}}|~{{2,}}|(?<![{_WORD}])_{{2,}}|_{{2,}}(?![{_WORD}])
      | (?<![{_WORD}*])\*(?=[^\s*])|(?<=[^\s*])\*(?![{_WORD}*])
      | (?<![{_WORD}])_(?=[^\s_])|(?<=[^\s_])_(?![{_WORD}])
      )
    | (?P<letters>[\p{{L}}\p{{M}}]+)
    """,
    regex.VERBOSE,
)
_UNPROTECTED = frozenset({"plain", "letters"})

# A sentence ends after . ! ? … (and kin in other scripts) plus closing quotes or brackets, when
# whitespace follows; after a CJK full stop it ends even without whitespace.
_SENTENCE_END = regex.compile(
    rf"(?<![.!?…؟۔।॥።])(?P<stop>[.!?…؟۔।॥።]+)[{_CLOSERS}]*(?={_WS})|(?<![。！？｡])[。！？｡]+[{_CLOSERS}]*"
)
# The word before a lone period, read from a short window: abbreviations are short, and a longer
# word cut by the window can never equal one.
_WORD_BEFORE = regex.compile(r"(?<![\p{L}.])\p{L}[\p{L}.]*\Z")
_DOTTED = regex.compile(r"(?:\p{L}\.)+\p{L}")
_ABBREVIATIONS = frozenset(
    """
    mr mrs ms dr prof st sr sra srta jr mme mlle mgr messrs gen col capt lt sgt rev hon sen rep gov
    e.g i.e etc vs cf ca approx dept est fig figs vol nr tel ft mt ave blvd
    z.b d.h u.a bzw usw ggf evtl inkl hr fr dott sig sigg dna sta sto núm pág
    """.split()
)

# Also kept at a segment's start: punctuation that closes the clause a protected part interrupted
# ("at 12:30, then" leaves ", then"); the model would only drop or misplace it.
_LEADING = _EDGE + ",;:)]}、，；：）"

_DIGITS_KEPT = 3  # a plain integer with fewer digits stays in the sentence: models copy it fine


def segment(message: str, format: str = "text") -> list[Piece]:
    """Cut a message into alternating kept and translatable pieces whose `source`s concatenate to
    it. `format` "html": an HTML fragment (`_html`); anything else: chat text."""
    if format == "html":
        return _html(message)
    out = _Pieces(marking=_MARK_CHARS.search(message) is None)
    pos = 0
    if "```" in message:
        for fence in _FENCE.finditer(message):
            _lines(message, pos, fence.start(), out)
            out.keep(fence.group())
            out.sentence += 1
            pos = fence.end()
    _lines(message, pos, len(message), out)
    return out.finish()


def unmark(text: str, marks: Sequence[str]) -> str:
    """`text` with each mark character replaced by its markup; an unknown mark character is dropped."""
    return _MARK_CHARS.sub(lambda m: _markup(marks, m.group()), text)


def _markup(marks: Sequence[str], ch: str) -> str:
    k = ord(ch) - MARK_BASE
    return marks[k] if k < len(marks) else ""


def split_to_fit(text: str, fits: Callable[[str], bool]) -> list[Piece]:
    """Cut one translatable text into chunks that each satisfy `fits`, kept whitespace between.

    Clauses are packed greedily into the longest chunk that fits; a clause that alone does not
    fit is packed word by word, and a word that alone does not fit is cut into characters (a
    character that does not fit goes alone). `fits` is called O(log n) times per chunk.
    """
    if fits(text):
        return [Piece(text, True)]
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    if start >= end:
        return [Piece(text, False)] if text else []
    out: list[Piece] = []
    if start:
        out.append(Piece(text[:start], False))
    _pack(text, _spans(text, start, end, _CLAUSE_GAP), fits, out, _split_clause)
    if end < len(text):
        out.append(Piece(text[end:], False))
    return out


def reassemble(pieces: Sequence[Piece], translations: Iterable[str]) -> str:
    """Kept pieces verbatim, each translatable piece replaced by the next translation."""
    texts = list(translations)
    wanted = sum(piece.translatable for piece in pieces)
    if len(texts) != wanted:
        raise ValueError(f"{len(texts)} translations for {wanted} translatable pieces")
    it = iter(texts)
    return "".join(_put_back(piece, next(it)) if piece.translatable else piece.text for piece in pieces)


def _put_back(piece: Piece, translation: str) -> str:
    if translation == piece.text:  # untranslated (or the same words): as typed
        return piece.source
    if piece.escaped:
        translation = _escape(translation)
    return unmark(translation, piece.marks) if piece.marks else translation


class _Pieces:
    """Collects pieces, merging consecutive kept texts into one piece."""

    __slots__ = ("_kept", "_pieces", "marking", "marks", "sentence", "escaped")

    def __init__(self, marking: bool = True, escaped: bool = False) -> None:
        self._pieces: list[Piece] = []
        self._kept: list[str] = []
        self.marking = marking  # inline markers ride in the sentence as marks (else they cut it)
        self.marks: list[str] = []  # the message's marks: chr(MARK_BASE + k) stands for marks[k]
        self.sentence = 0
        self.escaped = escaped

    def mark(self, markup: str) -> str:
        """The mark character standing for `markup` in the text handed to keep/translate."""
        self.marks.append(markup)
        return chr(MARK_BASE + len(self.marks) - 1)

    def keep(self, text: str) -> None:
        if text:
            self._kept.append(unmark(text, self.marks) if self.marks else text)

    def translate(self, text: str) -> None:
        if self._kept:
            self._pieces.append(Piece("".join(self._kept), False))
            self._kept.clear()
        local: list[str] = []
        if self.marks:
            def renumber(m: regex.Match[str]) -> str:
                local.append(_markup(self.marks, m.group()))
                return chr(MARK_BASE + len(local) - 1)

            text = _MARK_CHARS.sub(renumber, text)
        typed = ""
        if self.escaped:
            typed = unmark(text, local)
            # Entities are text to the engine; one spelling a mark character is not a mark.
            text = "".join(
                part if i % 2 else _MARK_CHARS.sub("\ufffd", html.unescape(part))
                for i, part in enumerate(_MARK_SPLIT.split(text))
            )
        self._pieces.append(Piece(text, True, tuple(local), self.sentence, self.escaped, typed))

    def finish(self) -> list[Piece]:
        if self._kept:
            self._pieces.append(Piece("".join(self._kept), False))
            self._kept.clear()
        return self._pieces


def _lines(message: str, start: int, end: int, out: _Pieces) -> None:
    """Segment message[start:end], a stretch outside code fences, line by line."""
    if start >= end:
        return
    # Text right after a fence continues the fence's line: no list or heading marker there.
    parts = _LINE_BREAK.split(message[start:end])
    for i, part in enumerate(parts):
        if i % 2:
            out.keep(part)
            out.sentence += 1
        elif part:
            _line(part, start == 0 or i > 0, out)


def _line(line: str, at_line_start: bool, out: _Pieces) -> None:
    pos = 0
    if at_line_start:
        pos = _LINE_PREFIX.match(line).end()
        out.keep(line[:pos])
    run: list[str] = []  # the current stretch of sentences, inline markers replaced by marks
    for m in _PROTECTED.finditer(line, pos):
        kind = m.lastgroup
        if kind in _UNPROTECTED or (kind == "number" and not _number_is_kept(m)):
            continue
        run.append(line[pos : m.start()])
        pos = m.end()
        if kind == "markup" and out.marking and len(out.marks) < MARK_LIMIT - MARK_BASE:
            run.append(out.mark(m.group()))
            continue
        _sentences("".join(run), out)
        run.clear()
        out.keep(m.group())
    run.append(line[pos:])
    _sentences("".join(run), out)


def _number_is_kept(m: regex.Match[str]) -> bool:
    digits = m.group("digits")
    return bool(m.group("currency") or m.group("unit")) or not (digits.isdecimal() and len(digits) < _DIGITS_KEPT)


def _sentences(run: str, out: _Pieces) -> None:
    """Split a stretch of plain text (no protected part, no line break) into sentences."""
    if not run:
        return
    start = 0
    for m in _SENTENCE_END.finditer(run):
        if m.group("stop") == "." and _is_abbreviation(run, m.start()):
            continue
        _sentence(run[start : m.end()], out)
        out.sentence += 1
        start = m.end()
    _sentence(run[start:], out)


def _is_abbreviation(run: str, period: int) -> bool:
    word = _WORD_BEFORE.search(run[max(0, period - 12) : period])
    if word is None:
        return False
    text = word.group()
    if len(text) == 1:
        # An initial (J. K. Rowling), except the English pronoun that often ends a sentence.
        return text.isupper() and text != "I"
    return text.lower() in _ABBREVIATIONS or _DOTTED.fullmatch(text) is not None


def _sentence(text: str, out: _Pieces) -> None:
    rest = text.lstrip(_LEADING)
    core = rest.rstrip(_EDGE)
    if not any(map(str.isalpha, core)):
        out.keep(text)
        return
    lead = len(text) - len(rest)
    out.keep(text[:lead])
    out.translate(core)
    out.keep(text[lead + len(core) :])


# Clause boundaries for split_to_fit: whitespace after , ; : (and closers), whitespace before a
# dash or after a dash glued to a word (so a spaced dash opens the next clause instead of standing
# alone), and the point right after CJK clause punctuation, which has no whitespace to keep.
_CLAUSE_GAP = regex.compile(
    rf"(?<=[,;:][{_CLOSERS}]*){_WS}+"
    rf"|(?<=[^\s\x1c-\x1f][–—]){_WS}+"
    rf"|(?<!{_WS}){_WS}+(?=[–—])"  # from a run's start only: tried inside it, each start rescans it
    rf"|(?<=[，；：、。！？])(?![\s\x1c-\x1f])"
)
_WS_RUN = regex.compile(rf"{_WS}+")


def _spans(text: str, start: int, end: int, gaps: regex.Pattern[str]) -> list[tuple[int, int]]:
    """The non-empty stretches of text[start:end] between the matches of `gaps`."""
    spans = []
    pos = start
    for gap in gaps.finditer(text, start, end):
        if gap.start() > pos:
            spans.append((pos, gap.start()))
        pos = gap.end()
    if end > pos:
        spans.append((pos, end))
    return spans


_Split = Callable[[str, int, int, Callable[[str], bool], list[Piece]], None]


def _pack(
    text: str, spans: list[tuple[int, int]], fits: Callable[[str], bool], out: list[Piece], split: _Split
) -> None:
    """Greedily pack consecutive spans into the longest chunks that fit; `split` a span that alone does not."""
    ends = [end for _, end in spans]
    i = 0
    while i < len(spans):
        start, end = spans[i]
        if fits(text[start:end]):
            i = _longest(text, start, ends, i, fits)
            out.append(Piece(text[start : ends[i]], True))
        else:
            split(text, start, end, fits, out)
        if i + 1 < len(spans) and ends[i] < spans[i + 1][0]:
            out.append(Piece(text[ends[i] : spans[i + 1][0]], False))
        i += 1


def _longest(text: str, start: int, ends: Sequence[int], lo: int, fits: Callable[[str], bool]) -> int:
    """The largest k >= lo with fits(text[start:ends[k]]), given it holds at lo: gallop, then bisect."""
    step = 1
    while lo + step < len(ends) and fits(text[start : ends[lo + step]]):
        lo += step
        step *= 2
    hi = min(lo + step, len(ends))  # fails there, or is past the end
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(text[start : ends[mid]]):
            lo = mid
        else:
            hi = mid
    return lo


def _split_clause(text: str, start: int, end: int, fits: Callable[[str], bool], out: list[Piece]) -> None:
    _pack(text, _spans(text, start, end, _WS_RUN), fits, out, _split_word)


def _split_word(text: str, start: int, end: int, fits: Callable[[str], bool], out: list[Piece]) -> None:
    while start < end:
        stop = start + 1
        if fits(text[start:stop]):
            stop += _longest(text, start, range(stop, end + 1), 0, fits)
        out.append(Piece(text[start:stop], True))
        start = stop


# ----------------------------------------------------------------------------- marks

_MARK_WORD = regex.compile(r"[\p{L}\p{N}][\p{L}\p{M}\p{N}'’\-]*")


def strip_marks(text: str) -> str:
    return _MARK_CHARS.sub("", text)


def place_marks(marked: str, translation: str) -> str:
    """Put the mark characters of `marked` (a source text) into `translation` of its plain text,
    for an engine that cannot carry them (a neural model).

    A mark glued to the start of a word opens a span, any other closes one. A span whose text
    the translation holds verbatim (a name, a number, a word kept as is) is marked there;
    otherwise each mark goes to the word boundary at the same relative position (k of n source
    words before it: round(k * m / n) of the m translated words), an opened span keeping at
    least one word, and the marks keep their order. A mark already in `translation` (an engine
    carried it) is left where it is; none is lost or doubled.
    """
    present = set(_MARK_CHARS.findall(translation))
    plain = strip_marks(marked)
    words = [(w.start(), w.end()) for w in _MARK_WORD.finditer(plain)]
    spans = [(w.start(), w.end()) for w in _MARK_WORD.finditer(translation)]
    n, m = max(len(words), 1), len(spans)
    # Linear in the marks: a hostile sentence holds thousands (word ends and span starts are sorted).
    word_starts = {s for s, _ in words}
    word_ends = [e for _, e in words]
    span_starts = [s for s, _ in spans]
    folded = translation.casefold()
    inserts: list[tuple[int, str]] = []  # (offset in translation, mark), in source order
    found: tuple[int, int] | None = None  # a verbatim span for the pending closing mark
    floor = 0  # no insertion before this offset (order) ...
    opened_at = -1  # ... and a closing mark after the word its span opened on
    for seen, ch in enumerate(_MARK_CHARS.finditer(marked)):
        mark = ch.group()
        plain_at = ch.start() - seen  # each mark is one character, gone from `plain`
        if mark in present:
            continue
        before = bisect.bisect_right(word_ends, plain_at)
        opening = plain_at < len(plain) and plain_at in word_starts
        if plain_at in (0, len(plain)):  # around the whole text: around the whole translation
            at = max(0 if not plain_at else len(translation), floor)
        elif opening:
            closing = _MARK_CHARS.search(marked, ch.end())  # the next mark: none lies between
            found = None
            if closing is not None:
                span = marked[ch.end() : closing.start()].strip()
                hit = folded.find(span.casefold(), floor) if span else -1
                if hit >= 0 and len(span) == len(span.casefold()):
                    found = (hit, hit + len(span))
            if found:
                at = found[0]
            else:
                j = min(round(before * m / n), m - 1) if m else 0
                at = spans[j][0] if m else len(translation)
            at = max(at, floor)
            opened_at = at
        else:
            if found:
                at = found[1]
                found = None
            else:
                j = max(round(before * m / n), 1) if m else 0
                at = spans[min(j, m) - 1][1] if m else len(translation)
                if opened_at >= 0 and at <= opened_at:
                    later = bisect.bisect_left(span_starts, opened_at)
                    at = spans[later][1] if later < m else len(translation)
            at = max(at, floor)
            opened_at = -1
        inserts.append((at, mark))
        floor = at
    out, last = [], 0
    for at, mark in inserts:
        out.append(translation[last:at])
        out.append(mark)
        last = at
    out.append(translation[last:])
    return "".join(out)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ------------------------------------------------------------------------------ HTML

# A tag (attributes quoted or not; an unterminated one runs to the end), a comment, a doctype or
# processing instruction. Alternatives start on distinct characters: the scan is linear.
_HTML_TOKEN = regex.compile(
    r"""<!--[\s\S]*?(?:-->|\Z)|<[!?][^>]*(?:>|\Z)|<(?P<close>/?)(?P<name>[A-Za-z][\w:.-]*)(?:[^>"']|"[^"]*(?:"|\Z)|'[^']*(?:'|\Z))*(?:>|\Z)"""
)
# Inline elements: their tags ride in the sentence as marks. Every other element (p, div, li, td,
# br, h1...) ends the sentence, as does an unknown one.
_INLINE = frozenset(
    "a abbr b bdi bdo big cite data del dfn em font i img ins kbd mark q s samp small span strong sub sup "
    "time tt u var wbr".split()
)
# Never translated: their content is kept verbatim, to the closing tag. `code` inside a sentence
# rides in it as one mark (tag, content and all); the others end the sentence.
_RAW = frozenset("script style pre textarea code".split())
_RAW_END = {name: regex.compile(rf"</{name}\s*>|\Z", regex.IGNORECASE) for name in _RAW}


def _html(fragment: str) -> list[Piece]:
    """Segment an HTML fragment: tags, comments and attributes are kept verbatim; text between
    block boundaries is cut into sentences, inline tags riding in them as marks; the text of
    script, style, pre, textarea and code is never translated. Entities are text to the engine
    and its translation is escaped back (& < >)."""
    out = _Pieces(marking=_MARK_CHARS.search(fragment) is None, escaped=True)
    run: list[str] = []

    def flush() -> None:
        _sentences("".join(run), out)
        run.clear()
        out.sentence += 1

    pos = 0
    for m in _HTML_TOKEN.finditer(fragment):
        if m.start() < pos:
            continue  # inside a raw element already taken
        run.append(fragment[pos : m.start()])
        name = (m.group("name") or "").lower()
        end = m.end()
        if name in _RAW and not m.group("close"):
            end = _RAW_END[name].search(fragment, end).end()
        element = fragment[m.start() : end]
        pos = end
        inline = name in _INLINE or name == "code" or m.group().startswith("<!--")
        if inline and out.marking and len(out.marks) < MARK_LIMIT - MARK_BASE:
            run.append(out.mark(element))
        else:
            flush()
            out.keep(element)
    run.append(fragment[pos:])
    _sentences("".join(run), out)
    return out.finish()
