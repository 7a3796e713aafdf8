"""The transport floor under the appliance's chat path: its ZeroMQ hops with no work between them.

A chat message through the appliance crosses four ZeroMQ hops: the client's DEALER to the edge's
ROUTER (tcp), the supervisor's PUSH to the worker's PULL (ipc), the worker's PUSH to the
supervisor's results PULL (ipc), the supervisor's PUB to the client's SUB (tcp; the ROUTER's reply
goes back beside it). `RelayFloor` starts the same sockets in the same process layout (a relay in
the place of the supervisor, one worker process pinned to the worker's core) around the least
work that forms an answer: the relay forwards frames untouched in a plain blocking poll loop, the
worker reads the taskId and spins the CPU for the time the client asks (the real worker's
`processingTime`, so that every other thread has slept as long as it does behind a real decode),
then sends the event. What a message costs here minus that spin is what the four hops cost on this
machine: the floor the appliance's overhead is measured against (bench/chat_latency.py).

A request is the appliance's request frame and, after it, the milliseconds to spin (ASCII). It
answers like the appliance: a reply on the DEALER, and a `translation_completed` event on the PUB
whose `processingTime` is the spin. So bench.appliance_e2e.connect_clients and
bench.chat_latency.await_event drive it unchanged.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import zmq

ACK = b'{"type":"translation_queued"}'


def _worker_main(tasks: str, results: str, cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    ctx = zmq.Context()
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    pull.connect(tasks)
    push.connect(results)
    while True:
        request, spin = pull.recv_multipart()
        if not request:
            break
        ms = float(spin or 0)
        until = time.perf_counter() + ms / 1000.0
        while time.perf_counter() < until:
            pass
        task_id = json.loads(request)["taskId"]
        push.send(json.dumps({"type": "translation_completed", "taskId": task_id,
                              "result": {"translatedText": "", "processingTime": ms}}, separators=(",", ":")).encode())
    ctx.destroy(linger=0)


def _relay_main(run_dir: str, ready) -> None:
    ctx = zmq.Context()
    router, pub = ctx.socket(zmq.ROUTER), ctx.socket(zmq.PUB)
    tasks, results = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    router.bind("tcp://127.0.0.1:*")
    pub.bind("tcp://127.0.0.1:*")
    tasks.bind(f"ipc://{run_dir}/tasks-0.ipc")
    results.bind(f"ipc://{run_dir}/results.ipc")
    ready.send({"requests": router.LAST_ENDPOINT.decode(), "events": pub.LAST_ENDPOINT.decode()})
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    poller.register(results, zmq.POLLIN)
    try:
        while True:
            ready_sockets = dict(poller.poll())
            if router in ready_sockets:
                identity, *frames = router.recv_multipart()
                if frames == [b"stop"]:
                    break
                request = frames[0]
                tasks.send_multipart([request, frames[1] if len(frames) > 1 else b"0"])
                router.send_multipart([identity, ACK])  # as the appliance: task first, then the reply
            if results in ready_sockets:
                pub.send(results.recv())
    finally:
        tasks.send_multipart([b"", b""])  # the worker's stop
        ctx.destroy(linger=1000)


class RelayFloor:
    """The relay and its worker, each in a spawned process; `dealer`/`sub` once connected
    (bench.appliance_e2e.connect_clients(floor))."""

    zmq = zmq

    def __init__(self, run_dir: Path, cpu: int):
        spawn = multiprocessing.get_context("spawn")
        parent, child = spawn.Pipe()
        self.proc = spawn.Process(target=_relay_main, args=(str(run_dir), child), daemon=True)
        self.worker = spawn.Process(target=_worker_main, daemon=True,
                                    args=(f"ipc://{run_dir}/tasks-0.ipc", f"ipc://{run_dir}/results.ipc", cpu))
        self.proc.start()
        self.worker.start()
        if not parent.poll(60):
            raise RuntimeError("the relay floor did not start")
        self.endpoints = parent.recv()
        self.ctx = zmq.Context()
        self.dealer = self.sub = None

    def log(self) -> str:
        return f"relay floor: relay exit {self.proc.exitcode}, worker exit {self.worker.exitcode}"

    def send(self, request: bytes, spin_ms: float) -> None:
        self.dealer.send_multipart([request, f"{spin_ms:.3f}".encode()])

    def close(self) -> None:
        if self.dealer is not None:
            self.dealer.send(b"stop")
        for proc in (self.proc, self.worker):
            proc.join(10)
            if proc.is_alive():
                proc.kill()
        self.ctx.destroy(linger=0)
