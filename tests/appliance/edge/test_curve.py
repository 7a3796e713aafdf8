"""CurveZMQ on the edge sockets (appliance/edge/curve.py): real sockets on ipc:// endpoints, no appliance.

A ROUTER that echoes and a PUB, both secured by EdgeCurve, run in one zmq.asyncio context on the
event loop (asyncio and uvloop alike); clients live in a context of their own. A refused client is
waited for through the server socket's monitor (its handshake-failure event), so "nothing
arrived" is asserted after the refusal happened, not after a guessed delay.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvloop
import zmq
import zmq.asyncio
import zmq.auth
from zmq.utils.monitor import parse_monitor_message

from appliance.edge import curve
from appliance.config import SecuritySettings
from tests.appliance.conftest import start_curve_appliance
from tests.fakes.waiting import poll_until

pytestmark = pytest.mark.timeout(60)

LOOPS: dict[str, Callable] = {"asyncio": asyncio.run, "uvloop": uvloop.run}
FAILED = zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
DEADLINE = 10.0  # a hang guard, not a timing assertion
QUIET_MS = 200  # how long a refused client is watched for a message that must not come


@pytest.fixture(params=sorted(LOOPS))
def run(request) -> Callable:
    return LOOPS[request.param]


@dataclass
class Keys:
    server_public: Path
    server_secret: Path
    allowed_dir: Path
    good_secret: Path
    stranger_public: Path
    stranger_secret: Path

    def security(self, **overrides: str) -> SecuritySettings:
        values = {"server_secret_key": str(self.server_secret), "client_keys_dir": str(self.allowed_dir)}
        return SecuritySettings(curve=True, **{**values, **overrides})


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    server_public, server_secret = curve.generate(tmp_path / "server", "server")
    good_public, good_secret = curve.generate(tmp_path / "clients", "good")
    stranger_public, stranger_secret = curve.generate(tmp_path / "clients", "stranger")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    shutil.copy(good_public, allowed)
    return Keys(server_public, server_secret, allowed, good_secret, stranger_public, stranger_secret)


class Edge:
    """A secured ROUTER (echoes `echo:<body>`) and XPUB (applying what curve.allowed_subscription
    admits, as appliance/edge/zmq_edge.py does), with monitors for failed handshakes."""

    def __init__(self, keys: Keys, tmp: Path, handshake_ivl_ms: int | None = None) -> None:
        self.curve = curve.EdgeCurve.load(keys.security())
        self.handshake_ivl_ms = handshake_ivl_ms
        self.requests, self.events = f"ipc://{tmp}/r.ipc", f"ipc://{tmp}/p.ipc"
        self.seen: list[bytes] = []

    async def __aenter__(self) -> Edge:
        self.ctx = zmq.asyncio.Context()
        self.curve.start(self.ctx)
        self.router, self.pub = self.ctx.socket(zmq.ROUTER), self.ctx.socket(zmq.XPUB)
        for sock, endpoint in ((self.router, self.requests), (self.pub, self.events)):
            sock.setsockopt(zmq.LINGER, 0)
            if self.handshake_ivl_ms is not None:
                sock.setsockopt(zmq.HANDSHAKE_IVL, self.handshake_ivl_ms)
            self.curve.secure(sock)
            sock.bind(endpoint)
        self.router_failures = self.router.get_monitor_socket(FAILED)
        self.pub_failures = self.pub.get_monitor_socket(FAILED)
        self.echo = asyncio.create_task(self._echo())
        self.subscriptions = asyncio.create_task(self._subscriptions())
        return self

    async def _subscriptions(self) -> None:
        while True:
            frame = await self.pub.recv(copy=False)
            allowed = curve.allowed_subscription(frame.bytes, frame.get("User-Id"))
            if allowed is not None:
                self.pub.setsockopt(zmq.SUBSCRIBE if allowed[0] == curve.SUBSCRIBE else zmq.UNSUBSCRIBE, allowed[1])

    async def _echo(self) -> None:
        while True:
            frames = await self.router.recv_multipart()
            self.seen.append(frames[-1])
            await self.router.send_multipart([*frames[:-1], b"echo:" + frames[-1]])

    async def __aexit__(self, *exc) -> None:
        self.echo.cancel()
        self.subscriptions.cancel()
        for sock, monitor in ((self.router, self.router_failures), (self.pub, self.pub_failures)):
            sock.disable_monitor()
            monitor.close(linger=0)
            sock.close(linger=0)
        self.curve.stop()
        self.ctx.term()


class Clients:
    """Client sockets in their own context: `good`, `stranger` (key not allowed), `plain` (no
    CURVE), `wrong_server` (allowed key, but another server key than the edge's)."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.ctx = zmq.asyncio.Context()
        self.sockets: list[zmq.Socket] = []

    def socket(self, kind: str, socket_type: int, endpoint: str) -> zmq.asyncio.Socket:
        sock = self.ctx.socket(socket_type)
        sock.setsockopt(zmq.LINGER, 0)
        self.sockets.append(sock)
        k = self.keys
        if kind == "good":
            curve.client_options(sock, k.server_public, k.good_secret)
        elif kind == "stranger":
            curve.client_options(sock, k.server_public, k.stranger_secret)
        elif kind == "wrong_server":
            curve.client_options(sock, k.stranger_public, k.good_secret)
        else:
            assert kind == "plain"
        if socket_type == zmq.SUB:
            sock.setsockopt(zmq.SUBSCRIBE, b"")  # greedy: only its own key's subscription is applied
            if kind != "plain":
                sock.setsockopt(zmq.SUBSCRIBE, self.topic(kind))
        sock.connect(endpoint)
        return sock

    def topic(self, kind: str) -> bytes:
        return curve.client_topic(self.keys.stranger_secret if kind == "stranger" else self.keys.good_secret)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close(linger=0)
        self.ctx.term()

    def __enter__(self) -> "Clients":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


async def ask(sock: zmq.asyncio.Socket, body: bytes) -> bytes:
    await asyncio.wait_for(sock.send(body), DEADLINE)
    return await asyncio.wait_for(sock.recv(), DEADLINE)


async def publish_until_received(pub: zmq.asyncio.Socket, sub: zmq.asyncio.Socket, topic: bytes) -> bytes:
    """Publish [topic, event] until `sub` gets a message: a SUB misses what precedes its subscription."""
    async def loop() -> bytes:
        while True:
            await pub.send_multipart([topic, b"event"])
            if await sub.poll(20):
                return (await sub.recv_multipart())[-1]

    return await asyncio.wait_for(loop(), DEADLINE)


async def failure(monitor: zmq.asyncio.Socket) -> dict:
    return parse_monitor_message(await asyncio.wait_for(monitor.recv_multipart(), DEADLINE))


def test_an_allowed_client_gets_replies_and_events(run, keys, tmp_path):
    async def main() -> None:
        async with Edge(keys, tmp_path) as edge:
            with Clients(keys) as clients:
                req = clients.socket("good", zmq.REQ, edge.requests)
                dealer = clients.socket("good", zmq.DEALER, edge.requests)
                sub = clients.socket("good", zmq.SUB, edge.events)
                assert await ask(req, b"hello") == b"echo:hello"
                assert await ask(dealer, b"pipelined") == b"echo:pipelined"
                assert await publish_until_received(edge.pub, sub, clients.topic("good")) == b"event"
                assert edge.seen == [b"hello", b"pipelined"]

    run(main())


@pytest.mark.parametrize("kind", ["stranger", "plain", "wrong_server"])
def test_refused_clients_get_nothing_while_allowed_ones_are_served(run, keys, tmp_path, kind):
    async def main() -> None:
        async with Edge(keys, tmp_path) as edge:
            with Clients(keys) as clients:
                intruder = clients.socket(kind, zmq.REQ, edge.requests)
                await asyncio.wait_for(intruder.send(b"intrusion"), DEADLINE)
                eavesdropper = clients.socket(kind, zmq.SUB, edge.events)
                refused = await failure(edge.router_failures)
                await failure(edge.pub_failures)
                if kind == "stranger":
                    assert refused["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH and refused["value"] == 400

                good = clients.socket("good", zmq.REQ, edge.requests)
                listener = clients.socket("good", zmq.SUB, edge.events)
                assert await ask(good, b"hello") == b"echo:hello"
                await publish_until_received(edge.pub, listener, clients.topic("good"))
                await edge.pub.send_multipart([clients.topic("good"), b"after"])
                assert (await asyncio.wait_for(listener.recv_multipart(), DEADLINE))[-1] == b"after"

                assert await eavesdropper.poll(QUIET_MS) == 0
                assert await intruder.poll(QUIET_MS) == 0
                assert edge.seen == [b"hello"]

    run(main())


def test_after_stop_a_secured_socket_refuses_everyone(run, keys, tmp_path):
    """No ZAP handler must mean no entry: libzmq would otherwise admit any client that knows the
    server's public key (ZAP_ENFORCE_DOMAIN with a non-empty ZAP domain prevents it).

    The handler's inproc endpoint is unregistered by libzmq's reaper shortly after stop(); a
    handshake in that gap waits for a ZAP reply that never comes. A short HANDSHAKE_IVL turns
    that stall into the same failure event, so the test waits on an event either way.
    """

    async def main() -> None:
        async with Edge(keys, tmp_path, handshake_ivl_ms=300) as edge:
            with Clients(keys) as clients:
                first = clients.socket("good", zmq.REQ, edge.requests)
                assert await ask(first, b"before") == b"echo:before"
                edge.curve.stop()
                late = clients.socket("good", zmq.REQ, edge.requests)
                await asyncio.wait_for(late.send(b"after stop"), DEADLINE)
                assert (await failure(edge.router_failures))["event"] == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                assert await late.poll(QUIET_MS) == 0
                assert edge.seen == [b"before"]

    run(main())


def test_null_sockets_in_the_same_context_do_not_go_through_zap(run, keys, tmp_path):
    """The supervisor's internal ipc:// sockets share the edge's context and stay plain."""

    async def main() -> None:
        async with Edge(keys, tmp_path) as edge:
            pull = edge.ctx.socket(zmq.PULL)
            push = edge.ctx.socket(zmq.PUSH)
            try:
                for sock in (pull, push):
                    sock.setsockopt(zmq.LINGER, 0)
                pull.bind(f"ipc://{tmp_path}/internal.ipc")
                push.connect(f"ipc://{tmp_path}/internal.ipc")
                await asyncio.wait_for(push.send(b"task"), DEADLINE)
                assert await asyncio.wait_for(pull.recv(), DEADLINE) == b"task"
            finally:
                pull.close(linger=0)
                push.close(linger=0)

    run(main())


def test_secure_and_start_refuse_misuse(run, keys, tmp_path):
    edge_curve = curve.EdgeCurve.load(keys.security())
    outside = zmq.Context()
    with pytest.raises(RuntimeError, match="no running event loop"):
        edge_curve.start(outside)
    outside.term()

    async def main() -> None:
        ctx, other = zmq.asyncio.Context(), zmq.asyncio.Context()
        early, bound, foreign = ctx.socket(zmq.ROUTER), ctx.socket(zmq.ROUTER), other.socket(zmq.ROUTER)
        try:
            with pytest.raises(RuntimeError, match="before start"):
                edge_curve.secure(early)
            edge_curve.start(ctx)
            with pytest.raises(RuntimeError, match="twice"):
                edge_curve.start(ctx)
            bound.bind(f"ipc://{tmp_path}/bound.ipc")
            with pytest.raises(RuntimeError, match="after bind"):
                edge_curve.secure(bound)
            with pytest.raises(RuntimeError, match="not in the context"):
                edge_curve.secure(foreign)
        finally:
            edge_curve.stop()
            edge_curve.stop()
            for sock in (early, bound, foreign):
                sock.close(linger=0)
            ctx.term()
            other.term()

    run(main())


@pytest.mark.timeout(30)
def test_generate_writes_a_private_secret_and_never_overwrites(tmp_path):
    directory = tmp_path / "new" / "keys"
    public, secret = curve.generate(directory, "gw1")
    assert (public.name, secret.name) == ("gw1.key", "gw1.key_secret")
    assert secret.stat().st_mode & 0o777 == 0o600
    assert directory.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in directory.iterdir()) == ["gw1.key", "gw1.key_secret"]
    pub_key, no_secret = zmq.auth.load_certificate(public)
    assert no_secret is None and b"secret-key" not in public.read_bytes()
    assert curve.load_key_file(secret, "x", secret=True) == (pub_key, zmq.auth.load_certificate(secret)[1])

    before = secret.read_bytes(), public.read_bytes()
    with pytest.raises(FileExistsError, match="gw1.key"):
        curve.generate(directory, "gw1")
    public.unlink()
    with pytest.raises(FileExistsError, match="gw1.key_secret"):
        curve.generate(directory, "gw1")
    assert secret.read_bytes() == before[0] and not public.exists()
    for bad in ("", "..", "a/b"):
        with pytest.raises(ValueError):
            curve.generate(directory, bad)


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


LOAD_ERRORS = {
    "secret unset": (lambda k, t: {"server_secret_key": ""}, "security.server_secret_key is not set"),
    "secret missing": (lambda k, t: {"server_secret_key": str(t / "nope.key_secret")}, "no file at"),
    "secret is a directory": (lambda k, t: {"server_secret_key": str(t.parent)}, "is a directory"),
    "public key given": (lambda k, t: {"server_secret_key": str(k.server_public)}, "only a public key"),
    "not a key file": (lambda k, t: {"server_secret_key": _write(t / "junk", "hello\n")}, "not a CurveZMQ key file"),
    "mismatched pair": (
        lambda k, t: {
            "server_secret_key": _write(
                t / "mixed.key_secret",
                k.server_secret.read_text().replace(
                    zmq.auth.load_certificate(k.server_secret)[0].decode(),
                    zmq.auth.load_certificate(k.stranger_public)[0].decode(),
                ),
            )
        },
        "does not belong",
    ),
    "dir unset": (lambda k, t: {"client_keys_dir": ""}, "security.client_keys_dir is not set"),
    "dir missing": (lambda k, t: {"client_keys_dir": str(t / "nope")}, "not a directory"),
    "dir empty": (
        lambda k, t: {"client_keys_dir": str(Path(_write(t / "empty" / "README", "")).parent)},
        "no client public key",
    ),
    "secret in dir": (
        lambda k, t: {"client_keys_dir": str(Path(_write(t / "leak" / "x.key", k.good_secret.read_text())).parent)},
        "holds a secret key",
    ),
    "junk key in dir": (
        lambda k, t: {"client_keys_dir": str(Path(_write(t / "junk" / "x.key", "garbage\n")).parent)},
        "not a CurveZMQ key file",
    ),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", list(LOAD_ERRORS))
def test_load_errors_name_the_setting(keys, tmp_path, case):
    overrides, message = LOAD_ERRORS[case]
    values = overrides(keys, tmp_path / "case")
    setting = "security." + next(iter(values))
    with pytest.raises(curve.CurveError, match=message) as err:
        curve.EdgeCurve.load(keys.security(**values))
    assert str(err.value).startswith(setting)


@pytest.mark.timeout(30)
def test_client_options_check_their_keys(keys, tmp_path):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    try:
        with pytest.raises(curve.CurveError, match="secret key; clients get only"):
            curve.client_options(sock, keys.server_secret, keys.good_secret)
        with pytest.raises(curve.CurveError, match="40 Z85"):
            curve.client_options(sock, b"not a key", keys.good_secret)
        with pytest.raises(curve.CurveError, match="client secret key: .* only a public key"):
            curve.client_options(sock, keys.server_public, keys.stranger_public)
        server_z85 = zmq.auth.load_certificate(keys.server_public)[0]
        sock.connect(f"ipc://{tmp_path}/x.ipc")
        with pytest.raises(RuntimeError, match="after connect"):
            curve.client_options(sock, server_z85, keys.good_secret)
    finally:
        sock.close(linger=0)
        ctx.term()


def test_a_curve_appliance_serves_allowed_clients_only(start_appliance, tmp_path):
    """Through the real appliance: an unauthenticated REQ and SUB get nothing, an allowed one is served."""
    app, server_public, good_secret = start_curve_appliance(start_appliance, tmp_path / "keys")
    endpoints = app.endpoints
    ctx = zmq.Context()
    try:
        def client(kind: int, endpoint: str, secure: bool) -> zmq.Socket:
            sock = ctx.socket(kind)
            sock.setsockopt(zmq.LINGER, 0)
            if secure:
                curve.client_options(sock, server_public, good_secret)
            if kind == zmq.SUB:
                sock.setsockopt(zmq.SUBSCRIBE, curve.client_topic(good_secret) if secure else b"")
            sock.connect(endpoint)
            return sock

        plain_req = client(zmq.REQ, endpoints["requests"], secure=False)
        plain_sub = client(zmq.SUB, endpoints["events"], secure=False)
        good_req = client(zmq.DEALER, endpoints["requests"], secure=True)
        good_sub = client(zmq.SUB, endpoints["events"], secure=True)
        plain_req.send(b'{"type": "ping"}')

        def ready() -> bool:
            good_req.send(b'{"type": "ping"}')
            return good_req.poll(1000) and json.loads(good_req.recv()).get("ready") is True

        poll_until(ready, 60, what="the allowed client's ping")
        while good_req.poll(200):
            good_req.recv()

        def published() -> bool:
            good_req.send(b'{"messageId": "c", "taskId": "curve-1", "text": "secret", "targetLanguage": "fr", "sourceLanguage": "en"}')
            return good_sub.poll(1000) and b"curve-1" in good_sub.recv_multipart()[-1]

        poll_until(published, 30, what="an event for the allowed subscriber")
        # The plain clients' messages were never read: no reply, no event.
        assert not plain_req.poll(QUIET_MS) and not plain_sub.poll(QUIET_MS)
    finally:
        ctx.destroy(linger=0)
