"""The events on 5556 as built (appliance/core/events.py) and typed (ipc/events.py): the exact
JSON clients read (docs/protocol.md, "Events on 5556"), byte for byte, and the round trip
through the type the client library decodes with."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.core import events
from appliance.core.tasks import RequestRecord, TargetTask
from ipc import events as wire
from ipc.cache_key import CachedTranslation, Detection, Segments
from ipc.frames import Result

pytestmark = pytest.mark.timeout(60)


def record(conversation_id: str | None = "c", model_type: str = "basic", detection: Detection | None = None) -> RequestRecord:
    return RequestRecord(task_id="t", digest=b"", message_id="m", text="Bonjour", source_language="en",
                         model_type=model_type, conversation_id=conversation_id, targets=["fr"], accepted_at=10.0,
                         detection=detection)


def at(event, timestamp: float = 1764350000.5) -> bytes:
    return wire.encode(msgspec.structs.replace(event, timestamp=timestamp))


def test_a_worker_s_translation_on_the_wire():
    unit = TargetTask(uid=1, request=record(), target="fr", deadline=0.0, attempt=1, slot=0, dispatched_at=10.0004)
    segments = Segments(count=2, truncated=(1,), fallback=True, engine="onnx")
    frame = Result(1, 1, 0, 99, "Salut", "en", "fr", 0.93781234, "opus-mt-en-fr", "medium", 41.23456, segments=segments)
    assert at(events.from_worker(unit, frame)) == (
        b'{"type":"translation_completed","taskId":"t","messageId":"m","targetLanguage":"fr",'
        b'"timestamp":1764350000.5,"result":{"messageId":"m","translatedText":"Salut","sourceLanguage":"en",'
        b'"targetLanguage":"fr","confidenceScore":0.937812,"processingTime":41.235,"modelType":"medium",'
        b'"translatorModel":"opus-mt-en-fr","fromCache":false,"workerId":0,"segmentsCount":2,'
        b'"truncatedSegments":[1],"fallback":true,"requestedModelType":"basic","engine":"onnx"},'
        b'"metadata":{"attempts":1,"queueTime":0.4,"conversationId":"c"},"conversationId":"c"}'
    )


def test_a_cache_hit_and_a_same_language_answer_on_the_wire():
    value = CachedTranslation("Salut", "en", 0.5, "opus", "basic", segments=Segments(count=1),
                              detection=Detection("", 0.0, defaulted=True))
    assert at(events.from_cache(record(None, "auto"), "fr", value, 0.01234)) == (
        b'{"type":"translation_completed","taskId":"t","messageId":"m","targetLanguage":"fr",'
        b'"timestamp":1764350000.5,"result":{"messageId":"m","translatedText":"Salut","sourceLanguage":"en",'
        b'"targetLanguage":"fr","confidenceScore":0.5,"processingTime":0.012,"modelType":"basic",'
        b'"translatorModel":"opus","fromCache":true,"workerId":null,"segmentsCount":1,"truncatedSegments":[],'
        b'"fallback":false,"detectedLanguage":null,"detectionConfidence":0.0,"defaultSourceUsed":true},'
        b'"metadata":{"attempts":0,"queueTime":0.0}}'
    )
    assert at(events.same_language(record(None), "en")) == (
        b'{"type":"translation_completed","taskId":"t","messageId":"m","targetLanguage":"en",'
        b'"timestamp":1764350000.5,"result":{"messageId":"m","translatedText":"Bonjour","sourceLanguage":"en",'
        b'"targetLanguage":"en","confidenceScore":1.0,"processingTime":0.0,"modelType":"","translatorModel":"",'
        b'"fromCache":false,"workerId":null,"segmentsCount":0,"sameLanguage":true},'
        b'"metadata":{"attempts":0,"queueTime":0.0}}'
    )


def test_an_error_on_the_wire_puts_type_first():
    assert at(events.failed(record(), "fr", "timeout", "not translated within 120s")) == (
        b'{"type":"translation_error","taskId":"t","messageId":"m","targetLanguage":"fr",'
        b'"timestamp":1764350000.5,"error":{"code":"timeout","message":"not translated within 120s"},'
        b'"conversationId":"c"}'
    )


ints = st.lists(st.integers(0, 50), max_size=3).map(tuple)


@given(
    text=st.text(max_size=40),
    confidence=st.floats(0, 1),
    segments=st.none() | st.builds(Segments, count=st.integers(0, 9), truncated=ints, retried=ints,
                                   fallback=st.booleans(), pivot=st.sampled_from(["", "en"]),
                                   engine=st.sampled_from(["", "onnx", "apertium", "onnx+apertium"]),
                                   unknown_words=st.integers(0, 9), untranslated=ints),
    detection=st.none() | st.builds(Detection, st.sampled_from(["", "en", "fr"]), st.floats(0, 1), st.booleans()),
    conversation_id=st.none() | st.text(max_size=5),
    slot=st.none() | st.integers(0, 63),
)
def test_what_is_encoded_decodes_to_the_same_value(text, confidence, segments, detection, conversation_id, slot):
    event = events.completed(record(conversation_id), "fr", text=text, source="en", confidence=confidence,
                             processing_ms=3.0, tier="basic", model="m", segments=segments, detection=detection, slot=slot)
    data = wire.encode(event)
    assert data.startswith(b'{"type":"translation_completed","taskId":"t",')
    assert wire.decode(data) == event
    failed = events.failed(record(conversation_id), "fr", "timeout", text)
    assert wire.decode(wire.encode(failed)) == failed
