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

Keep-alive is supported; a request line, a header block and a body are each bounded, and an idle
connection is closed after a while, so a slow or hostile client cannot hold memory.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from appliance import protocol
from appliance.stats import prometheus

log = logging.getLogger("meeshy.http")

MAX_LINE = 8192
MAX_HEADERS = 100
IDLE_TIMEOUT_S = 30.0
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}
UNAVAILABLE = {protocol.OVERLOADED, protocol.SHUTTING_DOWN, protocol.NOT_READY}


POST_TYPES = {"/translate": "translation", "/detect": "detect"}  # the one request type each route takes


class Service(Protocol):
    state: str

    def count_request(self) -> None: ...
    def respond(self, payload: bytes, reply, *, force_sync: bool = False, only_type: str | None = None) -> None: ...
    def ping(self, message_id: str | None) -> dict: ...
    def stats(self) -> dict: ...

    @property
    def s(self): ...


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpApi:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.max_body = service.s.limits.max_request_bytes

    async def start(self, host: str, port: int) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._client, host, port, limit=MAX_LINE)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                keep_alive = await self._one(reader, writer)
                if not keep_alive:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError, ValueError):
            pass
        except Exception:
            log.exception("HTTP connection failed")
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT_S)
        if not line:
            return False
        try:
            method, target, version = line.decode("latin-1").strip().split(" ", 2)
        except ValueError:
            await self._write(writer, 400, protocol.error_body(protocol.INVALID_REQUEST, "bad request line"), False)
            return False
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            raw = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT_S)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            await self._write(writer, 400, protocol.error_body(protocol.INVALID_REQUEST, "too many headers"), False)
            return False
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > self.max_body:
            await self._write(
                writer, 413, protocol.error_body(protocol.INVALID_REQUEST, f"body must be 0..{self.max_body} bytes"), False
            )
            return False
        body = await asyncio.wait_for(reader.readexactly(length), IDLE_TIMEOUT_S) if length else b""
        status, payload = await self._route(method, target.split("?", 1)[0], body)
        await self._write(writer, status, payload, keep_alive)
        return keep_alive

    async def _route(self, method: str, path: str, body: bytes) -> tuple[int, dict | str]:
        svc = self.service
        routes = {"/health": "GET", "/ready": "GET", "/stats": "GET", "/metrics": "GET", "/translate": "POST", "/detect": "POST"}
        if path not in routes:
            return 404, protocol.error_body("not_found", f"no route {path}")
        if method != routes[path]:
            return 405, protocol.error_body("method_not_allowed", f"{path} takes {routes[path]}")
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

    async def _write(self, writer: asyncio.StreamWriter, status: int, payload: dict | str, keep_alive: bool) -> None:
        if isinstance(payload, str):
            data = payload.encode()
            ctype = "text/plain; version=0.0.4; charset=utf-8"
        else:
            data = protocol.encode(payload)
            ctype = "application/json"
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + data)
        await writer.drain()
