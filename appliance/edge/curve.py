"""CurveZMQ for the edge sockets: key files, the ZAP authenticator, and socket options.

Threat model. The edge is a ROUTER (requests, 5555) and a PUB (events, 5556; an XPUB under CURVE).

- Without CURVE, whoever can reach those ports can submit work, and every subscriber receives
  every client's events (the broadcast design); anyone on the path reads and alters traffic.
  There is no identity, so taskIds are first come, first served: whoever names an id first owns
  it while the appliance knows it (its events go out under that id; a later request naming it
  with other text is refused with `task_id_conflict`). Binding to loopback (the default) limits
  "whoever" to local users.
- With CURVE (`security.curve = true`), every connection is encrypted and authenticated
  (Curve25519, fresh session keys per connection). A client needs the server's public key, so it
  cannot be talked to by an impostor, and its own key pair, whose public half must be in
  `security.client_keys_dir`. A client with an unknown key, a plain (NULL) client, or a client
  that has the wrong server key fails the handshake: its messages never reach the ROUTER and its
  SUB receives nothing.
- Per-client scope. The ZAP handler names each connection by its client's public key (Z85, the
  ZAP User-Id, which libzmq attaches to every message the connection delivers). That identity is
  the client's scope: its taskIds are its own (two clients may use the same taskId and never reach
  each other's task, so nobody can squat another client's id), and it receives only its own
  events (see "Events under CURVE" below).
- What CURVE does not do: an allowed client can still send load (limits and `overloaded` apply),
  and strangers can still open connections and make the server spend a handshake's worth of CPU.
  The server's `.key_secret` file is the root of trust: whoever reads it can impersonate the
  appliance. Client keys are read at start: removing a `.key` revokes that client at the next
  restart. Two clients sharing one key pair are one client. The HTTP API is outside CURVE (it has
  `security.http_token`): its requests share the anonymous scope, and their events are not
  published on 5556 at all on a CURVE appliance (the HTTP reply carries the results).

Events under CURVE. A PUB filters by prefixes the subscriber chooses, so a topic is no secret: a
SUB subscribed to "" would receive every client's events. So a CURVE appliance publishes on an
XPUB in manual mode (ZMQ_XPUB_MANUAL) and decides every subscription itself: libzmq hands each
subscription message to the edge with its connection's ZAP User-Id, and the edge applies it (to
that connection only) only when the topic is exactly the subscriber's own public key (Z85, 40
bytes); any other prefix, "" included, is ignored and counted. Every event goes out as two
frames, [topic, json], the topic being the public key of the client whose task it is:

    CURVE client ──SUB, subscribe <own Z85 public key>──▶ XPUB (manual): applied, for that pipe
    any other subscription ("", another key, a JSON prefix) ───────────▶ ignored, counted
    event of client K's task ──▶ [K, json] ──▶ only the connections of K that subscribed to K

The client library (appliance/client/library.py) subscribes to its own key. Without CURVE nothing of
this applies: the plain PUB sends one JSON frame per event to every subscriber (the original
broadcast design; a `{"type":"translation_completed"` prefix filter keeps working).

Fail-closed wiring. libzmq consults ZAP for a CURVE server only while a handler is bound in the
socket's context; with no handler it admits any client that knows the server's public key. So
`secure()` sets a ZAP domain together with ZMQ_ZAP_ENFORCE_DOMAIN (with an empty domain that
option turns ZAP off instead), and refuses to run before `start()`. Order in the supervisor:

    curve = EdgeCurve.load(settings.security)   # at boot: errors name the setting
    curve.start(ctx)                            # on the running loop, before any bind
    curve.secure(router); router.bind(...)      # options are copied at bind: set them first
    curve.secure(xpub); xpub.bind(...)          # events: an XPUB (manual subscriptions), not a PUB
    ...                                         # at exit: close the sockets,
    curve.stop()                                # then stop, then terminate the context

NULL-mechanism sockets in the same context (the internal ipc:// ones) never consult ZAP.
Key files are pyzmq's (czmq's) certificate format: `NAME.key` holds the public key,
`NAME.key_secret` both keys (written 0600).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.asyncio import AsyncioAuthenticator

from appliance.config import SecuritySettings
from ipc.curve_keys import (  # noqa: F401  (the key-file API, re-exported for the edge's callers)
    PUBLIC_SUFFIX,
    CurveError,
    client_options,
    client_topic,
    generate,
    load_key_file,
    z85_key,
)

log = logging.getLogger("meeshy.curve")

ZAP_DOMAIN = "meeshy"  # must be non-empty: see "Fail-closed wiring" above
SCOPE_PREFIX = "curve:"  # a CURVE client's scope: this, then its Z85 public key (the ZAP User-Id)
SUBSCRIBE, UNSUBSCRIBE = 1, 0  # the first byte of an XPUB's subscription message
# The XPUB's ZMQ_MAXMSGSIZE: a subscription is 41 bytes; a client (an XSUB) sending a bigger
# message loses its connection instead of making the edge queue it. It bounds the CURVE handshake's
# commands too (INITIATE is a few hundred bytes with its metadata): 256 made every handshake fail.
SUBSCRIPTION_MAX_BYTES = 4096


def load_client_keys(directory: str | os.PathLike, what: str = "security.client_keys_dir") -> frozenset[bytes]:
    """The allowed clients' public keys: every `*.key` file in `directory` (at least one)."""
    if not str(directory):
        raise CurveError(f"{what} is not set (the directory of allowed clients' public .key files)")
    d = Path(directory)
    if not d.is_dir():
        raise CurveError(f"{what}: {d} is not a directory")
    try:
        files = sorted(f for f in d.iterdir() if f.name.endswith(PUBLIC_SUFFIX) and f.is_file())
    except OSError as exc:
        raise CurveError(f"{what}: cannot list {d}: {exc.strerror or exc}") from None
    keys = set()
    for f in files:
        public, secret_key = load_key_file(f, what, secret=False)
        if secret_key is not None:
            raise CurveError(
                f"{what}: {f} holds a secret key; copy only a client's public {PUBLIC_SUFFIX} file there"
            )
        keys.add(public)
    if not keys:
        raise CurveError(
            f"{what}: {d} holds no client public key (*{PUBLIC_SUFFIX}), so no client could connect; "
            "copy each client's .key file (from `meeshy-appliance keygen --name CLIENT`) there"
        )
    return frozenset(keys)


def scope_of(user_id: str) -> str:
    """The taskId scope of a CURVE connection whose ZAP User-Id is `user_id` (its Z85 key)."""
    if len(user_id) != 40:  # pyzmq's ZAP handler names a CURVE client by its Z85 key (curve_user_id)
        raise ValueError(f"not a CURVE client identity: {user_id[:60]!r}")
    return SCOPE_PREFIX + user_id


def topic_of(scope: str) -> bytes | None:
    """The event topic of a scope: a CURVE client's public key; None for every other scope
    (anonymous, compat), whose events a CURVE appliance does not publish on its XPUB."""
    return scope[len(SCOPE_PREFIX):].encode() if scope.startswith(SCOPE_PREFIX) else None


def allowed_subscription(message: bytes, user_id: str) -> tuple[int, bytes] | None:
    """(SUBSCRIBE or UNSUBSCRIBE, topic) when an XPUB subscription message from the connection
    with ZAP User-Id `user_id` names exactly that client's own topic; None otherwise."""
    if not message or message[0] not in (SUBSCRIBE, UNSUBSCRIBE) or not user_id:
        return None
    topic = message[1:]
    return (message[0], topic) if topic == user_id.encode() and z85_key(topic) is not None else None


class EdgeCurve:
    """The server side: the appliance's key pair and the ZAP handler allowing the client keys."""

    def __init__(
        self, public_key: bytes, secret_key: bytes, client_keys_dir: Path, client_keys: frozenset[bytes]
    ) -> None:
        self.public_key = public_key
        self._secret_key = secret_key
        self.client_keys_dir = client_keys_dir
        self.client_keys = client_keys
        self._auth: AsyncioAuthenticator | None = None
        self._ctx: zmq.Context | None = None

    @classmethod
    def load(cls, security: SecuritySettings) -> EdgeCurve:
        """Read and check the key files named by `security` (call when `security.curve` is on)."""
        path = security.server_secret_key
        public, secret = load_key_file(path, "security.server_secret_key", secret=True)
        assert secret is not None
        mode = Path(path).stat().st_mode
        if mode & 0o077:
            log.warning(
                "security.server_secret_key: %s is readable by other users (mode %o); chmod 600 it", path, mode & 0o777
            )
        keys = load_client_keys(security.client_keys_dir)
        return cls(public, secret, Path(security.client_keys_dir), keys)

    def start(self, ctx: zmq.Context) -> None:
        """Bind the ZAP handler in `ctx` on the running event loop; call before binding any edge socket."""
        if self._auth is not None:
            raise RuntimeError("EdgeCurve.start() called twice")
        asyncio.get_running_loop()  # the handler is a task on this loop: refuse to start without one
        auth = AsyncioAuthenticator(ctx, log=log.getChild("zap"))
        auth.start()
        auth.configure_curve(domain=ZAP_DOMAIN, location=str(self.client_keys_dir))
        if not auth.certs.get(ZAP_DOMAIN):
            auth.stop()
            raise CurveError(f"security.client_keys_dir: could not load the client keys in {self.client_keys_dir}")
        self._auth, self._ctx = auth, ctx
        log.info(
            "CurveZMQ on: server public key %s, %d client key(s) allowed from %s",
            self.public_key.decode(), len(auth.certs[ZAP_DOMAIN]), self.client_keys_dir,
        )

    def secure(self, sock: zmq.Socket) -> None:
        """Make `sock` a CURVE server checked by this handler. Before bind: libzmq copies at bind.

        An XPUB is put in manual mode: its owner applies only the subscriptions that
        `allowed_subscription` admits. A PUB is refused: it would apply any subscriber's prefix."""
        if self._auth is None or self._ctx is None:
            raise RuntimeError("EdgeCurve.secure() before start(): start the ZAP handler first")
        if sock.context is not None and sock.context.underlying != self._ctx.underlying:
            raise RuntimeError("EdgeCurve.secure(): the socket is not in the context the ZAP handler serves")
        if sock.getsockopt(zmq.LAST_ENDPOINT):
            raise RuntimeError("EdgeCurve.secure() after bind/connect: security options apply only to later binds")
        if sock.type == zmq.PUB:
            raise RuntimeError("EdgeCurve.secure(): events need an XPUB (manual subscriptions); a PUB lets "
                               "any allowed client subscribe to every client's events")
        if sock.type == zmq.XPUB:
            sock.setsockopt(zmq.XPUB_MANUAL, 1)
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self._secret_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public_key)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)

    def stop(self) -> None:
        """Unbind the ZAP handler (idempotent): later handshakes on secured sockets fail.

        libzmq's reaper unregisters the handler's endpoint shortly after; a handshake in that gap
        waits for a reply that never comes until HANDSHAKE_IVL ends it. Nobody gets in either way.
        """
        if self._auth is not None:
            self._auth.stop()
        self._auth = self._ctx = None
