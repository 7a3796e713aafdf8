"""The Apertium engine: real pipelines of real processes (the Debian packages when installed, and
small stand-in stages that crash, hang or desync on cue), the stream-format framing (slots and the
per-frame marker), unknown-word marks, restarts, the liveness guard; the runtime routing to it,
caching it (and not caching what a broken exchange answered), and the pivot search. The framing's
differential property on the real pipelines is in test_apertium_framing.py."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from ipc.routing import pivot_routes
from ipc.tiers import FALLBACK
from tests.fakes.apertium_modes import missing_modes, needs_modes
from tests.fakes.apertium_stage import write_stage
from tests.fakes.segment_cache import DictCache
from workers.apertium import (
    ApertiumError,
    ApertiumModel,
    Desync,
    Pipeline,
    decode,
    encode,
    installed_modes,
    known_share,
    read_stages,
)
from workers.jobs import Translation, TranslationError, TranslationJob
from workers.manifest import load_specs, read_manifest, write_entry
from workers.registry import Registry
from workers.runtime import Runtime

pytestmark = pytest.mark.timeout(120)

PAIRS = ("eng-spa", "spa-eng", "fr-es", "es-fr")
MISSING = missing_modes(*PAIRS)
needs_apertium = needs_modes(*PAIRS)
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


def texts(run) -> list:
    return [a[0] if isinstance(a, tuple) else a for a in run.answers]


def gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)


# ---------------------------------------------------------------------------------- the text


def test_no_stream_character_reaches_the_pipeline_each_run_waits_in_a_slot():
    payload, slots = encode("a [b] $c ^d \\e /f @g <h> {i} ~ *j #k +=%| nul\0x \uffff\ufdd0 \x85y", "7.3")
    assert payload == (b"a [7.3.0]b[7.3.1] [7.3.2]c [7.3.3]d [7.3.4]e [7.3.5]f [7.3.6]g [7.3.7]h[7.3.8] [7.3.9]i[7.3.10] "
                       b"[7.3.11] [7.3.12]j [7.3.13]k [7.3.14] nul[7.3.15]x [7.3.16] [7.3.17]y[7.3]")
    assert slots == ["[", "]", "$", "^", "\\", "/", "@", "<", ">", "{", "}", "~", "*", "#", "+=%|", "\0", "\uffff\ufdd0",
                     "\x85"]
    assert encode("", "1.0") == (b"[1.0]", [])


def test_an_answer_is_read_only_with_its_own_marker_and_engine_marks_are_removed_and_counted():
    assert decode("Vi un *flurgleblax y #bueno @casa.[9.2]", "9.2", []) == ("Vi un flurgleblax y bueno casa.", 3)
    assert decode("A las 20*h30[9.2.0][9.2]", "9.2", ["^"]) == ("A las 20h30^", 1)
    assert decode(" El \\]gato   [9.2.0] x[9.2]\n", "9.2", ["~"]) == ("El ]gato ~ x", 0)
    for foreign in ("Hola[9.3]", "Hola[8.2]", "Hola[9.2][9.3]", "Hola[9.2] y más", "Hola[9.2.1]", "Hola", "Hola[9.2"):
        with pytest.raises(Desync):
            decode(foreign, "9.2", ["x"])
    assert known_share("I saw a flurgleblax yesterday.", 1) == 0.8
    assert known_share("!!!", 0) == 1.0 and known_share("one", 3) == 0.0


@given(st.text(), st.integers(0, 10**6))
def test_a_frame_read_back_untranslated_is_the_text(text, index):
    # Runs of spaces (left by words that transfer drops) read as one.
    payload, slots = encode(text, f"123.{index}")
    assert decode(payload.decode(), f"123.{index}", slots) == (regex.sub(" {2,}", " ", text).strip(), 0)


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
    assert texts(pipeline.run(inputs)) == [t.upper().strip() for t in inputs]
    assert texts(pipeline.run(["again"])) == ["AGAIN"]
    assert pipeline.starts == 1 and pipeline.alive()


def test_a_segment_whose_chain_dies_is_retried_once_on_a_fresh_chain(pipelines, stage, tmp_path):
    pipeline = fake(pipelines, stage, tmp_path)
    assert texts(pipeline.run(["warm"])) == ["WARM"]
    first = pipeline.pids
    assert texts(pipeline.run(["a", "b FLAKY", "c", "d"])) == ["A", "B FLAKY", "C", "D"]
    assert pipeline.starts == 2 and set(pipeline.pids).isdisjoint(first)
    assert (tmp_path / "flaky-once").exists()  # it did die once


def test_an_answer_that_is_not_its_frames_own_restarts_the_chain_and_nothing_is_clean(pipelines, stage, tmp_path):
    pipeline = fake(pipelines, stage, tmp_path)
    assert pipeline.run(["warm"]).clean
    first = pipeline.pids
    run = pipeline.run(["a", "b SWALLOW", "c", "d"])  # b's answer runs into c's: b's marker is not last
    assert (tmp_path / "flaky-once.swallowed").exists()
    assert texts(run) == ["A", "B SWALLOW", "C", "D"]  # b alone on a fresh chain, c and d again after it
    assert not run.clean and pipeline.desyncs == 1
    assert pipeline.starts == 2 and gone(first)
    assert pipeline.run(["after"]).clean


def test_a_segment_that_kills_the_fresh_chain_too_fails_alone(pipelines, stage, tmp_path):
    pipeline = fake(pipelines, stage, tmp_path)
    answers = texts(pipeline.run(["a", "b CRASH", "c", "d"]))
    assert answers[0] == "A" and answers[2:] == ["C", "D"]
    assert "fake pipeline died" in answers[1] and "retried on a fresh pipeline" in answers[1]
    assert "exited 3" in answers[1]
    assert texts(pipeline.run(["after"])) == ["AFTER"]


def test_a_killed_stage_loses_nothing(pipelines, stage, tmp_path):
    pipeline = fake(pipelines, stage, tmp_path)
    assert texts(pipeline.run(["warm"])) == ["WARM"]
    for victim in (1, 0):
        pids = pipeline.pids
        os.kill(pids[victim], signal.SIGKILL)
        inputs = [f"line {i}" for i in range(300)]
        assert texts(pipeline.run(inputs)) == [t.upper() for t in inputs]
        assert gone(pids)
    assert pipeline.starts == 3


def test_a_stage_that_stops_answering_times_out_and_is_replaced(pipelines, stage, tmp_path):
    pipeline = fake(pipelines, stage, tmp_path, timeout_s=1.0)
    assert texts(pipeline.run(["warm"])) == ["WARM"]
    hung = pipeline.pids
    answers = texts(pipeline.run(["a", "HANG", "b"]))
    assert answers[0] == "A" and answers[2] == "B"
    assert "no output for 1s" in answers[1]
    assert gone(hung)  # the stalled chain was killed, not left behind
    assert texts(pipeline.run(["later"])) == ["LATER"]


def test_a_chain_that_cannot_start_fails_every_segment_with_the_reason(pipelines):
    pipeline = Pipeline([["/nonexistent/lt-proc", "-z"]], 5.0, "broken")
    pipelines.append(pipeline)
    run = pipeline.run(["a", "b"])
    assert all(isinstance(a, str) and "cannot start the broken pipeline" in a for a in run.answers)
    assert not run.clean


@needs_apertium
def test_a_real_pipeline_translates_and_counts_unknown_words(pipelines):
    pipeline = Pipeline(read_stages(MODES["eng-spa"]), 10.0, "eng-spa")
    pipelines.append(pipeline)
    hello, unknown, special = texts(pipeline.run([
        "Hello! How are you today?", "I saw a flurgleblax yesterday.", "The [cat] costs 5 $ @home ~ ok.",
    ]))
    assert hello == "Hola! Cómo eres hoy?"
    assert unknown == "Vi un flurgleblax ayer."
    assert special == "El [gato] cuesta 5 $ @casa ~ vale."
    assert pipeline.run(["I saw a flurgleblax yesterday."]).answers == [("Vi un flurgleblax ayer.", 1)]


@needs_apertium
def test_a_real_pipeline_killed_mid_chain_is_restarted(pipelines):
    pipeline = Pipeline(read_stages(MODES["fr-es"]), 10.0, "fr-es")
    pipelines.append(pipeline)
    inputs = ["Merci beaucoup pour ton message.", "Le chien du voisin dort.", "On se voit demain à la gare ?"] * 20
    reference = texts(pipeline.run(inputs))
    assert reference[0] == "Muchas gracias para tu mensaje."
    for victim in range(len(pipeline.pids)):
        pids = pipeline.pids
        os.kill(pids[victim], signal.SIGKILL)
        assert texts(pipeline.run(inputs)) == reference
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
        from modelbuild.apertium_modes import export_apertium

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
    # The default packages' pairs at least; every other installed pair is registered too.
    assert set(pairs) >= {("en", "es"), ("es", "en"), ("fr", "es"), ("es", "fr")}
    assert all(s.tier == FALLBACK and s.revision for s in pairs.values())
    assert pairs[("en", "es")].packages == ("apertium", "apertium-eng-spa")


@needs_apertium
def test_in_domain_sentences_stay_neural_and_real_ones_go_to_apertium(runtime):
    (result,) = runtime.translate([job("The cat sees the dog. My neighbour bought a new bicycle yesterday.", "es")])
    assert result.text == "El gato ve al perro. Mi vecino compró una bicicleta nueva ayer."
    assert (result.engine, result.fallback, result.retried_segments) == ("onnx+apertium", True, ())
    assert result.model == "builtin-m2m-mini"  # the first route on a tie of one segment each
    # No other route serves en -> de: the segment comes back as typed, and the result says so.
    (only_neural,) = runtime.translate([job("I saw a flurgleblax.", "de")])
    assert (only_neural.text, only_neural.untranslated_segments, only_neural.confidence) == ("I saw a flurgleblax.", (0,), 0)
    assert (only_neural.model, only_neural.engine, only_neural.fallback) == ("", "", False)
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


@needs_apertium
def test_no_engine_mark_reaches_the_text_in_a_pivots_legs_and_each_is_counted(runtime):
    (result,) = runtime.translate([job("à 20h30", "en", source="fr", tier="rule-based")])
    assert (result.text, result.pivot, result.unknown_words) == ("To the 20h30", "es", 1)


def fake_engine(tmp_path: Path, stage: Path) -> ApertiumModel:
    """An ApertiumModel whose pipeline is the two stand-in stages (SWALLOW desyncs it once)."""
    from workers.manifest import ModelSpec

    modes = tmp_path / "modes"
    modes.mkdir(exist_ok=True)
    (modes / "eng-ita.mode").write_text(f"{stage}\n")
    spec = ModelSpec("apertium-eng-ita", modes, "apertium", FALLBACK, "none", "test:fake", (("en", "it"),), {},
                     mode="eng-ita")
    model = ApertiumModel(spec)
    model.pipeline = Pipeline([[str(stage), "-z"], [str(stage), "-z", str(tmp_path / "flag")]], 10.0, "fake")
    return model


def test_what_a_desynced_exchange_answered_is_right_but_cached_nowhere(tmp_path, stage):
    model = fake_engine(tmp_path, stage)
    rt = Runtime({"apertium-eng-ita": model}, Registry({FALLBACK: {"apertium-eng-ita": (("en", "it"),)}}))
    cache = DictCache()
    try:
        texts = ["Good day.", "Hello SWALLOW there.", "See you.", "Bye now."]
        results = rt.translate([job(t, "it") for t in texts], cache)
        assert [r.text for r in results] == [t.upper() for t in texts]
        assert model.pipeline.desyncs == 1 and not any(r.cacheable for r in results)
        assert cache.entries == {}  # not one segment of the broken run
        again = rt.translate([job(t, "it") for t in texts], cache)  # a clean run: cached as usual
        assert [r.text for r in again] == [t.upper() for t in texts] and all(r.cacheable for r in again)
        assert len(cache.entries) == 4 and all(r.cached_segments == 0 for r in again)
    finally:
        rt.close()


def test_the_revision_covers_the_framing_code_and_the_modes_files_as_they_are_on_disk(tmp_path, stage, monkeypatch):
    from workers import apertium

    data = tmp_path / "data.bin"
    data.write_bytes(b"x")
    mode = tmp_path / "xx-yy.mode"
    mode.write_text(f"{stage} {data}\n")
    stages = read_stages(mode)
    first = apertium.engine_revision("files", mode, stages)
    assert first == apertium.engine_revision("files", mode, stages) != apertium.engine_revision("other", mode, stages)
    data.write_bytes(b"xy")  # an upgraded package: new data under the same manifest checksums
    upgraded = apertium.engine_revision("files", mode, stages)
    assert upgraded != first
    monkeypatch.setattr(apertium, "FRAMING_REVISION", apertium.FRAMING_REVISION + 1)
    assert apertium.engine_revision("files", mode, stages) not in (first, upgraded)
    model = fake_engine(tmp_path, stage)
    assert model.revision != model.spec.revision
    from ipc.cache_key import segment_key

    spec = model.spec  # segment keys, and (through the Ready frame) message keys, carry the engine's revision
    assert model.chunk("hi", "en", "it", 1).key != segment_key(spec.name, spec.revision, "en", "it", list(b"hi"),
                                                                 {"engine": "apertium"})
    rt = Runtime({spec.name: model}, Registry({FALLBACK: {spec.name: (("en", "it"),)}}))
    assert [m["revision"] for m in rt.models()] == [model.revision]
    rt.close()
