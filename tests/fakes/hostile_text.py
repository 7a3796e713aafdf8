"""Adversarial texts for the patterns that read client text: each generator makes `n` characters
shaped to make a backtracking regex retry (runs of the characters e-mail, URL, mention and markup
patterns share, tokens that almost complete, mixed scripts, emoji runs).

    for name, make in GENERATORS.items():
        text = make(5000)      # exactly 5,000 characters

Used by tests/appliance/core/test_langid.py and tests/workers/test_segmenter.py (each pattern under a
regex timeout) and bench/hostile_text.py (milliseconds per pattern and per call).
"""

from __future__ import annotations

from collections.abc import Callable

import regex


def _cycle(unit: str) -> Callable[[int], str]:
    return lambda n: (unit * (n // len(unit) + 1))[:n]


def _run_then(unit: str, tail: str) -> Callable[[int], str]:
    """A long run that a pattern scans before it fails (or succeeds) on its last characters."""
    return lambda n: _cycle(unit)(n - len(tail)) + tail


GENERATORS: dict[str, Callable[[int], str]] = {
    # e-mail shapes: local-part runs without an "@", or with one that never gets a domain
    "email_local_run": _cycle("a."),
    "email_local_mixed": _cycle("ab+c.d-e_"),
    "email_almost": _cycle("a@b"),
    "email_chain": _cycle("a@b.c"),
    "email_dots_domain": _cycle("x@a.."),
    "email_shaped": _run_then("john.doe+", "@example.com"),
    "email_no_domain": _run_then("john.doe+", "@"),
    # runs of single characters the patterns share
    "dots": _cycle("."),
    "ats": _cycle("@"),
    "dashes": _cycle("-"),
    "underscores": _cycle("_"),
    "pluses": _cycle("+"),
    "hashes": _cycle("#"),
    "stars": _cycle("*"),
    "tildes": _cycle("~"),
    "backticks": _cycle("`"),
    "colons": _cycle(":"),
    "slashes": _cycle("/"),
    "parens": _cycle("("),
    # URL shapes
    "url_schemes": _cycle("http://"),
    "url_colon_slash": _cycle("a://"),
    "url_broken_scheme": _cycle(":/"),
    "url_www": _cycle("www."),
    "url_parens": _run_then("(x)", "https://e.com/"),
    "url_open_parens": lambda n: "https://e.com/" + _cycle("a(")(n - 14),
    "url_trailing_punct": _cycle("https://a.b/.,;:!?"),
    # mentions, hashtags, markup, numbers, emoticons
    "mention_chain": _cycle("@a.b-"),
    "mention_emails": _cycle("@a@b.c"),
    "hashtag_digits": _cycle("#1"),
    "words_dots": _cycle("abc.def-"),
    "words_underscore": _cycle("_a"),
    "markup_stars": _cycle("*a"),
    "code_ticks": _cycle("`a"),
    "emoticons_xd": _cycle("xD"),
    "emoticons": _cycle(":-)"),
    "digit_groups": _cycle("1.2,"),
    "digit_thousands": _cycle("1 000"),
    "phone_almost": _cycle("+1 (12) "),
    "phone_groups": _run_then("(12) 12-", "123456"),
    "abbreviations": _cycle("e.g. "),
    "sentence_stops": _cycle("a?!."),
    # scripts and emojis
    "mixed_scripts": _cycle("aé漢ب😀."),
    "emoji_run": _cycle("😀"),
    "emoji_zwj": _cycle("👩\u200d"),
    "emoji_modifiers": _cycle("👍🏽\ufe0f"),
    "flags": _cycle("🇫🇷"),
    "keycaps": _cycle("1\ufe0f\u20e3"),
    "combining_marks": _cycle("a\u0301\u0302"),
    "rtl_marks": _cycle("\u202eab\u200f"),
    "letters": _cycle("a"),
    "cjk": _cycle("漢字。"),
    "whitespace": _cycle(" \t\u00a0\u2028"),
}

# The tests run each pattern on AMPLIFIED-times the 5,000 characters a message may hold, under a
# regex timeout far above what a linear scan takes there (tens of ms): a quadratic pattern that
# costs 70 ms at 5,000 characters costs 7 s at 50,000 and trips it, while a loaded machine's noise
# cannot. It is the only wall-clock bound, and it fails only on super-linear behaviour.
AMPLIFIED = 10
TIMEOUT_S = 2.0


def patterns_of(module: object) -> dict[str, regex.Pattern[str]]:
    """Every compiled `regex` pattern a module holds at top level: a new one is tested unasked."""
    return {name: value for name, value in vars(module).items() if isinstance(value, regex.Pattern)}


def slow_patterns(module: object, n: int = 5000 * AMPLIFIED) -> list[str]:
    """`pattern on generator` for each pattern that did not scan a generator's text within TIMEOUT_S."""
    slow = []
    for pattern_name, pattern in patterns_of(module).items():
        for gen_name, make in GENERATORS.items():
            try:
                for _ in pattern.finditer(make(n), timeout=TIMEOUT_S):
                    pass
            except TimeoutError:
                slow.append(f"{pattern_name} on {gen_name}")
    return slow
