"""A minimal ZMTP 3.x PULL server on asyncio: the compat door's reader, bounded before it buffers.

Why not a libzmq PULL: libzmq holds every frame of a multipart message in its pipe until the last
one arrives, its high-water mark counts whole messages, and ZMQ_MAXMSGSIZE bounds one frame and
drops the whole connection past it. So a libzmq PULL can bound neither the frames of a message nor
the bytes held per connection (measured: one 400-frame message of 1 MiB frames under a 1 MiB
MAXMSGSIZE held 339 MiB in the receiver before it was delivered), and its only per-frame bound
costs an honest gateway the messages queued in its connection. Here the bytes are read as they
stream: nothing is kept but the first frame's first `keep_bytes` bytes.

Wire contract (ZMTP 3.1, rfc.zeromq.org/spec/37; 3.0 peers too; NULL security mechanism only,
which is what Meeshy's gateway (zeromq.js v6, libzmq 4.3) uses on this port):

    peer (PUSH)                              this server (PULL)
                                        ◀──  greeting, sent at once: FF 00×8 7F | 03 01 | "NULL" 00×16 | 00 | 00×31
    greeting (64 bytes)                 ──▶  byte 0 FF, byte 9 bit 0 set, major (byte 10) >= 3, mechanism NULL
                                        ◀──  READY  Socket-Type=PULL
    READY  Socket-Type=PUSH             ──▶  another socket type, or anything else: connection closed
    frames                              ──▶  flags: 0x01 MORE, 0x02 LONG (8-byte size, else 1 byte), 0x04 COMMAND
    PING ttl context (3.1 heartbeat)    ──▶  ◀── PONG context; any other command is ignored

    a message = data frames up to the first without MORE, delivered as one Message:
        first        the first frame's first keep_bytes bytes (the rest is read and discarded)
        first_size   the first frame's real size
        frames       how many frames it had; binary_bytes, largest: the others' sizes (never kept)

Bounds, all before anything is buffered: `max_connections` (more are closed at accept); the
greeting and READY within `handshake_timeout_s`; a command frame within MAX_COMMAND_BYTES; per
connection at most `buffer_bytes` read ahead of what was handled (+ one 256 KiB socket read) plus
the first frame being kept: reading then stops, TCP's window closes and the peer's PUSH blocks at
its high-water mark, exactly as on a libzmq PULL. The receiver's policy (how large a request or a
message may be) is the callback's: this module only never keeps more than it says.

Fairness: every connection is its own task, and each yields to the event loop before every frame
and whenever its bounded buffer runs dry, so one flooding peer cannot starve another, nor hold
the supervisor's loop (5555, the dispatcher) for longer than one frame's handling.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("meeshy.zmtp")

SIGNATURE = b"\xff" + b"\x00" * 8 + b"\x7f"
GREETING = SIGNATURE + b"\x03\x01" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31
MORE, LONG, COMMAND = 0x01, 0x02, 0x04
MAX_COMMAND_BYTES = 8192  # a READY names a socket type and perhaps an identity; never near this
DISCARD_CHUNK = 65536
REFUSAL_LOG_INTERVAL_S = 10.0


def command(name: bytes, body: bytes) -> bytes:
    """One command frame: flags, size, name-length, name, body."""
    payload = bytes([len(name)]) + name + body
    if len(payload) > 255:
        return bytes([COMMAND | LONG]) + len(payload).to_bytes(8, "big") + payload
    return bytes([COMMAND, len(payload)]) + payload


READY = command(b"READY", bytes([11]) + b"Socket-Type" + (4).to_bytes(4, "big") + b"PULL")


class ProtocolError(Exception):
    """The peer does not speak ZMTP 3 NULL as a PUSH: its connection is closed."""


@dataclass(slots=True)
class Message:
    first: bytes  # at most keep_bytes of the first frame
    first_size: int  # the first frame's real size
    frames: int = 1
    binary_bytes: int = 0  # the other frames together (read and discarded)
    largest: int = 0  # the largest of the other frames


def properties(data: bytes) -> dict[str, bytes]:
    """ZMTP metadata: name-length(1) name value-length(4, network order) value, repeated."""
    found, at = {}, 0
    while at < len(data):
        n = data[at]
        name = data[at + 1 : at + 1 + n]
        if len(name) != n or at + 5 + n > len(data):
            raise ProtocolError("truncated READY property")
        size = int.from_bytes(data[at + 1 + n : at + 5 + n], "big")
        value = data[at + 5 + n : at + 5 + n + size]
        if len(value) != size:
            raise ProtocolError("truncated READY property")
        found[name.decode("ascii", "replace").lower()] = value
        at += 5 + n + size
    return found


def listen(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket where libzmq would bind `tcp://host:port`: "*" or "" is every
    IPv4 interface, and a host name its IPv4 address (libzmq without ZMQ_IPV6), an IPv6 literal
    itself. Raises OSError when the address is taken or unknown."""
    infos = socket.getaddrinfo(None if host in ("", "*") else host, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, _, _, _, address = next((i for i in infos if i[0] == socket.AF_INET), infos[0])
    return socket.create_server(address, family=family, backlog=64)


class ZmtpPullServer:
    def __init__(
        self,
        sock: socket.socket,
        on_message: Callable[[Message], None],
        *,
        keep_bytes: int,
        buffer_bytes: int,
        max_connections: int,
        handshake_timeout_s: float,
    ) -> None:
        self.sock = sock
        self.on_message = on_message
        self.keep_bytes = keep_bytes
        self.buffer_bytes = buffer_bytes
        self.max_connections = max_connections
        self.handshake_timeout_s = handshake_timeout_s
        self.connections: set[asyncio.Task] = set()
        self.refused_connections = 0
        self.protocol_errors = 0
        self._server: asyncio.AbstractServer | None = None
        self._refusal_logged = -REFUSAL_LOG_INTERVAL_S

    async def start(self) -> None:
        # StreamReader pauses the socket once its buffer holds more than twice its limit.
        self._server = await asyncio.start_server(self._connected, sock=self.sock,
                                                  limit=max(1, self.buffer_bytes // 2))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if len(self.connections) >= self.max_connections:
            self.refused_connections += 1
            now = time.monotonic()
            if now - self._refusal_logged >= REFUSAL_LOG_INTERVAL_S:  # a refused PUSH retries every 100 ms
                self._refusal_logged = now
                log.warning("compat connection from %s closed: already %d ([compat] max_connections; %d refused "
                            "so far)", peer, self.max_connections, self.refused_connections)
            writer.transport.abort()
            return
        task = asyncio.current_task()
        self.connections.add(task)
        try:
            await asyncio.wait_for(self._handshake(reader, writer), self.handshake_timeout_s)
            await self._messages(reader, writer)
        except ProtocolError as exc:
            self.protocol_errors += 1
            log.warning("compat connection from %s closed: %s", peer, exc)
        except asyncio.TimeoutError:
            self.protocol_errors += 1
            log.warning("compat connection from %s closed: no ZMTP handshake within %ss", peer,
                        self.handshake_timeout_s)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the peer went away; a PUSH reconnects by itself
        finally:
            self.connections.discard(task)
            writer.transport.abort()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(GREETING)
        greeting = await reader.readexactly(64)
        if greeting[0] != 0xFF or not greeting[9] & 1:
            raise ProtocolError("not a ZMTP 3 greeting")
        if greeting[10] < 3:
            raise ProtocolError(f"ZMTP {greeting[10]}.x peer; 3.x is required")
        mechanism = greeting[12:32].rstrip(b"\x00")
        if mechanism != b"NULL":
            raise ProtocolError(f"security mechanism {mechanism[:20]!r}; only NULL is served here")
        writer.write(READY)
        flags, size = await self._frame_head(reader)
        if not flags & COMMAND:
            raise ProtocolError("a message before READY")
        name, data = await self._command(reader, size)
        if name != b"READY":
            raise ProtocolError(f"{name[:20]!r} before READY")
        socket_type = properties(data).get("socket-type", b"")
        if socket_type != b"PUSH":
            raise ProtocolError(f"socket type {socket_type[:20]!r}; only PUSH may connect here")

    async def _messages(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        message: Message | None = None
        while True:
            # The other connections' turn, every frame: reads from a full buffer do not yield, and
            # a megabyte of empty frames would otherwise hold the loop for a second.
            await asyncio.sleep(0)
            flags, size = await self._frame_head(reader)
            if flags & COMMAND:
                name, data = await self._command(reader, size)
                # A peer that does not read its PONGs needs none: never queue them without bound.
                if name == b"PING" and len(data) >= 2 and writer.transport.get_write_buffer_size() < MAX_COMMAND_BYTES:
                    writer.write(command(b"PONG", data[2:18]))
                continue
            if message is None:
                kept = min(size, self.keep_bytes)
                message = Message(await reader.readexactly(kept), size)
                await self._discard(reader, size - kept)
            else:
                message.frames += 1
                message.binary_bytes += size
                message.largest = max(message.largest, size)
                await self._discard(reader, size)
            if not flags & MORE:
                try:
                    self.on_message(message)
                except Exception:  # one message must never end the connection
                    log.exception("unexpected error handling a compat message")
                message = None

    async def _frame_head(self, reader: asyncio.StreamReader) -> tuple[int, int]:
        flags = (await reader.readexactly(1))[0]
        if flags & LONG:
            return flags, int.from_bytes(await reader.readexactly(8), "big")
        return flags, (await reader.readexactly(1))[0]

    async def _command(self, reader: asyncio.StreamReader, size: int) -> tuple[bytes, bytes]:
        if size > MAX_COMMAND_BYTES:
            raise ProtocolError(f"a command frame of {size} bytes (at most {MAX_COMMAND_BYTES})")
        body = await reader.readexactly(size)
        if not body or len(body) < 1 + body[0]:
            raise ProtocolError("a truncated command")
        return body[1 : 1 + body[0]], body[1 + body[0] :]

    @staticmethod
    async def _discard(reader: asyncio.StreamReader, size: int) -> None:
        while size:
            chunk = await reader.read(min(size, DISCARD_CHUNK))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", size)
            size -= len(chunk)
