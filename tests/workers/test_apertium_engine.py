"""The Apertium engine: real pipelines of real processes (the Debian packages when installed, and
small stand-in stages that crash or hang on cue), the stream-format framing, unknown-word marks,
restarts, timeouts; the runtime routing to it, caching it, and the pivot search."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from ipc.tiers import FALLBACK, pivot_routes
from tests.fakes.apertium_stage import write_stage
from tests.fakes.segment_cache import DictCache
from workers.apertium import (
    ApertiumError,
    ApertiumModel,
    Pipeline,
    frame,
    installed_modes,
    known_share,
    read_stages,
    unformat,
)
from workers.jobs import Translation, TranslationError, TranslationJob
from workers.manifest import load_specs, read_manifest, write_entry
from workers.registry import Registry
from workers.runtime import Runtime

pytestmark = pytest.mark.timeout(120)

PAIRS = ("eng-spa", "spa-eng", "fr-es", "es-fr")
MISSING = [mode for mode in PAIRS if mode not in installed_modes()]
needs_apertium = pytest.mark.skipif(
    bool(MISSING),
    reason=f"Apertium modes {MISSING} not installed: apt-get install apertium apertium-eng-spa apertium-fr-es "
    "(make system-deps does it as root)",
)
MODES = installed_modes()


@pytest.fixture
def stage(tmp_path) -> Path:
    return write_stage(tmp_path / "stage.py")


@pytest.fixture
def pipelines():
    made: list[Pipeline] = []
    yield made
    for pipeline in made:
        pipeline.close()


def fake(pipelines, stage: Path, tmp_path: Path, timeout_s: float = 10.0) -> Pipeline:
    pipeline = Pipeline([[str(stage), "-z"], [str(stage), "-z", str(tmp_path / "flaky-once")]], timeout_s, "fake")
    pipelines.append(pipeline)
    return pipeline


def texts(answers) -> list:
    return [unformat(a.decode())[0] if isinstance(a, bytes) else a for a in answers]


def gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)


# ---------------------------------------------------------------------------------- the text


def test_reserved_characters_are_escaped_and_a_tilde_becomes_a_superblank():
    assert frame("a [b] $c ^d \\e /f @g <h> {i} ~") == b"a \\[b\\] \\$c \\^d \\\\e \\/f \\@g \\<h\\> \\{i\\} [~][]"
    assert frame("nul\0byte") == b"nulbyte[]"  # NUL ends a frame: it never goes in


def test_marks_are_removed_and_counted_escapes_and_superblanks_resolved():
    assert unformat("Vi un *flurgleblax y #bueno @casa.[]") == ("Vi un flurgleblax y bueno casa.", 3)
    assert unformat(" El \\[gato\\] \\@en   casa [~] 5 * 3 #1 x*y.[]") == ("El [gato] @en casa ~ 5 * 3 #1 x*y.", 0)
    assert known_share("I saw a flurgleblax yesterday.", 1) == 0.8
    assert known_share("!!!", 0) == 1.0 and known_share("one", 3) == 0.0


@given(st.text(alphabet=st.characters(blacklist_characters="*#\0", blacklist_categories=("Cs",))))
def test_a_frame_read_back_untranslated_is_the_text(text):
    # Only * and # before a letter are not literal on the way back: Apertium's own deformatter
    # does not escape them either. Runs of spaces (left by words that transfer drops) read as one.
    assert unformat(frame(text).decode()) == (regex.sub(" {2,}", " ", text).strip(), 0)


def test_a_mode_becomes_programs_in_null_flush_mode(tmp_path):
    mode = tmp_path / "xx-yy.mode"
    mode.write_text("lt-proc '/data/xx yy.bin' | apertium-tagger -g $2 /data/p.prob | lt-proc $1 /data/gen.bin\n")
    assert read_stages(mode) == [
        ["lt-proc", "-z", "/data/xx yy.bin"],
        ["apertium-tagger", "-z", "-g", "/data/p.prob"],
        ["lt-proc", "-z", "-g", "/data/gen.bin"],
    ]
    for bad in ("lt-proc a.bin > /tmp/out", "lt-proc a.bin; rm -rf x", "lt-proc $(whoami)", "lt-proc a.bin | | cat"):
        mode.write_text(bad)
        with pytest.raises(ApertiumError):
            read_stages(mode)


def test_a_missing_installation_names_the_debian_packages(tmp_path):
    from workers.manifest import ModelSpec

    spec = ModelSpec("apertium-eng-spa", tmp_path / "modes", "apertium", FALLBACK, "none", "apertium:eng-spa",
                     (("en", "es"),), {}, mode="eng-spa", packages=("apertium", "apertium-eng-spa"))
    with pytest.raises(ApertiumError, match=r"apt-get install apertium apertium-eng-spa"):
        ApertiumModel(spec)
    (tmp_path / "modes").mkdir()
    (tmp_path / "modes" / "eng-spa.mode").write_text("no-such-apertium-program -x /nowhere/eng-spa.bin")
    with pytest.raises(ApertiumError, match=r"no-such-apertium-program are not installed: install the Debian packages: "
                                            r"apt-get install apertium apertium-eng-spa"):
        ApertiumModel(spec)


# ---------------------------------------------------------------------------------- pipelines


def test_segments_are_framed_apart_and_the_chain_starts_once(pipelines, stage, tmp_path):
    pipeline = fake(pipelines, stage, tmp_path)
    inputs = ["one", "two [x]", "three \\ four", "", "~ five"] * 50
    assert texts(pipeline.run([frame(t) for t in inputs])) == [t.upper().strip() for t in inputs]
    assert texts(pipeline.run([frame("again")])) == ["AGAIN"]
    assert pipeline.starts == 1 and pipeline.alive()


def test_a_segment_whose_chain_dies_is_retried_once_on_a_fresh_chain(pipelines, stage, tmp_path):
    pipeline = fake(pipelines, stage, tmp_path)
    assert texts(pipeline.run([frame("warm")])) == ["WARM"]
    first = pipeline.pids
    assert texts(pipeline.run([frame(t) for t in ("a", "b FLAKY", "c", "d")])) == ["A", "B FLAKY", "C", "D"]
    assert pipeline.starts == 2 and set(pipeline.pids).isdisjoint(first)
    assert (tmp_path / "flaky-once").exists()  # it did die once


def test_a_segment_that_kills_the_fresh_chain_too_fails_alone(pipelines, stage, tmp_path):
    pipeline = fake(pipelines, stage, tmp_path)
    answers = texts(pipeline.run([frame(t) for t in ("a", "b CRASH", "c", "d")]))
    assert answers[0] == "A" and answers[2:] == ["C", "D"]
    assert "fake pipeline died" in answers[1] and "retried on a fresh pipeline" in answers[1]
    assert "exited 3" in answers[1]
    assert texts(pipeline.run([frame("after")])) == ["AFTER"]


def test_a_killed_stage_loses_nothing(pipelines, stage, tmp_path):
    pipeline = fake(pipelines, stage, tmp_path)
    assert texts(pipeline.run([frame("warm")])) == ["WARM"]
    for victim in (1, 0):
        pids = pipeline.pids
        os.kill(pids[victim], signal.SIGKILL)
        inputs = [f"line {i}" for i in range(300)]
        assert texts(pipeline.run([frame(t) for t in inputs])) == [t.upper() for t in inputs]
        assert gone(pids)
    assert pipeline.starts == 3


def test_a_stage_that_stops_answering_times_out_and_is_replaced(pipelines, stage, tmp_path):
    pipeline = fake(pipelines, stage, tmp_path, timeout_s=1.0)
    assert texts(pipeline.run([frame("warm")])) == ["WARM"]
    hung = pipeline.pids
    answers = texts(pipeline.run([frame(t) for t in ("a", "HANG", "b")]))
    assert answers[0] == "A" and answers[2] == "B"
    assert "no answer within 1s" in answers[1]
    assert gone(hung)  # the stalled chain was killed, not left behind
    assert texts(pipeline.run([frame("later")])) == ["LATER"]


def test_a_chain_that_cannot_start_fails_every_segment_with_the_reason(pipelines):
    pipeline = Pipeline([["/nonexistent/lt-proc", "-z"]], 5.0, "broken")
    pipelines.append(pipeline)
    answers = pipeline.run([frame("a"), frame("b")])
    assert all(isinstance(a, str) and "cannot start the broken pipeline" in a for a in answers)


@needs_apertium
def test_a_real_pipeline_translates_and_counts_unknown_words(pipelines):
    pipeline = Pipeline(read_stages(MODES["eng-spa"]), 10.0, "eng-spa")
    pipelines.append(pipeline)
    hello, unknown, special = texts(pipeline.run([
        frame("Hello! How are you today?"), frame("I saw a flurgleblax yesterday."),
        frame("The [cat] costs 5 $ @home ~ ok."),
    ]))
    assert hello == "Hola! Cómo eres hoy?"
    assert unknown == "Vi un flurgleblax ayer."
    assert special.startswith("El [gato] cuesta 5 $ @") and "~" in special
    (raw,) = pipeline.run([frame("I saw a flurgleblax yesterday.")])
    assert unformat(raw.decode())[1] == 1 and b"*flurgleblax" in raw


@needs_apertium
def test_a_real_pipeline_killed_mid_chain_is_restarted(pipelines):
    pipeline = Pipeline(read_stages(MODES["fr-es"]), 10.0, "fr-es")
    pipelines.append(pipeline)
    inputs = ["Merci beaucoup pour ton message.", "Le chien du voisin dort.", "On se voit demain à la gare ?"] * 20
    reference = texts(pipeline.run([frame(t) for t in inputs]))
    assert reference[0] == "Muchas gracias para tu mensaje."
    for victim in range(len(pipeline.pids)):
        pids = pipeline.pids
        os.kill(pids[victim], signal.SIGKILL)
        assert texts(pipeline.run([frame(t) for t in inputs])) == reference
        assert gone(pids)
    assert pipeline.starts == 1 + len(pipeline.stages)


# ---------------------------------------------------------------------------------- routing


def test_routes_go_neural_first_then_rule_based_and_pivot_through_any_language():
    registry = Registry({
        "basic": {"m-en-fr": (("en", "fr"),)},
        "medium": {"m-to-en": (("fr", "en"), ("es", "en"))},
        FALLBACK: {"a-en-es": (("en", "es"),), "a-es-en": (("es", "en"),), "a-fr-es": (("fr", "es"),),
                   "a-es-fr": (("es", "fr"),)},
    })

    def described(source, target, preferred):
        return [("+".join(leg.model for leg in r.legs), r.pivot) for r in registry.routes(source, target, preferred)]

    assert described("en", "fr", "basic") == [("m-en-fr", ""), ("a-en-es+a-es-fr", "es")]
    assert described("fr", "es", "basic") == [("a-fr-es", ""), ("m-to-en+a-en-es", "en")]
    assert described("en", "fr", FALLBACK) == [("a-en-es+a-es-fr", "es"), ("m-en-fr", "")]
    assert described("fr", "en", FALLBACK)[0] == ("a-fr-es+a-es-en", "es")
    assert described("fr", "en", "basic")[:2] == [("m-to-en", ""), ("a-fr-es+a-es-en", "es")]
    assert registry.order("basic") == ["basic", "medium", FALLBACK]
    assert registry.order(FALLBACK) == [FALLBACK, "basic", "medium"]


def test_pivot_routes_prefer_english_and_neural_legs():
    pairs = {"medium": [("fr", "en"), ("en", "es"), ("de", "fr")], FALLBACK: [("fr", "es"), ("es", "en"), ("en", "fr")]}
    via = pivot_routes(pairs)
    assert via[("fr", "es")] == "en"  # two neural legs beat the direct rule-based pair
    assert ("es", "en") not in via  # served directly by the fallback tier
    assert via[("de", "en")] == "fr"  # any language that joins two legs
    assert via[("es", "fr")] == "en"  # two rule-based legs
    assert ("en", "de") not in via  # nothing joins


# ---------------------------------------------------------------------------------- the runtime


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, builtin_models_dir) -> Path:
    """The built-in models (by link) beside the registered Apertium modes."""
    directory = tmp_path_factory.mktemp("apertium-models")
    for name, entry in read_manifest(builtin_models_dir)["models"].items():
        if entry["family"] != "apertium" and (builtin_models_dir / entry["path"]).is_dir():
            (directory / entry["path"]).symlink_to(builtin_models_dir / entry["path"])
            write_entry(directory, name, entry)
    if not MISSING:
        from export_models import export_apertium

        export_apertium(directory)
    return directory


@pytest.fixture(scope="module")
def runtime(models_dir):
    rt = Runtime.load(models_dir)
    yield rt
    rt.close()


def job(text, target, source="en", tier="auto"):
    return TranslationJob(text, target, source_language=source, tier=tier)


@needs_apertium
def test_the_manifest_registers_each_plain_mode_as_the_fallback_tier(models_dir):
    specs = load_specs(models_dir)
    pairs = {s.pairs[0]: s for s in specs.values() if s.family == "apertium"}
    assert set(pairs) == {("en", "es"), ("es", "en"), ("fr", "es"), ("es", "fr")}
    assert all(s.tier == FALLBACK and s.revision for s in pairs.values())
    assert pairs[("en", "es")].packages == ("apertium", "apertium-eng-spa")


@needs_apertium
def test_in_domain_sentences_stay_neural_and_real_ones_go_to_apertium(runtime):
    (result,) = runtime.translate([job("The cat sees the dog. My neighbour bought a new bicycle yesterday.", "es")])
    assert result.text == "El gato ve al perro. Mi vecino compró una bicicleta nueva ayer."
    assert (result.engine, result.fallback, result.retried_segments) == ("onnx+apertium", True, ())
    assert result.model == "builtin-m2m-mini"  # the first route on a tie of one segment each
    (only_neural,) = runtime.translate([job("I saw a flurgleblax.", "de")])  # no other route: the model tries
    assert (only_neural.model, only_neural.engine, only_neural.fallback) == ("builtin-m2m-mini", "onnx", False)
    (rule_based,) = runtime.translate([job("My neighbour bought a new bicycle yesterday.", "es", tier="rule-based")])
    assert (rule_based.model, rule_based.tier, rule_based.engine, rule_based.fallback) == (
        "apertium-eng-spa", FALLBACK, "apertium", False)
    assert rule_based.confidence == 1.0 and rule_based.unknown_words == 0


@needs_apertium
def test_unknown_words_lower_the_confidence_and_survive_the_cache(runtime):
    cache = DictCache()
    text = "I saw a flurgleblax. The zorblat is green."
    (first,) = runtime.translate([job(text, "es", tier="rule-based")], cache)
    assert first.text == "Vi un flurgleblax. El zorblat es verde."
    assert first.unknown_words == 2 and first.cached_segments == 0
    assert first.confidence == pytest.approx((0.75 * 19 + 0.75 * 22) / 41, abs=1e-3)
    (second,) = runtime.translate([job(text, "es", tier="rule-based")], cache)
    assert second.cached_segments == 2 and (second.text, second.unknown_words, second.confidence) == (
        first.text, first.unknown_words, first.confidence)


@needs_apertium
def test_french_to_english_goes_through_spanish_when_asked_for_rule_based(runtime):
    (result,) = runtime.translate([job("Merci beaucoup pour ton message.", "en", source="fr", tier="rule-based")])
    assert (result.pivot, result.model, result.engine) == ("es", "apertium-fr-es+apertium-spa-eng", "apertium")
    assert result.text == "Thank you very much For your message."


@needs_apertium
def test_a_model_that_raises_on_one_row_fails_only_that_row(models_dir, monkeypatch):
    rt = Runtime.load(models_dir)
    try:
        model = rt._models["builtin-m2m-mini"]
        real = model.generate
        poison = model.source_ids("The farmer feeds the cow.", "en", "es")

        def generate(sources, *args, **kwargs):
            if poison in sources:
                raise RuntimeError("onnx runtime exploded")
            return real(sources, *args, **kwargs)

        monkeypatch.setattr(model, "generate", generate)
        (result,) = rt.translate([job("The cat sees the dog. The farmer feeds the cow. The dog sees the cat.", "es")])
        assert isinstance(result, Translation), result
        assert result.retried_segments == (1,) and result.engine == "onnx+apertium" and result.fallback
        neural = [rt.translate([job(t, "es")])[0].text for t in ("The cat sees the dog.", "The dog sees the cat.")]
        (apertium,) = rt.translate([job("The farmer feeds the cow.", "es", tier="rule-based")])
        assert result.text == f"{neural[0]} {apertium.text} {neural[1]}"
        assert result.text == "El gato ve al perro. El labrador alimenta la vaca. El perro ve al gato."
    finally:
        rt.close()


@needs_apertium
def test_a_pair_only_apertium_serves_is_refused_without_it(builtin_models_dir):
    neural = Runtime.load(builtin_models_dir, tiers={"basic": ["builtin-marian-en-fr"]})
    (error,) = neural.translate([job("Merci.", "es", source="fr")])
    assert isinstance(error, TranslationError) and error.code == "unsupported_language"
    assert "through another language" in error.message
