"""The `meeshy-appliance` command against running appliances (fake runtime, and the real one),
`keygen`, and the client commands over CurveZMQ (against a small CURVE server made here)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import threading
from importlib.util import find_spec

import pytest
import uvloop
import zmq
import zmq.asyncio
import zmq.auth

from appliance.edge import curve
from ipc import exitcodes
from appliance.config import SecuritySettings
from tests.appliance.conftest import REPO, child_env

pytestmark = pytest.mark.timeout(120)


def cli(*args: str, timeout: float = 90, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        cwd=REPO,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_ping_stats_languages_translate(shared_appliance):
    ep = shared_appliance.endpoints["requests"]
    ping = cli("ping", "--endpoint", ep)
    assert ping.returncode == 0 and "2/2 worker(s) ready" in ping.stdout
    stats = cli("stats", "--endpoint", ep)
    assert stats.returncode == 0 and json.loads(stats.stdout)["workers"]["max_workers"] == 2
    langs = cli("languages", "--endpoint", ep)
    assert ["en", "fr"] in json.loads(langs.stdout)["languages"]["basic"]
    one = cli("translate", "the cat sees the dog", "--to", "fr", "--endpoint", ep)
    assert one.returncode == 0 and one.stdout == "god eht sees tac eht\n"
    two = cli("translate", "hello", "--to", "fr", "es", "--endpoint", ep)
    assert two.stdout.splitlines() == ["fr: olleh", "es: olleh"]
    bad = cli("translate", "hello", "--to", "xx", "--endpoint", ep)
    assert bad.returncode == exitcodes.EXIT_REQUEST_FAILED and "unsupported_language" in bad.stderr


def test_no_appliance_answering_exits_unavailable(tmp_path):
    result = cli("ping", "--endpoint", "tcp://127.0.0.1:9", "--timeout", "0.3")
    assert result.returncode == exitcodes.EXIT_UNAVAILABLE and "no answer" in result.stderr


def test_bad_config_file_exits_with_config_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[workers]\ncuont = 2\n")
    result = cli("serve", "--config", str(bad))
    assert result.returncode == exitcodes.EXIT_CONFIG and "cuont" in result.stderr


@pytest.mark.timeout(600)
@pytest.mark.skipif(find_spec("workers.runtime") is None, reason="workers/runtime.py has not landed yet")
def test_translate_with_the_real_runtime_and_builtin_models(start_appliance, request):
    try:
        models = request.getfixturevalue("builtin_models_dir")
    except pytest.FixtureLookupError:
        pytest.skip("the builtin_models_dir fixture (tests/conftest.py) is not there yet")
    app = start_appliance(
        config={
            "workers": {
                "count": 1,
                "runtime_factory": "workers.runtime:Runtime.load",
                "models_dir": str(models),
                "startup_timeout_s": 300.0,
            }
        }
    )
    result = cli("translate", "the cat sees the dog", "--to", "fr", "--endpoint", app.endpoints["requests"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and result.stdout.strip() != "the cat sees the dog"
    reply = app.request({"messageId": "m", "text": "the cat sees the dog", "targetLanguage": "fr", "sync": True}, timeout=60)
    assert reply["status"] == "completed"
    result0 = reply["results"][0]
    assert result0["sourceLanguage"] == "en" and 0 < result0["confidenceScore"] <= 1
    assert result0["translatorModel"]
    # The worker loaded this host's packed copy of the weights, kept in the state directory.
    packed = app.run_dir.parent / "state" / "packed-weights"
    assert [copy for copy in packed.iterdir() if (copy / "weights.bin").is_file()]


@pytest.mark.timeout(60)
def test_keygen_writes_a_key_pair_and_never_overwrites(tmp_path):
    keys = tmp_path / "keys"
    # keygen reads no configuration: a broken one does not stop it
    broken = {"MEESHY_CONFIG": str(tmp_path / "missing.toml")}
    made = cli("keygen", "--dir", str(keys), "--name", "gw1", env=broken)
    assert made.returncode == 0, made.stderr
    public, secret = keys / "gw1.key", keys / "gw1.key_secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    assert str(public) in made.stdout and str(secret) in made.stdout
    assert "server_secret_key" in made.stdout and "client_keys_dir" in made.stdout
    assert zmq.auth.load_certificate(public)[1] is None
    assert zmq.auth.load_certificate(secret)[0] == zmq.auth.load_certificate(public)[0]

    before = secret.read_bytes()
    again = cli("keygen", "--dir", str(keys), "--name", "gw1")
    assert again.returncode == exitcodes.EXIT_USAGE and "already exists" in again.stderr
    assert secret.read_bytes() == before

    default = cli("keygen", "--dir", str(keys))
    assert default.returncode == 0 and (keys / "server.key_secret").exists()


class CurveServer:
    """A ROUTER secured by EdgeCurve on its own uvloop thread, answering `ping` and synchronous
    `translation` requests the way the appliance does (the text reversed)."""

    def __init__(self, security: SecuritySettings, endpoint: str) -> None:
        self.curve = curve.EdgeCurve.load(security)
        self.endpoint = endpoint
        self.bound = threading.Event()
        self.thread = threading.Thread(target=uvloop.run, args=(self._main(),), daemon=True)

    def __enter__(self) -> CurveServer:
        self.thread.start()
        assert self.bound.wait(30), "the CURVE server did not bind"
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(30)

    async def _main(self) -> None:
        self.loop, self.stopping = asyncio.get_running_loop(), asyncio.Event()
        ctx = zmq.asyncio.Context()
        self.curve.start(ctx)
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        self.curve.secure(router)
        router.bind(self.endpoint)
        self.bound.set()
        serving = asyncio.create_task(self._serve(router))
        try:
            await self.stopping.wait()
        finally:
            serving.cancel()
            router.close(linger=0)
            self.curve.stop()
            ctx.term()

    @staticmethod
    async def _serve(router: zmq.asyncio.Socket) -> None:
        while True:
            *envelope, body = await router.recv_multipart()
            request = json.loads(body)
            if request.get("type") == "ping":
                answer = {"state": "ready", "ready": True, "workers": {"ready": 1, "total": 1}}
            else:
                text = request["text"][::-1]
                results = [{"targetLanguage": t, "translatedText": text} for t in request["targetLanguages"]]
                answer = {"status": "completed", "results": results}
            await router.send_multipart([*envelope, json.dumps(answer).encode()])


@pytest.fixture
def curve_server(tmp_path):
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    for name in ("server", "gw1", "stranger"):
        assert cli("keygen", "--dir", str(keys), "--name", name).returncode == 0
    allowed.mkdir()
    shutil.copy(keys / "gw1.key", allowed)
    security = SecuritySettings(
        curve=True, server_secret_key=str(keys / "server.key_secret"), client_keys_dir=str(allowed)
    )
    with CurveServer(security, f"ipc://{tmp_path}/curve.ipc") as server:
        server.keys = keys
        yield server


@pytest.mark.timeout(90)
def test_client_commands_speak_curve_with_server_and_client_keys(curve_server):
    ep, keys = curve_server.endpoint, curve_server.keys
    with_keys = [
        "--endpoint", ep, "--server-key", str(keys / "server.key"), "--client-key", str(keys / "gw1.key_secret")
    ]
    ping = cli("ping", *with_keys)
    assert ping.returncode == 0 and "1/1 worker(s) ready" in ping.stdout, ping.stderr
    translated = cli("translate", "hello", "--to", "fr", *with_keys)
    assert translated.returncode == 0 and translated.stdout == "olleh\n", translated.stderr


@pytest.mark.timeout(90)
def test_client_commands_without_an_allowed_key_get_no_answer(curve_server):
    ep, keys = curve_server.endpoint, curve_server.keys
    stranger = cli(
        "ping", "--endpoint", ep, "--timeout", "30",
        "--server-key", str(keys / "server.key"), "--client-key", str(keys / "stranger.key_secret"),
    )
    assert stranger.returncode == exitcodes.EXIT_UNAVAILABLE and "refused this client's key" in stranger.stderr
    plain = cli("ping", "--endpoint", ep, "--timeout", "1")
    # the hint depends on which side notices the mechanism mismatch first; both name CURVE
    assert plain.returncode == exitcodes.EXIT_UNAVAILABLE and "CURVE" in plain.stderr


@pytest.mark.timeout(60)
def test_curve_flags_are_checked_before_anything_is_sent(tmp_path):
    keys = tmp_path / "keys"
    assert cli("keygen", "--dir", str(keys), "--name", "server").returncode == 0
    ep = f"ipc://{tmp_path}/nobody.ipc"
    half = cli("ping", "--endpoint", ep, "--server-key", str(keys / "server.key"))
    assert half.returncode == exitcodes.EXIT_USAGE and "--client-key" in half.stderr
    public_as_secret = cli(
        "ping", "--endpoint", ep, "--server-key", str(keys / "server.key"), "--client-key", str(keys / "server.key")
    )
    assert public_as_secret.returncode == exitcodes.EXIT_CONFIG and "only a public key" in public_as_secret.stderr
    leaked = cli(
        "ping", "--endpoint", ep,
        "--server-key", str(keys / "server.key_secret"), "--client-key", str(keys / "server.key_secret"),
    )
    assert leaked.returncode == exitcodes.EXIT_CONFIG and "clients get only" in leaked.stderr
