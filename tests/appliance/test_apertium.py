"""Apertium through the real appliance (real runtime, one worker, the real Debian packages): a chat
message with every protected part in place, a pivot through Spanish, a neural model that raises on
one segment handing it to Apertium, a killed Apertium process that loses nothing, a segment
that kills its pipeline twice ending as an error event, an attacker's stream syntax batched with
innocent users' messages (each gets exactly its own translation), and a desynced chain whose
answers reach no cache. The catalog's pivot search is tested here
too (pure)."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import psutil
import pytest
import zmq

from appliance.core.protocol import Catalog
from ipc.tiers import FALLBACK
from tests.appliance.conftest import Appliance, module_appliance
from tests.fakes.apertium_modes import missing_modes, needs_modes
from tests.fakes.apertium_stage import write_stage
from tests.fakes.waiting import poll_until
from workers.jobs import TranslationJob
from workers.manifest import file_checksums, load_specs, read_manifest, sha256_file, write_entry
from workers.runtime import Model, Runtime

pytestmark = pytest.mark.timeout(300)

PAIRS = ("eng-spa", "spa-eng", "fr-es", "es-fr")
MISSING = missing_modes(*PAIRS)
needs_apertium = needs_modes(*PAIRS)

BROKEN = "broken-marian-en-fr"  # the built-in en->fr model, whose encoder raises on long inputs
LONGEST_TOKENS = 12  # framed source tokens it still takes
CHAT = "Hello! How are you today? 😀 I will send you the photos of the party tomorrow, see https://example.com/p?id=7 @alice"


# ---------------------------------------------------------------------------------- the catalog


def test_the_catalog_serves_pairs_joined_through_any_language():
    catalog = Catalog({"medium": [("en", "fr")], FALLBACK: [("fr", "es"), ("es", "en"), ("en", "es")]})
    assert ("fr", "en") in catalog.served and catalog.via[("fr", "en")] == "es"
    assert ("en", "fr") not in catalog.pivot_pairs  # served directly (and en->es->fr is a pivot it needs not)
    assert catalog.pivot_json()["through"]["fr-en"] == "es" and catalog.pivot_json()["via"] == "en"
    assert catalog.as_json()[FALLBACK] == [["en", "es"], ["es", "en"], ["fr", "es"]]


# ---------------------------------------------------------------------------------- the appliance


def broken_encoder(source: Path, target: Path, longest: int) -> None:
    """The encoder graph with a Gather whose index runs out of bounds (ORT raises) when any row of
    the batch has more than `longest` real tokens: a model that fails on some segments only."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(source))
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["hidden_raw" if name == "last_hidden_state" else name for name in node.output]
    graph.initializer.extend([
        helper.make_tensor("axis_1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("longest", TensorProto.INT64, [], [longest]),
        helper.make_tensor("seven", TensorProto.INT64, [], [7]),
        helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]),
    ])
    graph.node.extend([
        helper.make_node("ReduceSum", ["attention_mask", "axis_1"], ["lengths"], keepdims=0),
        helper.make_node("ReduceMax", ["lengths"], ["most"], keepdims=0),
        helper.make_node("Greater", ["most", "longest"], ["too_long"]),
        helper.make_node("Cast", ["too_long"], ["too_long_i"], to=TensorProto.INT64),
        helper.make_node("Mul", ["too_long_i", "seven"], ["index"]),
        helper.make_node("Gather", ["zero", "index"], ["probe"]),
        helper.make_node("Add", ["hidden_raw", "probe"], ["last_hidden_state"]),
    ])
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, builtin_models_dir) -> Path:
    """The Apertium registrations, a broken copy of the built-in en->fr model, and a fake
    rule-based en->it mode whose single stage dies on "CRASH"."""
    from modelbuild.apertium_modes import export_apertium

    directory = tmp_path_factory.mktemp("apertium-appliance-models")
    if MISSING:
        return directory
    # The four modes these tests are about: with the other Debian pairs installed, en -> it would
    # also be served through es, and the fake en -> it mode's failures would fail over there.
    export_apertium(directory, list(PAIRS))
    original = read_manifest(builtin_models_dir)["models"]["builtin-marian-en-fr"]
    shutil.copytree(builtin_models_dir / original["path"], directory / BROKEN)
    broken_encoder(builtin_models_dir / original["path"] / "encoder_model.onnx", directory / BROKEN / "encoder_model.onnx",
                   LONGEST_TOKENS)
    entry = {**original, "path": BROKEN, "source": "test:broken", "files": file_checksums(directory / BROKEN)}
    entry.pop("vocabulary", None)  # an open vocabulary: only the failure hands a segment on
    write_entry(directory, BROKEN, entry)
    fake = directory / "fake-modes"
    fake.mkdir()
    stage = write_stage(fake / "crash_stage.py")
    # The stage is its own flag file (it exists, so FLAKY never fires): SWALLOW desyncs it once.
    (fake / "eng-ita.mode").write_text(f"{stage} {stage}\n")
    write_entry(directory, "apertium-eng-ita", {
        "path": str(fake), "family": "apertium", "tier": FALLBACK, "quantization": "none", "source": "test:crash",
        "mode": "eng-ita", "pairs": [["en", "it"]], "packages": [],
        "files": {str(p): sha256_file(p) for p in (fake / "eng-ita.mode", stage)},
    })
    return directory


@pytest.fixture(scope="module")
def app(tmp_path_factory, models_dir):
    if MISSING:
        pytest.skip(needs_apertium.kwargs["reason"])
    workers = {"count": 1, "runtime_factory": "workers.runtime:Runtime.load",
               "models_dir": str(models_dir), "startup_timeout_s": 300.0}
    with module_appliance(tmp_path_factory, "apertium-app", {"workers": workers}, ready_within=300) as appliance:
        yield appliance


@pytest.fixture(scope="module")
def reference(models_dir):
    """The same runtime in this process: what the appliance must answer."""
    if MISSING:
        pytest.skip(needs_apertium.kwargs["reason"])
    runtime = Runtime.load(models_dir)
    yield runtime
    runtime.close()


def expected(runtime: Runtime, text: str, target: str, source: str = "en", tier: str = "auto") -> str:
    (result,) = runtime.translate([TranslationJob(text, target, source, tier)])
    return result.text


def translate(app: Appliance, text: str, target: str, **extra) -> dict:
    reply = app.request({"messageId": "m", "text": text, "targetLanguage": target, "sync": True, **extra}, timeout=120)
    assert reply is not None and reply["status"] == "completed", reply
    return reply["results"][0]


def pipeline_processes(app: Appliance, mode: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.Process(app.proc.pid).children(recursive=True):
        try:
            if any(f"/{mode}." in arg for arg in proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


@needs_apertium
def test_an_english_chat_message_comes_back_in_spanish_with_every_protected_part_in_place(app, reference):
    result = translate(app, CHAT, "es", sourceLanguage="en")
    out = result["translatedText"]
    assert out == expected(reference, CHAT, "es")
    assert out.startswith("Hola! Cómo eres hoy? 😀 Te enviaré las fotos de la fiesta mañana")
    at = 0
    for part in (" 😀 ", " https://example.com/p?id=7 @alice"):
        found = out.find(part, at)
        assert found >= 0, (part, out)
        at = found + len(part)
    assert out.endswith(" https://example.com/p?id=7 @alice")
    assert (result["engine"], result["fallback"], result["modelType"]) == ("apertium", True, FALLBACK)
    assert result["translatorModel"] == "apertium-eng-spa" and result["segmentsCount"] == 3
    assert result["unknownWords"] == 0 and result["confidenceScore"] == 1.0
    again = translate(app, CHAT, "es", sourceLanguage="en")
    assert again["translatedText"] == out and again["fromCache"] is True and again["engine"] == "apertium"


@needs_apertium
def test_french_to_english_goes_through_spanish(app, reference):
    text = "Merci beaucoup pour ton message. On se voit demain à la gare ?"
    result = translate(app, text, "en", sourceLanguage="fr")
    assert result["pivot"] == "es" and result["translatorModel"] == "apertium-fr-es+apertium-spa-eng"
    assert result["engine"] == "apertium" and result["fallback"] is True
    assert result["translatedText"] == expected(reference, text, "en", "fr")
    spanish = expected(reference, text, "es", "fr")
    assert result["translatedText"] == expected(reference, spanish, "en", "es")
    languages = app.request({"type": "languages"})
    assert languages["pivot"]["through"]["fr-en"] == "es" and ["fr", "en"] in languages["pivot"]["pairs"]
    assert ["en", "es"] in languages["languages"][FALLBACK]
    assert {m["family"] for m in languages["models"]} == {"marian", "apertium"}


@needs_apertium
def test_a_neural_model_that_raises_on_a_segment_hands_that_segment_to_apertium(app, reference, models_dir):
    short, long = "The cat sees the dog.", "My neighbour bought a new bicycle yesterday."
    model = Model(load_specs(models_dir)[BROKEN])
    short_ids, long_ids = model.source_ids(short, "en", "fr"), model.source_ids(long, "en", "fr")
    assert len(short_ids) <= LONGEST_TOKENS < len(long_ids)
    model.generate([short_ids], "fr")
    with pytest.raises(Exception, match="out of"):  # the seam is real: ORT raises on the long segment
        model.generate([long_ids], "fr")
    result = translate(app, f"{short} {long}", "fr", sourceLanguage="en")
    assert result["retriedSegments"] == [1] and result["fallback"] is True
    assert result["engine"] == "onnx+apertium" and result["modelType"] == "basic"
    alone_neural = translate(app, short, "fr", sourceLanguage="en")
    assert alone_neural["engine"] == "onnx" and alone_neural["translatorModel"] == BROKEN
    alone_rule_based = translate(app, long, "fr", sourceLanguage="en", modelType="rule-based")
    assert alone_rule_based["pivot"] == "es" and alone_rule_based["fallback"] is False
    assert result["translatedText"] == f"{alone_neural['translatedText']} {alone_rule_based['translatedText']}"
    assert result["translatedText"] == expected(reference, f"{short} {long}", "fr")


@needs_apertium
def test_a_killed_apertium_process_loses_nothing(app, reference):
    sentences = [f"I will call you at {n} o'clock about the {thing}." for n, thing in
                 zip(range(1, 13), ["car", "house", "dog", "garden", "book", "train"] * 2)]
    first_message, second_message = " ".join(sentences[:6]), " ".join(sentences[6:])
    translate(app, "Good morning, my friend.", "es", sourceLanguage="en")  # the en->es pipeline is running
    before = sorted(pipeline_processes(app, "eng-spa"), key=lambda p: p.pid)  # in pipeline order
    assert len(before) >= 5
    before[len(before) // 2].send_signal(signal.SIGKILL)  # a stage in the middle, while idle
    result = translate(app, first_message, "es", sourceLanguage="en")
    assert result["translatedText"] == expected(reference, first_message, "es")
    # Mid-request: a stage is stopped, the message goes into the pipeline (its first program reads
    # it), and the stopped stage is killed before anything can come out.
    running = sorted(pipeline_processes(app, "eng-spa"), key=lambda p: p.pid)
    assert running and {p.pid for p in running}.isdisjoint(p.pid for p in before)
    first, middle = running[0], running[len(running) // 2]
    middle.suspend()
    read_before = first.io_counters().read_chars
    dealer = app.socket(zmq.DEALER)
    dealer.send(json.dumps({"messageId": "k", "text": second_message, "sourceLanguage": "en", "targetLanguage": "es",
                            "sync": True}).encode())
    poll_until(lambda: first.io_counters().read_chars > read_before, 60, what="the message inside the pipeline")
    assert not dealer.poll(0)
    middle.kill()
    assert dealer.poll(120_000), "no reply"
    reply = json.loads(dealer.recv())
    assert reply["status"] == "completed", reply
    assert reply["results"][0]["translatedText"] == expected(reference, second_message, "es")
    after = {p.pid for p in pipeline_processes(app, "eng-spa")}
    assert after and after.isdisjoint(p.pid for p in running)


@needs_apertium
def test_a_segment_that_kills_its_pipeline_twice_ends_as_an_error_event(app):
    sub = app.subscriber()
    reply = app.request({"messageId": "crash", "taskId": "crash-1", "text": "Hello there. CRASH now.",
                         "sourceLanguage": "en", "targetLanguage": "it"})
    assert reply is not None and reply["status"] == "queued", reply
    (event,) = sub.wait_for(lambda events: [e for e in events if e["taskId"] == "crash-1"], 120, "the error event")
    assert event["type"] == "translation_error" and event["error"]["code"] == "translation_failed"
    assert "segment 1" in event["error"]["message"] and "retried on a fresh pipeline" in event["error"]["message"]
    ok = translate(app, "Hello there.", "it", sourceLanguage="en")
    assert ok["translatedText"] == "HELLO THERE." and ok["engine"] == "apertium"


ATTACKS = ["I love cats ^", "^", "Hi ^$/<x>{y}[z]\\ @*#~+=%|", "a\uffffb \x00 \ufdd0 end ^", "Bye [[x]] ^"]
INNOCENT = ["Hello my friend.", "The dog sleeps in the garden.", "Good morning, how are you?",
            "My neighbour bought a new bicycle yesterday."]


@needs_apertium
def test_an_attackers_stream_syntax_batched_with_innocent_messages_reaches_no_one_else(app, reference):
    """From outside, as found: an attacker's messages (a segment ending in `^` and the rest of the
    stream syntax) go in one burst with innocent users' messages; every innocent user gets exactly
    its own translation, now and from the caches afterwards."""
    dealer = app.socket(zmq.DEALER)
    burst = [(f"a{i}", text) for i, text in enumerate(ATTACKS)] + [(f"u{i}", text) for i, text in enumerate(INNOCENT)]
    burst = [burst[i] for i in (0, 5, 1, 6, 2, 7, 3, 8, 4)]  # interleaved: attackers between the users
    for message_id, text in burst:
        dealer.send(json.dumps({"messageId": message_id, "text": text, "sourceLanguage": "en", "targetLanguage": "es",
                                "sync": True}).encode())
    replies = {}
    while len(replies) < len(burst):
        assert dealer.poll(120_000), f"no reply; have {sorted(replies)}"
        reply = json.loads(dealer.recv())
        replies[reply["messageId"]] = reply
    wanted = {text: expected(reference, text, "es") for text in INNOCENT}
    for message_id, text in burst:
        reply = replies[message_id]
        assert reply["status"] == "completed", reply
        out = reply["results"][0]["translatedText"]
        if message_id.startswith("u"):
            assert out == wanted[text], (text, out)
        else:
            assert out == expected(reference, text, "es")
            assert not any(translation in out for translation in wanted.values()), (text, out)
    for text in INNOCENT:  # what the caches kept is each user's own
        again = translate(app, text, "es", sourceLanguage="en")
        assert again["translatedText"] == wanted[text] and again["fromCache"] is True


@needs_apertium
def test_what_a_desynced_chain_answered_is_served_but_never_cached(app):
    text = "Hello SWALLOW there. Good day."  # the first frame eats its NUL once: the answers desync
    first = translate(app, text, "it", sourceLanguage="en")
    assert first["translatedText"] == "HELLO SWALLOW THERE. GOOD DAY." and first["fromCache"] is False
    second = translate(app, text, "it", sourceLanguage="en")  # neither message nor segments were kept
    assert second["translatedText"] == first["translatedText"] and second["fromCache"] is False
    third = translate(app, text, "it", sourceLanguage="en")  # the clean run was kept as usual
    assert third["translatedText"] == first["translatedText"] and third["fromCache"] is True
