"""The HTTP API's limits, through a real appliance and raw sockets: the connection cap, the
deadline on a request head (slowloris), the header byte budget, framing that could smuggle a
request (Transfer-Encoding with Content-Length, duplicate Content-Length), chunked bodies, the
bearer token, and the supervisor's RSS under a flood of oversized header blocks."""

from __future__ import annotations

import json
import select
import selectors
import socket
import threading
from urllib.parse import urlsplit

import psutil
import pytest

from tests.appliance.conftest import module_appliance
from tests.fakes.waiting import poll_until

pytestmark = pytest.mark.timeout(120)

TOKEN = "s3cret-token"
HEADER_TIMEOUT_S = 1.0
MAX_CONNECTIONS = 4
TRANSLATE = json.dumps({"messageId": "h1", "text": "abc", "targetLanguage": "fr"}).encode()


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """An appliance with a small connection cap, a short head deadline and a bearer token."""
    extra = {
        "http": {"max_connections": MAX_CONNECTIONS, "header_timeout_s": HEADER_TIMEOUT_S},
        "security": {"http_token": TOKEN},
    }
    with module_appliance(tmp_path_factory, "http_limits", extra) as app:
        yield app


# ------------------------------------------------------------------ raw HTTP


def connect(app, timeout: float = 20.0) -> socket.socket:
    url = urlsplit(app.endpoints["http"])
    return socket.create_connection((url.hostname, url.port), timeout=timeout)


class Conn:
    """A raw connection read through a buffer, so pipelined responses are not lost."""

    def __init__(self, app) -> None:
        self.sock = connect(app)
        self.file = self.sock.makefile("rb")

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """One response: status, headers (lower-cased names), body."""
        status_line = self.file.readline()
        assert status_line.startswith(b"HTTP/1.1 "), f"no response, got {status_line!r}"
        headers = {}
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.file.read(int(headers["content-length"]))
        return int(status_line.split(b" ")[1]), headers, body

    def rest(self) -> bytes:
        """Everything the server still sends until it closes (EOF or reset); the socket timeout
        fails a server that never does."""
        try:
            return self.file.read()
        except ConnectionResetError:
            return b""


def request_bytes(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def exchange(app, data: bytes) -> tuple[int, dict[str, str], dict | bytes, bytes]:
    """Send raw bytes on a fresh connection: the first response, and whatever came after it before
    the server closed."""
    with Conn(app) as conn:
        conn.send(data)
        status, headers, body = conn.response()
        after = conn.rest()
    if headers.get("content-type", "").startswith("application/json"):
        body = json.loads(body)
    return status, headers, body, after


def call(app, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""):
    return exchange(app, request_bytes(method, path, {**(headers or {}), "Connection": "close"}, body))


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------ connection cap


def test_connections_beyond_the_cap_get_503_and_are_closed_unread(limited):
    """With every slot held by an authenticated connection, none is evictable."""
    held: list[Conn] = []

    def hold_one_more() -> bool:
        # A connection the server closed a moment ago may still count: retry until it is gone.
        conn = Conn(limited)
        conn.send(request_bytes("GET", "/ready", auth()))
        if conn.response()[0] == 200:
            held.append(conn)
            return True
        conn.close()
        return False

    try:
        for _ in range(MAX_CONNECTIONS):
            poll_until(hold_one_more, 20, what="a held connection")
        with Conn(limited) as extra:  # sends nothing: it is answered without being read
            status, headers, body = extra.response()
            assert status == 503 and headers["connection"] == "close"
            error = json.loads(body)["error"]
            assert error["code"] == "overloaded" and "connection" in error["message"]
            assert extra.rest() == b""
        for conn in held:  # the held ones are still served
            conn.send(request_bytes("GET", "/health", auth()))
            assert conn.response()[0] == 200
    finally:
        for conn in held:
            conn.close()

    def served() -> bool:
        with Conn(limited) as conn:
            conn.send(request_bytes("GET", "/ready", {**auth(), "Connection": "close"}))
            return conn.response()[0] == 200

    poll_until(served, 20, what="a connection served once the others closed")


# ------------------------------------------------------------------ head deadline


def trickle_until_closed(app, pieces: list[bytes], every_s: float = 0.2, deadline: float = 90.0) -> bytes:
    """Send one piece per `every_s` on a fresh connection until the server closes it; what it sent
    back. Fails if every piece went out first."""
    got = bytearray()
    sent = [0]
    with connect(app) as sock:

        def cut_off() -> bool:
            assert sent[0] < len(pieces), "the server still held the connection after the whole head"
            try:
                sock.sendall(pieces[sent[0]])
            except (BrokenPipeError, ConnectionResetError):
                return True
            sent[0] += 1
            if select.select([sock], [], [], every_s)[0]:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    return True
                got.extend(chunk)
                return not chunk
            return False

        poll_until(cut_off, deadline, interval=0, what="the server to cut a slow request head off")
    return bytes(got)


def bytes_of(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# Each trickled head below is complete and takes ~20 s to send, less than the idle timeout of a
# line (30 s): a server without a deadline on the whole head would serve it, and the test fails.


def test_a_head_trickled_byte_by_byte_is_cut_off(limited):
    line = b"GET /stats HTTP/1.1\r\n"
    got = trickle_until_closed(limited, [line, *bytes_of(b"X-Slow: " + b"a" * 90 + b"\r\n\r\n")])
    assert got == b"" or got.startswith(b"HTTP/1.1 408 "), got


def test_the_deadline_covers_the_whole_head_not_each_line(limited):
    with Conn(limited) as keep_alive:
        keep_alive.send(request_bytes("GET", "/stats", auth()))
        assert keep_alive.response()[0] == 200
        # Whole header lines, each far inside the idle timeout of a line.
        lines = [b"GET /stats HTTP/1.1\r\n", *(b"X-Line-%d: b\r\n" % i for i in range(98)), b"\r\n"]
        got = trickle_until_closed(limited, lines)
        assert got == b"" or got.startswith(b"HTTP/1.1 408 "), got
        # More than header_timeout_s has passed since its last request, but an idle keep-alive
        # connection has no head in progress: it is still served.
        keep_alive.send(request_bytes("GET", "/stats", auth()))
        assert keep_alive.response()[0] == 200


def test_a_trickled_request_line_is_cut_off(limited):
    got = trickle_until_closed(limited, bytes_of(b"GET /" + b"a" * 80 + b" HTTP/1.1\r\n\r\n"))
    assert got == b"" or got.startswith(b"HTTP/1.1 408 "), got


# ------------------------------------------------------------------ bearer token


def test_bearer_token_guards_every_route_but_health(limited):
    refused = [{}, auth("wrong"), auth(TOKEN + "x"), {"Authorization": TOKEN}, {"Authorization": "Basic czNjcmV0LXRva2Vu"}]
    for headers in refused:
        for path in ("/stats", "/ready", "/metrics", "/nowhere"):
            status, resp_headers, body, _ = call(limited, "GET", path, headers)
            assert status == 401 and resp_headers["www-authenticate"].startswith("Bearer"), (headers, path)
            assert body["error"]["code"] == "unauthorized"
    # A refused POST is answered before its body is read, and the connection closed.
    status, resp_headers, body, after = exchange(limited, request_bytes("POST", "/translate", {}, TRANSLATE))
    assert status == 401 and resp_headers["connection"] == "close" and after == b""

    status, _, body, _ = call(limited, "GET", "/health")
    assert status == 200 and body["status"] == "ok"
    status, _, body, _ = call(limited, "GET", "/stats", auth())
    assert status == 200 and "workers" in body
    status, _, body, _ = call(limited, "POST", "/translate", auth(), TRANSLATE)
    assert status == 200 and body["results"][0]["translatedText"] == "cba"
    assert call(limited, "GET", "/stats", {"authorization": f"bearer {TOKEN}"})[0] == 200  # the scheme is case-blind


def test_an_unauthenticated_connection_gets_one_request(limited):
    for headers in ({}, auth("wrong")):
        with Conn(limited) as conn:
            conn.send(request_bytes("GET", "/stats", headers))
            status, resp_headers, _ = conn.response()
            assert status == 401 and resp_headers["connection"] == "close"
            assert conn.rest() == b""
    with Conn(limited) as conn:  # /health is free, and closes an unauthenticated connection too
        conn.send(request_bytes("GET", "/health"))
        status, resp_headers, _ = conn.response()
        assert status == 200 and resp_headers["connection"] == "close"
    with Conn(limited) as conn:  # an authenticated one stays open, and each request shows the token
        conn.send(request_bytes("GET", "/stats", auth()))
        status, resp_headers, _ = conn.response()
        assert status == 200 and resp_headers["connection"] == "keep-alive"
        conn.send(request_bytes("GET", "/stats"))
        assert conn.response()[0] == 401
        conn.send(request_bytes("GET", "/stats", auth()))
        assert conn.response()[0] == 200


def test_an_unauthenticated_connection_that_sends_nothing_is_closed_at_the_head_deadline(limited):
    with Conn(limited) as conn:  # the deadline runs from the accept, not from a first byte
        conn.sock.settimeout(HEADER_TIMEOUT_S * 20)
        got = conn.rest()
        assert got == b"" or got.startswith(b"HTTP/1.1 408 "), got


# ------------------------------------------------------------------ framing and header budget (defaults)


def header_block(count: int, size: int) -> str:
    """`count` header lines of `size` value bytes, CRLF between them (none after the last)."""
    return "\r\n".join(f"X-Filler-{i}: {'a' * size}" for i in range(count))


def post(*headers: str, body: bytes = b"{}") -> bytes:
    return ("POST /translate HTTP/1.1\r\nHost: t\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode() + body


@pytest.mark.parametrize(
    "data, status",
    [
        # Transfer-Encoding with a Content-Length, or not ending in chunked: two ways to read
        # where the body ends, refused; chunked after another coding is not implemented.
        pytest.param(post("Transfer-Encoding: chunked", "Content-Length: 2"), 400, id="te-and-cl"),
        pytest.param(post("Transfer-Encoding: identity", "Content-Length: 2"), 400, id="te-identity"),
        pytest.param(post("Transfer-Encoding: identity", body=b""), 400, id="te-not-chunked"),
        pytest.param(post("Transfer-Encoding: gzip, chunked", body=b""), 501, id="te-list"),
        # Content-Length: twice (equal or not), a list, anything but plain digits, too large.
        pytest.param(post("Content-Length: 2", "Content-Length: 40"), 400, id="cl-differ"),
        pytest.param(post("Content-Length: 2", "Content-Length: 2"), 400, id="cl-same"),
        pytest.param(post("Content-Length: 2, 2"), 400, id="cl-list"),
        pytest.param(post("Content-Length: 1_0", body=b"0123456789"), 400, id="cl-underscore"),
        pytest.param(post("Content-Length: +2"), 400, id="cl-plus"),
        pytest.param(post("Content-Length: 99999999999", body=b""), 413, id="cl-huge"),
        # Malformed heads.
        pytest.param(post("no colon here"), 400, id="no-colon"),
        pytest.param(post("Content-Length : 2"), 400, id="space-before-colon"),
        pytest.param(post(" folded: line"), 400, id="folded"),
        pytest.param(post("Host: b"), 400, id="two-hosts"),
        pytest.param(post("Authorization: Bearer a", "Authorization: Bearer b", "Content-Length: 2"), 400, id="two-auths"),
        pytest.param(post("Connection: keep-alive", "Connection: close", "Content-Length: 2"), 400, id="two-connections"),
        pytest.param(b"GET /health HTTP/1.1\r\n\r\n", 400, id="no-host"),
        pytest.param(b"GET /health\r\n\r\n", 400, id="no-version"),
        pytest.param(b"GET /health HTTP/2.0\r\n\r\n", 505, id="http2"),
        # The header budget: one line, the header count, the whole block.
        pytest.param(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414, id="long-request-line"),
        pytest.param(post("X-Big: " + "a" * 9000), 431, id="long-header"),
        pytest.param(post(header_block(101, 1)), 431, id="101-headers"),
        pytest.param(post(header_block(5, 8000)), 431, id="40k-head"),
    ],
)
def test_refused_framing_answers_once_and_closes(shared_appliance, data, status):
    got, headers, body, after = exchange(shared_appliance, data)
    assert got == status and headers["connection"] == "close", body
    assert body["status"] == "error" and body["error"]["message"]
    assert b"HTTP/1.1" not in after  # nothing after the refusal was served as a request


def test_a_head_under_the_budget_is_served(shared_appliance):
    head = f"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{header_block(3, 8000)}\r\n\r\n"
    status, _, body, _ = exchange(shared_appliance, head.encode())
    assert status == 200 and body["status"] == "ok"


def chunked(body: bytes, size: int) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def test_a_chunked_body_is_decoded_and_the_next_request_follows_it(shared_appliance):
    """A real parser frames chunked bodies: the request after the last chunk is the next one."""
    with Conn(shared_appliance) as conn:
        conn.send(post("Transfer-Encoding: chunked", body=chunked(TRANSLATE, 7)) + request_bytes("GET", "/health"))
        status, headers, body = conn.response()
        assert status == 200 and headers["connection"] == "keep-alive"
        assert json.loads(body)["results"][0]["translatedText"] == "cba"
        status, _, body = conn.response()
        assert status == 200 and json.loads(body)["status"] == "ok"


@pytest.mark.parametrize("bad", [b"zz\r\n", b"2\r\n{}XX"], ids=["chunk-size", "chunk-end"])
def test_a_malformed_chunk_after_the_head_is_400_and_closed(shared_appliance, bad):
    """A chunk the parser refuses after the handler began reading the body: nothing would end that
    body, so it is answered at once, not at the body deadline."""
    with Conn(shared_appliance) as conn:
        conn.send(post("Transfer-Encoding: chunked", body=b"1\r\n{\r\n"))
        assert not select.select([conn.sock], [], [], 0.3)[0]  # the body is not done: no answer yet
        conn.send(bad)
        status, headers, body = conn.response()
        assert status == 400 and headers["connection"] == "close"
        assert json.loads(body)["error"]["code"] == "invalid_request"
        assert conn.rest() == b""


def test_a_chunked_body_over_the_limit_is_413_and_closed(shared_appliance):
    too_big = b"{" + b" " * 70_000 + b"}"  # limits.max_request_bytes: 65536 by default
    status, headers, body, after = exchange(shared_appliance, post("Transfer-Encoding: chunked", body=chunked(too_big, 8192)))
    assert status == 413 and headers["connection"] == "close" and body["error"]["code"] == "invalid_request"
    assert b"HTTP/1.1" not in after


def test_keep_alive_survives_a_404_and_pipelining(shared_appliance):
    with Conn(shared_appliance) as conn:
        conn.send(b"".join([request_bytes("GET", "/nowhere"), request_bytes("GET", "/health"),
                            request_bytes("POST", "/translate", {}, TRANSLATE)]))
        assert conn.response()[0] == 404
        assert conn.response()[0] == 200
        status, _, body = conn.response()
        assert status == 200 and json.loads(body)["status"] == "completed"


# ------------------------------------------------------------------ memory under a header flood


def test_rss_stays_bounded_under_a_flood_of_oversized_heads(start_appliance):
    """200 connections, each sending 99 headers of 8 KB and never ending the block: the server
    must drop each one at its header budget instead of holding ~800 KB per connection."""
    app = start_appliance()  # the default limits
    proc = psutil.Process(app.proc.pid)
    assert "serve" in proc.cmdline()  # the supervisor itself, not a wrapper
    exchange(app, request_bytes("GET", "/health", {"Connection": "close"}))  # warm the code path
    before = proc.memory_info().rss

    payload = f"GET /health HTTP/1.1\r\nHost: t\r\n{header_block(99, 8 * 1024 - 20)}\r\n".encode()
    socks = [connect(app) for _ in range(200)]
    sent = {sock: 0 for sock in socks}
    peak = [before]
    sel = selectors.DefaultSelector()  # select() cannot watch descriptors past 1024
    try:
        for sock in socks:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)

        def closed_by_server(sock: socket.socket) -> None:
            sel.unregister(sock)

        def all_closed() -> bool:
            for key, events in sel.select(0.05):
                sock = key.fileobj
                try:
                    if events & selectors.EVENT_READ and not sock.recv(65536):
                        closed_by_server(sock)
                        continue
                    if events & selectors.EVENT_WRITE:
                        sent[sock] += sock.send(payload[sent[sock] : sent[sock] + 256 * 1024])
                        if sent[sock] == len(payload):  # all sent, the head left unfinished: wait
                            sel.modify(sock, selectors.EVENT_READ)
                except (BrokenPipeError, ConnectionResetError):
                    closed_by_server(sock)
                except BlockingIOError:
                    pass
            peak[0] = max(peak[0], proc.memory_info().rss)
            return not sel.get_map()

        poll_until(all_closed, 90, interval=0, what="the server to close every flooding connection")
    finally:
        sel.close()
        for sock in socks:
            sock.close()
    after = proc.memory_info().rss
    growth_mib = (max(peak[0], after) - before) / 2**20
    print(f"supervisor RSS before {before / 2**20:.1f} MiB, peak {peak[0] / 2**20:.1f} MiB, "
          f"after {after / 2**20:.1f} MiB, growth {growth_mib:.1f} MiB")
    assert growth_mib < 60
    status, _, body, _ = exchange(app, request_bytes("GET", "/health", {"Connection": "close"}))
    assert status == 200 and body["status"] == "ok"


# ------------------------------------------------------------------ eviction and per-peer caps

PARTIAL_HEAD = b"GET /stats HTTP/1.1\r\nHost: t\r\nX-Never-Ends: "
# A LibreTranslate request may carry its key in the body, so its body is read before it is
# refused: a whole head, then a body that never ends.
PARTIAL_LIBRE_BODY = (b"POST /translate HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 60000\r\n\r\n{\"q\": \"")


def connect_from(app, source: str, timeout: float = 20.0) -> socket.socket:
    """A connection from `source`, one of 127.0.0.0/8: Linux routes all of it to loopback, so a
    test can be many peers."""
    url = urlsplit(app.endpoints["http"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect((url.hostname, url.port))
    return sock


def metric(app, name: str) -> float:
    _, _, body, _ = call(app, "GET", "/metrics", auth())
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def open_connections(app) -> int:
    """Connections the supervisor holds (asking over HTTP would take a slot itself)."""
    port = urlsplit(app.endpoints["http"]).port
    conns = psutil.Process(app.proc.pid).net_connections("tcp")
    return sum(c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED for c in conns)


def closed_by_server(sock: socket.socket) -> bool:
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    """Small caps, a head deadline that outlasts each test, and a token."""
    extra = {
        "http": {"max_connections": 8, "max_connections_per_peer": 3, "header_timeout_s": 60.0},
        "security": {"http_token": TOKEN},
    }
    with module_appliance(tmp_path_factory, "http_peers", extra) as app:
        yield app


def hold(app, source: str, expected_open: int) -> socket.socket:
    sock = connect_from(app, source)
    sock.sendall(PARTIAL_HEAD)
    poll_until(lambda: open_connections(app) == expected_open, 20, what=f"{expected_open} connections open")
    return sock


def test_a_peer_over_its_cap_evicts_its_own_oldest_partial_head(peers):
    evicted_before = metric(peers, "meeshy_http_connections_evicted_total")
    a = [hold(peers, "127.0.0.2", n) for n in (1, 2, 3)]
    b = [hold(peers, "127.0.0.3", n) for n in (4, 5)]
    try:
        a.append(hold(peers, "127.0.0.2", 5))  # 127.0.0.2 is at 3: its oldest makes room
        assert poll_until(lambda: closed_by_server(a[0]), 20, what="the eviction of 127.0.0.2's oldest")
        assert not any(closed_by_server(s) for s in a[1:] + b)
        assert metric(peers, "meeshy_http_connections_evicted_total") == evicted_before + 1
    finally:
        for sock in a + b:
            sock.close()
    poll_until(lambda: open_connections(peers) == 0, 20, what="the server to see them closed")


def test_a_full_server_evicts_the_oldest_partial_head_for_a_token_holder(peers):
    held = [hold(peers, f"127.0.0.{10 + i // 2}", i + 1) for i in range(8)]  # 4 peers, 2 each
    try:
        for n in range(3):  # each newcomer takes the oldest partial head's place, never a 503
            with Conn(peers) as conn:
                conn.send(request_bytes("GET", "/stats", auth()))
                assert conn.response()[0] == 200
            assert poll_until(lambda: closed_by_server(held[n]), 20, what="the oldest's eviction")
            assert not any(closed_by_server(s) for s in held[n + 1:])
            held.append(hold(peers, "127.0.0.20", 8))  # full again
    finally:
        for sock in held:
            sock.close()
    poll_until(lambda: open_connections(peers) == 0, 20, what="the server to see them closed")


class PartialHeadFlood:
    """`count` connections holding partial heads, spread over `sources`; each one the server
    closes is opened again (an attacker keeps the pressure on). Runs in a thread."""

    def __init__(self, app, sources: list[str], count: int, payload: bytes = PARTIAL_HEAD) -> None:
        url = urlsplit(app.endpoints["http"])
        self.payload = payload
        self.address = (url.hostname, url.port)
        self.sources = sources
        self.count = count
        self.opened = 0
        self.closed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PartialHeadFlood":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(30)

    def _open(self, sel: selectors.BaseSelector) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.sources[self.opened % len(self.sources)], 0))
        sock.setblocking(False)
        sock.connect_ex(self.address)
        sel.register(sock, selectors.EVENT_WRITE)
        self.opened += 1

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        try:
            for _ in range(self.count):
                self._open(sel)
            while not self.stop.is_set():
                for key, events in sel.select(0.05):
                    sock = key.fileobj
                    try:
                        if events & selectors.EVENT_WRITE:
                            sock.send(self.payload)
                            sel.modify(sock, selectors.EVENT_READ)
                            continue
                        if sock.recv(65536):
                            continue
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        pass
                    sel.unregister(sock)
                    sock.close()
                    self.closed += 1
                    self._open(sel)
        finally:
            for key in list(sel.get_map().values()):
                key.fileobj.close()
            sel.close()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """The default HTTP limits (256 connections, 64 per peer, 10 s heads) and a token."""
    with module_appliance(tmp_path_factory, "http_guarded", {"security": {"http_token": TOKEN}}) as app:
        yield app


@pytest.mark.parametrize("peer_count, payload", [(1, PARTIAL_HEAD), (40, PARTIAL_HEAD), (40, PARTIAL_LIBRE_BODY)],
                         ids=["1-peer-heads", "40-peers-heads", "40-peers-libretranslate-bodies"])
def test_partial_heads_never_lock_out_the_token_holder(guarded, peer_count, payload):
    """320 connections holding partial heads, or unauthenticated LibreTranslate bodies (from one
    address, or from 40), reopened as soon as the server closes one, while the token holder makes
    60 requests on fresh connections: every one is served. Before eviction, 4 of 60 went through."""
    proc = psutil.Process(guarded.proc.pid)
    call(guarded, "GET", "/stats", auth())  # warm the code path
    before = proc.memory_info().rss
    sources = [f"127.0.0.{1 + i}" for i in range(peer_count)]  # 127.0.0.1: the token holder's too
    served = 0
    with PartialHeadFlood(guarded, sources, 320, payload) as flood:
        poll_until(lambda: flood.closed >= 320 - 256, 60, what="the flood to fill every slot")
        for i in range(60):
            try:
                status, _, body, _ = call(guarded, "POST", "/translate", auth(), TRANSLATE)
            except (OSError, AssertionError):  # refused, reset or never answered
                continue
            served += status == 200 and body["results"][0]["translatedText"] == "cba"
        peak = proc.memory_info().rss
        churned = flood.closed
    after = proc.memory_info().rss
    print(f"{peer_count} peer(s): {served}/60 served; flood connections closed by the server: {churned}; "
          f"supervisor RSS before {before / 2**20:.1f} MiB, under the flood {peak / 2**20:.1f} MiB, "
          f"after {after / 2**20:.1f} MiB")
    assert served == 60
    assert metric(guarded, "meeshy_http_connections_evicted_total") > 0


def test_without_a_token_an_idle_keep_alive_connection_makes_room(start_appliance):
    app = start_appliance(config={"http": {"max_connections": 2}})
    with Conn(app) as idle, Conn(app) as serving:
        for conn in (idle, serving):
            conn.send(request_bytes("GET", "/health"))
            assert conn.response()[0] == 200
        poll_until(lambda: open_connections(app) == 2, 20, what="2 connections open")
        status, _, body, _ = call(app, "GET", "/stats")  # evicts `idle`, the oldest, without a word
        assert status == 200 and "workers" in body
        assert idle.rest() == b""
        serving.send(request_bytes("GET", "/health"))
        assert serving.response()[0] == 200
