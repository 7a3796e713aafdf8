"""Cache keys: what a key depends on (exact text, token ids), and the stored values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipc.cache_key import (
    KEY_SIZE,
    CachedTranslation,
    cache_key,
    Detection,
    Segments,
    decode_value,
    encode_value,
    segment_key,
)

BASE = dict(model_id="opus-mt-en-fr", revision="r1", source_language="en",
            target_language="fr", text="Hello world", decoding={"beam_size": 1})


@pytest.mark.timeout(10)
@pytest.mark.parametrize("variant", [
    "Hello  world", " Hello world", "Hello\u001fworld", "Hello\u0085world", "Hello\u00a0world", "Hello\tworld",
    "Hello world\n", "Hello World", "Helloworld",
])
def test_a_message_key_is_the_exact_text(variant):
    # Folding control characters or whitespace runs let a garbled input take a clean sentence's entry.
    assert cache_key(**BASE) != cache_key(**{**BASE, "text": variant})


@pytest.mark.timeout(30)
@given(st.text(max_size=40), st.text(max_size=40))
def test_different_texts_never_share_a_message_key(a, b):
    assert (cache_key(**{**BASE, "text": a}) == cache_key(**{**BASE, "text": b})) == (a == b)


@pytest.mark.timeout(30)
@given(st.lists(st.integers(0, 70_000), max_size=30), st.lists(st.integers(0, 70_000), max_size=30))
def test_segment_keys_are_equal_exactly_when_the_token_ids_are(a, b):
    key = lambda ids: segment_key("m", "r1", "en", "fr", ids, {"beam_size": 1})  # noqa: E731
    assert (key(a) == key(b)) == (a == b)


@pytest.mark.timeout(10)
def test_segment_and_message_keys_never_collide():
    assert segment_key("m", "r", "en", "fr", [72, 105]) != cache_key("m", "r", "en", "fr", "Hi")


@pytest.mark.timeout(10)
@pytest.mark.parametrize("field, other", [
    ("model_id", "nllb-600m"), ("revision", "r2"), ("source_language", "auto"),
    ("target_language", "de"), ("text", "Hello World"), ("decoding", {"beam_size": 4}),
    ("decoding", {"beam_size": 1, "max_new_tokens": 64}), ("decoding", None),
])
def test_every_field_changes_the_key(field, other):
    assert cache_key(**BASE) != cache_key(**{**BASE, field: other})


@pytest.mark.timeout(10)
def test_decoding_setting_order_does_not_matter():
    a = cache_key(**{**BASE, "decoding": {"beam_size": 2, "length_penalty": 1.0}})
    b = cache_key(**{**BASE, "decoding": {"length_penalty": 1.0, "beam_size": 2}})
    assert a == b


@pytest.mark.timeout(10)
def test_fields_do_not_run_together():
    # ("ab", "c") and ("a", "bc") must not collide through naive concatenation.
    assert (cache_key("ab", "c", "en", "fr", "x") != cache_key("a", "bc", "en", "fr", "x"))


@pytest.mark.timeout(30)
@given(st.text(), st.text(), st.floats(0, 1), st.text(), st.text(), st.floats(0, 2e9))
def test_value_round_trip(text, src, confidence, model, tier, created):
    value = CachedTranslation(text, src, confidence, model, tier, created)
    assert decode_value(encode_value(value)) == value


@pytest.mark.timeout(10)
def test_message_value_with_segments_and_detection_round_trips():
    value = CachedTranslation("Bonjour !", "en", 0.9, "m", "basic", 1.0,
                              Segments(3, (1,), (), 2, True, "en"), Detection("en", 0.97, False))
    assert decode_value(encode_value(value)) == value
    assert len(cache_key(**BASE)) == KEY_SIZE
