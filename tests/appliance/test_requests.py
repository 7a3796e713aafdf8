"""Request parsing and language checks, in-process (the socket-level list is in test_edge.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance import protocol
from appliance.protocol import Catalog, RequestError, TranslateRequest

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


def test_catalog_resolves_regions_and_checks_pairs():
    req = parse({"messageId": "m", "text": "hi", "targetLanguages": ["fr-FR", "es_ES", "fr"]})
    assert CATALOG.resolve(req).targets == ("fr", "es")
    with pytest.raises(RequestError) as err:
        CATALOG.resolve(parse({"messageId": "m", "text": "hi", "targetLanguage": "es", "modelType": "basic"}))
    assert err.value.code == "unsupported_language"
    with pytest.raises(RequestError) as err:
        CATALOG.resolve(parse({"messageId": "m", "text": "hi", "targetLanguage": "fr", "modelType": "premium"}))
    assert err.value.code == "unsupported_model"
    same = CATALOG.resolve(parse({"messageId": "m", "text": "hi", "sourceLanguage": "fr", "targetLanguage": "fr"}))
    assert same.targets == ("fr",)  # same-language requests are the runtime's to answer


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
            CATALOG.resolve(req)
        except RequestError as exc:
            assert exc.code in ("unsupported_language", "unsupported_model")


def test_events_put_type_first():
    event = protocol.error_event(task_id="t", message_id="m", target="fr", code="timeout", message="x", conversation_id=None)
    assert protocol.encode(event).startswith(b'{"type":"translation_error"')
