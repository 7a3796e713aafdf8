"""Source-language detection for requests that say `"sourceLanguage": "auto"`.

Chat messages are short, so character n-gram statistics are unreliable; function words are not:
almost every sentence carries an article, pronoun or preposition. Each language gets a small set
of its most frequent function words plus the letters only it uses among the candidates. Detection
is always restricted to the languages the serving model accepts, and says so when it is guessing.
"""

from __future__ import annotations

import re

_WORDS = {
    "en": "the a an and is are of to in on with for it this that you i we he she they my your not be have has see sees",
    "fr": "le la les un une et est sont de du des à au en dans avec pour il elle je tu nous vous ne pas ce cette mon ton voit",
    "es": "el la los las un una y es son de del al en con para por que no yo tú él ella nosotros mi tu este esta ve",
    "de": "der die das den dem des ein eine einen und ist sind von zu im in mit für nicht ich du er sie wir mein dein sieht",
    "it": "il lo la gli le un una e è sono di del della in con per che non io tu lui lei noi mio vede",
    "pt": "o a os as um uma e é são de do da em com para que não eu tu ele ela nós meu vê",
    "nl": "de het een en is zijn van in met voor niet ik jij hij zij wij mijn ziet",
}
FUNCTION_WORDS = {lang: frozenset(words.split()) for lang, words in _WORDS.items()}
DISTINCT_LETTERS = {"fr": "çèêëîïôœù", "es": "ñ¿¡áíóú", "de": "ßäöü", "pt": "ãõâ", "it": "ì"}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect_language(text: str, candidates: tuple[str, ...]) -> str:
    """Best-scoring candidate; ties and no evidence fall back to the first candidate (English first)."""
    if len(candidates) == 1:
        return candidates[0]
    words = _WORD.findall(text.lower())
    letters = set(text.lower())
    ranked = sorted(candidates, key=lambda lang: lang != "en")
    return max(ranked, key=lambda lang: _score(lang, words, letters))


def _score(lang: str, words: list[str], letters: set[str]) -> float:
    known = FUNCTION_WORDS.get(lang, frozenset())
    hits = sum(1 for word in words if word in known)
    distinct = sum(1 for ch in DISTINCT_LETTERS.get(lang, "") if ch in letters)
    return hits + 0.5 * distinct
