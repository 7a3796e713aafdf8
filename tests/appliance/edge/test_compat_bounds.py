"""The compat pull port under attack, from outside (appliance/edge/zmtp_pull.py, appliance/edge/compat.py):
real libzmq PUSH sockets (pyzmq) and raw TCP peers against a real appliance with the fake runtime.
Every test also has an honest gateway, which must keep getting its events. Supervisor RSS is
measured before and during each attack and printed (-s shows the figures)."""

from __future__ import annotations

import json
import socket
import threading
import time
import zlib

import psutil
import pytest
import zmq

from appliance.edge import zmtp_pull
from tests.appliance.conftest import module_appliance
# `gateway`: test_compat's fixture, on this module's `app`.
from tests.appliance.edge.test_compat import Gateway, gateway, translation  # noqa: F401
from tests.fakes.waiting import poll_until

pytestmark = pytest.mark.timeout(180)

MIB = 1024 * 1024
HANDSHAKE_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    extra = {"compat": {"enabled": True, "meeshy_pull_port": 0, "meeshy_pub_port": 0, "max_connections": 64,
                        "handshake_timeout_s": HANDSHAKE_TIMEOUT_S}}
    with module_appliance(tmp_path_factory, "compat_bounds", extra, {"FAKE_RUNTIME_DELAY_MS": "1"}) as a:
        yield a


def rss(app) -> int:
    return psutil.Process(app.proc.pid).memory_info().rss


def port(app) -> int:
    return int(app.endpoints["compat_pull"].rsplit(":", 1)[1])


def served(gw: Gateway, task_id: str, what: str) -> dict:
    gw.send(translation(task_id, ["fr"]))
    (event,) = gw.wait_for(lambda: gw.of_type("translation_completed", task_id), what, deadline=60)
    return event


class Attack:
    """Threads that send through their own PUSH sockets until stopped (each send gives up after
    a second, since the appliance stops reading a connection whose buffer is full), while the
    test samples the supervisor's RSS and pings 5555."""

    def __init__(self, app, connections: int, message: list[bytes], count: int) -> None:
        self.app, self.stop, self.sent = app, threading.Event(), 0
        self.pushes = []
        for _ in range(connections):
            push = app.ctx.socket(zmq.PUSH)
            push.setsockopt(zmq.LINGER, 0)
            push.setsockopt(zmq.SNDHWM, 1)  # sends then follow what the appliance reads
            push.setsockopt(zmq.SNDTIMEO, 1000)
            push.connect(app.endpoints["compat_pull"])
            app.sockets.append(push)
            self.pushes.append(push)
        self.threads = [threading.Thread(target=self._run, args=(p, message, count), daemon=True) for p in self.pushes]

    def _run(self, push, message, count) -> None:
        for _ in range(count):
            while not self.stop.is_set():
                try:
                    push.send_multipart(message, copy=False)
                    self.sent += 1
                    break
                except zmq.Again:
                    continue

    def __enter__(self):
        self.peak = self.before = rss(self.app)
        self.pings: list[float] = []
        for t in self.threads:
            t.start()
        return self

    def sample(self) -> None:
        self.peak = max(self.peak, rss(self.app))
        start = time.monotonic()
        assert self.app.request({"type": "ping"}, timeout=30) is not None, "5555 stopped answering"
        self.pings.append(time.monotonic() - start)

    def running(self, dropped: int = 0) -> bool:
        """Still sending, or fewer than `dropped` messages dropped by the appliance so far."""
        return any(t.is_alive() for t in self.threads) or self.app.log().count("dropped a gateway message") < dropped

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def report(self, what: str) -> str:
        pings = sorted(self.pings) or [0.0]
        return (f"{what}: {self.sent} messages sent; supervisor RSS {self.before / MIB:.0f} -> peak "
                f"{self.peak / MIB:.0f} MiB; 5555 ping p50 {pings[len(pings) // 2] * 1000:.0f} ms, "
                f"max {pings[-1] * 1000:.0f} ms over {len(self.pings)}")


# ---------------------------------------------------------------- memory


def test_two_connections_of_16_mib_frames_cannot_grow_memory(app, gateway):
    """The measured attack on the libzmq PULL: messages of 8 frames of 16 MiB (each frame under
    the per-frame bound) from two connections took the supervisor to 3.7 GiB."""
    frame = b"\x00" * (16 * MIB)
    audio = json.dumps({"type": "audio_process", "messageId": "m-flood", "attachmentId": "a-flood"}).encode()
    message = [audio] + [frame] * 8  # nine frames, 128 MiB
    dropped = app.log().count("dropped a gateway message")
    with Attack(app, 2, message, count=6) as attack:
        n = 0
        while attack.running(dropped + 12):
            n += 1
            served(gateway, f"t-during-frames-{n}", "a translation during the attack")
            attack.sample()
    print(attack.report("2 connections x 6 messages x 8 frames of 16 MiB"))
    assert attack.peak < 300 * MIB
    assert attack.sent == 12
    served(gateway, "t-after-frames", "a translation after the attack")
    assert not gateway.of_type("audio_process_error")  # over the bounds: dropped, never answered


def test_a_message_of_thousands_of_small_frames_is_dropped_without_buffering(app, gateway):
    """MAXMSGSIZE bounds a frame, not a message: libzmq would hold all 4,000 frames until the last."""
    frame = b"\x01" * 65536
    message = [json.dumps({"type": "audio_process", "messageId": "m-frames"}).encode()] + [frame] * 4000
    dropped = app.log().count("dropped a gateway message")
    with Attack(app, 1, message, count=2) as attack:
        while attack.running(dropped + 2):
            attack.sample()
            time.sleep(0.05)
    print(attack.report("1 connection x 2 messages x 4,000 frames of 64 KiB"))
    assert attack.peak < 300 * MIB
    served(gateway, "t-after-small-frames", "a translation after the many-frame messages")
    assert not gateway.of_type("audio_process_error")


def test_the_gateway_s_real_audio_sizes_are_answered(gateway):
    """An audio_process as the gateway sends it: 12 MiB of audio and a voice profile, under the bounds."""
    request = {"type": "audio_process", "messageId": "m-real-audio", "attachmentId": "a-real-audio",
               "binaryFrames": {"audio": 1, "audioSize": 12 * MIB, "voiceProfile": 2, "voiceProfileSize": 4096}}
    gateway.send(request, b"\x02" * (12 * MIB), b"\x03" * 4096)
    (event,) = gateway.wait_for(lambda: gateway.of_type("audio_process_error"), "the audio request's error")
    assert event["messageId"] == "m-real-audio" and event["errorCode"] == "unsupported_request"


# ---------------------------------------------------------------- parsing


def huge_target_list(task_id: str, size: int = 16 * MIB) -> bytes:
    head = json.dumps(translation(task_id, ["fr"]))[: -1].encode()
    head = head.replace(b', "targetLanguages": ["fr"]', b"")
    count = (size - len(head)) // 5
    return head + b', "targetLanguages": [' + b'"fr",' * (count - 1) + b'"fr"]}'


def test_a_16_mib_target_list_is_refused_before_it_is_decoded(app, gateway):
    """Decoded, five of these held 5555's pings for 15.6 s; refused on their size, each costs a read."""
    with Attack(app, 1, [huge_target_list("t-huge-0")], count=5) as attack:
        while attack.running() or len(gateway.of_type("translation_error", "t-huge-0")) < 5:
            gateway.events.pump(10)
            attack.sample()
    print(attack.report("5 translation requests of 16 MiB (targetLanguages)"))
    assert attack.peak < 300 * MIB
    (event, *_) = gateway.wait_for(lambda: gateway.of_type("translation_error", "t-huge-0"), "the refusal")
    assert event["metadata"]["errorCode"] == "invalid_request"
    assert "limit" in event["error"] and event["messageId"] == "msg-t-huge-0"
    served(gateway, "t-after-huge", "a translation after the huge lists")


def test_a_json_frame_over_max_request_bytes_is_answered_and_the_connection_kept(gateway):
    big = translation("t-big-json", ["fr"], text="x" * 70000)  # over max_request_bytes (65536)
    gateway.send(big)
    gateway.send(translation("t-behind-big-json", ["fr"]))
    gateway.wait_for(lambda: gateway.of_type("translation_error", "t-big-json"), "the big request's error")
    gateway.wait_for(lambda: gateway.of_type("translation_completed", "t-behind-big-json"), "the next one served")
    (event,) = gateway.of_type("translation_error", "t-big-json")
    assert event["metadata"]["errorCode"] == "invalid_request"


# ---------------------------------------------------------------- ZMTP peers


def raw_peer(app) -> socket.socket:
    peer = socket.create_connection(("127.0.0.1", port(app)), timeout=30)
    return peer


def read_until_closed(peer: socket.socket) -> bytes:
    got = b""
    while chunk := peer.recv(65536):
        got += chunk
    return got


def push_handshake(peer: socket.socket) -> None:
    """What a libzmq PUSH says: its greeting, then READY Socket-Type=PUSH."""
    peer.sendall(zmtp_pull.GREETING)
    peer.sendall(zmtp_pull.command(b"READY", bytes([11]) + b"Socket-Type" + (4).to_bytes(4, "big") + b"PUSH"))


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".ljust(64, b" "),
    zmtp_pull.SIGNATURE + b"\x03\x01" + b"PLAIN".ljust(20, b"\x00") + b"\x00" * 32,
    zmtp_pull.SIGNATURE + b"\x02\x00" + b"\x00" * 52,
    b"\xff" * 64,
])
def test_a_garbage_greeting_is_closed_and_costs_the_gateway_nothing(app, gateway, garbage):
    with raw_peer(app) as peer:
        peer.sendall(garbage)
        assert read_until_closed(peer) == zmtp_pull.GREETING  # ours, then nothing: closed
    # one taskId per case: a taskId already answered gets nothing again
    served(gateway, f"t-after-garbage-{zlib.crc32(garbage):08x}", "a translation after the garbage")


@pytest.mark.parametrize("after_greeting, why", [
    (bytes([0, 5]) + b"hello", "a message before READY"),
    (zmtp_pull.command(b"READY", b""), "socket type b''"),
    (zmtp_pull.command(b"READY", bytes([11]) + b"Socket-Type" + (4).to_bytes(4, "big") + b"PU"), "truncated READY"),
    (zmtp_pull.command(b"PING", b"\x00\x01"), "before READY"),
    (bytes([zmtp_pull.COMMAND | zmtp_pull.LONG]) + (100_000).to_bytes(8, "big"), "a command frame of 100000 bytes"),
    (bytes([zmtp_pull.COMMAND, 3, 9]) + b"ab", "a truncated command"),
])
def test_a_malformed_handshake_is_closed(app, gateway, after_greeting, why):
    with raw_peer(app) as peer:
        peer.sendall(zmtp_pull.GREETING + after_greeting)
        assert read_until_closed(peer) == zmtp_pull.GREETING + zmtp_pull.READY
    assert poll_until(lambda: why in app.log(), 20)
    served(gateway, f"t-after-malformed-{zlib.crc32(after_greeting):08x}", "a translation after a malformed handshake")


def test_a_socket_other_than_push_is_refused(app, gateway):
    dealer = app.socket(zmq.DEALER, app.endpoints["compat_pull"])
    dealer.send(json.dumps(translation("t-from-dealer", ["fr"])).encode(), zmq.NOBLOCK)
    assert poll_until(lambda: "only PUSH may connect here" in app.log(), 20)
    dealer.close(0)
    served(gateway, "t-after-dealer", "a translation after the DEALER")
    assert not gateway.of_type("translation_completed", "t-from-dealer")


def test_a_peer_that_stalls_mid_frame_holds_nothing_but_its_connection(app, gateway):
    with raw_peer(app) as peer:
        push_handshake(peer)
        assert peer.recv(64) == zmtp_pull.GREETING[:64]
        peer.sendall(bytes([zmtp_pull.LONG]) + (1 * MIB).to_bytes(8, "big") + b"{" * 1000)  # then silence
        served(gateway, "t-beside-a-stall", "a translation beside a stalled peer")


def test_a_silent_peer_is_closed_after_the_handshake_timeout(app):
    with raw_peer(app) as peer:
        assert read_until_closed(peer) == zmtp_pull.GREETING
    assert poll_until(lambda: "no ZMTP handshake within" in app.log(), 20)


def test_heartbeats_of_a_zmtp_3_1_peer_are_answered(app):
    """A PUSH with ZMQ_HEARTBEAT_* set drops a connection whose PINGs get no PONG."""
    gw = Gateway(app)
    gw.push = app.ctx.socket(zmq.PUSH)  # in place of its own: this one sends PINGs
    app.sockets.append(gw.push)
    gw.push.setsockopt(zmq.LINGER, 0)
    gw.push.setsockopt(zmq.HEARTBEAT_IVL, 100)
    gw.push.setsockopt(zmq.HEARTBEAT_TIMEOUT, 300)
    monitor = gw.push.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    gw.push.connect(app.endpoints["compat_pull"])
    try:
        gw.sync()
        time.sleep(1.5)  # five heartbeat timeouts
        assert not monitor.poll(0), "a connection was dropped: PINGs unanswered"
        served(gw, "t-heartbeats", "a translation over a heartbeating connection")
    finally:
        gw.push.disable_monitor()
        monitor.close(0)


# ---------------------------------------------------------------- fairness and connections


def test_a_flooding_connection_does_not_starve_another(app, gateway):
    ping = json.dumps({"type": "ping", "timestamp": 0}).encode()
    with Attack(app, 2, [ping], count=20000) as attack:
        for n in range(5):
            served(gateway, f"t-beside-flood-{n}", "a translation beside a flood of pings")
        attack.sample()
    print(attack.report("2 connections flooding pings"))


class RawFlood:
    """A raw ZMTP peer that writes `chunk` over and over after its handshake, and never reads."""

    def __init__(self, app, chunk: bytes) -> None:
        self.peer, self.chunk, self.stop = raw_peer(app), chunk, threading.Event()
        push_handshake(self.peer)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.peer.settimeout(1)
        while not self.stop.is_set():
            try:
                self.peer.sendall(self.chunk)
            except TimeoutError:
                continue  # the appliance stopped reading: its buffer for us is full
            except OSError:
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        self.peer.close()


@pytest.mark.parametrize("what, chunk", [
    ("empty frames, all of one message", bytes([zmtp_pull.MORE, 0]) * (512 * 1024)),
    ("PINGs whose PONGs are never read", zmtp_pull.command(b"PING", b"\x00\x01" + b"c" * 16) * 40000),
])
def test_a_flood_of_tiny_frames_does_not_hold_the_loop(app, gateway, what, chunk):
    before = peak = rss(app)
    pings = []
    with RawFlood(app, chunk):
        for n in range(20):
            start = time.monotonic()
            assert app.request({"type": "ping"}, timeout=30) is not None
            pings.append(time.monotonic() - start)
            peak = max(peak, rss(app))
        served(gateway, "t-beside-" + what.split()[0].lower(), "a translation beside the flood")
    pings.sort()
    print(f"{what}: supervisor RSS {before / MIB:.0f} -> peak {peak / MIB:.0f} MiB; 5555 ping p50 "
          f"{pings[10] * 1000:.0f} ms, max {pings[-1] * 1000:.0f} ms")
    assert peak < 300 * MIB


def test_connections_beyond_the_cap_are_closed_and_squatters_time_out(start_appliance):
    cap = 4
    app = start_appliance(config={"compat": {"enabled": True, "meeshy_pull_port": 0, "meeshy_pub_port": 0,
                                             "max_connections": cap, "handshake_timeout_s": HANDSHAKE_TIMEOUT_S}})
    squatters = [raw_peer(app) for _ in range(cap)]
    try:
        for s in squatters:
            assert s.recv(64) == zmtp_pull.GREETING  # each holds a slot, saying nothing
        with raw_peer(app) as extra:
            assert read_until_closed(extra) == b""  # refused at once
        gw = Gateway(app)  # refused too until the squatters time out; its PUSH retries by itself
        gw.sync()
        served(gw, "t-after-squatters", "a translation once the squatters were closed")
        assert "max_connections" in app.log()
    finally:
        for s in squatters:
            s.close()


def test_stalled_peers_with_full_buffers_hold_a_bounded_amount_each(app, gateway):
    """Peers that send 8 MiB of a 16 MiB frame, then fall silent: the appliance discards as it
    reads, so a stalled connection holds at most its read-ahead (connection_buffer_bytes)."""
    before = rss(app)
    peers = [raw_peer(app) for _ in range(24)]
    try:
        for peer in peers:
            push_handshake(peer)
            peer.setblocking(False)
            pending = bytes([zmtp_pull.LONG]) + (16 * MIB).to_bytes(8, "big") + b"\x00" * (8 * MIB)
            end = time.monotonic() + 2
            while pending and time.monotonic() < end:  # until the appliance stops reading it
                try:
                    pending = pending[peer.send(pending):]
                except BlockingIOError:
                    time.sleep(0.01)
        served(gateway, "t-beside-stalled-peers", "a translation beside 24 stalled peers")
        held = rss(app)
    finally:
        for peer in peers:
            peer.close()
    print(f"24 stalled peers with full buffers: supervisor RSS {before / MIB:.0f} -> {held / MIB:.0f} MiB")
    assert held < 300 * MIB


# ---------------------------------------------------------------- binding, in-process


@pytest.mark.parametrize("host, bound", [("*", "0.0.0.0"), ("", "0.0.0.0"), ("localhost", "127.0.0.1"),
                                         ("127.0.0.1", "127.0.0.1")])
def test_the_pull_port_binds_where_libzmq_would(host, bound):
    with zmtp_pull.listen(host, 0) as sock:
        assert sock.family == socket.AF_INET and sock.getsockname()[0] == bound


def test_a_taken_pull_port_is_an_os_error():
    with zmtp_pull.listen("127.0.0.1", 0) as taken:
        with pytest.raises(OSError):
            zmtp_pull.listen("127.0.0.1", taken.getsockname()[1])
