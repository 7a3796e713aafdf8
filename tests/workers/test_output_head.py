"""The output head split from the decoders, and the vocabulary shortlist: same tokens, fewer columns."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelbuild.corpus import generate_corpus
from workers.jobs import TranslationJob
from workers.manifest import load_specs
from workers.output_head import SHORTLISTS_FILE
from workers.runtime import Model, Runtime

pytestmark = pytest.mark.timeout(300)

HELD_OUT = generate_corpus(40, seed=4242)  # not the corpus the shortlists were built from
MODELS = ("builtin-marian-en-fr", "builtin-m2m-mini", "builtin-m2m-to-en")


@pytest.fixture(scope="module")
def models(builtin_models_dir):
    specs = load_specs(builtin_models_dir)
    return {name: (Model(specs[name]), Model(specs[name], shortlist=True)) for name in MODELS}


@pytest.mark.parametrize("name", MODELS)
def test_every_target_language_gets_a_shortlist_far_smaller_than_the_vocabulary(builtin_models_dir, name):
    shortlists = json.loads((builtin_models_dir / name / SHORTLISTS_FILE).read_text())
    spec = load_specs(builtin_models_dir)[name]
    assert set(shortlists) == {tgt for _, tgt in spec.pairs}
    vocabulary = Model(spec).graphs.head.logits(np.zeros((1, _width(spec)), np.float32)).shape[1]
    for ids in shortlists.values():
        assert len(ids) < vocabulary / 2
        assert {spec.framing.eos_id, *spec.special_ids} <= set(ids)


def _width(spec) -> int:
    return json.loads((spec.directory / "config.json").read_text())["d_model"]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("beam", [1, 4])
def test_the_shortlist_gives_the_same_translations_as_the_whole_vocabulary(models, name, beam):
    full, short = models[name]
    for src, tgt in full.spec.pairs:
        sources = [full.source_ids(s[src], src, tgt) for s in HELD_OUT]
        assert short.head(tgt) is not full.head(tgt)  # really decoding over the shortlist
        expected = [h.tokens for h in full.generate(sources, tgt, beam)]
        got = [h.tokens for h in short.generate(sources, tgt, beam)]
        assert got == expected, (name, src, tgt)
        alone = [short.generate([ids], tgt, beam)[0].tokens for ids in sources[:8]]
        assert alone == got[:8]  # one row's tokens do not depend on its batch mates


def test_a_shortlist_keeps_each_kept_logit(models):
    full, short = models["builtin-m2m-mini"]
    head, shortlisted = full.head("de"), short.head("de")
    hidden = np.random.default_rng(0).standard_normal((5, _width(full.spec))).astype(np.float32)
    kept = head.logits(hidden)[:, shortlisted.ids]
    np.testing.assert_allclose(shortlisted.logits(hidden), kept, rtol=1e-5, atol=1e-5)
    values, ids = shortlisted.topk(hidden, 3)  # vocabulary ids, not column numbers
    assert (ids == shortlisted.ids[np.argsort(-kept, axis=1)[:, :3]]).all()


def test_the_runtime_serves_shortlists_when_asked(builtin_models_dir):
    tiers = {"basic": "builtin-marian-en-fr"}
    jobs = [TranslationJob(s["en"], "fr", source_language="en") for s in HELD_OUT[:12]]
    full = [r.text for r in Runtime.load(builtin_models_dir, tiers).translate(jobs)]
    short = [r.text for r in Runtime.load(builtin_models_dir, tiers, shortlist=True).translate(jobs)]
    assert short == full and all(full)
