"""Request parsing and language checks, in-process (the socket-level list is in test_edge.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.core import protocol
from appliance.core.protocol import Catalog, RequestError, TranslateRequest

pytestmark = pytest.mark.timeout(60)

LIMITS = dict(max_request_bytes=4096, max_text_chars=100, max_targets=3)
CATALOG = Catalog({"basic": [("en", "fr")], "medium": [("en", "es"), ("en", "fr"), ("fr", "en")]})


def parse(obj) -> protocol.Request:
    return protocol.parse(obj if isinstance(obj, bytes) else json.dumps(obj).encode(), **LIMITS)


def test_a_full_translation_request():
    req = parse(
        {
            "type": "translation", "messageId": "m1", "text": "hi", "sourceLanguage": "EN",
            "targetLanguage": "fr", "targetLanguages": ["es", "fr"], "modelType": "Medium",
            "conversationId": "c", "taskId": "t", "sync": True, "somethingNew": [1, 2],
        }
    )
    assert req == TranslateRequest("m1", "hi", "en", ("fr", "es"), "medium", "c", "t", True)


def test_defaults():
    req = parse({"messageId": "m", "text": "hi", "targetLanguage": "fr"})
    assert (req.source_language, req.model_type, req.task_id, req.sync) == ("auto", "auto", None, False)


@pytest.mark.parametrize("kind, cls", [("ping", protocol.Ping), ("stats", protocol.StatsRequest), ("languages", protocol.LanguagesRequest)])
def test_other_request_types(kind, cls):
    assert parse({"type": kind, "messageId": "x"}) == cls("x")
    assert parse({"type": kind}) == cls(None)


@pytest.mark.parametrize("code, canonical", [
    ("fr", "fr"), ("FR", "fr"), ("fr-FR", "fr"), ("en_US", "en"), ("pt-BR", "pt"), ("fra", "fr"), ("fre", "fr"),
    ("deu", "de"), ("spa", "es"), ("zh-Hant", "zh-hant"), ("zh-TW", "zh-hant"), ("zh-CN", "zh"), ("sr-Latn-RS", "sr"),
    ("AUTO", "auto"), ("xx", "xx"), ("not a code", "not a code"),
])
def test_language_codes_fold_onto_iso_639_1(code, canonical):
    assert parse({"messageId": "m", "text": "hi", "targetLanguage": code}).targets == (canonical,)
    assert parse({"messageId": "m", "text": "hi", "sourceLanguage": code, "targetLanguage": "fr"}).source_language == canonical


def test_catalog_serves_pairs_directly_or_through_english_and_names_what_is_supported():
    req = parse({"messageId": "m", "text": "hi", "targetLanguages": ["fr-FR", "es_ES", "fr"]})
    assert req.targets == ("fr", "es")
    CATALOG.check(req)
    # basic does not serve en->es, but a tier above does: accepted (the worker falls back).
    CATALOG.check(parse({"messageId": "m", "text": "hi", "sourceLanguage": "en", "targetLanguage": "es", "modelType": "basic"}))
    assert CATALOG.pivot_pairs == {("fr", "es")}  # fr->en and en->es
    CATALOG.check(parse({"messageId": "m", "text": "hi", "sourceLanguage": "fr", "targetLanguage": "es"}))
    CATALOG.check(parse({"messageId": "m", "text": "hi", "sourceLanguage": "fr", "targetLanguage": "fr"}))  # same language
    with pytest.raises(RequestError) as err:
        CATALOG.check(parse({"messageId": "m", "text": "hi", "sourceLanguage": "es", "targetLanguage": "fr"}))
    assert err.value.code == "unsupported_language" and "en-es, en-fr, fr-en, fr-es" in err.value.message
    with pytest.raises(RequestError) as err:
        CATALOG.check(parse({"messageId": "m", "text": "hi", "targetLanguage": "ja"}))
    assert err.value.code == "unsupported_language" and "languages: en, es, fr; pairs: en-es" in err.value.message


def test_detect_request():
    assert parse({"type": "detect", "text": "Merci beaucoup", "messageId": "d"}) == protocol.DetectRequest("d", "Merci beaucoup")
    assert protocol.parse(b'{"text": "hola"}', default_type="detect", **LIMITS) == protocol.DetectRequest(None, "hola")
    for bad, code in (({"type": "detect"}, "invalid_request"), ({"type": "detect", "text": " "}, "invalid_request"),
                      ({"type": "detect", "text": "x" * 101}, "text_too_long"), ({"type": "detect", "text": 3}, "invalid_request")):
        with pytest.raises(RequestError) as err:
            parse(bad)
        assert err.value.code == code


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_request_error(data):
    try:
        parse(data)
    except RequestError as exc:
        assert exc.code in {"invalid_json", "invalid_request", "text_too_long", "too_many_targets", "unsupported_model"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "type": json_values, "messageId": json_values, "text": json_values, "targetLanguage": json_values,
            "targetLanguages": json_values, "sourceLanguage": json_values, "modelType": json_values,
            "taskId": json_values, "sync": json_values,
        },
    )
)
def test_any_json_object_parses_or_raises_request_error(obj):
    try:
        req = parse(obj)
    except RequestError:
        return
    if isinstance(req, TranslateRequest):
        assert req.text.strip() and 1 <= len(req.targets) <= 3
        try:
            CATALOG.check(req)
        except RequestError as exc:
            assert exc.code == "unsupported_language"


def test_deeply_nested_json_is_bad_json_not_an_internal_error():
    payload = b'{"messageId": "m", "text": "hi", "targetLanguage": "fr", "x": ' + b"[" * 30000 + b"]" * 30000 + b"}"
    with pytest.raises(RequestError) as err:
        protocol.parse(payload, max_request_bytes=10**6, max_text_chars=100, max_targets=3)
    assert err.value.code == "invalid_json" and "nested" in err.value.message
