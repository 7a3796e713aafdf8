"""modelbuild.checkpoint: target tokens and language pairs of a checkpoint."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(60)


def test_a_multi_target_opus_mt_model_gets_its_target_token_as_its_vocabulary_spells_it():
    from modelbuild.checkpoint import marian_target_tokens, parse_pairs
    from modelbuild.report import ExportError

    vocab = {">>fra<<": 1, ">>spa<<": 2, ">>pt_br<<": 3, "▁hello": 4}
    assert marian_target_tokens(vocab, [("en", "fr"), ("en", "es")]) == {"en-fr": ">>fra<< ", "en-es": ">>spa<< "}
    assert marian_target_tokens({"▁hello": 4}, [("en", "fr")]) == {}  # single target: no token
    with pytest.raises(ExportError, match=">>de<<, >>deu<<, >>ger<<"):
        marian_target_tokens(vocab, [("en", "de")])
    assert parse_pairs(["EN-fr", "eng-deu"], None, "x", "marian") == [("en", "fr"), ("en", "de")]
