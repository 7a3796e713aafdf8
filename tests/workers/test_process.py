"""The worker process wrapper, driven over real sockets by a test acting as the supervisor."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest
import zmq

from ipc import codec, entry
from ipc.endpoints import RunEndpoints
from ipc.exitcodes import EXIT_BOOT_ERROR, EXIT_OK
from ipc.frames import PROTOCOL_VERSION, Drain, Fatal, Heartbeat, Ready
from ipc.frames import Result, Stats, Task, TaskFailed, WorkerSpec
from ipc.sockets import Role, make_socket
from tests.fakes.waiting import poll_until

pytestmark = pytest.mark.timeout(60)

FAKE = "tests.fakes.fake_runtime:load"


class Harness:
    """The supervisor's side of one worker: its tasks PUSH, the results PULL, the process."""

    def __init__(self, tmp_path, monkeypatch, **spec_overrides):
        self.ctx = zmq.Context()
        eps = RunEndpoints(tmp_path)
        self.tasks = make_socket(self.ctx, Role.TASKS_OUT, eps.tasks(0), hwm=1000, linger_ms=0)
        self.results = make_socket(self.ctx, Role.RESULTS_IN, eps.results, hwm=1000, linger_ms=0)
        fields = dict(
            slot=0,
            protocol_version=PROTOCOL_VERSION,
            tasks_endpoint=eps.tasks(0),
            results_endpoint=eps.results,
            runtime_factory=FAKE,
            models_dir=str(tmp_path),
            heartbeat_interval_s=0.1,
            supervisor_pid=os.getpid(),
        )
        fields.update(spec_overrides)
        spec = WorkerSpec(**fields)
        self.proc = multiprocessing.get_context("spawn").Process(
            target=entry.run, args=("workers.process:main", codec.encode_spec(spec)), daemon=True
        )
        self.proc.start()

    def recv(self, kind, timeout=20.0):
        """The next frame of type `kind`, skipping heartbeats and stats unless asked for."""
        frames = []

        def got():
            while self.results.poll(0):
                frame = codec.decode_from_worker(self.results.recv())
                if isinstance(frame, kind):
                    frames.append(frame)
                    return True
            return False

        poll_until(got, timeout, what=kind.__name__)
        return frames[0]

    def send(self, frame):
        self.tasks.send(codec.encode(frame))

    def close(self):
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(10)
        self.tasks.close(linger=0)
        self.results.close(linger=0)
        self.ctx.term()


@pytest.fixture
def harness(tmp_path, monkeypatch):
    made = []

    def make(**overrides):
        h = Harness(tmp_path, monkeypatch, **overrides)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def test_ready_then_translate_then_drain(harness):
    h = harness()
    ready = h.recv(Ready)
    assert ready.protocol_version == PROTOCOL_VERSION and ready.slot == 0 and ready.pid == h.proc.pid
    assert ("en", "fr") in ready.languages["basic"]
    assert {m.tier for m in ready.models} == {"basic", "medium"}
    h.send(Task(1, 1, "the cat", "en", "fr", "basic"))
    result = h.recv(Result)
    assert (result.uid, result.attempt, result.text, result.target_language) == (1, 1, "tac eht", "fr")
    assert result.pid == h.proc.pid and 0 <= result.confidence <= 1
    h.send(Drain())
    h.proc.join(10)
    assert h.proc.exitcode == EXIT_OK


def test_an_idle_worker_gives_memory_back_once_after_work(harness, monkeypatch, tmp_path):
    released = tmp_path / "released"
    monkeypatch.setenv("FAKE_RUNTIME_RELEASE_LOG", str(released))
    h = harness(heartbeat_interval_s=0.1)
    h.recv(Ready)
    time.sleep(0.5)  # idle without having worked: nothing to give back (a negative check needs a wait)
    assert not released.exists()
    for uid in range(5):
        h.send(Task(uid, 1, f"sentence {uid}", "en", "fr", "basic"))
    assert {h.recv(Result).uid for _ in range(5)} == set(range(5))
    poll_until(released.exists, 10, what="the worker to release memory once idle")
    time.sleep(0.5)  # several more idle intervals: a negative check needs a wait
    assert released.read_text().split() == [str(h.proc.pid)]  # once per idle period, not per interval


def test_queued_tasks_are_batched_across_requests(harness, monkeypatch):
    monkeypatch.setenv("FAKE_RUNTIME_DELAY_MS", "20")
    h = harness(heartbeat_interval_s=0.05)
    h.recv(Ready)
    for uid in range(40):
        h.send(Task(uid, 1, f"sentence {uid}", "en", "fr" if uid % 2 else "es", "medium"))
    got = {h.recv(Result).uid for _ in range(40)}
    assert got == set(range(40))
    stats = h.recv(Stats)
    assert stats.tasks == 40
    assert stats.batches < 40  # several tasks shared a decode


def test_errors_are_data_and_the_worker_keeps_serving(harness):
    h = harness()
    h.recv(Ready)
    h.send(Task(1, 1, "__error__", "en", "fr", "basic"))
    failed = h.recv(TaskFailed)
    assert (failed.uid, failed.code) == (1, "translation_failed")
    h.send(Task(2, 1, "__raise__", "en", "fr", "basic"))
    failed = h.recv(TaskFailed)
    assert (failed.uid, failed.code) == (2, "internal_error")
    h.tasks.send(b"\xc1 not a frame")
    h.send(Task(3, 1, "ok", "en", "fr", "basic"))
    assert h.recv(Result).uid == 3
    assert h.proc.is_alive()


def test_idle_worker_sends_heartbeats(harness):
    h = harness()
    h.recv(Ready)
    beat = h.recv(Heartbeat)
    assert (beat.slot, beat.pid) == (0, h.proc.pid)


def test_load_failure_sends_fatal_and_exits_with_boot_error(harness, monkeypatch):
    monkeypatch.setenv("FAKE_RUNTIME_LOAD", "fail")
    h = harness()
    fatal = h.recv(Fatal)
    assert fatal.code == "model_load_error" and "no usable model" in fatal.message
    assert fatal.exit_code == EXIT_BOOT_ERROR
    h.proc.join(10)
    assert h.proc.exitcode == EXIT_BOOT_ERROR


def test_unknown_runtime_factory_is_a_boot_error(harness):
    h = harness(runtime_factory="tests.fakes.no_such_module:load")
    fatal = h.recv(Fatal)
    assert "no_such_module" in fatal.message
    h.proc.join(10)
    assert h.proc.exitcode == EXIT_BOOT_ERROR
