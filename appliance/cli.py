"""`meeshy-appliance`: run the appliance, or talk to a running one.

    meeshy-appliance [serve] [--config PATH]      run (the default command)
    meeshy-appliance ping                         readiness of a running appliance
    meeshy-appliance stats                        its stats document (JSON)
    meeshy-appliance languages                    the language pairs per tier (JSON)
    meeshy-appliance translate TEXT --to fr [es ...] [--from en] [--model basic] [--json]
    meeshy-appliance keygen [--dir DIR] [--name NAME]   write a CurveZMQ key pair

Client commands talk to `--endpoint` (default: the configured bind address and ZMQ_PORT, with a
wildcard address replaced by loopback) over a REQ socket, and exit EXIT_UNAVAILABLE (69) when no
answer comes within `--timeout` or the appliance refuses the CURVE handshake, EXIT_REQUEST_FAILED
(8) when the appliance answers an error. With `--server-key` (the appliance's public NAME.key)
and `--client-key` (this client's NAME.key_secret) they use CurveZMQ (appliance/curve.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from pathlib import Path

import zmq
from zmq.utils.monitor import recv_monitor_message

from appliance import config, curve
from ipc import exitcodes
from ipc.endpoints import tcp
from ipc.sockets import Role, make_socket
from ipc.tiers import AUTO, MODEL_TYPES

COMMANDS = ("serve", "ping", "stats", "languages", "translate", "keygen")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(exitcodes.EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="config file (default: $MEESHY_CONFIG, else ./config.toml)")
    client = argparse.ArgumentParser(add_help=False)
    client.add_argument("--endpoint", help="requests endpoint, e.g. tcp://127.0.0.1:5555")
    client.add_argument("--timeout", type=float, help="seconds to wait for the answer (10; translate 60)")
    client.add_argument("--server-key", metavar="PATH", help="the appliance's public key file (NAME.key): use CurveZMQ")
    client.add_argument(
        "--client-key", metavar="PATH", help="this client's secret key file (NAME.key_secret), with --server-key"
    )

    parser = _Parser(prog="meeshy-appliance", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", parents=[common], help="run the appliance (default)")
    sub.add_parser("ping", parents=[common, client], help="is a running appliance ready?")
    sub.add_parser("stats", parents=[common, client], help="print the stats document")
    sub.add_parser("languages", parents=[common, client], help="print the supported pairs per tier")
    tr = sub.add_parser("translate", parents=[common, client], help="translate a text (synchronous)")
    tr.add_argument("text")
    tr.add_argument("--to", nargs="+", required=True, metavar="LANG", help="target language(s)")
    tr.add_argument("--from", dest="source", default="auto", metavar="LANG", help="source language (default auto)")
    tr.add_argument("--model", default=AUTO, choices=MODEL_TYPES, help="model tier")
    tr.add_argument("--json", action="store_true", help="print the whole reply as JSON")
    kg = sub.add_parser("keygen", help="write a CurveZMQ key pair (for the appliance or a client)")
    kg.add_argument("--dir", default=".", help="where to write NAME.key and NAME.key_secret (default: .)")
    kg.add_argument("--name", default="server", help="file name stem (default: server)")
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "keygen":
        sys.exit(_keygen(Path(args.dir), args.name))
    if args.command != "serve" and (args.server_key is None) != (args.client_key is None):
        parser.error("--server-key and --client-key go together (CurveZMQ needs both)")
    try:
        settings = config.load(args.config)
    except config.ConfigError as exc:
        print(f"meeshy-appliance: {exc}", file=sys.stderr)
        sys.exit(exitcodes.EXIT_CONFIG)
    if args.command == "serve":
        sys.exit(_serve(settings))
    sys.exit(_client(args, settings))


def _serve(settings: config.Settings) -> int:
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s",
    )
    from appliance.supervisor import serve

    return serve(settings)


def _keygen(directory: Path, name: str) -> int:
    try:
        public, secret = curve.generate(directory, name)
    except (OSError, ValueError) as exc:
        print(f"meeshy-appliance: keygen: {exc}", file=sys.stderr)
        return exitcodes.EXIT_USAGE
    public, secret = public.resolve(), secret.resolve()
    print(
        f"public key: {public}\n"
        f"secret key: {secret} (mode 0600: keep it private)\n"
        "\n"
        "As the appliance's key pair:\n"
        f'  in config.toml, [security]: curve = true and server_secret_key = "{secret}"\n'
        f"  give {public.name} to every client (meeshy-appliance --server-key {public.name})\n"
        "As a client's key pair:\n"
        f"  copy {public.name} into the appliance's security.client_keys_dir, then restart it\n"
        f"  give {secret.name} to that client alone (meeshy-appliance --client-key {secret.name})\n"
        "Never copy a .key_secret file into client_keys_dir or to another host than its owner."
    )
    return exitcodes.EXIT_OK


def default_endpoint(settings: config.Settings) -> str:
    address = settings.server.bind_address
    if address in ("0.0.0.0", "*", ""):
        address = "127.0.0.1"
    elif address == "::":
        address = "::1"
    return tcp(address, settings.server.zmq_port)


class NoAnswer(Exception):
    """Nothing answered in time, or the appliance refused the handshake (the message says which)."""


_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
)
_MECHANISM_MISMATCH = 0x11000002  # ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH


def request(endpoint: str, body: dict, timeout: float, keys: tuple[str, str] | None = None) -> dict:
    """One REQ round trip; `keys` = (server public key file, client secret key file) for CURVE.

    Raises NoAnswer when nothing answered within `timeout`, at once when the appliance refused
    this client's key. A monitor watches the handshake only to explain a silence: libzmq retries
    a failed handshake quietly.
    """
    ctx = zmq.Context()
    try:
        if keys:
            curve.client_options(ctx, *keys)  # context defaults: make_socket connects at once
        sock = make_socket(ctx, Role.CLIENT, endpoint, hwm=10, linger_ms=0)
    except BaseException:
        ctx.destroy(linger=0)
        raise
    monitor = sock.get_monitor_socket(_HANDSHAKE_FAILED)
    monitor.setsockopt(zmq.LINGER, 0)
    try:
        sock.send(json.dumps(body).encode())
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        end = time.monotonic() + timeout
        failures: list[dict] = []
        while (left := end - time.monotonic()) > 0:
            ready = dict(poller.poll(int(left * 1000) + 1))
            if sock in ready:
                return json.loads(sock.recv())
            if monitor in ready:
                event = recv_monitor_message(monitor)
                if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                    raise NoAnswer(
                        f"{endpoint} refused this client's key (ZAP status {event['value']}): its public .key "
                        "must be in the appliance's security.client_keys_dir"
                    )
                failures.append(event)
        hint = _handshake_hint(failures, curve_on=bool(keys))
        raise NoAnswer(f"no answer from {endpoint} within {timeout:g}s" + (f" ({hint})" if hint else ""))
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)
        ctx.term()


def _handshake_hint(failures: list[dict], curve_on: bool) -> str:
    """Why the handshakes failed, best guess. Which side notices a CURVE/NULL mismatch first
    varies: the other side then just sees the connection close."""
    if not failures:
        return ""
    if any(e["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and e["value"] == _MECHANISM_MISMATCH for e in failures):
        if curve_on:
            return "this endpoint does not use CURVE: drop --server-key and --client-key"
        return "the appliance requires CURVE: pass --server-key and --client-key"
    if curve_on:
        return "the CURVE handshake failed: is --server-key this appliance's public key?"
    return "the handshake failed: does the appliance require CURVE (--server-key, --client-key)?"


def _client(args: argparse.Namespace, settings: config.Settings) -> int:
    endpoint = args.endpoint or default_endpoint(settings)
    if args.timeout is None:
        args.timeout = 60.0 if args.command == "translate" else 10.0
    message_id = uuid.uuid4().hex
    if args.command == "translate":
        body: dict = {
            "type": "translation",
            "messageId": message_id,
            "text": args.text,
            "sourceLanguage": args.source,
            "targetLanguages": args.to,
            "modelType": args.model,
            "sync": True,
        }
    else:
        body = {"type": args.command, "messageId": message_id}
    keys = (args.server_key, args.client_key) if args.server_key else None
    try:
        answer = request(endpoint, body, args.timeout, keys)
    except curve.CurveError as exc:
        print(f"meeshy-appliance: {exc}", file=sys.stderr)
        return exitcodes.EXIT_CONFIG
    except NoAnswer as exc:
        print(f"meeshy-appliance: {exc}", file=sys.stderr)
        return exitcodes.EXIT_UNAVAILABLE
    if answer.get("status") == "error" and "error" in answer:
        err = answer["error"]
        print(f"meeshy-appliance: {err.get('code')}: {err.get('message')}", file=sys.stderr)
        return exitcodes.EXIT_REQUEST_FAILED
    if args.command == "ping":
        workers = answer.get("workers", {})
        print(f"{answer.get('state')}: {workers.get('ready')}/{workers.get('total')} worker(s) ready")
        return exitcodes.EXIT_OK if answer.get("ready") else exitcodes.EXIT_UNAVAILABLE
    if args.command != "translate" or args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return exitcodes.EXIT_OK if answer.get("status") != "error" else exitcodes.EXIT_REQUEST_FAILED
    results = answer.get("results", [])
    for result in results:
        text = result.get("translatedText", "")
        print(text if len(args.to) == 1 else f"{result.get('targetLanguage')}: {text}")
    for error in answer.get("errors", []):
        print(f"{error['targetLanguage']}: error {error['error']['code']}: {error['error']['message']}", file=sys.stderr)
    return exitcodes.EXIT_OK if not answer.get("errors") else exitcodes.EXIT_REQUEST_FAILED
