"""Drop-in mode for Meeshy's gateway ([compat], appliance/edge/compat.py): a real PUSH and a real SUB
speaking exactly the gateway's messages (its zmq-translation client in the Meeshy repository) against
a real appliance with the fake runtime; then the conversions and the settings in-process."""

from __future__ import annotations

import json
import time

import msgspec
import pytest
import zmq

from appliance import config
from appliance.edge import compat
from ipc import events, exitcodes
from tests.appliance.conftest import REPO, Events, module_appliance, write_config
from tests.fakes.waiting import poll_until

pytestmark = pytest.mark.timeout(120)

TEXT = "The cat sees the dog."


class Gateway:
    """Meeshy's gateway as its zeromq.js client behaves: a PUSH to the translator's PULL, a SUB
    on everything it publishes, no reply channel."""

    def __init__(self, app) -> None:
        self.push = app.socket(zmq.PUSH, app.endpoints["compat_pull"])
        sub = app.socket(zmq.SUB, app.endpoints["compat_events"])
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.events = Events(sub)

    def send(self, first: dict | bytes, *binary: bytes) -> None:
        frames = [first if isinstance(first, bytes) else json.dumps(first).encode(), *binary]
        self.push.send_multipart(frames)

    def ping(self) -> None:
        self.send({"type": "ping", "timestamp": int(time.time() * 1000)})

    def sync(self) -> None:
        """Ping until a pong arrives: the SUB's subscription has then reached the appliance."""

        def answered():
            self.ping()
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                self.events.pump(50)
                if self.of_type("pong"):
                    return True
            return False

        poll_until(answered, 20, what="a pong on the compat PUB")

    def of_type(self, kind: str, task_id: str | None = None) -> list[dict]:
        return [e for e in self.events.all if e.get("type") == kind and (task_id is None or e.get("taskId") == task_id)]

    def wait_for(self, predicate, what: str, deadline: float = 30.0):
        return self.events.wait_for(lambda _: predicate(), deadline, what)


def translation(task_id: str, targets: list[str], text: str = TEXT, **extra) -> dict:
    """A translation request exactly as ZmqRequestSender.sendTranslationRequest builds it."""
    return {
        "type": "translation",
        "taskId": task_id,
        "messageId": f"msg-{task_id}",
        "text": text,
        "sourceLanguage": "en",
        "targetLanguages": targets,
        "conversationId": "conv-1",
        "modelType": "medium",
        "timestamp": int(time.time() * 1000),
        **extra,
    }


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    flag = tmp_path_factory.mktemp("flags") / "error"
    extra = {
        "compat": {"enabled": True, "meeshy_pull_port": 0, "meeshy_pub_port": 0, "pong_interval_s": 0.5,
                   "max_frame_bytes": 65536, "max_message_bytes": 65536, "max_connections": 64},
    }
    with module_appliance(tmp_path_factory, "compat", extra, {"FAKE_RUNTIME_ERROR_FLAG": str(flag)}) as a:
        a.error_flag = flag
        yield a


@pytest.fixture(scope="module")
def busy_app(tmp_path_factory):
    """Room for two tasks, each taking seconds; pongs only when asked (the default interval)."""
    extra = {
        "compat": {"enabled": True, "meeshy_pull_port": 0, "meeshy_pub_port": 0},
        "limits": {"max_inflight_tasks": 2},
        "cache": {"enabled": False},
    }
    with module_appliance(tmp_path_factory, "compat_busy", extra, {"FAKE_RUNTIME_DELAY_MS": "3000"}) as a:
        yield a


@pytest.fixture
def gateway(app):
    gw = Gateway(app)
    gw.sync()
    gw.events.all.clear()
    return gw


# ---------------------------------------------------------------- translations


def test_endpoints_json_names_the_compat_ports(app):
    assert app.endpoints["compat_pull"].startswith("tcp://127.0.0.1:")
    assert app.endpoints["compat_events"].startswith("tcp://127.0.0.1:")
    assert app.endpoints["compat_pull"] != app.endpoints["compat_events"]


def test_a_translation_to_two_languages_gives_two_gateway_shaped_events(gateway):
    gateway.send(translation("t-two", ["fr", "es"]))
    done = gateway.wait_for(lambda: len(gateway.of_type("translation_completed", "t-two")) == 2 and
                            gateway.of_type("translation_completed", "t-two"), "two completed events")
    assert sorted(e["targetLanguage"] for e in done) == ["es", "fr"]
    for event in done:
        assert list(event) == ["type", "taskId", "targetLanguage", "timestamp", "result", "metadata"]
        result = event["result"]
        assert result["messageId"] == "msg-t-two"
        assert result["translatedText"] == TEXT[::-1]
        assert result["sourceLanguage"] == "en"
        assert result["targetLanguage"] == event["targetLanguage"]
        assert 0.0 <= result["confidenceScore"] <= 1.0
        assert result["modelType"] == "medium"
        assert result["translatorModel"] == "fake-medium"
        assert isinstance(result["workerId"], str)
        assert result["segmentsCount"] >= 0
        # seconds, not milliseconds: a job of the fake runtime takes far less than a second
        assert 0.0 <= result["processingTime"] < 10.0
        assert event["metadata"]["conversationId"] == "conv-1"
        assert "queueTimeMs" in event["metadata"]
        assert abs(event["timestamp"] - time.time()) < 3600  # seconds since the epoch
    assert not gateway.of_type("translation_error")


def test_target_language_is_echoed_as_the_gateway_wrote_it(gateway):
    gateway.send(translation("t-spelling", ["fr-FR"]))
    (event,) = gateway.wait_for(lambda: gateway.of_type("translation_completed", "t-spelling"), "completed")
    assert event["targetLanguage"] == event["result"]["targetLanguage"] == "fr-FR"


@pytest.mark.parametrize("model_type", ["premium", "turbo", "basic"])
def test_model_type_is_a_preference(gateway, model_type):
    """No premium tier is loaded and "turbo" is no tier: served all the same, never refused."""
    task = f"t-model-{model_type}"
    gateway.send(translation(task, ["es"], modelType=model_type))
    (event,) = gateway.wait_for(lambda: gateway.of_type("translation_completed", task), "completed")
    assert event["result"]["modelType"] == "medium"
    assert not gateway.of_type("translation_error", task)


def test_an_unsupported_language_is_settled_without_a_failure(gateway):
    """Chosen (docs/operations.md, Meeshy's gateway, Per language): a translation_error would feed
    the gateway's circuit breaker and fail the whole message; a completed event whose messageId
    no gateway pipeline stores settles the language and counts as no failure."""
    gateway.send(translation("t-xx", ["fr", "xx"]))
    events = gateway.wait_for(lambda: len(gateway.of_type("translation_completed", "t-xx")) == 2 and
                              gateway.of_type("translation_completed", "t-xx"), "fr and the unserved xx")
    by_target = {e["targetLanguage"]: e for e in events}
    assert by_target["fr"]["result"]["translatedText"] == TEXT[::-1]
    unserved = by_target["xx"]
    assert unserved["result"]["messageId"] == "unserved:msg-t-xx"  # namespaced: the message pipeline skips it
    assert unserved["result"]["targetLanguage"] == "xx" and unserved["result"]["translatedText"] == TEXT
    assert unserved["metadata"]["unserved"] is True
    assert unserved["metadata"]["errorCode"] == "unsupported_language"
    assert unserved["metadata"]["messageId"] == "msg-t-xx" and unserved["metadata"]["conversationId"] == "conv-1"
    assert not gateway.of_type("translation_error")


def test_a_retry_runs_the_failed_language_and_sends_nothing_twice(app, gateway):
    # fr is in the cache (answered by the edge), es must go to a worker, which fails while the
    # flag is set: one language finished, one failed (withheld: the gateway's re-push reruns it).
    text = "Retries find their way back."
    gateway.send(translation("t-warm", ["fr"], text=text))
    gateway.wait_for(lambda: gateway.of_type("translation_completed", "t-warm"), "warm-up")
    before = app.request({"type": "stats"})["compat"]
    app.error_flag.touch()
    try:
        gateway.send(translation("t-retry", ["fr", "es"], text=text))
        gateway.wait_for(lambda: gateway.of_type("translation_completed", "t-retry") and
                         app.request({"type": "stats"})["compat"]["withheld_failures"] > before["withheld_failures"],
                         "fr completed, es failed")
    finally:
        app.error_flag.unlink()
    (first_fr,) = gateway.of_type("translation_completed", "t-retry")
    assert first_fr["targetLanguage"] == "fr" and first_fr["result"]["fromCache"] is True

    # The gateway's retry: the same taskId with only the missing language.
    gateway.send(translation("t-retry", ["es"], text=text))
    gateway.wait_for(lambda: [e for e in gateway.of_type("translation_completed", "t-retry") if e["targetLanguage"] == "es"],
                     "es completed on the retry")

    # A re-push naming both again: both were sent, so nothing more comes.
    gateway.send(translation("t-retry", ["fr", "es"], text=text))
    gateway.sync()  # a pong published after anything the re-push could have caused
    assert [e["targetLanguage"] for e in gateway.of_type("translation_completed", "t-retry")] == ["fr", "es"]
    assert not gateway.of_type("translation_error")
    after = app.request({"type": "stats"})["compat"]
    assert after["suppressed_repeats"] - before["suppressed_repeats"] == 2
    assert after["republished"] - before["republished"] == 1  # es, asked for again


def test_a_task_id_reused_for_other_text_is_refused(gateway):
    gateway.send(translation("t-conflict", ["fr"]))
    gateway.wait_for(lambda: gateway.of_type("translation_completed", "t-conflict"), "completed")
    gateway.send(translation("t-conflict", ["fr"], text="Something else entirely."))
    (event,) = gateway.wait_for(lambda: gateway.of_type("translation_error", "t-conflict"), "conflict")
    assert event["metadata"]["errorCode"] == "task_id_conflict"


def test_native_subscribers_do_not_get_compat_tasks_and_the_gateway_no_native_ones(app, gateway):
    """Chosen: apart. A compat task's events go to the compat PUB only, in the gateway's shape;
    native tasks' events to 5556 only."""
    native = app.subscriber()
    gateway.send(translation("t-apart", ["fr", "es"]))
    gateway.wait_for(lambda: len(gateway.of_type("translation_completed", "t-apart")) == 2, "compat events")
    assert app.request({"messageId": "n-1", "taskId": "n-apart", "text": TEXT, "targetLanguage": "fr"})["status"] == "queued"
    native.wait_for(lambda events: any(e["taskId"] == "n-apart" for e in events), what="the native event")
    # One PUB publishes in order: the compat task's events, had they gone to 5556, came before.
    assert not [e for e in native.all if e["taskId"] == "t-apart"]
    gateway.send(translation("t-apart-after", ["fr"]))  # published after the native task's event
    gateway.wait_for(lambda: gateway.of_type("translation_completed", "t-apart-after"), "a later compat event")
    assert not [e for e in gateway.events.all if e.get("taskId") == "n-apart"]


def test_a_story_text_object_gets_one_event_with_every_language(gateway):
    gateway.send({
        "type": "story_text_object_translation", "postId": "post-1", "textObjectIndex": 2, "text": TEXT,
        "sourceLanguage": "en", "targetLanguages": ["fr", "de"], "timestamp": int(time.time() * 1000),
    })
    (event,) = gateway.wait_for(lambda: gateway.of_type("story_text_object_translation_completed"), "the story event")
    assert (event["postId"], event["textObjectIndex"]) == ("post-1", 2)
    assert event["translations"] == {"fr": TEXT[::-1], "de": TEXT[::-1]}
    gateway.sync()
    assert len(gateway.of_type("story_text_object_translation_completed")) == 1


# ---------------------------------------------------------------- pings


def test_pongs_come_unprompted(app):
    gw = Gateway(app)  # never pings
    pongs = gw.wait_for(lambda: len(gw.of_type("pong")) >= 2 and gw.of_type("pong"), "two unprompted pongs")
    assert pongs[0] == {
        "type": "pong",
        "timestamp": pongs[0]["timestamp"],
        "translator_status": "healthy",
        "translator_port_pub": compat.port_of(app.endpoints["compat_events"]),
        "translator_port_pull": compat.port_of(app.endpoints["compat_pull"]),
        "audio_pipeline_available": False,
    }
    assert abs(pongs[0]["timestamp"] - time.time()) < 3600  # seconds


def test_a_ping_gets_a_pong(busy_app):
    gw = Gateway(busy_app)
    gw.sync()  # pings until a pong comes; this appliance sends none unprompted for 30 s
    pong = gw.of_type("pong")[0]
    assert pong["translator_status"] == "healthy"
    assert pong["translator_port_pull"] == compat.port_of(busy_app.endpoints["compat_pull"])
    assert pong["audio_pipeline_available"] is False


def test_overload_is_translation_pool_full(busy_app):
    gw = Gateway(busy_app)
    gw.sync()
    gw.send(translation("t-fill", ["fr", "es"]))  # two tasks of three seconds: the limit
    gw.send(translation("t-over", ["fr"], text="One too many."))
    (event,) = gw.wait_for(lambda: gw.of_type("translation_error", "t-over"), "the overload error")
    assert event["error"] == "translation pool full"
    assert event["metadata"]["errorCode"] == "overloaded"
    assert event["messageId"] == "msg-t-over" and event["conversationId"] == "conv-1"
    # The two tasks ran in one batch of about six seconds: processingTime says so in seconds.
    done = gw.wait_for(lambda: len(gw.of_type("translation_completed", "t-fill")) == 2 and
                       gw.of_type("translation_completed", "t-fill"), "the tasks that fit")
    assert all(1.0 <= e["result"]["processingTime"] < 600.0 for e in done)
    assert not gw.of_type("translation_error", "t-fill")


# ---------------------------------------------------------------- what is not served


def test_audio_process_multipart_gets_audio_process_error(gateway):
    request = {
        "type": "audio_process", "messageId": "m-audio", "attachmentId": "att-1", "conversationId": "conv-1",
        "senderId": "u-1", "audioUrl": "", "audioMimeType": "audio/ogg",
        "binaryFrames": {"audio": 1, "audioMimeType": "audio/ogg", "audioSize": 4000, "voiceProfile": 2,
                         "voiceProfileSize": 512},
        "audioDurationMs": 1200, "targetLanguages": ["fr"], "generateVoiceClone": False, "modelType": "medium",
    }
    gateway.send(request, b"\x00" * 4000, b"\x01" * 512)
    (event,) = gateway.wait_for(lambda: gateway.of_type("audio_process_error"), "audio_process_error")
    assert event["messageId"] == "m-audio" and event["attachmentId"] == "att-1"
    assert event["errorCode"] == "unsupported_request" and isinstance(event["error"], str)
    assert event["taskId"] == ""  # the gateway's audio requests carry none
    assert not gateway.of_type("translation_error")


@pytest.mark.parametrize("request_, kind, fields", [
    ({"type": "transcription_only", "taskId": "t-tr", "messageId": "m-tr", "attachmentId": "a-tr",
      "audioFormat": "ogg", "binaryFrames": {"audio": 1}},
     "transcription_error", {"taskId": "t-tr", "messageId": "m-tr", "attachmentId": "a-tr"}),
    ({"type": "voice_profile_analyze", "request_id": "r-1", "user_id": "u-1", "audio_data": "AAAA",
      "audio_format": "wav"},
     "voice_profile_error", {"request_id": "r-1", "user_id": "u-1", "success": False}),
    ({"type": "voice_translate_async", "taskId": "t-voice", "userId": "u-1"},
     "voice_api_error", {"taskId": "t-voice", "requestType": "voice_translate_async"}),
])
def test_other_unserved_requests_get_the_error_event_of_their_path(gateway, request_, kind, fields):
    gateway.send(request_, *([b"\x00" * 100] if kind == "transcription_error" else []))
    (event,) = gateway.wait_for(lambda: gateway.of_type(kind), kind)
    assert {k: event[k] for k in fields} == fields
    assert isinstance(event["error"], str) and event["error"]
    assert not gateway.of_type("translation_error")


def test_garbage_gets_an_error_event_only_when_it_names_a_task(app, gateway):
    gateway.send(b'{"type": "translation", "taskId": "t-garbled", "messageId": "m-garbled", "text": "cut sh')
    gateway.send(b"\xff\xfe not json at all")
    gateway.send(b"[1, 2, 3]")
    gateway.ping()  # the pong comes after anything the three could have caused
    gateway.wait_for(lambda: gateway.of_type("translation_error", "t-garbled"), "the garbled task's error")
    pongs_before = len(gateway.of_type("pong"))
    gateway.ping()
    gateway.wait_for(lambda: len(gateway.of_type("pong")) > pongs_before, "a pong after the garbage")
    (event,) = gateway.of_type("translation_error")
    assert event["messageId"] == "m-garbled" and event["metadata"]["errorCode"] == "invalid_json"
    assert poll_until(lambda: app.log().count("unreadable gateway request") >= 3, 10)


def test_a_message_over_the_bound_is_dropped_whole(app, gateway):
    audio = {"type": "audio_process", "messageId": "m-big", "attachmentId": "att-big"}
    gateway.send(audio, *[b"x"] * 9)  # ten frames
    gateway.send(audio, b"x" * 40000, b"y" * 40000)  # binary frames over max_message_bytes in all
    gateway.send({"type": "audio_process", "messageId": "m-small", "attachmentId": "att-small"}, b"z" * 1000)
    (event,) = gateway.wait_for(lambda: gateway.of_type("audio_process_error"), "the bounded message's error")
    assert event["messageId"] == "m-small"
    assert poll_until(lambda: app.log().count("dropped a gateway message") >= 2, 10)


def test_a_frame_over_max_frame_bytes_costs_its_message_not_the_connection(app):
    gw = Gateway(app)
    gw.sync()
    gw.events.all.clear()
    before = app.log().count("dropped a gateway message")
    gw.send({"type": "audio_process", "messageId": "m-huge"}, b"x" * 70000)
    gw.send(translation("t-after-huge", ["fr"]))  # the same connection, right behind it
    gw.wait_for(lambda: gw.of_type("translation_completed", "t-after-huge"), "served on the same connection")
    assert not gw.of_type("audio_process_error")
    assert poll_until(lambda: app.log().count("dropped a gateway message") > before, 10)


def test_a_compat_port_in_use_fails_the_start(start_appliance, zctx):
    taken = zctx.socket(zmq.PULL)
    taken.setsockopt(zmq.LINGER, 0)
    try:
        port = taken.bind_to_random_port("tcp://127.0.0.1")
        app = start_appliance(config={"compat": {"enabled": True, "meeshy_pull_port": port, "meeshy_pub_port": 0}},
                              wait=False)
        assert app.wait_exit(30) == exitcodes.EXIT_BIND_ERROR
        assert "cannot bind" in app.log()
    finally:
        taken.close()


# ---------------------------------------------------------------- conversions, in-process


def native_completed(**result) -> events.Completed:
    base = {
        "messageId": "m", "translatedText": "salut", "sourceLanguage": "en", "targetLanguage": "fr",
        "confidenceScore": 0.9, "processingTime": 1500.0, "modelType": "basic", "translatorModel": "opus",
        "fromCache": False, "workerId": 3, "segmentsCount": 2, "fallback": False,
    }
    return msgspec.convert(
        {"type": "translation_completed", "taskId": "t", "messageId": "m", "targetLanguage": "fr",
         "timestamp": 1764350000.5, "result": base | result,
         "metadata": {"attempts": 1, "queueTime": 4.0, "conversationId": "c"}, "conversationId": "c"},
        events.Completed)


def test_completed_conversion():
    event = compat.gateway_completed(native_completed(), "fr-FR", "medium")
    assert event == {
        "type": "translation_completed", "taskId": "t", "targetLanguage": "fr-FR", "timestamp": 1764350000.5,
        "result": {"messageId": "m", "translatedText": "salut", "sourceLanguage": "en", "targetLanguage": "fr-FR",
                   "confidenceScore": 0.9, "processingTime": 1.5, "modelType": "basic", "translatorModel": "opus",
                   "workerId": "worker-3", "segmentsCount": 2, "fromCache": False, "fallback": False},
        "metadata": {"attempts": 1, "queueTimeMs": 4.0, "conversationId": "c"},
    }


def test_an_answer_no_worker_made_still_names_a_tier_and_a_worker():
    event = compat.gateway_completed(native_completed(modelType="", workerId=None, processingTime=0.0), "fr", "premium")
    assert (event["result"]["modelType"], event["result"]["workerId"], event["result"]["processingTime"]) == ("premium", "edge", 0.0)


def test_error_conversion():
    assert compat.gateway_error("t", "m", "overloaded", "over capacity", "c") == {
        "type": "translation_error", "taskId": "t", "messageId": "m", "error": "translation pool full",
        "conversationId": "c", "metadata": {"errorCode": "overloaded", "message": "over capacity"},
    }
    assert compat.gateway_error("t", "m", "timeout", "not translated within 120s", "")["error"] == "not translated within 120s"


def test_unknown_types_have_no_error_path():
    assert compat.unsupported_event("something_new", {"taskId": "t"}) is None


def test_salvaged_ids_are_bounded():
    payload = b'{"taskId": "' + b"a" * 300 + b'", "messageId": "m-1", "type": "audio_process"'
    assert compat.salvage_ids(payload, 256) == {"messageId": "m-1", "type": "audio_process"}


# ---------------------------------------------------------------- settings


def load(tmp_path, sections: dict) -> config.Settings:
    return config.load(str(write_config(tmp_path / "c.toml", sections)), env={})


def test_compat_defaults_match_the_shipped_file():
    shipped = config.load(str(REPO / "config.toml"), env={}).compat
    assert shipped == config.Settings().compat
    assert (shipped.enabled, shipped.meeshy_pull_port, shipped.meeshy_pub_port, shipped.pong_interval_s) == (False, 5557, 5558, 30.0)


def test_compat_bind_address_defaults_to_the_servers(tmp_path):
    s = load(tmp_path, {"server": {"bind_address": "127.0.0.2"}, "compat": {"enabled": True}})
    assert s.compat.address(s.server) == "127.0.0.2"
    s = load(tmp_path, {"compat": {"enabled": True, "bind_address": "10.0.0.5"}})
    assert s.compat.address(s.server) == "10.0.0.5"


@pytest.mark.parametrize("compat_, needle", [
    ({"meeshy_pull_port": 70000}, "meeshy_pull_port"),
    ({"pong_interval_s": 0.0}, "pong_interval_s"),
    ({"max_frame_bytes": 0}, "max_frame_bytes"),
    ({"max_frame_bytes": 4096, "max_message_bytes": 1024}, "max_message_bytes must be >= compat.max_frame_bytes"),
    ({"max_frames_per_message": 2}, "max_frames_per_message must be >= 3"),
    ({"max_connections": 0}, "max_connections"),
    ({"connection_buffer_bytes": 1024}, "connection_buffer_bytes"),
    ({"handshake_timeout_s": 0.0}, "handshake_timeout_s"),
    ({"max_text_chars": 20000}, "must fit limits.max_request_bytes"),
    ({"retry_window_s": 0.0}, "retry_window_s"),
    ({"gateway_read_rate": 0.0}, "gateway_read_rate"),
    ({"max_delivery_delay_s": -1.0}, "max_delivery_delay_s"),
    ({"event_buffer_bytes": 1024}, "event_buffer_bytes"),
    ({"enabled": True, "meeshy_pull_port": 5558}, "must differ"),
    ({"enabled": True, "meeshy_pull_port": 5555}, "already [server] ports"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_compat_settings_are_refused(tmp_path, compat_, needle):
    with pytest.raises(config.ConfigError, match=needle.replace("[", r"\[")):
        load(tmp_path, {"compat": compat_})


def test_the_compat_section_is_documented_in_config_toml():
    shipped = (REPO / "config.toml").read_text()
    for key in msgspec.structs.fields(config.CompatSettings):
        assert f"\n{key.name} = " in shipped.split("[compat]", 1)[1]
