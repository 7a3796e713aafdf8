"""Cache keys: normalization and what a key depends on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipc.cache_key import (
    KEY_SIZE,
    CachedTranslation,
    cache_key,
    decode_value,
    encode_value,
    normalize_text,
)

BASE = dict(model_id="opus-mt-en-fr", revision="r1", source_language="en",
            target_language="fr", text="Hello world", decoding={"beam_size": 1})


@pytest.mark.timeout(10)
@pytest.mark.parametrize("raw, normal", [
    ("  Hello   world \n", "Hello world"),
    ("a\tb\r\nc", "a b c"),
    ("Cafe\u0301", "Caf\u00e9"),  # NFD -> NFC
    ("\u00a0x\u2003y\u3000", "x y"),  # Unicode spaces collapse too
    ("Hello World", "Hello World"),  # case is meaningful to a translator
])
def test_normalize_text(raw, normal):
    assert normalize_text(raw) == normal


@pytest.mark.timeout(30)
@given(st.text())
def test_normalize_is_idempotent(text):
    once = normalize_text(text)
    assert normalize_text(once) == once


@pytest.mark.timeout(10)
def test_equivalent_texts_share_a_key():
    a = cache_key(**BASE)
    b = cache_key(**{**BASE, "text": "  Hello \t world\n"})
    assert a == b and len(a) == KEY_SIZE


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
