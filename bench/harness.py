"""The appliance as a child process, for the test suite and the benchmarks alike.

One way to write its config (`write_config`), one environment for it (`child_env`) and one
start-up and teardown (`Appliance`): tests/appliance/conftest.py builds its fixtures on these, and
bench/appliance_e2e.py builds the benchmarks' appliance on them.

Contract:
- `Appliance(tmp, config, env, ctx)` writes `config` to `tmp/config.toml` and starts
  `python -m appliance serve` on it at once, in `tmp`, its output in `tmp/appliance.log`. The config
  must hold a [server] with a `run_dir` (`ephemeral_server` gives one under `tmp` with port 0
  everywhere, so every endpoint is private to the run).
- The child sees this process's environment less every variable the appliance or the fake runtime
  reads (`DROPPED_ENV`), plus `env`: a developer's exported ZMQ_PORT or MEESHY_RUN_DIR cannot move a
  temp appliance onto shared ports or paths, and a fake-runtime knob reaches it only when asked for.
- `wait_ready` waits for `ping` to say ready (with `all_workers`, every worker ready); it raises as
  soon as the process has exited. `close` closes the sockets made through `socket`, kills the
  process if it still runs, unlinks its shared-memory cache table (a killed supervisor cannot) and
  destroys the ZeroMQ context when it made it. `stop` is the graceful end: SIGTERM, its exit code.
- `waiting(sock)` yields every message a socket holds now, without waiting; `read_poller(*socks)`
  is a poller for their input; `Events` keeps what a SUB received.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import zmq

from ipc import curve_keys as curve
from appliance.core.cache import table_name
from appliance.client import NoAnswer
from appliance.client import request as one_request
from ipc.shm_cache import ShmCache
from tests.fakes.waiting import poll_until

REPO = Path(__file__).resolve().parent.parent
FAKE_RUNTIME = "tests.fakes.fake_runtime:load"

# Prefixes of the variables the appliance reads (appliance.config.ENV_OVERRIDES and MEESHY_CONFIG,
# systemd's NOTIFY_SOCKET, WATCHDOG_*, STATE_DIRECTORY and RUNTIME_DIRECTORY) and the fake runtime's
# FAKE_* knobs. The union of what the tests' and the benchmarks' copies used to drop: the tests' let
# ZMQ_PORT, API_PORT and most MEESHY_* through (they override the temp config), the benchmarks'
# let FAKE_* through (a stray delay would slow a --fake run).
DROPPED_ENV = ("TRANSLATION_WORKERS", "ZMQ_PORT", "ZMQ_PUB_PORT", "API_PORT", "MEESHY_", "FAKE_", "NOTIFY_SOCKET",
               "WATCHDOG_", "STATE_DIRECTORY", "RUNTIME_DIRECTORY")


# ----------------------------------------------------------------------------- config


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return json.dumps(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")  # never str(None) written as a setting


def write_config(path: Path, sections: dict[str, dict]) -> Path:
    """`sections` as TOML: {section: {key: value}}; a dict value is the sub-table [section.key]."""
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in values.items() if not isinstance(v, dict))
        for key, table in values.items():
            if isinstance(table, dict):
                lines.append(f"[{section}.{key}]")
                lines.extend(f"{k} = {toml_value(v)}" for k, v in table.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def ephemeral_server(tmp: Path) -> dict:
    """[server] on port 0 everywhere, its run and state directories under `tmp`."""
    return {"zmq_port": 0, "zmq_pub_port": 0, "api_port": 0, "run_dir": str(tmp / "run"),
            "state_dir": str(tmp / "state")}


def base_config(run_dir: Path) -> dict[str, dict]:
    """The tests' appliance: one fake-runtime worker, quick heartbeats and respawns (run_dir's parent
    is the appliance's temp directory)."""
    return {
        "server": ephemeral_server(run_dir.parent),
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
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENV)}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


# ----------------------------------------------------------------------------- the process


class Appliance:
    def __init__(self, tmp: Path, config: dict[str, dict], env: dict[str, str] | None = None,
                 ctx: zmq.Context | None = None, preexec_fn: Callable[[], None] | None = None) -> None:
        self.tmp = tmp
        self._own_ctx = ctx is None
        self.ctx = zmq.Context() if ctx is None else ctx
        self.run_dir = Path(config["server"]["run_dir"])
        self.config_path = write_config(tmp / "config.toml", config)
        self.log_path = tmp / "appliance.log"
        self._log = open(self.log_path, "wb")
        self.sockets: list[zmq.Socket] = []
        self.endpoints: dict = {}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", "serve", "--config", str(self.config_path)],
            cwd=tmp,
            env=child_env(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )

    # -------------------------------------------------------------- process

    def log(self, tail: int | None = None) -> str:
        """Its output so far (the last `tail` characters); "" when there is no log file."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text if tail is None else text[-tail:]

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"appliance exited {self.proc.returncode}:\n{self.log()}")

    def wait_endpoints(self, deadline: float = 30.0) -> dict:
        path = self.run_dir / "endpoints.json"

        def ready():
            self.check_alive()
            return path.exists() and json.loads(path.read_text())

        self.endpoints = poll_until(ready, deadline, what="endpoints.json")
        return self.endpoints

    def wait_ready(self, deadline: float = 60.0, all_workers: bool = False) -> dict:
        """The first `ping` answer that says ready (with `all_workers`: every worker ready)."""
        self.wait_endpoints(deadline)

        def ready():
            self.check_alive()
            pong = self.request({"type": "ping"}, timeout=1.0)
            if not pong or not pong.get("ready"):
                return None
            return pong if not all_workers or pong["workers"]["ready"] == pong["workers"]["total"] else None

        return poll_until(ready, deadline, what="ping ready")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, deadline: float = 30.0) -> int:
        try:
            return self.proc.wait(deadline)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"appliance did not exit within {deadline}s:\n{self.log()}") from None

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM and its exit code; None when it has not exited within `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
        return self.proc.returncode

    def close(self) -> None:
        for sock in self.sockets:
            sock.close(linger=0)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        # A killed supervisor cannot unlink its shared-memory cache table: do it for it.
        ShmCache.unlink_name(table_name(str(self.run_dir)))
        if self._own_ctx:
            self.ctx.destroy(linger=0)
        self._log.close()

    # -------------------------------------------------------------- sockets

    def socket(self, kind: int, endpoint: str | None = None) -> zmq.Socket:
        """A socket connected to `endpoint` (default: the requests port), closed by `close`."""
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


def waiting(sock: zmq.Socket, multipart: bool = False):
    """Every message `sock` holds now, without waiting for more."""
    while True:
        try:
            yield sock.recv_multipart(zmq.NOBLOCK) if multipart else sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return


def read_poller(*socks: zmq.Socket) -> zmq.Poller:
    poller = zmq.Poller()
    for sock in socks:
        poller.register(sock, zmq.POLLIN)
    return poller


class Events:
    def __init__(self, sub: zmq.Socket) -> None:
        self.sub = sub
        self.all: list[dict] = []

    def pump(self, timeout_ms: int = 0) -> int:
        got = 0
        if self.sub.poll(timeout_ms):
            for raw in waiting(self.sub):
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


def start_curve_appliance(
    start_appliance, keys_dir: Path, more_clients: tuple[str, ...] = (), env: dict | None = None
) -> tuple[Appliance, Path, Path]:
    """An appliance with CURVE on that lets in one client key pair, "good": (the appliance, its
    server public key, the allowed client's secret key file). `start_appliance(config=, wait=)`
    starts one (the tests' fixture). Its endpoints are written; its workers may not be ready yet.
    Each name in `more_clients` is allowed too; its secret key is `keys_dir / f"{name}.key_secret"`."""
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
