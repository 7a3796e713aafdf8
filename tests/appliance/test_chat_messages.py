"""Chat messages through the real appliance on the built-in models: kept parts in place, long
messages whole, language detection, tier fallback, pivot, refusals, and a cache that cannot be
poisoned. One appliance (real runtime, one worker) serves the module."""

from __future__ import annotations

import json

import pytest
import zmq

from modelbuild.corpus import generate_corpus
from tests.appliance.conftest import module_appliance
from tests.fakes.waiting import poll_until
from workers.jobs import TranslationJob
from workers.runtime import Runtime
from workers.segmenter import reassemble, segment

pytestmark = pytest.mark.timeout(300)

CORPUS = generate_corpus(600, seed=31337)


def sentence(row: dict, lang: str = "en") -> str:
    text = row[lang]
    return text if text[-1] in ".!?" else text + "."


@pytest.fixture(scope="module")
def app(tmp_path_factory, builtin_models_dir):
    workers = {"count": 1, "runtime_factory": "workers.runtime:Runtime.load",
               "models_dir": str(builtin_models_dir), "startup_timeout_s": 300.0}
    with module_appliance(tmp_path_factory, "chat", {"workers": workers}, ready_within=300) as appliance:
        yield appliance


def translate(app, text: str, target: str, **extra) -> dict:
    reply = app.request({"messageId": "m", "text": text, "targetLanguage": target, "sync": True, **extra}, timeout=120)
    assert reply is not None and reply["status"] == "completed", reply
    return reply["results"][0]


def translate_each(app, texts: list[str], target: str, **extra) -> list[str]:
    """Each text as a message of its own, pipelined on one DEALER."""
    dealer = app.socket(zmq.DEALER)
    for i, text in enumerate(texts):
        body = {"messageId": str(i), "taskId": f"each-{target}-{i}-{hash(text)}", "text": text,
                "targetLanguage": target, "sync": True, **extra}
        dealer.send(json.dumps(body).encode())
    replies: dict[str, dict] = {}

    def all_back():
        while dealer.poll(10):
            reply = json.loads(dealer.recv())
            replies[reply["messageId"]] = reply
        return len(replies) == len(texts)

    poll_until(all_back, 120, interval=0, what="every reply")
    assert all(r["status"] == "completed" for r in replies.values()), replies
    return [replies[str(i)]["results"][0]["translatedText"] for i in range(len(texts))]


def test_a_chat_message_keeps_every_protected_part_in_place_and_translates_each_sentence_as_alone(app):
    a, b, c, d, e = (sentence(CORPUS[i]) for i in range(5))
    kept = ["😀", "https://example.com/docs?id=7", "@alice", "#team", "`make test`",
            "```\nfor x in range(3):\n    print(x)\n```", "👍🏽"]
    message = (
        f"{a} {b} 😀 https://example.com/docs?id=7\n"
        f"@alice {c} #team\n"
        f"\n"
        f"{d} `make test`\n"
        f"```\nfor x in range(3):\n    print(x)\n```\n"
        f"{e} 👍🏽"
    )
    result = translate(app, message, "fr", sourceLanguage="en")
    out = result["translatedText"]
    at = 0
    for part in kept:  # byte-identical and in order
        found = out.find(part, at)
        assert found >= 0, (part, out)
        at = found + len(part)
    pieces = segment(message)
    texts = [p.text for p in pieces if p.translatable]
    assert texts == [a, b, c, d, e]
    assert out == reassemble(pieces, translate_each(app, texts, "fr", sourceLanguage="en"))
    assert out.count("\n") == message.count("\n") and result["segmentsCount"] == 5
    assert result["truncatedSegments"] == []


def test_a_4000_character_message_comes_back_whole_and_in_order(app):
    sentences, length = [], 0
    for row in CORPUS[5:]:
        sentences.append(sentence(row))
        length += len(sentences[-1]) + 1
        if length > 4000:
            break
    message = " ".join(sentences)
    assert 4000 < len(message) <= 5000
    result = translate(app, message, "de", sourceLanguage="en")
    assert result["translatedText"] == " ".join(translate_each(app, sentences, "de", sourceLanguage="en"))
    assert result["segmentsCount"] == len(sentences)


@pytest.mark.parametrize("lang", ["en", "fr", "es", "de"])
def test_auto_detection_names_the_language_with_a_confidence(app, lang):
    text = " ".join(sentence(CORPUS[100 + i], lang) for i in range(2))
    target = "fr" if lang == "en" else "en"
    result = translate(app, text, target)
    assert result["sourceLanguage"] == result["detectedLanguage"] == lang, result
    assert 0.5 <= result["detectionConfidence"] <= 1 and result["defaultSourceUsed"] is False
    assert result["translatedText"] == translate(app, text, target, sourceLanguage=lang)["translatedText"]
    detected = app.request({"type": "detect", "messageId": "d", "text": text})
    assert detected["detectedLanguage"] == lang and detected["languages"][0]["language"] == lang
    assert [x["confidence"] for x in detected["languages"]] == sorted((x["confidence"] for x in detected["languages"]), reverse=True)


def test_a_message_already_in_the_target_language_comes_back_unchanged(app):
    text = sentence(CORPUS[200], "fr")
    result = translate(app, text, "fr")
    assert result["translatedText"] == text and result["sameLanguage"] is True and result["detectedLanguage"] == "fr"


def test_fr_to_es_goes_through_english(app):
    french = [sentence(CORPUS[300 + i], "fr") for i in range(2)]
    result = translate(app, "\n".join(french), "es", sourceLanguage="fr")
    assert result["pivot"] == "en" and "+" in result["translatorModel"]
    # Each sentence is routed on its own (a leg answered below the built-ins' confidence floor
    # hands its sentence to the next route): the message is its sentences translated alone.
    assert result["translatedText"] == "\n".join(translate_each(app, french, "es", sourceLanguage="fr"))


def test_basic_en_to_es_is_served_by_medium_and_marked_as_a_fallback(app):
    result = translate(app, sentence(CORPUS[400]), "es", sourceLanguage="en", modelType="basic")
    assert (result["modelType"], result["fallback"], result["requestedModelType"]) == ("medium", True, "basic")
    direct = translate(app, sentence(CORPUS[400]), "fr", sourceLanguage="en", modelType="basic")
    assert (direct["modelType"], direct["fallback"]) == ("basic", False)


def test_an_unsupported_language_is_refused_with_what_is_supported(app):
    # Japanese: no built-in model nor any Apertium pair Debian ships (make test registers them all).
    reply = app.request({"messageId": "u", "text": "みなさん、こんにちは", "sourceLanguage": "ja", "targetLanguage": "en"})
    assert reply["status"] == "error" and reply["error"]["code"] == "unsupported_language"
    listed = reply["error"]["message"].split("languages: ")[1].split(";")[0].split(", ")
    assert {"de", "en", "es", "fr"} <= set(listed) and "ja" not in listed and "en-fr" in reply["error"]["message"]
    languages = app.request({"type": "languages"})
    assert ["fr", "es"] in languages["pivot"]["pairs"] and languages["pivot"]["via"] == "en"
    assert ["en", "fr"] in languages["languages"]["basic"]


def test_a_separator_spelling_cannot_poison_the_plain_sentence(app, builtin_models_dir):
    plain = "the farmer feeds the cow"
    garbled = plain.replace(" ", "\u001f")
    reference = Runtime.load(builtin_models_dir).translate([TranslationJob(plain, "fr", "en", "basic")])[0].text
    translate(app, garbled, "fr", sourceLanguage="en", modelType="basic")
    result = translate(app, plain, "fr", sourceLanguage="en", modelType="basic")
    assert result["translatedText"] == reference
