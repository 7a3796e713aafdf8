"""The HTTP API (port 8000, API_PORT) on aiohttp's low-level server, on the supervisor's event loop.

    GET  /health    200 while the process runs: {"status": "ok", "state": ...}
    GET  /ready     200 when serving with at least one ready worker, else 503
    GET  /stats     the stats document (same as the `stats` request)
    GET  /metrics   Prometheus text format (appliance/core/stats.py: the appliance's own registry)
    POST /translate a translation request (same JSON as on 5555), always synchronous: the reply
                    holds the results. 200 with the sync body; errors: 400 for a bad request,
                    503 for overloaded / shutting_down / not_ready, 500 for internal_error.
    POST /detect    {"text": ...}: the languages the text may be in, ranked, with confidences
                    (same JSON as the `detect` request on 5555)
    LibreTranslate  GET /languages, GET /frontend/settings, and a POST /translate or /detect in
                    LibreTranslate's shape (`q`, a form): appliance/edge/libretranslate.py, its own
                    error bodies and its api_key beside the Bearer token

Every error is a JSON body {"status": "error", "error": {"code", "message"}}.

Why aiohttp: HTTP/1.1 framing is where request smuggling and slow-client attacks live, and a
hand-written parser is one more to get wrong. aiohttp is maintained, parses with llhttp (Node's
parser: strict Content-Length and Transfer-Encoding rules, chunked bodies), and runs on the loop
the supervisor already has (asyncio + uvloop): no thread, no second process, the handlers call the
service directly. Its low-level `web.Server` is used, not `web.Application`: six fixed routes need
no router, and the server is the protocol factory, which is where the limits below hook in.

Limits, so that a slow or hostile client cannot hold memory or connections:

    connections   at most http.max_connections (256) at once, and at most
                  http.max_connections_per_peer (64) from one peer (an IPv4 address, an IPv6
                  /64). A connection over either cap evicts the oldest connection (of that peer,
                  or of all) that is evictable: one waiting for a request head, not serving a
                  request, and not authenticated. Only when none is evictable is the newcomer
                  answered 503 "overloaded" and closed at once, unread (aiohttp has no cap of
                  its own: `Connection.connection_made`). So connections that hold partial heads
                  can never hold the door shut: whoever connects next takes the oldest one's
                  place, and a client that sends its request at once is served.
    idle          a keep-alive connection waits IDLE_TIMEOUT_S (30 s) for its next request head
                  (aiohttp's keepalive_timeout), then is closed.
    head          once the first byte of a head came, the request line and the whole header block
                  must arrive within http.header_timeout_s (10 s), else 408 and closed (aiohttp
                  has no such deadline: `Connection.data_received` keeps it). A line holds at most
                  MAX_LINE (8 KiB: 414 for the request line, 431 for a header), the block at most
                  MAX_HEAD (32 KiB, counted as bytes arrive) and MAX_HEADERS (100) headers (431).
    framing       llhttp refuses a second Content-Length (equal or not), one that is not plain
                  digits, a second Host, Content-Length with Transfer-Encoding, a Transfer-Encoding
                  whose last coding is not chunked, and malformed lines (400). Chunked bodies are
                  accepted; any other Transfer-Encoding (`gzip, chunked`) is 501. An HTTP/1.1
                  request without Host, a second Connection or Authorization is a 400; a version
                  other than HTTP/1.0 and 1.1 a 505 (400 without one). Each closes the connection.
    body          at most limits.max_request_bytes, by Content-Length or as chunks arrive (413),
                  and it must arrive within IDLE_TIMEOUT_S (408). A reply that leaves a body
                  unread closes the connection (lingering_time 0): no byte of it is ever read as
                  a request. Content-Encoding is not decoded (no decompression bombs).
    reply         a peer that leaves part of a reply untaken for IDLE_TIMEOUT_S is aborted (the
                  transport's write high-water mark is 0, so any byte the kernel did not take
                  pauses writing and starts that deadline; a close waits for it too).
    memory        besides a parsed head and a body, a connection holds what one read returns:
                  accepted sockets inherit the listener's SO_RCVBUF (RECV_BUFFER, 32 KiB).
    auth          when security.http_token is set, every request but GET /health needs
                  `Authorization: Bearer <token>`, else 401 "unauthorized" with
                  `WWW-Authenticate: Bearer`. A connection is authenticated once a request on it
                  carried the token; until then it gets one request (a 401 or /health, then
                  closed) and its head deadline (header_timeout_s) runs from the accept, not from
                  its first byte, so a connection that sends nothing is closed too. Without a
                  token no connection is authenticated: eviction then takes idle keep-alive
                  connections as well (a client retries on a new one, as HTTP allows).
                  LibreTranslate requests may carry the token as `api_key` instead, so a POST
                  /translate or /detect without the header is read (bounded as above) before it
                  is refused, and may be evicted while its body arrives, like a partial head;
                  GET /languages and /frontend/settings are open, as in LibreTranslate.

aiohttp internals this relies on (tests/appliance/edge/test_http_limits.py fails if they change):
RequestHandler's `_waiter` (set while it waits for a request head), `_request_count` (heads
parsed) and `_messages` (parsed heads, `_ErrInfo` for one llhttp refused), and the `handle_error`
hook for parse errors.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import socket

from aiohttp import web
from aiohttp.http import HttpVersion10, HttpVersion11
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import _ErrInfo

from appliance.edge import libretranslate
from appliance.core import protocol
from appliance.core.ports import Service
from appliance.core.stats import CONTENT_TYPE

log = logging.getLogger("meeshy.http")

MAX_LINE = 8192
MAX_HEAD = 32 * 1024
MAX_HEADERS = 100
RECV_BUFFER = 32 * 1024  # SO_RCVBUF of accepted sockets (Linux doubles it)
IDLE_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 2.0
UNAVAILABLE = {protocol.OVERLOADED, protocol.SHUTTING_DOWN, protocol.NOT_READY}
UNAUTHORIZED = "unauthorized"
REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}

ROUTES = {"/health": "GET", "/ready": "GET", "/stats": "GET", "/metrics": "GET", "/translate": "POST", "/detect": "POST",
          "/languages": "GET", "/frontend/settings": "GET"}  # the last two: LibreTranslate's only
POST_TYPES = {"/translate": "translation", "/detect": "detect"}  # the one request type each route takes
# Headers whose meaning two copies would make ambiguous (auth confusion); llhttp refuses a second
# Content-Length and Host itself.
SINGLE_HEADERS = ("Connection", "Authorization")
VERSION = "meeshy.http_version"  # request state: the version the client sent


class Refusal(Exception):
    """A request answered with `status` and the connection then closed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def raw_response(status: int, code: str, message: str) -> bytes:
    """A complete response written straight to a transport (no request object to answer with)."""
    body = protocol.encode(protocol.error_body(code, message))
    head = (
        f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _first_line(message: object) -> str:
    """llhttp's messages quote the offending bytes on the lines after the first."""
    return str(message or "").splitlines()[0].rstrip(":") if message else ""


class HttpApi:
    def __init__(self, service: Service) -> None:
        settings = service.settings
        self.service = service
        self.libre = libretranslate.LibreTranslateApi(service)
        self.metrics = service.metrics
        self.max_body = settings.limits.max_request_bytes
        self.max_connections = settings.http.max_connections
        self.max_per_peer = settings.http.max_connections_per_peer
        self.header_timeout_s = settings.http.header_timeout_s
        self.token = settings.security.http_token.encode()
        self.connections: dict[Connection, None] = {}  # holding a slot, oldest first
        self.per_peer: dict[str, int] = {}
        self._full_logged = False
        self._server: _Server | None = None
        self._listener: asyncio.AbstractServer | None = None

    async def start(self, host: str, port: int) -> None:
        self._server = _Server(
            self,
            self._handle,
            request_factory=self._make_request,
            keepalive_timeout=IDLE_TIMEOUT_S,
            max_line_size=MAX_LINE,
            max_field_size=MAX_LINE,
            max_headers=MAX_HEADERS,
            lingering_time=0,  # an unread body closes the connection instead of being skipped
            auto_decompress=False,
            access_log=None,
            logger=log,
        )
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._server, host, port)
        # One read hands the protocol all the kernel holds for the socket (~128 KiB by default);
        # accepted sockets inherit the listener's smaller receive buffer, which bounds that read.
        for sock in self._listener.sockets:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)

    @property
    def address(self) -> tuple[str, int]:
        assert self._listener is not None
        return self._listener.sockets[0].getsockname()[:2]

    async def close(self) -> None:
        """Stop listening; give requests in progress SHUTDOWN_TIMEOUT_S, then close every connection."""
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            self._server.pre_shutdown()  # idle keep-alive connections close now
            await self._server.shutdown(SHUTDOWN_TIMEOUT_S)

    def _make_request(self, message, payload, protocol_, writer, task) -> web.BaseRequest:
        # Responses carry the request's version in their status line: always answer HTTP/1.1
        # (as for a parse error, answered with a placeholder HTTP/1.0 message); the version the
        # client sent is checked in _check_head. The parser decided keep-alive from it already.
        version = message.version
        if version != HttpVersion11:
            message = message._replace(version=HttpVersion11)
        return web.BaseRequest(
            message, payload, protocol_, writer, task, asyncio.get_running_loop(),
            client_max_size=self.max_body, state={VERSION: version},
        )

    # -------------------------------------------------------------- connections

    @property
    def active(self) -> int:
        return len(self.connections)

    def accept(self, conn: Connection) -> str | None:
        """Give `conn` a slot, evicting the oldest evictable connection over a cap; None, or why
        it is refused."""
        peer = conn.peer
        if self.per_peer.get(peer, 0) >= self.max_per_peer and not self._evict(lambda c: c.peer == peer):
            return self._refuse(f"too many HTTP connections from one peer (limit {self.max_per_peer})")
        if len(self.connections) >= self.max_connections and not self._evict(lambda c: True):
            return self._refuse(f"too many HTTP connections (limit {self.max_connections})")
        self.connections[conn] = None
        self.per_peer[peer] = self.per_peer.get(peer, 0) + 1
        self.metrics.http_connections.set(len(self.connections))
        return None

    def _evict(self, match) -> bool:
        # Oldest first: a connection that held its slot longest without sending a request is
        # the likeliest to be holding it on purpose, and a fresh one is about to send its own.
        for conn in self.connections:
            if match(conn) and conn.evictable():
                conn.evict()
                self.metrics.http_evicted.inc()
                return True
        return False

    def _refuse(self, why: str) -> str:
        if not self._full_logged:
            self._full_logged = True
            log.warning("%s and none to evict: refusing", why)
        self.metrics.http_refused.inc()
        self.metrics.count_http("unparsed", 503)
        return why

    def release(self, conn: Connection) -> None:
        if conn in self.connections:
            del self.connections[conn]
            left = self.per_peer[conn.peer] - 1
            if left:
                self.per_peer[conn.peer] = left
            else:
                del self.per_peer[conn.peer]
            self.metrics.http_connections.set(len(self.connections))
        if len(self.connections) < self.max_connections:
            self._full_logged = False

    # -------------------------------------------------------------- one request

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        route = request.path if request.path in ROUTES else "other"
        conn = request.protocol
        conn.serving = request
        try:
            status, payload, headers, close = await self._serve(request)
        except Refusal as exc:
            status, payload, headers, close = exc.status, protocol.error_body(exc.code, str(exc)), None, True
        finally:
            conn.serving = None
        if self.token and not conn.trusted:
            close = True  # one request per unauthenticated connection: it cannot sit on a slot
        self.metrics.count_http(route, status)
        return self._response(request, status, payload, close=close, headers=headers)

    async def _serve(self, request: web.BaseRequest) -> tuple[int, dict | bytes, dict | None, bool]:
        self._check_head(request)
        if self.token and self._has_token(request):
            request.protocol.trusted = True
        authorized = self._authorized(request)
        # LibreTranslate's clients send their key in the body: a POST that may be one is read first.
        if not authorized and not (request.method == "POST" and request.path in libretranslate.POST_ROUTES) and not (
            request.method == "GET" and request.path in libretranslate.GET_ROUTES  # open, as in LibreTranslate
        ):
            return self._unauthorized(request)
        if (request.content_length or 0) > self.max_body:
            raise Refusal(413, protocol.INVALID_REQUEST, f"body must be 0..{self.max_body} bytes")
        # A body read before its sender showed the token may be evicted like a partial head: a
        # trickled body must not hold a slot the token holder needs.
        request.protocol.unauthenticated_body = not authorized
        try:
            body = await asyncio.wait_for(request.read(), IDLE_TIMEOUT_S)
        except web.HTTPRequestEntityTooLarge:
            raise Refusal(413, protocol.INVALID_REQUEST, f"body must be 0..{self.max_body} bytes") from None
        except TimeoutError:
            raise Refusal(408, "request_timeout", f"request body not received within {IDLE_TIMEOUT_S:g}s") from None
        finally:
            request.protocol.unauthenticated_body = False
        claim = libretranslate.handles(request.method, request.path, request.headers.get("Content-Type", ""), body)
        if claim is not None:
            status, payload = await self.libre.serve(request.path, claim, bearer_ok=authorized)
            return status, payload, None, False
        if not authorized:
            return self._unauthorized(request)
        status, payload = await self._route(request.method, request.path, body)
        return status, payload, None, False

    @staticmethod
    def _unauthorized(request: web.BaseRequest) -> tuple[int, dict, dict, bool]:
        body = protocol.error_body(UNAUTHORIZED, "this route needs the header `Authorization: Bearer <token>`")
        # An unread body cannot be skipped safely: close (a body read to look for an api_key too).
        return 401, body, {"WWW-Authenticate": "Bearer"}, request.body_exists

    def _check_head(self, request: web.BaseRequest) -> None:
        """What llhttp lets through but this API refuses (each closes the connection)."""
        version = request[VERSION]
        if version not in (HttpVersion10, HttpVersion11):
            if version.major == 0:  # llhttp reads a request line without a version as HTTP/0.9
                raise Refusal(400, protocol.INVALID_REQUEST, "bad request line")
            raise Refusal(505, protocol.INVALID_REQUEST, "only HTTP/1.0 and HTTP/1.1 are served")
        if version == HttpVersion11 and "Host" not in request.headers:  # RFC 9112, 3.2
            raise Refusal(400, protocol.INVALID_REQUEST, "an HTTP/1.1 request needs a Host header")
        for name in SINGLE_HEADERS:
            if len(request.headers.getall(name, ())) > 1:
                raise Refusal(400, protocol.INVALID_REQUEST, f"duplicate {name.lower()} header")
        coding = request.headers.get("Transfer-Encoding")
        if coding is not None and coding.strip().lower() != "chunked":
            raise Refusal(501, "not_implemented", "only the chunked Transfer-Encoding is supported")
        raw = request.raw_headers
        if len(raw) > MAX_HEADERS:
            raise Refusal(431, "headers_too_large", f"more than {MAX_HEADERS} headers")
        if len(request.raw_path) + sum(len(k) + len(v) + 4 for k, v in raw) > MAX_HEAD:
            raise Refusal(431, "headers_too_large", f"request head longer than {MAX_HEAD} bytes")

    def _authorized(self, request: web.BaseRequest) -> bool:
        # Every request shows the token, even on an authenticated connection: a proxy may carry
        # several clients' requests on one connection.
        if not self.token or (request.method == "GET" and request.path == "/health"):
            return True
        return self._has_token(request)

    def _has_token(self, request: web.BaseRequest) -> bool:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credentials.strip(" ").encode("latin-1", "replace"), self.token)

    async def _route(self, method: str, path: str, body: bytes) -> tuple[int, dict | list | bytes]:
        svc = self.service
        if path not in ROUTES:
            return 404, protocol.error_body("not_found", f"no route {path}")
        if method != ROUTES[path]:
            return 405, protocol.error_body("method_not_allowed", f"{path} takes {ROUTES[path]}")
        if path == "/health":
            return 200, {"status": "ok", "state": svc.lifecycle.name}
        if path == "/ready":
            pong = svc.ping(None)
            return (200 if pong["ready"] else 503), pong
        if path == "/stats":
            return 200, svc.stats()
        if path == "/metrics":
            return 200, self.metrics.exposition()
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

    @staticmethod
    def _response(
        request: web.BaseRequest, status: int, payload: dict | list | bytes, *, close: bool = False, headers: dict | None = None
    ) -> web.Response:
        if isinstance(payload, bytes):
            data, ctype = payload, CONTENT_TYPE
        else:
            data, ctype = protocol.encode(payload), "application/json"
        resp = web.Response(status=status, body=data, headers={"Content-Type": ctype, **(headers or {})})
        if close or not request.keep_alive:
            resp.force_close()
        else:
            resp.headers["Connection"] = "keep-alive"  # HTTP/1.1 implies it; say it anyway
        return resp


def peer_key(peername: object) -> str:
    """What a per-peer cap counts: the IPv4 address, or the /64 of an IPv6 one (one host gets a
    whole /64, so its addresses are one peer)."""
    host = peername[0] if isinstance(peername, tuple) and peername else str(peername)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return str(host)  # a Unix socket path, or nothing
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class _Server(web.Server):
    """aiohttp's low-level server, making this module's connection protocol."""

    def __init__(self, api: HttpApi, handler, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.api = api
        self.handler_kwargs = kwargs
        self.handler_kwargs.pop("request_factory", None)

    def __call__(self) -> Connection:
        return Connection(self, self.api, loop=asyncio.get_running_loop(), **self.handler_kwargs)


class Connection(web.RequestHandler):
    """One HTTP connection: aiohttp's request handler plus the cap, the head deadline and byte
    budget, JSON error bodies, and a deadline on replies the peer does not take."""

    def __init__(self, server: _Server, api: HttpApi, **kwargs) -> None:
        super().__init__(server, **kwargs)
        self.api = api
        self.accepted = False
        self.refused = False
        self.peer = ""  # the address that per-peer caps count: IPv4, or an IPv6 /64
        self.trusted = False  # a request on it carried the token
        self.sock_transport: asyncio.Transport | None = None  # aiohttp drops `transport` on close
        self.head_timer: asyncio.TimerHandle | None = None
        self.head_bytes = 0
        self.head_tail = b""  # the head's last 3 bytes: its end may straddle two reads
        self.line_bytes: int | None = None  # the request line's length, once its end arrived
        self.stuck_timer: asyncio.TimerHandle | None = None
        self.serving: web.BaseRequest | None = None  # the request a handler is serving now
        self.unauthenticated_body = False  # reading a body that may hold a LibreTranslate api_key

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.peer = peer_key(transport.get_extra_info("peername"))
        refused = self.api.accept(self)
        if refused is not None:
            # Over a cap with none to evict: a fixed 503 into an empty send buffer, then close,
            # reading nothing.
            self.refused = True
            transport.write(raw_response(503, protocol.OVERLOADED, f"{refused}; retry later"))
            transport.close()
            return
        self.accepted = True
        self.sock_transport = transport
        # Pause (and start the reply deadline) as soon as the peer leaves any byte untaken.
        transport.set_write_buffer_limits(high=0)
        super().connection_made(transport)
        if self.api.token:
            self._start_head_timer()  # an unauthenticated connection's deadline runs from now

    def connection_lost(self, exc: BaseException | None) -> None:
        self.api.release(self)
        if not self.accepted:
            return
        self.accepted = False
        for timer in (self.head_timer, self.stuck_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    # -------------------------------------------------------------- eviction

    def evictable(self) -> bool:
        """Not authenticated, and waiting for a (first, or next) head or reading a body whose
        sender has not shown the token."""
        waiting = self.unauthenticated_body or (self.serving is None and self._awaiting_head())
        return not self.trusted and waiting and not self.refused

    def evict(self) -> None:
        """Close now, without a word (an idle keep-alive client would read one as the answer to
        its next request), and free the slot for the newcomer that asked for it."""
        self.api.release(self)
        self._stop_head_timer()
        self.refused = True
        self.force_close()

    # -------------------------------------------------------------- the head's deadline and budget

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if data:  # aiohttp feeds b"" itself to parse what it buffered while paused
            if self.head_timer is None and self._awaiting_head():
                self._start_head_timer()
            if self.head_timer is not None and not self._within_budget(data):
                self._refuse(431, "headers_too_large", f"request head longer than {MAX_HEAD} bytes")
                return
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:  # a head was parsed (or refused by the parser)
            self._stop_head_timer()
            error = self._messages[-1][0] if self._messages else None
            if isinstance(error, _ErrInfo) and self.serving is not None and not self.serving.content.is_eof():
                # llhttp refused the body of the request being served (a malformed chunk):
                # nothing will end that body, so answer now and close.
                self._refuse(400, protocol.INVALID_REQUEST, f"malformed body: {_first_line(error.message)}")

    def _within_budget(self, data: bytes) -> bool:
        """Count a head's bytes as they arrive; False when its end is not within MAX_HEAD.
        Checked before parsing, so that a chunk that overflows the budget is never parsed (nor a
        request hiding behind it)."""
        if self.line_bytes is None and (end := data.find(b"\n")) >= 0:
            self.line_bytes = self.head_bytes + end
        budget = MAX_HEAD - self.head_bytes
        self.head_bytes += len(data)
        if len(data) > budget:
            window = self.head_tail + data[: budget + 3]
            if b"\r\n\r\n" not in window and b"\n\n" not in window:
                return False
        self.head_tail = (self.head_tail + data[-3:])[-3:]
        return True

    def _awaiting_head(self) -> bool:
        """Bytes now are a request head: none parsed yet, or aiohttp is waiting for the next."""
        return self._request_count == 0 or (self._waiter is not None and not self._waiter.done())

    def _start_head_timer(self) -> None:
        self.head_timer = self._loop.call_later(self.api.header_timeout_s, self._head_timeout)
        self.head_bytes = 0
        self.head_tail = b""
        self.line_bytes = None

    def _head_timeout(self) -> None:
        self.head_timer = None
        self._refuse(408, "request_timeout", f"request head not received within {self.api.header_timeout_s:g}s")

    def _stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer a head that never became a request, and close."""
        self._stop_head_timer()
        self.refused = True
        self.api.metrics.count_http("unparsed", status)
        if self.transport is not None:
            self.transport.write(raw_response(status, code, message))
        self.force_close()

    # -------------------------------------------------------------- parse errors

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """aiohttp's hook for a head its parser refused (and for a handler that raised)."""
        if isinstance(exc, ConnectionError) or self.refused or self.transport is None:
            # The peer left, or this side closed (a refused body): no one reads an answer.
            return HttpApi._response(request, 400, protocol.error_body(protocol.INVALID_REQUEST, "connection lost"), close=True)
        if isinstance(exc, LineTooLong):
            line = self.line_bytes if self.line_bytes is not None else self.head_bytes
            if line >= MAX_LINE:
                status, code, text = 414, "uri_too_long", f"request line longer than {MAX_LINE} bytes"
            else:
                status, code, text = 431, "headers_too_large", f"header line longer than {MAX_LINE} bytes"
        elif isinstance(exc, BadHttpMessage) and str(exc.message).startswith("Too many headers"):
            status, code, text = 431, "headers_too_large", f"more than {MAX_HEADERS} headers"
        elif isinstance(exc, HttpProcessingError):
            status, code, text = 400, protocol.INVALID_REQUEST, _first_line(exc.message) or "malformed request"
        else:
            if exc is not None:
                log.error("HTTP request failed", exc_info=exc)
            code = protocol.INTERNAL_ERROR if status == 500 else "error"
            text = f"{type(exc).__name__}: {exc}" if exc is not None else message or "error"
        log.debug("HTTP %d: %s", status, text)
        route = "unparsed" if isinstance(exc, HttpProcessingError) else (request.path if request.path in ROUTES else "other")
        self.api.metrics.count_http(route, status)
        return HttpApi._response(request, status, protocol.error_body(code, text), close=True)

    # -------------------------------------------------------------- replies the peer does not take

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.stuck_timer is None:
            self.stuck_timer = self._loop.call_later(IDLE_TIMEOUT_S, self._abort)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.stuck_timer is not None:
            self.stuck_timer.cancel()
            self.stuck_timer = None

    def _abort(self) -> None:
        self.stuck_timer = None
        if self.sock_transport is not None:
            self.sock_transport.abort()
