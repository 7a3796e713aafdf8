"""Fixtures: a real appliance process on ephemeral loopback ports, with the fake runtime.

`start_appliance(config=..., env=...)` runs `python -m appliance serve` with a config written under
the test's tmp_path (run_dir there too, so every ipc:// endpoint is test-private) and waits until
it answers `ping` as ready, unless told not to wait. Every appliance still running at teardown is
killed; every socket is closed with linger=0.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from appliance.edge import curve
from appliance.core.cache import table_name
from appliance.client import NoAnswer
from appliance.client import request as one_request
from ipc.shm_cache import ShmCache
from tests.fakes.waiting import poll_until

REPO = Path(__file__).resolve().parents[2]
FAKE_RUNTIME = "tests.fakes.fake_runtime:load"


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(value)


def write_config(path: Path, sections: dict[str, dict]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, dict):
                continue
            lines.append(f"{key} = {toml_value(value)}")
        for key, value in values.items():
            if isinstance(value, dict):
                lines.append(f"[{section}.{key}]")
                lines.extend(f"{k} = {toml_value(v)}" for k, v in value.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def base_config(run_dir: Path) -> dict[str, dict]:
    return {
        "server": {
            "zmq_port": 0,
            "zmq_pub_port": 0,
            "api_port": 0,
            "run_dir": str(run_dir),
            "state_dir": str(run_dir.parent / "state"),
        },
        "workers": {
            "count": 1,
            "runtime_factory": FAKE_RUNTIME,
            "heartbeat_interval_s": 0.2,
            "startup_timeout_s": 60.0,
        },
        "respawn": {"backoff_initial_s": 0.05, "backoff_max_s": 0.5},
        "shutdown": {"drain_timeout_s": 10.0},
    }


def merge(base: dict[str, dict], extra: dict[str, dict]) -> dict[str, dict]:
    out = {k: dict(v) for k, v in base.items()}
    for section, values in extra.items():
        out.setdefault(section, {}).update(values)
    return out


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FAKE_", "NOTIFY_SOCKET", "WATCHDOG_", "MEESHY_CACHE_URL", "MEESHY_STATE_DIR", "STATE_DIRECTORY"))
    }
    env.pop("TRANSLATION_WORKERS", None)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Appliance:
    def __init__(self, tmp: Path, config: dict[str, dict], env: dict[str, str], ctx: zmq.Context) -> None:
        self.tmp = tmp
        self.ctx = ctx
        self.run_dir = Path(config["server"]["run_dir"])
        self.config_path = write_config(tmp / "config.toml", config)
        self.log_path = tmp / "appliance.log"
        self._log = open(self.log_path, "wb")
        self.sockets: list[zmq.Socket] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", "serve", "--config", str(self.config_path)],
            cwd=tmp,
            env=child_env(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.endpoints: dict = {}

    # -------------------------------------------------------------- process

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_endpoints(self, deadline: float = 30.0) -> dict:
        path = self.run_dir / "endpoints.json"

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"appliance exited {self.proc.returncode}:\n{self.log()}")
            return path.exists() and json.loads(path.read_text())

        self.endpoints = poll_until(ready, deadline, what="endpoints.json")
        return self.endpoints

    def wait_ready(self, deadline: float = 60.0) -> None:
        self.wait_endpoints(deadline)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"appliance exited {self.proc.returncode}:\n{self.log()}")
            answer = self.request({"type": "ping"}, timeout=1.0)
            return answer is not None and answer.get("ready")

        poll_until(ready, deadline, what="ping ready")

    def wait_exit(self, deadline: float = 30.0) -> int:
        try:
            return self.proc.wait(deadline)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"appliance did not exit within {deadline}s:\n{self.log()}") from None

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close(linger=0)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        # A killed supervisor cannot unlink its shared-memory cache table: do it for it.
        ShmCache.unlink_name(table_name(str(self.run_dir)))
        self._log.close()

    # -------------------------------------------------------------- sockets

    def socket(self, kind: int, endpoint: str | None = None) -> zmq.Socket:
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint or self.endpoints["requests"])
        self.sockets.append(sock)
        return sock

    def request(self, body: dict | bytes, timeout: float = 10.0) -> dict | None:
        """One REQ round trip on a fresh socket (`appliance.client.request`); None without an answer."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()  # ASCII-escaped, as sizes assume
        try:
            return one_request(self.endpoints["requests"], raw, timeout, ctx=self.ctx)
        except NoAnswer:
            return None

    def stats(self) -> dict:
        answer = self.request({"type": "stats"})
        assert answer is not None, "no stats answer"
        return answer

    def subscriber(self, deadline: float = 20.0) -> "Events":
        """A SUB socket whose subscription is known to have propagated."""
        sub = self.socket(zmq.SUB, self.endpoints["events"])
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        events = Events(sub)
        n = [0]

        def synced():
            n[0] += 1
            task_id = f"sync-probe-{n[0]}-{time.monotonic_ns()}"
            self.request(
                {"messageId": "probe", "taskId": task_id, "text": "probe", "targetLanguage": "fr"}, timeout=5
            )
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                events.pump(50)
                if any(e["taskId"] == task_id for e in events.all):
                    return True
            return False

        poll_until(synced, deadline, what="SUB subscription")
        events.all.clear()
        return events


class Events:
    def __init__(self, sub: zmq.Socket) -> None:
        self.sub = sub
        self.all: list[dict] = []

    def pump(self, timeout_ms: int = 0) -> int:
        got = 0
        if self.sub.poll(timeout_ms):
            while True:
                try:
                    raw = self.sub.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.all.append(json.loads(raw))
                got += 1
        return got

    def for_task(self, task_id: str) -> list[dict]:
        return [e for e in self.all if e["taskId"] == task_id]

    def wait_for(self, predicate, deadline: float = 30.0, what: str = "events"):
        def check():
            self.pump(20)
            return predicate(self.all)

        return poll_until(check, deadline, interval=0, what=what)


@pytest.fixture
def zctx():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def start_appliance(tmp_path, zctx):
    started: list[Appliance] = []

    def start(config: dict | None = None, env: dict | None = None, wait: bool = True) -> Appliance:
        tmp = tmp_path / f"a{len(started)}"
        tmp.mkdir()
        app = Appliance(tmp, merge(base_config(tmp / "run"), config or {}), env or {}, zctx)
        started.append(app)
        if wait:
            app.wait_ready()
        return app

    yield start
    for app in started:
        app.close()


def start_curve_appliance(
    start_appliance, keys_dir: Path, more_clients: tuple[str, ...] = (), env: dict | None = None
) -> tuple[Appliance, Path, Path]:
    """An appliance with CURVE on that lets in one client key pair, "good": (the appliance, its
    server public key, the allowed client's secret key file). Its endpoints are written; its
    workers may not be ready yet. Each name in `more_clients` is allowed too; its secret key is
    `keys_dir / f"{name}.key_secret"`."""
    server_public, server_secret = curve.generate(keys_dir, "server")
    good_public, good_secret = curve.generate(keys_dir, "good")
    allowed = keys_dir / "allowed"
    allowed.mkdir()
    for public in (good_public, *(curve.generate(keys_dir, name)[0] for name in more_clients)):
        shutil.copy(public, allowed / public.name)
    app = start_appliance(
        config={"security": {"curve": True, "server_secret_key": str(server_secret), "client_keys_dir": str(allowed)}},
        env=env,
        wait=False,
    )
    app.wait_endpoints()
    return app, server_public, good_secret


@contextlib.contextmanager
def module_appliance(
    tmp_path_factory, name: str, extra: dict[str, dict], env: dict[str, str] | None = None, ready_within: float = 60.0
):
    """A ready appliance shared by a module's tests (a fixture of scope "module" yields it)."""
    ctx = zmq.Context()
    tmp = tmp_path_factory.mktemp(name)
    app = Appliance(tmp, merge(base_config(tmp / "run"), extra), env or {}, ctx)
    try:
        app.wait_ready(ready_within)
        yield app
    finally:
        app.close()
        ctx.destroy(linger=0)


@pytest.fixture(scope="module")
def shared_appliance(tmp_path_factory):
    """One appliance (2 workers, fake runtime) for the read-mostly edge tests of a module."""
    extra = {"workers": {"count": 2}, "limits": {"max_targets": 4, "max_text_chars": 200}}
    with module_appliance(tmp_path_factory, "shared", extra, {"FAKE_RUNTIME_DELAY_MS": "1"}) as app:
        yield app
