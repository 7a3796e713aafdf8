"""Tests for the synthetic parallel corpus used to train the built-in models."""

from __future__ import annotations

import time

import pytest

from modelbuild import corpus
from modelbuild.corpus import LANGUAGES, SAMPLE_SENTENCES, generate_corpus

N = corpus._NOUN_BY_EN
V = corpus._VERB_BY_EN
A = corpus._ADJ_BY_EN
CHAT_EN = {phrase[0] for phrase in corpus._CHAT_PHRASES}



@pytest.fixture(scope="module")
def timed_corpus() -> tuple[list[dict[str, str]], float]:
    start = time.perf_counter()
    rows = generate_corpus(100_000, seed=0)
    return rows, time.perf_counter() - start


@pytest.fixture(scope="module")
def big_corpus(timed_corpus) -> list[dict[str, str]]:
    return timed_corpus[0]


@pytest.fixture(scope="module")
def texts(big_corpus) -> dict[str, set[str]]:
    return {lang: {row[lang] for row in big_corpus} for lang in LANGUAGES}


@pytest.fixture(scope="module")
def vocab(texts) -> dict[str, set[str]]:
    return {lang: set(" ".join(texts[lang]).split(" ")) for lang in LANGUAGES}


def test_languages():
    assert LANGUAGES == ("en", "fr", "es", "de")


def test_deterministic_per_seed():
    assert generate_corpus(500, seed=3) == generate_corpus(500, seed=3)
    assert generate_corpus(500, seed=3) != generate_corpus(500, seed=4)
    assert generate_corpus(0) == []


def test_shorter_corpus_is_a_prefix():
    assert generate_corpus(100, seed=7) == generate_corpus(300, seed=7)[:100]


def test_independent_of_global_random():
    import random

    random.seed(1)
    first = generate_corpus(200, seed=5)
    random.seed(2)
    assert generate_corpus(200, seed=5) == first


def test_every_row_has_all_languages(big_corpus):
    assert all(tuple(row) == LANGUAGES for row in big_corpus)


def test_sentences_are_clean(texts, vocab):
    for lang in LANGUAGES:
        # Splitting on single spaces leaves "" for a double, leading or trailing
        # space, and any other character left in a word fails isalpha.
        for word in vocab[lang]:
            assert word.isalpha() and word == word.lower(), (lang, repr(word))


def test_template_sentence_lengths(texts):
    chat = {phrase[LANGUAGES.index(lang)] for phrase in corpus._CHAT_PHRASES for lang in LANGUAGES}
    for lang in LANGUAGES:
        for text in texts[lang] - chat:
            assert 3 <= text.count(" ") + 1 <= 10, (lang, text)


def test_chat_phrases_are_present_but_rare(big_corpus):
    chat = sum(row["en"] in CHAT_EN for row in big_corpus)
    assert 0.01 < chat / len(big_corpus) < 0.04
    assert {"en": "hello", "fr": "bonjour", "es": "hola", "de": "hallo"} in big_corpus


def test_duplicates_are_rare(big_corpus):
    sentences = [row["en"] for row in big_corpus if row["en"] not in CHAT_EN]
    assert len(set(sentences)) / len(sentences) > 0.93


def test_vocabulary_sizes(vocab):
    for lang in LANGUAGES:
        assert 150 <= len(vocab[lang]) <= 700, (lang, len(vocab[lang]))


def test_lexicon_sizes():
    assert 100 <= len(corpus._NOUNS) <= 140
    assert 30 <= len(corpus._VERBS) <= 40
    assert 30 <= len(corpus._ADJS) <= 40
    assert len(corpus._CHAT_PHRASES) >= 15
    # unique English keys, so the by-English lookups used below are unambiguous
    assert len(N) == len(corpus._NOUNS)
    assert len(V) == len(corpus._VERBS)
    assert len(A) == len(corpus._ADJS)


def test_french_nouns_never_elide():
    for noun in corpus._NOUNS:
        assert noun.fr[0] not in "aeiouyhàâéèêëîïôûœ", noun.en


def test_every_verb_has_subjects_and_objects():
    for verb in corpus._VERBS:
        assert corpus._SUBJECTS[verb.en], verb.en
        assert corpus._OBJECTS[verb.en], verb.en
        assert all(n.animate for n in corpus._SUBJECTS[verb.en]), verb.en


def test_fast(timed_corpus):
    assert timed_corpus[1] < 2.0


# --------------------------------------------------------------------------- samples

# The word choices behind SAMPLE_SENTENCES, in order: the grammar must render
# exactly the hand-checked text, and only with combinations it would also draw.
SAMPLE_SPECS = [
    ("clause", "cat", None, "sees", "dog", None, None),
    ("clause", "farmer", None, "feeds", "cow", None, None),
    ("clause", "queen", None, "calls", "boy", None, None),
    ("clause", "dog", "big", "eats", "bread", None, None),
    ("clause", "woman", None, "sees", "cat", "black", None),
    ("clause", "boy", None, "reads", "book", "new", None),
    ("clause", "girl", "small", "loves", "horse", "old", None),
    ("clause", "cat", "white", "drinks", "milk", "cold", None),
    ("clause", "mother", None, "cooks", "soup", None, "kitchen"),
    ("predicate", "house", None, "big"),
    ("predicate", "car", "old", "broken"),
    ("location", "cat", None, "garden"),
    ("chat", "good morning"),
    ("chat", "thank you"),
]


def _adj(en: str | None, noun) -> object:
    if en is None:
        return None
    adj = A[en]
    assert adj in corpus._ADJS_FOR_KIND[noun.kind], (en, noun.en)
    return adj


def _render(spec) -> dict[str, str]:
    shape = spec[0]
    if shape == "clause":
        _, subj_en, subj_adj, verb_en, obj_en, obj_adj, place_en = spec
        subj, verb, obj = N[subj_en], V[verb_en], N[obj_en]
        assert subj in corpus._SUBJECTS[verb_en] and obj in corpus._OBJECTS[verb_en]
        place = None
        if place_en is not None:
            place = N[place_en]
            assert place in corpus._IN_PLACES and obj in corpus._OBJECTS_NOT_PLACE[verb_en]
        return corpus._clause(subj, _adj(subj_adj, subj), verb, obj, _adj(obj_adj, obj), place)
    if shape == "predicate":
        _, subj_en, subj_adj, pred = spec
        subj = N[subj_en]
        return corpus._predicate(subj, _adj(subj_adj, subj), _adj(pred, subj))
    if shape == "location":
        _, subj_en, subj_adj, place_en = spec
        subj, place = N[subj_en], N[place_en]
        assert subj in corpus._LOCATABLE and place in corpus._IN_PLACES
        return corpus._location(subj, _adj(subj_adj, subj), place)
    (phrase,) = [p for p in corpus._CHAT_PHRASES if p[0] == spec[1]]
    return corpus._chat(phrase)


def test_first_sample_is_the_reference_sentence():
    assert SAMPLE_SENTENCES[0] == {
        "en": "the cat sees the dog",
        "fr": "le chat voit le chien",
        "es": "el gato ve al perro",
        "de": "die katze sieht den hund",
    }


@pytest.mark.parametrize("index", range(len(SAMPLE_SPECS)))
def test_samples_are_rendered_by_the_grammar(index):
    assert len(SAMPLE_SENTENCES) == len(SAMPLE_SPECS)
    assert _render(SAMPLE_SPECS[index]) == SAMPLE_SENTENCES[index]


def test_samples_use_in_domain_vocabulary(vocab):
    for lang in LANGUAGES:
        for sample in SAMPLE_SENTENCES:
            assert set(sample[lang].split(" ")) <= vocab[lang], (lang, sample[lang])


# --------------------------------------------------------------------------- grammar


def test_german_masculine_object_takes_den(big_corpus):
    checked = 0
    for row in big_corpus:
        if " is " in row["en"]:
            continue
        if row["en"].endswith(" the dog"):
            assert row["de"].endswith(" den hund"), row
            checked += 1
        if row["en"].endswith(" the boy"):  # weak noun: den jungen
            assert row["de"].endswith(" den jungen"), row
            checked += 1
    assert checked > 20


def test_german_adjective_endings():
    dog, cat, house, big = N["dog"], N["cat"], N["house"], A["big"]
    assert corpus._de_np(dog, big) == "der große hund"
    assert corpus._de_np(dog, big, accusative=True) == "den großen hund"
    assert corpus._de_np(cat, big, accusative=True) == "die große katze"
    assert corpus._de_np(house, big, accusative=True) == "das große haus"
    assert corpus._de_np(dog, A["tired"], accusative=True) == "den müden hund"
    assert corpus._de_np(N["car"], A["expensive"]) == "das teure auto"
    assert corpus._predicate(dog, None, big)["de"] == "der hund ist groß"


def test_german_animals_fress_and_people_ess():
    eats, bread = V["eats"], N["bread"]
    assert corpus._clause(N["dog"], None, eats, bread, None)["de"] == "der hund frisst das brot"
    assert corpus._clause(N["boy"], None, eats, bread, None)["de"] == "der junge isst das brot"


def test_german_place_uses_dative():
    cat, sees, dog = N["cat"], V["sees"], N["dog"]
    assert corpus._clause(cat, None, sees, dog, None, N["garden"])["de"].endswith(" im garten")
    assert corpus._clause(cat, None, sees, dog, None, N["kitchen"])["de"].endswith(" in der küche")


def test_spanish_personal_a(big_corpus):
    seen = {"al": 0, "a la": 0}
    for row in big_corpus:
        if " is " in row["en"]:
            continue
        if row["en"].endswith(" the dog"):
            assert row["es"].endswith(" al perro"), row
            seen["al"] += 1
        if row["en"].endswith(" the cow"):
            assert row["es"].endswith(" a la vaca"), row
            seen["a la"] += 1
        if row["en"].endswith(" the bread"):  # inanimate: no personal a
            assert row["es"].endswith(" el pan") and " al pan" not in row["es"], row
    assert seen["al"] > 10 and seen["a la"] > 10


def test_french_feminine_agreement(big_corpus):
    checked = 0
    for row in big_corpus:
        if row["en"].startswith("the black cow "):
            assert row["fr"].startswith("la vache noire "), row
            checked += 1
        if row["en"].startswith("the small house "):
            assert row["fr"].startswith("la petite maison "), row
            checked += 1
    assert checked > 0
    assert corpus._predicate(N["house"], None, A["big"])["fr"] == "la maison est grande"
    assert corpus._fr_np(N["car"], A["old"]) == "la vieille voiture"
    assert corpus._fr_np(N["dog"], A["white"]) == "le chien blanc"


def test_spanish_copula_and_agreement():
    assert corpus._predicate(N["soup"], None, A["hot"])["es"] == "la sopa está caliente"
    assert corpus._predicate(N["house"], None, A["big"])["es"] == "la casa es grande"
    assert corpus._predicate(N["cow"], None, A["black"])["es"] == "la vaca es negra"
    assert corpus._location(N["book"], None, N["kitchen"])["es"] == "el libro está en la cocina"


def test_predicate_never_pairs_clashing_adjectives(big_corpus):
    by_en = {a.en: a for a in corpus._ADJS}
    for row in big_corpus:
        words = row["en"].split()
        if len(words) == 5 and words[3] == "is" and words[1] in by_en:
            assert by_en[words[1]].group != by_en[words[4]].group, row
