"""Frame codec: round trips, union tags, version-tolerant decoding, malformed frames one by one."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipc import codec
from ipc.frames import PROTOCOL_VERSION, Drain, Fatal, Heartbeat, ModelInfo, Ready
from ipc.frames import Result, Stats, Task, TaskFailed, WorkerSpec

pytestmark = pytest.mark.timeout(60)

FROM_WORKER = [
    Ready(PROTOCOL_VERSION, 0, 42, {"basic": [("en", "fr")]}, [ModelInfo("m", "marian", "basic", "int8", ["en-fr"])]),
    Result(1, 1, 0, 42, "le chat", "en", "fr", 0.9, "m", "basic", 12.5),
    TaskFailed(1, 2, 0, 42, "unsupported_language", "no"),
    Heartbeat(0, 42),
    Stats(0, 42, 10, 1, 4, 0.5, 1 << 20),
    Fatal(0, 42, "model_load_error", "missing manifest", 3),
]


@pytest.mark.parametrize("frame", FROM_WORKER, ids=lambda f: type(f).__name__)
def test_from_worker_round_trip(frame):
    assert codec.decode_from_worker(codec.encode(frame)) == frame


@pytest.mark.parametrize("frame", [Task(7, 1, "hi", "auto", "fr", "basic"), Drain()], ids=repr)
def test_to_worker_round_trip(frame):
    assert codec.decode_to_worker(codec.encode(frame)) == frame


def test_tag_is_first_element_of_an_array():
    assert msgspec.msgpack.decode(codec.encode(Heartbeat(1, 2))) == ["heartbeat", 1, 2]


def test_ready_from_a_newer_protocol_still_decodes_so_it_can_be_refused():
    newer = msgspec.msgpack.encode(["ready", PROTOCOL_VERSION + 1, 0, 9, {}, [], "a field from v2"])
    frame = codec.decode_from_worker(newer)
    assert isinstance(frame, Ready) and frame.protocol_version == PROTOCOL_VERSION + 1


def test_directions_do_not_mix():
    with pytest.raises(codec.FrameError):
        codec.decode_to_worker(codec.encode(Heartbeat(0, 1)))
    with pytest.raises(codec.FrameError):
        codec.decode_from_worker(codec.encode(Drain()))


MALFORMED = {
    "empty": b"",
    "not msgpack": b"\xc1\xc1\xc1",
    "truncated": codec.encode(Task(1, 1, "hello", "en", "fr", "basic"))[:-3],
    "a map": msgspec.msgpack.encode({"type": "task"}),
    "unknown tag": msgspec.msgpack.encode(["explode", 1]),
    "no tag": msgspec.msgpack.encode([1, 1, "x", "en", "fr", "basic"]),
    "wrong field type": msgspec.msgpack.encode(["task", "one", 1, "x", "en", "fr", "basic"]),
    "missing fields": msgspec.msgpack.encode(["task", 1]),
    "a bare int": msgspec.msgpack.encode(5),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_frames_raise_frame_error(data):
    with pytest.raises(codec.FrameError):
        codec.decode_to_worker(data)
    with pytest.raises(codec.FrameError):
        codec.decode_from_worker(data)


@given(
    uid=st.integers(min_value=0, max_value=2**63 - 1),
    attempt=st.integers(min_value=0, max_value=1000),
    text=st.text(),
    src=st.text(max_size=8),
    tgt=st.text(max_size=8),
    tier=st.sampled_from(["basic", "medium", "premium", "auto"]),
)
def test_task_round_trip_property(uid, attempt, text, src, tgt, tier):
    task = Task(uid, attempt, text, src, tgt, tier)
    assert codec.decode_to_worker(codec.encode(task)) == task


@given(
    text=st.text(),
    confidence=st.floats(min_value=0, max_value=1),
    ms=st.floats(min_value=0, max_value=1e9),
)
def test_result_round_trip_property(text, confidence, ms):
    result = Result(3, 1, 0, 99, text, "en", "fr", confidence, "model", "basic", ms)
    assert codec.decode_from_worker(codec.encode(result)) == result


def test_spec_round_trip_and_unknown_fields_are_refused():
    spec = WorkerSpec(0, PROTOCOL_VERSION, "ipc:///t/a", "ipc:///t/b", "m:f", "/models", {"basic": ["x"]}, cpu=1)
    assert codec.decode_spec(codec.encode_spec(spec)) == spec
    with pytest.raises(codec.FrameError):
        codec.decode_spec(msgspec.msgpack.encode({"slot": 0, "surprise": 1}))
