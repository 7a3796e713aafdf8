"""Encode and decode internal frames: msgpack, one decoder typed to each direction's union.

A decoder never returns anything but a member of its union: a frame that is not valid msgpack, or
not one of the union's tagged structs, raises `FrameError` (the caller logs and drops it; one bad
frame never stops a loop).
"""

from __future__ import annotations

import msgspec

from ipc.frames import FromWorker, ToWorker, WorkerSpec


class FrameError(ValueError):
    """A frame that does not decode to its channel's union."""


_encoder = msgspec.msgpack.Encoder()
_to_worker = msgspec.msgpack.Decoder(ToWorker)
_from_worker = msgspec.msgpack.Decoder(FromWorker)
_spec = msgspec.msgpack.Decoder(WorkerSpec)


def encode(frame: msgspec.Struct) -> bytes:
    return _encoder.encode(frame)


def _decode(decoder: msgspec.msgpack.Decoder, data: bytes, what: str):
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(f"bad {what}: {exc}") from None


def decode_to_worker(data: bytes) -> ToWorker:
    return _decode(_to_worker, data, "supervisor->worker frame")


def decode_from_worker(data: bytes) -> FromWorker:
    return _decode(_from_worker, data, "worker->supervisor frame")


def encode_spec(spec: WorkerSpec) -> bytes:
    return _encoder.encode(spec)


def decode_spec(data: bytes) -> WorkerSpec:
    return _decode(_spec, data, "worker spec")
