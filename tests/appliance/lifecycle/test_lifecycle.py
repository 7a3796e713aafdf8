"""Supervisor lifecycle with real processes: crash recovery, drain, boot failures, systemd notify."""

from __future__ import annotations

import json
import os
import signal
import socket
from collections import Counter

import psutil
import pytest
import zmq

from ipc import exitcodes
from tests.fakes.waiting import poll_until

pytestmark = pytest.mark.timeout(120)


def slot_info(app, index: int) -> dict:
    return app.stats()["workers"]["slots"][index]


def send_many(app, n: int, prefix: str, **extra) -> tuple[zmq.Socket, list[str]]:
    dealer = app.socket(zmq.DEALER)
    ids = [f"{prefix}-{i}" for i in range(n)]
    for task_id in ids:
        body = {"messageId": task_id, "taskId": task_id, "text": f"text {task_id}", "targetLanguage": "fr", **extra}
        dealer.send(json.dumps(body).encode())
    return dealer, ids


def collect_replies(dealer: zmq.Socket, n: int, deadline: float = 60) -> list[dict]:
    replies: list[dict] = []

    def done():
        while dealer.poll(20):
            replies.append(json.loads(dealer.recv()))
        return len(replies) >= n

    poll_until(done, deadline, interval=0, what=f"{n} replies")
    return replies


def test_kill_9_of_a_worker_mid_queue_loses_nothing_and_publishes_once(start_appliance):
    app = start_appliance(
        config={"workers": {"count": 2, "max_batch_size": 4, "queue_depth": 16}},
        env={"FAKE_RUNTIME_DELAY_MS": "4"},
    )
    events = app.subscriber()
    victim = slot_info(app, 0)["pid"]
    dealer, ids = send_many(app, 500, "k9")
    replies = collect_replies(dealer, 500)
    assert {r["status"] for r in replies} == {"queued"}
    events.wait_for(lambda evs: len(evs) >= 40, what="work under way")
    assert slot_info(app, 0)["held"] > 0
    os.kill(victim, signal.SIGKILL)
    events.wait_for(lambda evs: {e["taskId"] for e in evs} >= set(ids), deadline=90, what="all 500 events")
    poll_until(lambda: app.stats()["tasks"]["in_flight"] == 0, 30, what="table empty")
    marker = "k9-marker"
    app.request({"messageId": marker, "taskId": marker, "text": "m", "targetLanguage": "fr"})
    events.wait_for(lambda evs: any(e["taskId"] == marker for e in evs), what="marker")
    counts = Counter(e["taskId"] for e in events.all if e["taskId"] in set(ids))
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    assert {e["type"] for e in events.all} == {"translation_completed"}
    slot = poll_until(
        lambda: (s := slot_info(app, 0))["state"] == "ready" and s["pid"] != victim and s,
        30,
        what="slot 0 respawned",
    )
    assert slot["restarts"] == 1
    stats = app.stats()
    assert stats["tasks"]["redispatched"] > 0
    assert stats["tasks"]["completed"] >= 500


def test_sigterm_under_load_completes_or_fails_every_accepted_task_and_exits_0(start_appliance):
    app = start_appliance(
        config={"workers": {"count": 2, "max_batch_size": 2, "queue_depth": 4}, "shutdown": {"drain_timeout_s": 1.0}},
        env={"FAKE_RUNTIME_DELAY_MS": "20"},
    )
    events = app.subscriber()
    dealer, ids = send_many(app, 300, "term")
    accepted = {r["taskId"] for r in collect_replies(dealer, 300) if r["status"] == "queued"}
    assert len(accepted) == 300
    events.wait_for(lambda evs: len(evs) >= 10, what="work under way")
    app.signal(signal.SIGTERM)
    poll_until(lambda: app.request({"type": "ping"}, timeout=2)["state"] == "draining", 10, what="draining")
    late = app.request({"messageId": "late", "text": "too late", "targetLanguage": "fr"})
    assert late["status"] == "error" and late["error"]["code"] == "shutting_down"
    assert app.wait_exit(30) == exitcodes.EXIT_OK
    events.wait_for(lambda evs: {e["taskId"] for e in evs} >= accepted, what="an event for every accepted task")
    counts = Counter(e["taskId"] for e in events.all)
    assert all(counts[t] == 1 for t in accepted)
    kinds = Counter(e["type"] for e in events.all if e["taskId"] in accepted)
    assert kinds["translation_completed"] > 0 and kinds["translation_error"] > 0  # 300 x 20ms > 1s deadline
    codes = {e["error"]["code"] for e in events.all if e["type"] == "translation_error"}
    assert codes == {"shutting_down"}
    assert "draining" in app.log()


def test_sd_notify_ready_status_watchdog_stopping(start_appliance, tmp_path):
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(0.05)
    messages: list[str] = []

    def received(want):
        try:
            while True:
                messages.append(listener.recv(4096).decode())
        except TimeoutError:
            pass
        return any(want in m for m in messages)

    try:
        app = start_appliance(
            config={"workers": {"count": 2}},
            env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"},
        )
        poll_until(lambda: received("READY=1"), 20, what="READY=1")
        poll_until(lambda: received("WATCHDOG=1") and sum("WATCHDOG=1" in m for m in messages) >= 3, 20,
                   what="watchdog pings")
        app.signal(signal.SIGTERM)
        assert app.wait_exit(30) == exitcodes.EXIT_OK
        poll_until(lambda: received("STOPPING=1"), 5, what="STOPPING=1")
    finally:
        listener.close()
    ready = next(i for i, m in enumerate(messages) if "READY=1" in m)
    statuses = [m for m in messages if m.startswith("STATUS=") or "\nSTATUS=" in m]
    assert any("starting 2 worker(s)" in m for m in messages[:ready])
    assert "STATUS=serving: 2/2 worker(s) ready" in messages[ready]
    assert any("EXTEND_TIMEOUT_USEC=" in m for m in messages[:ready])
    assert statuses


def test_worker_dying_while_loading_fails_the_start_at_once(start_appliance):
    app = start_appliance(config={"workers": {"count": 2}}, env={"FAKE_RUNTIME_LOAD": "fail", "FAKE_RUNTIME_LOAD_SLOTS": "1"}, wait=False)
    assert app.wait_exit(30) == exitcodes.EXIT_BOOT_ERROR
    log = app.log()
    assert "worker 1" in log and "exit code 3 (EXIT_BOOT_ERROR)" in log
    assert "no usable model" in log and "MEESHY_MODELS_DIR" in log


def test_worker_exiting_with_its_own_code_at_boot_is_reported(start_appliance):
    app = start_appliance(
        config={"workers": {"entrypoint": "tests.fakes.fake_worker:main"}}, env={"FAKE_WORKER_MODE": "exit:9"}, wait=False
    )
    assert app.wait_exit(30) == exitcodes.EXIT_BOOT_ERROR
    assert "exit code 9" in app.log()


def test_protocol_version_mismatch_is_refused(start_appliance):
    app = start_appliance(
        config={"workers": {"entrypoint": "tests.fakes.fake_worker:main"}}, env={"FAKE_WORKER_MODE": "bad_version"}, wait=False
    )
    assert app.wait_exit(30) == exitcodes.EXIT_PROTOCOL_MISMATCH
    assert "protocol" in app.log()


def test_worker_that_never_gets_ready_times_the_start_out(start_appliance):
    app = start_appliance(
        config={"workers": {"entrypoint": "tests.fakes.fake_worker:main", "startup_timeout_s": 1.5}},
        env={"FAKE_WORKER_MODE": "hang"},
        wait=False,
    )
    assert app.wait_exit(30) == exitcodes.EXIT_STARTUP_TIMEOUT
    assert "startup_timeout_s" in app.log()


def test_crash_loop_backs_off_then_halts(start_appliance, tmp_path):
    flag = tmp_path / "fail-loading"
    app = start_appliance(config={"respawn": {"max_crashes": 3}}, env={"FAKE_RUNTIME_FAIL_FLAG": str(flag)})
    flag.touch()
    os.kill(slot_info(app, 0)["pid"], signal.SIGKILL)
    assert app.wait_exit(30) == exitcodes.EXIT_CRASH_LOOP
    log = app.log()
    assert "crashed 3 times" in log and "fail flag" in log
    assert log.count("respawning in") == 2


def test_a_task_that_kills_every_worker_fails_alone(start_appliance):
    app = start_appliance(config={"limits": {"max_attempts": 2}, "respawn": {"max_crashes": 10}})
    reply = app.request({"messageId": "p", "text": "__crash__", "targetLanguage": "fr", "sync": True}, timeout=30)
    assert reply["status"] == "error"
    assert reply["errors"][0]["error"]["code"] == "worker_crashed"
    poll_until(lambda: app.request({"type": "ping"})["ready"], 20, what="ready again")
    ok = app.request({"messageId": "q", "text": "fine", "targetLanguage": "fr", "sync": True}, timeout=30)
    assert ok["status"] == "completed"


def test_workers_are_pinned_one_core_each(start_appliance):
    cores = sorted(os.sched_getaffinity(0))
    app = start_appliance(config={"workers": {"count": 2}})
    pins = [psutil.Process(s["pid"]).cpu_affinity() for s in app.stats()["workers"]["slots"]]
    assert pins == [[cores[0]], [cores[1 % len(cores)]]]


def test_a_busy_port_fails_the_start_with_bind_error(start_appliance):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        app = start_appliance(config={"server": {"zmq_port": holder.getsockname()[1]}}, wait=False)
        assert app.wait_exit(30) == exitcodes.EXIT_BIND_ERROR
        assert "cannot bind" in app.log()
    finally:
        holder.close()


def test_bad_environment_override_is_a_config_error(start_appliance):
    app = start_appliance(env={"TRANSLATION_WORKERS": "many"}, wait=False)
    assert app.wait_exit(30) == exitcodes.EXIT_CONFIG
    assert "TRANSLATION_WORKERS" in app.log()


def test_translation_workers_env_sets_the_worker_count(start_appliance):
    app = start_appliance(env={"TRANSLATION_WORKERS": "2"})
    assert app.stats()["workers"]["max_workers"] == 2


def test_a_stalled_worker_is_killed_and_its_slot_respawned(start_appliance):
    app = start_appliance(config={"workers": {"stall_timeout_s": 1.0}, "limits": {"max_attempts": 1}})
    victim = slot_info(app, 0)["pid"]
    reply = app.request({"messageId": "h", "text": "__hang__", "targetLanguage": "fr", "sync": True}, timeout=30)
    assert reply["errors"][0]["error"]["code"] == "worker_crashed"
    assert "has said nothing" in app.log()
    poll_until(lambda: (s := slot_info(app, 0))["state"] == "ready" and s["pid"] != victim, 20, what="respawn")
    ok = app.request({"messageId": "q", "text": "fine", "targetLanguage": "fr", "sync": True}, timeout=30)
    assert ok["status"] == "completed"


def test_a_task_past_its_deadline_gets_a_timeout_event(start_appliance):
    app = start_appliance(config={"limits": {"task_timeout_s": 0.5}}, env={"FAKE_RUNTIME_DELAY_MS": "3000"})
    reply = app.request({"messageId": "slow", "text": "slow", "targetLanguage": "fr", "sync": True}, timeout=30)
    assert reply["status"] == "error" and reply["errors"][0]["error"]["code"] == "timeout"


def test_a_second_appliance_on_the_same_run_dir_is_refused_and_leaves_the_first_alone(start_appliance):
    first = start_appliance()
    second = start_appliance(config={"server": {"run_dir": str(first.run_dir)}}, wait=False)
    assert second.wait_exit(30) == exitcodes.EXIT_BIND_ERROR
    assert "another appliance" in second.log()
    assert (first.run_dir / "endpoints.json").exists()
    assert first.request({"messageId": "m", "text": "still here", "targetLanguage": "fr", "sync": True})["status"] == "completed"


def test_sigterm_during_startup_stops_the_workers_and_exits_0(start_appliance):
    app = start_appliance(config={"workers": {"count": 2}}, env={"FAKE_RUNTIME_LOAD": "hang"}, wait=False)
    app.wait_endpoints()
    poll_until(lambda: len(psutil.Process(app.proc.pid).children()) >= 2, 30, what="2 workers spawned")
    workers = psutil.Process(app.proc.pid).children()
    app.signal(signal.SIGTERM)
    assert app.wait_exit(30) == exitcodes.EXIT_OK
    assert "SIGTERM during startup" in app.log()
    psutil.wait_procs(workers, timeout=10)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]


def test_a_run_directory_others_may_write_into_is_refused(start_appliance, tmp_path):
    run_dir = tmp_path / "shared-run"
    run_dir.mkdir(mode=0o777)
    os.chmod(run_dir, 0o777)
    app = start_appliance(config={"server": {"run_dir": str(run_dir)}}, wait=False)
    assert app.wait_exit(30) == exitcodes.EXIT_BIND_ERROR
    assert "others may write into it" in app.log()


def test_a_run_directory_of_another_user_is_refused(start_appliance, tmp_path):
    run_dir = tmp_path / "theirs"
    run_dir.mkdir(mode=0o700)
    os.chown(run_dir, 65534, 65534)  # nobody (the tests run as root)
    app = start_appliance(config={"server": {"run_dir": str(run_dir)}}, wait=False)
    assert app.wait_exit(30) == exitcodes.EXIT_BIND_ERROR
    assert "belongs to uid 65534" in app.log()


def test_the_run_directory_is_private(start_appliance):
    app = start_appliance()
    assert (os.stat(app.run_dir).st_mode & 0o777) == 0o700
