"""Fixtures: a real appliance process on ephemeral loopback ports, with the fake runtime.

`start_appliance(config=..., env=...)` runs `python -m appliance serve` with a config written under
the test's tmp_path (run_dir there too, so every ipc:// endpoint is test-private) and waits until
it answers `ping` as ready, unless told not to wait. Every appliance still running at teardown is
killed; every socket is closed with linger=0.

The process, its config and its environment are bench/harness.py's (shared with the benchmarks);
its names are re-exported here for the test modules.
"""

from __future__ import annotations

import contextlib

import pytest
import zmq

from bench.harness import (  # noqa: F401  (re-exported to the test modules)
    REPO,
    Appliance,
    Events,
    base_config,
    child_env,
    merge,
    start_curve_appliance,
    write_config,
)


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


@contextlib.contextmanager
def module_appliance(
    tmp_path_factory, name: str, extra: dict[str, dict], env: dict[str, str] | None = None, ready_within: float = 60.0
):
    """A ready appliance shared by a module's tests (a fixture of scope "module" yields it)."""
    tmp = tmp_path_factory.mktemp(name)
    app = Appliance(tmp, merge(base_config(tmp / "run"), extra), env or {})  # its own context, destroyed by close
    try:
        app.wait_ready(ready_within)
        yield app
    finally:
        app.close()


@pytest.fixture(scope="module")
def shared_appliance(tmp_path_factory):
    """One appliance (2 workers, fake runtime) for the read-mostly edge tests of a module."""
    extra = {"workers": {"count": 2}, "limits": {"max_targets": 4, "max_text_chars": 200}}
    with module_appliance(tmp_path_factory, "shared", extra, {"FAKE_RUNTIME_DELAY_MS": "1"}) as app:
        yield app
