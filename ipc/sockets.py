"""The one socket factory: every ZeroMQ socket in the appliance is made here.

A `Role` fixes the socket type and whether it binds or connects, so a bind/connect mix-up cannot
happen at a call site. Every socket gets a bounded send and receive HWM and a LINGER, set before
bind/connect (HWMs apply to pipes created afterwards; LINGER must be set before close or context
termination can hang).

    role            type    side     used by
    TASKS_OUT       PUSH    bind     supervisor, one per worker slot
    TASKS_IN        PULL    connect  worker
    RESULTS_IN      PULL    bind     supervisor
    RESULTS_OUT     PUSH    connect  worker
    REQUESTS        ROUTER  bind     edge, port 5555 (REQ and DEALER clients)
    EVENTS          PUB     bind     edge, port 5556
    SCOPED_EVENTS   XPUB    bind     edge, port 5556 under CURVE (subscriptions checked by the edge)
    GATEWAY_EVENTS  XPUB    bind     compat, the gateway's events (NODROP: a full pipe refuses the send)
    CLIENT          REQ     connect  CLI and tests
    SUBSCRIBER      SUB     connect  CLI and tests

The factory works with a plain `zmq.Context` and a `zmq.asyncio.Context` alike.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TypeVar

import zmq


class Role(enum.Enum):
    TASKS_OUT = (zmq.PUSH, True)
    TASKS_IN = (zmq.PULL, False)
    RESULTS_IN = (zmq.PULL, True)
    RESULTS_OUT = (zmq.PUSH, False)
    REQUESTS = (zmq.ROUTER, True)
    EVENTS = (zmq.PUB, True)
    SCOPED_EVENTS = (zmq.XPUB, True)
    GATEWAY_EVENTS = (zmq.XPUB, True)  # compat: sees subscriptions, refuses a send a pipe cannot take
    CLIENT = (zmq.REQ, False)
    SUBSCRIBER = (zmq.SUB, False)

    @property
    def socket_type(self) -> int:
        return self.value[0]

    @property
    def binds(self) -> bool:
        return self.value[1]


S = TypeVar("S", bound=zmq.Socket)


def make_socket(
    ctx: zmq.Context[S],
    role: Role,
    endpoint: str,
    *,
    hwm: int,
    linger_ms: int,
    max_msg_size: int | None = None,
    configure: Callable[[zmq.Socket], None] | None = None,
) -> S:
    """Create, configure and bind or connect a socket for `role`.

    `max_msg_size` caps what a peer may send (a bigger message drops that peer's connection):
    the edge uses it so no client can make the appliance buffer an arbitrary payload.
    `configure` sets further options before the bind (security options take effect only then).
    """
    if hwm <= 0:
        raise ValueError(f"hwm must be positive (0 would mean unbounded), got {hwm}")
    if linger_ms < 0:
        raise ValueError(f"linger_ms must be >= 0 (-1 would mean wait forever), got {linger_ms}")
    sock = ctx.socket(role.socket_type)
    try:
        sock.setsockopt(zmq.LINGER, linger_ms)
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.RCVHWM, hwm)
        if max_msg_size is not None:
            sock.setsockopt(zmq.MAXMSGSIZE, max_msg_size)
        if endpoint.startswith("tcp://["):
            sock.setsockopt(zmq.IPV6, 1)
        if role is Role.SUBSCRIBER:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        if configure is not None:
            configure(sock)
        if role.binds:
            sock.bind(endpoint)
        else:
            sock.connect(endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def bound_endpoint(sock: zmq.Socket) -> str:
    """The endpoint a socket actually bound (resolves a `*` port)."""
    return sock.getsockopt(zmq.LAST_ENDPOINT).decode()
