"""Tests for the synthetic parallel corpus used to train the built-in models."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from modelbuild import corpus
from modelbuild.corpus import LANGUAGES, SAMPLE_SENTENCES, STYLES, generate_corpus, restyle

N = corpus._NOUN_BY_EN
V = corpus._VERB_BY_EN
A = corpus._ADJ_BY_EN
# every fixed chat phrase, in every style
CHAT = {lang: {restyle(corpus._chat(p), style)[lang] for p in corpus._CHAT_PHRASES for style in STYLES}
        for lang in LANGUAGES}
END_MARKS = (".", "?", "!")


@pytest.fixture(scope="module")
def big_corpus() -> list[dict[str, str]]:
    return generate_corpus(100_000, seed=0)


def _words(row: dict[str, str]) -> dict[str, str]:
    """Lowercase words only: plain style without the question marks it keeps."""
    return {lang: " ".join(text.replace("¿", " ").replace("?", " ").split()) for lang, text in restyle(row, "plain").items()}


@pytest.fixture(scope="module")
def plain_corpus(big_corpus) -> list[dict[str, str]]:
    """Every row as bare lowercase words: the grammar checks below read words only."""
    return [_words(row) for row in big_corpus]


@pytest.fixture(scope="module")
def texts(big_corpus) -> dict[str, set[str]]:
    return {lang: {row[lang] for row in big_corpus} for lang in LANGUAGES}


@pytest.fixture(scope="module")
def vocab(plain_corpus) -> dict[str, set[str]]:
    return {lang: {word for row in plain_corpus for word in row[lang].split(" ")} for lang in LANGUAGES}


@pytest.fixture(scope="module")
def written_rows() -> list[dict[str, str]]:
    """Rows straight from the templates, before restyling: every one in written style."""
    import random

    rng = random.Random(0)
    return [gen(rng) for gen in corpus._GENERATORS for _ in range(2000)]


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


def test_every_direction_is_a_function(big_corpus):
    # A sentence in any language has exactly one translation in every other one, in every style:
    # otherwise a model trained on the corpus could not reach exact match in that direction.
    for source in LANGUAGES:
        targets = defaultdict(set)
        for row in big_corpus:
            targets[row[source]].add(tuple(row[lang] for lang in LANGUAGES))
        ambiguous = {text: rows for text, rows in targets.items() if len(rows) > 1}
        assert not ambiguous, (source, list(ambiguous.items())[:3])


def test_sentences_are_clean(big_corpus, vocab):
    for row in big_corpus:
        for lang, text in row.items():
            assert text == " ".join(text.split()) and text, (lang, text)
    for lang in LANGUAGES:
        # Once punctuation is gone, a word is letters, with an inner hyphen or apostrophe at most
        # (est-ce, t'aime).
        for word in vocab[lang]:
            assert re.fullmatch(r"[^\W\d_]+(?:['-][^\W\d_]+)*", word), (lang, repr(word))


def test_written_style(written_rows):
    for row in written_rows:
        end = row["en"][-1]
        assert end in END_MARKS, row
        for lang, text in row.items():
            body = text.lstrip("¿¡")
            assert body[0].isupper() or body.startswith("I "), (lang, text)
            assert text.endswith(f" {end}" if lang == "fr" and end != "." else end), (lang, text)
            assert not text[:-2].rstrip(" ?!.").endswith(" "), (lang, text)
        # Spanish opens what it closes, and nothing else
        assert row["es"].startswith("¿") == (end == "?") and row["es"].startswith("¡") == (end == "!"), row
        assert row["en"].count("?") + row["en"].count("!") <= 1, row


def test_styles_of_the_reference_sentence():
    written = corpus._sentence(corpus._clause(N["cat"], None, V["sees"], N["dog"], None), ".")
    assert written == {"en": "The cat sees the dog.", "fr": "Le chat voit le chien.",
                       "es": "El gato ve al perro.", "de": "Die Katze sieht den Hund."}
    assert restyle(written, "written") == written
    assert restyle(written, "lower") == {"en": "the cat sees the dog.", "fr": "le chat voit le chien.",
                                         "es": "el gato ve al perro.", "de": "die katze sieht den hund."}
    assert restyle(written, "plain") == {"en": "the cat sees the dog", "fr": "le chat voit le chien",
                                         "es": "el gato ve al perro", "de": "die katze sieht den hund"}
    assert restyle(written, "bare") == {"en": "The cat sees the dog", "fr": "Le chat voit le chien",
                                        "es": "El gato ve al perro", "de": "Die Katze sieht den Hund"}
    with pytest.raises(ValueError):
        restyle(written, "shouting")


def test_styles_of_questions_exclamations_and_commas():
    question = corpus._sentence(corpus._where(N["station"], None), "?")
    assert question == {"en": "Where is the station?", "fr": "Où est la gare ?",
                        "es": "¿Dónde está la estación?", "de": "Wo ist der Bahnhof?"}
    assert restyle(question, "lower")["es"] == "¿dónde está la estación?"
    # the casual styles keep a question's marks: "¿el gato ve al perro?" is not "el gato ve al perro"
    assert restyle(question, "plain") == {"en": "where is the station?", "fr": "où est la gare ?",
                                          "es": "¿dónde está la estación?", "de": "wo ist der bahnhof?"}
    very = corpus._sentence(corpus._predicate(N["soup"], None, A["hot"], very=True), "!")
    assert restyle(very, "bare")["es"] == "La sopa está muy caliente"
    fine = corpus._chat(next(p for p in corpus._CHAT_PHRASES if p[0] == "I am fine, thank you."))
    assert restyle(fine, "bare") == {"en": "I am fine thank you", "fr": "Je vais bien merci",
                                     "es": "Estoy bien gracias", "de": "Mir geht es gut danke"}


def test_style_shares(big_corpus):
    statements = [row["en"] for row in big_corpus if not row["en"].endswith("?")]  # questions keep "?"

    def share(marked: bool, lowercase: bool) -> float:
        return sum((text[-1] in END_MARKS) == marked and (text == text.lower()) == lowercase
                   for text in statements) / len(statements)

    assert 0.52 < share(marked=True, lowercase=False) < 0.58  # written
    # lowercase with punctuation: what the segmenter sends for "the cat sees the dog."
    assert 0.17 < share(marked=True, lowercase=True) < 0.23
    assert 0.13 < share(marked=False, lowercase=True) < 0.17  # plain
    assert 0.08 < share(marked=False, lowercase=False) < 0.12  # bare


def test_template_sentence_lengths(plain_corpus):
    for lang in LANGUAGES:
        chat = {_words({"x": c})["x"] for c in CHAT[lang]}
        for row in plain_corpus:
            if row[lang] not in chat:
                assert 3 <= row[lang].count(" ") + 1 <= 12, (lang, row[lang])


def test_chat_phrases_are_present_but_rare(big_corpus):
    chat = sum(row["en"] in CHAT["en"] for row in big_corpus)
    assert 0.05 < chat / len(big_corpus) < 0.07
    assert {"en": "Hello!", "fr": "Salut !", "es": "¡Hola!", "de": "Hallo!"} in big_corpus
    assert {"en": "hello", "fr": "salut", "es": "hola", "de": "hallo"} in big_corpus


def test_every_template_is_drawn(big_corpus):
    starts = {"where is ", "is the ", "does the ", "thank you for ", "i am looking for ", "do you have "}
    found = {start for start in starts for row in big_corpus if row["en"].lower().startswith(start)}
    assert found == starts
    assert any(" is very " in row["en"] and row["en"].endswith("!") for row in big_corpus)


def test_duplicates_are_rare(big_corpus):
    sentences = [row["en"] for row in big_corpus if row["en"] not in CHAT["en"]]
    assert len(set(sentences)) / len(sentences) > 0.93


def test_vocabulary_sizes(vocab):
    for lang in LANGUAGES:
        assert 250 <= len(vocab[lang]) <= 700, (lang, len(vocab[lang]))


def test_lexicon_sizes():
    assert 100 <= len(corpus._NOUNS) <= 140
    assert 30 <= len(corpus._VERBS) <= 40
    assert 30 <= len(corpus._ADJS) <= 40
    assert len(corpus._CHAT_PHRASES) >= 30
    # unique English keys, so the by-English lookups used below are unambiguous
    assert len(N) == len(corpus._NOUNS)
    assert len(V) == len(corpus._VERBS)
    assert len(A) == len(corpus._ADJS)


def test_french_nouns_never_elide():
    for noun in corpus._NOUNS:
        assert noun.fr[0] not in "aeiouyhàâéèêëîïôûœ", noun.en


def test_german_nouns_are_capitalized_and_nothing_else_is():
    for noun in corpus._NOUNS:
        assert noun.de[0].isupper() and noun.de_acc[0].isupper(), noun.en
    for adj in corpus._ADJS:
        assert adj.de.islower(), adj.en
    for verb in corpus._VERBS:
        assert verb.de.islower() and verb.de_animal.islower(), verb.en


def test_every_verb_has_subjects_and_objects():
    for verb in corpus._VERBS:
        assert corpus._SUBJECTS[verb.en], verb.en
        assert corpus._OBJECTS[verb.en], verb.en
        assert all(n.animate for n in corpus._SUBJECTS[verb.en]), verb.en


def test_english_infinitives():
    bases = {v.en: v.en_base for v in corpus._VERBS}
    assert bases["sees"] == "see" and bases["has"] == "have" and bases["carries"] == "carry"
    assert bases["washes"] == "wash" and bases["watches"] == "watch" and bases["kisses"] == "kiss"
    assert bases["closes"] == "close" and bases["looks for"] == "look for" and bases["photographs"] == "photograph"


# --------------------------------------------------------------------------- samples

# The word choices and style behind SAMPLE_SENTENCES, in order: the grammar must render
# exactly the hand-checked text, and only with combinations it would also draw.
SAMPLE_SPECS = [
    ("written", "clause", "cat", None, "sees", "dog", None, None),
    ("written", "clause", "farmer", None, "feeds", "cow", None, None),
    ("written", "clause", "queen", None, "calls", "boy", None, None),
    ("written", "clause", "dog", "big", "eats", "bread", None, None),
    ("written", "clause", "woman", None, "sees", "cat", "black", None),
    ("written", "clause", "boy", None, "reads", "book", "new", None),
    ("lower", "clause", "girl", "small", "loves", "horse", "old", None),
    ("plain", "clause", "cat", "white", "drinks", "milk", "cold", None),
    ("bare", "clause", "mother", None, "cooks", "soup", None, "kitchen"),
    ("written", "predicate", "house", None, "big"),
    ("written", "predicate", "car", "old", "broken"),
    ("written", "location", "cat", None, "garden"),
    ("written", "very", "soup", None, "hot"),
    ("written", "where", "station", None),
    ("written", "predicate_question", "house", None, "big"),
    ("written", "location_question", "dog", None, "garden"),
    ("written", "clause_question", "boy", None, "has", "book", None),
    ("written", "thanks_for", "cake", None),
    ("written", "looking_for", "dog", None),
    ("written", "do_you_have", "key", None),
    ("written", "chat", "Hello!"),
    ("written", "chat", "How are you?"),
    ("written", "chat", "Thank you very much!"),
    ("lower", "chat", "See you tomorrow."),
]


def _adj(en: str | None, noun, gradable: bool = False) -> object:
    if en is None:
        return None
    adj = A[en]
    assert adj in (corpus._GRADABLE_FOR_KIND if gradable else corpus._ADJS_FOR_KIND)[noun.kind], (en, noun.en)
    return adj


def _render_written(spec) -> dict[str, str]:
    shape, *words = spec
    if shape in ("clause", "clause_question"):
        subj_en, subj_adj, verb_en, obj_en, obj_adj, *place_en = words
        subj, verb, obj = N[subj_en], V[verb_en], N[obj_en]
        assert subj in corpus._SUBJECTS[verb_en] and obj in corpus._OBJECTS[verb_en]
        if shape == "clause_question":
            return corpus._sentence(corpus._clause_question(subj, _adj(subj_adj, subj), verb, obj, _adj(obj_adj, obj)), "?")
        place = None
        if place_en[0] is not None:
            place = N[place_en[0]]
            assert place in corpus._IN_PLACES and obj in corpus._OBJECTS_NOT_PLACE[verb_en]
        return corpus._sentence(corpus._clause(subj, _adj(subj_adj, subj), verb, obj, _adj(obj_adj, obj), place), ".")
    if shape in ("predicate", "very", "predicate_question"):
        subj_en, subj_adj, pred = words
        subj = N[subj_en]
        if shape == "predicate_question":
            return corpus._sentence(corpus._predicate_question(subj, _adj(subj_adj, subj), _adj(pred, subj)), "?")
        very = shape == "very"
        return corpus._sentence(corpus._predicate(subj, _adj(subj_adj, subj), _adj(pred, subj, very), very), "!" if very else ".")
    if shape in ("location", "location_question"):
        subj_en, subj_adj, place_en = words
        subj, place = N[subj_en], N[place_en]
        assert subj in corpus._LOCATABLE and place in corpus._IN_PLACES
        build, end = (corpus._location, ".") if shape == "location" else (corpus._location_question, "?")
        return corpus._sentence(build(subj, _adj(subj_adj, subj), place), end)
    if shape == "where":
        subj_en, subj_adj = words
        return corpus._sentence(corpus._where(N[subj_en], _adj(subj_adj, N[subj_en])), "?")
    if shape == "chat":
        (phrase,) = [p for p in corpus._CHAT_PHRASES if p[0] == words[0]]
        return corpus._chat(phrase)
    build = getattr(corpus, f"_{shape}")
    ((objects, end),) = [(objects, end) for b, objects, end in corpus._NOUN_CHAT if b is build]
    obj_en, obj_adj = words
    assert N[obj_en] in objects
    return corpus._sentence(build(N[obj_en], _adj(obj_adj, N[obj_en])), end)


def test_first_sample_is_the_reference_sentence():
    assert SAMPLE_SENTENCES[0] == {
        "en": "The cat sees the dog.",
        "fr": "Le chat voit le chien.",
        "es": "El gato ve al perro.",
        "de": "Die Katze sieht den Hund.",
    }


@pytest.mark.parametrize("index", range(len(SAMPLE_SPECS)))
def test_samples_are_rendered_by_the_grammar(index):
    assert len(SAMPLE_SENTENCES) == len(SAMPLE_SPECS)
    style, *spec = SAMPLE_SPECS[index]
    assert restyle(_render_written(spec), style) == SAMPLE_SENTENCES[index]


def test_samples_cover_every_template_and_style():
    assert {spec[1] for spec in SAMPLE_SPECS} == {
        "clause", "predicate", "location", "very", "where", "predicate_question", "location_question",
        "clause_question", "thanks_for", "looking_for", "do_you_have", "chat"}
    assert {spec[0] for spec in SAMPLE_SPECS} == set(STYLES)


def test_samples_use_in_domain_vocabulary(vocab):
    for lang in LANGUAGES:
        for sample in SAMPLE_SENTENCES:
            assert set(_words(sample)[lang].split(" ")) <= vocab[lang], (lang, sample[lang])


# --------------------------------------------------------------------------- grammar


def test_german_masculine_object_takes_den(plain_corpus):
    checked = 0
    for row in plain_corpus:
        if " is " in row["en"]:
            continue
        if row["en"].endswith(" the dog"):
            assert row["de"].endswith(" den hund"), row
            checked += 1
        if row["en"].endswith(" the boy"):  # weak noun: den Jungen
            assert row["de"].endswith(" den jungen"), row
            checked += 1
    assert checked > 20


def test_german_adjective_endings():
    dog, cat, house, big = N["dog"], N["cat"], N["house"], A["big"]
    assert corpus._de_np(dog, big) == "der große Hund"
    assert corpus._de_np(dog, big, accusative=True) == "den großen Hund"
    assert corpus._de_np(cat, big, accusative=True) == "die große Katze"
    assert corpus._de_np(house, big, accusative=True) == "das große Haus"
    assert corpus._de_np(dog, A["tired"], accusative=True) == "den müden Hund"
    assert corpus._de_np(N["car"], A["expensive"]) == "das teure Auto"
    assert corpus._predicate(dog, None, big)["de"] == "der Hund ist groß"


def test_german_animals_fress_and_people_ess():
    eats, bread = V["eats"], N["bread"]
    assert corpus._clause(N["dog"], None, eats, bread, None)["de"] == "der Hund frisst das Brot"
    assert corpus._clause(N["boy"], None, eats, bread, None)["de"] == "der Junge isst das Brot"
    assert corpus._clause_question(N["dog"], None, eats, bread, None)["de"] == "frisst der Hund das Brot"


def test_german_place_uses_dative():
    cat, sees, dog = N["cat"], V["sees"], N["dog"]
    assert corpus._clause(cat, None, sees, dog, None, N["garden"])["de"].endswith(" im Garten")
    assert corpus._clause(cat, None, sees, dog, None, N["kitchen"])["de"].endswith(" in der Küche")


def test_spanish_personal_a(plain_corpus):
    seen = {"al": 0, "a la": 0}
    for row in plain_corpus:
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


def test_french_feminine_agreement(plain_corpus):
    checked = 0
    for row in plain_corpus:
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
    assert corpus._predicate(N["soup"], None, A["hot"], very=True)["es"] == "la sopa está muy caliente"


def test_question_word_order():
    # German puts the verb first; Spanish asks by intonation, in the statement's order
    question = corpus._sentence(corpus._predicate_question(N["car"], A["old"], A["broken"]), "?")
    assert question == {"en": "Is the old car broken?", "fr": "Est-ce que la vieille voiture est cassée ?",
                        "es": "¿El coche viejo está roto?", "de": "Ist das alte Auto kaputt?"}
    question = corpus._sentence(corpus._clause_question(N["farmer"], None, V["feeds"], N["cow"], None), "?")
    assert question == {"en": "Does the farmer feed the cow?", "fr": "Est-ce que le fermier nourrit la vache ?",
                        "es": "¿El granjero alimenta a la vaca?", "de": "Füttert der Bauer die Kuh?"}
    statement = corpus._sentence(corpus._clause(N["farmer"], None, V["feeds"], N["cow"], None), ".")
    for style in STYLES:
        assert restyle(question, style)["es"] != restyle(statement, style)["es"]


def test_chat_around_nouns_agrees():
    assert corpus._thanks_for(N["cake"], None)["de"] == "danke für den Kuchen"
    assert corpus._looking_for(N["girl"], A["small"]) == {
        "en": "I am looking for the small girl", "fr": "je cherche la petite fille",
        "es": "busco a la niña pequeña", "de": "ich suche das kleine Mädchen"}
    assert corpus._do_you_have(N["apple"], A["red"])["es"] == "tienes la manzana roja"


def test_very_only_with_gradable_adjectives(plain_corpus):
    gradable = {a.en for a in corpus._ADJS if a.group not in corpus._UNGRADABLE_GROUPS}
    very = [row["en"].split()[-1] for row in plain_corpus if " is very " in row["en"]]
    assert very and set(very) <= gradable


def test_predicate_never_pairs_clashing_adjectives(plain_corpus):
    by_en = {a.en: a for a in corpus._ADJS}
    for row in plain_corpus:
        words = [w for w in row["en"].split() if w != "very"]
        if len(words) == 5 and words[3] == "is" and words[1] in by_en:
            assert by_en[words[1]].group != by_en[words[4]].group, row
        if len(words) == 5 and words[0] == "is" and words[2] in by_en and words[4] in by_en:
            assert by_en[words[2]].group != by_en[words[4]].group, row
