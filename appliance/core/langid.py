"""Source-language detection for requests that say `"sourceLanguage": "auto"`, in the edge process.

    detector = LanguageDetector(served_languages)        # once per process
    detector.detect("Merci beaucoup pour ton message 👍 https://x.fr")  ->  [("fr", 0.99), ("en", 0.01), ...]

Backed by py3langid (langid.py's naive Bayes over byte n-grams, model inside the package, numpy
only), chosen by `bench/langid_compare.py` over lingua, langdetect, CLD3 and fastText on short
chat messages: the most accurate there, at tens of µs per message, so it runs inline on the event
loop. Detection is restricted to the languages the appliance serves; codes the model does not
know are set aside in `unsupported`, never guessed.

Chat text is cleaned first: URLs, e-mail addresses, @mentions, #hashtags, emojis and digits carry
no language signal, and in a five-word message their bytes outweigh the words.

Hostile text: this runs on the supervisor's event loop for every `auto` request and every `detect`
request, so its cost must not depend on what a client writes. Every pattern here is linear: no
part can start inside a run that an earlier start already scanned (lookbehinds), and what a
quantifier took is never given back (possessive quantifiers). Detection reads a bounded prefix:
SCAN_CHARS of the raw text are cleaned and at most DETECT_CHARS of what remains reach the model, so
a 5,000-character message costs the same as a 1,000-character one. tests/appliance/core/test_langid.py
runs each pattern on adversarial inputs under a timeout; bench/hostile_text.py gives the figures.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable

import regex

# The model's accuracy on chat text stops improving after a few hundred characters of words, and
# its cost grows with the text (about 0.35 ms per 1,000 characters): a longer text is judged by
# its start. SCAN_CHARS leaves room for the URLs, mentions and emojis that cleaning removes.
DETECT_CHARS = 1000
SCAN_CHARS = 4 * DETECT_CHARS

# An e-mail's local part may start only where a run of its characters starts: `[\w.+-]+@` tried at
# every position of a 5,000-character run without an "@" ("a.a.a.…", "____") scans the rest of
# the run each time, quadratic (about 200 ms of the loop per message before this lookbehind).
_NOISE = regex.compile(
    r"(?:https?://|www\.)\S++"                          # URLs, before anything that would split them
    r"|(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[\w-]++)++"    # e-mail addresses, before @mentions
    r"|[@#]\w++"                                        # @mentions, #hashtags
    r"|[\U0001F000-\U0001FAFF\u2190-\u21FF\u2300-\u23FF\u2600-\u27BF\u2B00-\u2BFF"
    r"\uFE00-\uFE0F\u200D\u20E3\U000E0020-\U000E007F]++"  # emojis with their joiners and modifiers
    r"|\d++"
)
_SPACES = regex.compile(r"\s++")
_LETTER = regex.compile(r"[^\W\d_]")


def clean(text: str) -> str:
    """The text without what carries no language signal, whitespace collapsed."""
    return _SPACES.sub(" ", _NOISE.sub(" ", text)).strip()


@functools.cache
def _model():
    # Decompressing the model takes most of a second: once per process, shared by every detector.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


class LanguageDetector:
    """Ranks the served languages for a text; build one per process and reuse it."""

    def __init__(self, languages: Iterable[str]) -> None:
        wanted = set(languages)
        model = _model()
        known = set(model.labels)
        self.languages: tuple[str, ...] = tuple(sorted(wanted & known))
        self.unsupported: tuple[str, ...] = tuple(sorted(wanted - known))
        self._identifier = None
        if len(self.languages) > 1:
            # set_languages rebinds the copy's class columns and leaves the shared full model
            # alone, so detectors with different language sets can live in one process.
            self._identifier = copy.copy(model)
            self._identifier.set_languages(self.languages)

    def detect(self, text: str) -> list[tuple[str, float]]:
        """(language, confidence) best first, confidences summing to 1; [] if nothing to detect."""
        if not self.languages:
            return []
        text = clean(text[:SCAN_CHARS])[:DETECT_CHARS]
        if not _LETTER.search(text):
            return []
        if self._identifier is None:
            return [(self.languages[0], 1.0)]
        ranked = self._identifier.rank(text)
        # The model's softmax runs in float32; renormalizing in float64 keeps each value in [0, 1].
        total = sum(score for _, score in ranked)
        return [(lang, min(score / total, 1.0)) for lang, score in ranked]
