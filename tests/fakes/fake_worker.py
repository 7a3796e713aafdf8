"""A fake worker entry point speaking the ipc/ protocol, for supervisor tests.

Selected with the appliance setting `[workers] entrypoint = "tests.fakes.fake_worker:main"`.
`FAKE_WORKER_MODE` (applies to the slots in `FAKE_WORKER_SLOTS`, default all):

    "real"        run the real worker process wrapper (default)
    "exit:N"      exit at once with code N, saying nothing
    "hang"        connect, never say Ready
    "bad_version" say Ready with a protocol version the supervisor does not speak, then idle
"""

from __future__ import annotations

import os
import sys
import time

import zmq

from ipc import codec
from ipc.frames import PROTOCOL_VERSION, Ready
from ipc.sockets import Role, make_socket
from workers import process


def main(spec_bytes: bytes) -> None:
    spec = codec.decode_spec(spec_bytes)
    mode = os.environ.get("FAKE_WORKER_MODE", "real")
    slots = os.environ.get("FAKE_WORKER_SLOTS", "")
    if mode == "real" or (slots and str(spec.slot) not in slots.split(",")):
        process.main(spec_bytes)
        return
    if mode.startswith("exit:"):
        sys.exit(int(mode.split(":", 1)[1]))
    ctx = zmq.Context()
    out = make_socket(ctx, Role.RESULTS_OUT, spec.results_endpoint, hwm=10, linger_ms=1000)
    try:
        if mode == "bad_version":
            out.send(
                codec.encode(
                    Ready(
                        protocol_version=PROTOCOL_VERSION + 1000,
                        slot=spec.slot,
                        pid=os.getpid(),
                        languages={},
                        models=[],
                    )
                )
            )
        while os.getppid() == spec.supervisor_pid:  # "hang": idle until the supervisor goes
            time.sleep(0.2)
    finally:
        out.close()
        ctx.term()
