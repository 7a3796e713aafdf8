"""A small HTTP/1.1 API on asyncio streams (port 8000, API_PORT), no framework.

    GET  /health    200 while the process runs: {"status": "ok", "state": ...}
    GET  /ready     200 when serving with at least one ready worker, else 503
    GET  /stats     the stats document (same as the `stats` request)
    GET  /metrics   the same counters in Prometheus text format
    POST /translate a translation request (same JSON as on 5555), always synchronous: the reply
                    holds the results. 200 with the sync body; errors: 400 for a bad request,
                    503 for overloaded / shutting_down / not_ready, 500 for internal_error.
    POST /detect    {"text": ...}: the languages the text may be in, ranked, with confidences
                    (same JSON as the `detect` request on 5555)

Every error is a JSON body {"status": "error", "error": {"code", "message"}}.

Limits, so that a slow or hostile client cannot hold memory or connections:

    connections   at most http.max_connections (256) at once; one more is answered 503
                  "overloaded" and closed at once, unread.
    idle          a keep-alive connection waits IDLE_TIMEOUT_S (30 s) for the first byte of its
                  next request, then is closed.
    head          once that first byte came, the request line and the whole header block must
                  arrive within http.header_timeout_s (10 s), else 408 and closed. A line holds at
                  most MAX_LINE (8 KiB: 414 for the request line, 431 for a header), the block at
                  most MAX_HEAD (32 KiB) and MAX_HEADERS (100) headers (431).
    framing       a body is framed by Content-Length only, 0..limits.max_request_bytes (else 413).
                  Transfer-Encoding of any kind is refused (501); a duplicated Content-Length,
                  Host, Connection or Authorization, a malformed header line or Content-Length,
                  or a version other than HTTP/1.0 and 1.1 is a 400 (505). Each closes the
                  connection, so no byte of an unparsed body is ever read as a request.
    body, reply   the body must arrive, and the reply be taken, within IDLE_TIMEOUT_S.
    memory        besides the parsed head and the body, a connection's reader holds about
                  2 x RECV_BUFFER (the accepted socket's SO_RCVBUF, 32 KiB) at most.
    auth          when security.http_token is set, every request but GET /health needs
                  `Authorization: Bearer <token>`, else 401 "unauthorized" with
                  `WWW-Authenticate: Bearer` (a request with an unread body is then closed).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import socket
from typing import NamedTuple, Protocol

from appliance import protocol
from appliance.config import Settings
from appliance.stats import prometheus

log = logging.getLogger("meeshy.http")

MAX_LINE = 8192
MAX_HEAD = 32 * 1024
MAX_HEADERS = 100
RECV_BUFFER = 32 * 1024  # SO_RCVBUF of accepted sockets (Linux doubles it)
IDLE_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 5.0
REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 413: "Payload Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported",
}
UNAVAILABLE = {protocol.OVERLOADED, protocol.SHUTTING_DOWN, protocol.NOT_READY}
UNAUTHORIZED = "unauthorized"

ROUTES = {"/health": "GET", "/ready": "GET", "/stats": "GET", "/metrics": "GET", "/translate": "POST", "/detect": "POST"}
POST_TYPES = {"/translate": "translation", "/detect": "detect"}  # the one request type each route takes
# Headers whose meaning two copies would make ambiguous (request smuggling, auth confusion).
SINGLE_HEADERS = {"content-length", "host", "connection", "authorization"}
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
DIGITS = re.compile(r"[0-9]{1,20}")


class Service(Protocol):
    state: str
    settings: Settings

    def count_request(self) -> None: ...
    def respond(self, payload: bytes, reply, *, force_sync: bool = False, only_type: str | None = None) -> None: ...
    def ping(self, message_id: str | None) -> dict: ...
    def stats(self) -> dict: ...


class HttpError(Exception):
    """A request the connection cannot go on after: answered with `status`, then closed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Request(NamedTuple):
    method: str
    path: str
    version: str
    headers: dict[str, str]  # lower-cased names


class HttpApi:
    def __init__(self, service: Service) -> None:
        settings = service.settings
        self.service = service
        self.max_body = settings.limits.max_request_bytes
        self.max_connections = settings.http.max_connections
        self.header_timeout_s = settings.http.header_timeout_s
        self.token = settings.security.http_token.encode()
        self.active = 0
        self._full_logged = False

    async def start(self, host: str, port: int) -> asyncio.AbstractServer:
        # `limit` bounds one line, and the reader pauses its transport past twice that; but one read
        # hands it all the kernel holds for the socket (~128 KiB by default). Accepted sockets
        # inherit the listener's smaller receive buffer, which bounds that read.
        server = await asyncio.start_server(self._client, host, port, limit=MAX_LINE)
        for sock in server.sockets:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
        return server

    # -------------------------------------------------------------- connection

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= self.max_connections:
            self._reject(writer)
            return
        self.active += 1
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("HTTP connection failed")
        finally:
            await self._close(writer)
            self.active -= 1
            if self.active < self.max_connections:
                self._full_logged = False

    def _reject(self, writer: asyncio.StreamWriter) -> None:
        """Over the cap: a fixed 503 into an empty send buffer, then close, reading nothing."""
        if not self._full_logged:
            self._full_logged = True
            log.warning("HTTP connection limit reached (http.max_connections = %d): refusing", self.max_connections)
        body = protocol.error_body(
            protocol.OVERLOADED, f"too many HTTP connections (limit {self.max_connections}); retry later"
        )
        try:
            writer.write(self._response(503, body, False))
        except Exception:
            pass
        writer.close()

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            writer.transport.abort()  # a peer that takes no bytes must not keep a transport alive
        except Exception:
            pass

    # -------------------------------------------------------------- one request

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; True to keep the connection for the next."""
        try:
            first = await asyncio.wait_for(reader.read(1), IDLE_TIMEOUT_S)
        except TimeoutError:
            return False
        if not first:
            return False
        try:
            async with asyncio.timeout(self.header_timeout_s):
                request = await self._read_head(reader, first)
        except TimeoutError:
            await self._error(writer, 408, "request_timeout", f"request head not received within {self.header_timeout_s:g}s")
            return False
        except HttpError as exc:
            await self._error(writer, exc.status, exc.code, str(exc))
            return False
        if request is None:  # the peer closed mid-head
            return False
        try:
            length = self._content_length(request.headers)
        except HttpError as exc:
            await self._error(writer, exc.status, exc.code, str(exc))
            return False
        keep_alive = request.version == "HTTP/1.1" and request.headers.get("connection", "").lower() != "close"

        if not self._authorized(request):
            # Answer before reading the body; an unread body cannot be skipped safely, so close.
            keep_alive = keep_alive and length == 0
            body = protocol.error_body(UNAUTHORIZED, "this route needs the header `Authorization: Bearer <token>`")
            await self._write(writer, 401, body, keep_alive, extra={"WWW-Authenticate": "Bearer"})
            return keep_alive

        body = await asyncio.wait_for(reader.readexactly(length), IDLE_TIMEOUT_S) if length else b""
        status, payload = await self._route(request.method, request.path, body)
        await self._write(writer, status, payload, keep_alive)
        return keep_alive

    async def _read_head(self, reader: asyncio.StreamReader, first: bytes) -> Request | None:
        line = first + await self._line(reader, 414, "uri_too_long", "request line")
        if not line.endswith(b"\n"):
            return None
        total = len(line)
        try:
            method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ")
        except ValueError:
            raise HttpError(400, protocol.INVALID_REQUEST, "bad request line") from None
        if not TOKEN.fullmatch(method) or not target:
            raise HttpError(400, protocol.INVALID_REQUEST, "bad request line")
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            raise HttpError(505, protocol.INVALID_REQUEST, "only HTTP/1.0 and HTTP/1.1 are served")
        headers: dict[str, str] = {}
        count = 0
        while True:
            raw = await self._line(reader, 431, "headers_too_large", "header line")
            if not raw.endswith(b"\n"):
                return None
            total += len(raw)
            if total > MAX_HEAD:
                raise HttpError(431, "headers_too_large", f"request head longer than {MAX_HEAD} bytes")
            if raw in (b"\r\n", b"\n"):
                break
            count += 1
            if count > MAX_HEADERS:
                raise HttpError(431, "headers_too_large", f"more than {MAX_HEADERS} headers")
            name, colon, value = raw.decode("latin-1").rstrip("\r\n").partition(":")
            if not colon or not TOKEN.fullmatch(name):  # also refuses "Name :" and folded lines
                raise HttpError(400, protocol.INVALID_REQUEST, "malformed header line")
            name = name.lower()
            if name in headers and name in SINGLE_HEADERS:
                raise HttpError(400, protocol.INVALID_REQUEST, f"duplicate {name} header")
            headers[name] = value.strip(" \t")
        return Request(method, target.split("?", 1)[0], version, headers)

    @staticmethod
    async def _line(reader: asyncio.StreamReader, status: int, code: str, what: str) -> bytes:
        try:
            return await reader.readline()
        except ValueError:  # longer than the reader's limit
            raise HttpError(status, code, f"{what} longer than {MAX_LINE} bytes") from None

    def _content_length(self, headers: dict[str, str]) -> int:
        if "transfer-encoding" in headers:
            raise HttpError(501, "not_implemented", "Transfer-Encoding is not supported: send the body with a Content-Length")
        raw = headers.get("content-length")
        if raw is None:
            return 0
        if not DIGITS.fullmatch(raw):
            raise HttpError(400, protocol.INVALID_REQUEST, "Content-Length must be one decimal number")
        length = int(raw)
        if length > self.max_body:
            raise HttpError(413, protocol.INVALID_REQUEST, f"body must be 0..{self.max_body} bytes")
        return length

    def _authorized(self, request: Request) -> bool:
        if not self.token or (request.method == "GET" and request.path == "/health"):
            return True
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip(" ").encode("latin-1"), self.token)

    # -------------------------------------------------------------- routes

    async def _route(self, method: str, path: str, body: bytes) -> tuple[int, dict | str]:
        svc = self.service
        if path not in ROUTES:
            return 404, protocol.error_body("not_found", f"no route {path}")
        if method != ROUTES[path]:
            return 405, protocol.error_body("method_not_allowed", f"{path} takes {ROUTES[path]}")
        if path == "/health":
            return 200, {"status": "ok", "state": svc.state}
        if path == "/ready":
            pong = svc.ping(None)
            return (200 if pong["ready"] else 503), pong
        if path == "/stats":
            return 200, svc.stats()
        if path == "/metrics":
            return 200, prometheus(svc.stats())
        svc.count_request()
        done: asyncio.Future[dict] = asyncio.get_running_loop().create_future()

        def reply(obj: dict) -> None:
            if not done.done():
                done.set_result(obj)

        svc.respond(body, reply, force_sync=True, only_type=POST_TYPES[path])
        result = await done
        if result.get("status") == "error" and "error" in result:
            code = result["error"]["code"]
            return (503 if code in UNAVAILABLE else 500 if code == protocol.INTERNAL_ERROR else 400), result
        return 200, result

    # -------------------------------------------------------------- replies

    async def _error(self, writer: asyncio.StreamWriter, status: int, code: str, message: str) -> None:
        await self._write(writer, status, protocol.error_body(code, message), False)

    async def _write(
        self, writer: asyncio.StreamWriter, status: int, payload: dict | str, keep_alive: bool, extra: dict | None = None
    ) -> None:
        writer.write(self._response(status, payload, keep_alive, extra))
        await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT_S)

    @staticmethod
    def _response(status: int, payload: dict | str, keep_alive: bool, extra: dict | None = None) -> bytes:
        if isinstance(payload, str):
            data = payload.encode()
            ctype = "text/plain; version=0.0.4; charset=utf-8"
        else:
            data = protocol.encode(payload)
            ctype = "application/json"
        lines = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(data)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        lines.extend(f"{k}: {v}" for k, v in (extra or {}).items())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data
