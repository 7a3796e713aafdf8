"""`meeshy-appliance`: run the appliance, or talk to a running one.

    meeshy-appliance [serve] [--config PATH]      run (the default command)
    meeshy-appliance ping                         readiness of a running appliance
    meeshy-appliance stats                        its stats document (JSON)
    meeshy-appliance languages                    the language pairs per tier (JSON)
    meeshy-appliance translate TEXT --to fr [es ...] [--from en] [--model basic] [--json]

Client commands talk to `--endpoint` (default: the configured bind address and ZMQ_PORT, with a
wildcard address replaced by loopback) over a REQ socket, and exit EXIT_UNAVAILABLE (69) when no
answer comes within `--timeout`, EXIT_REQUEST_FAILED (8) when the appliance answers an error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid

import zmq

from appliance import config, exitcodes
from ipc.endpoints import tcp
from ipc.sockets import Role, make_socket

COMMANDS = ("serve", "ping", "stats", "languages", "translate")


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
    tr.add_argument("--model", default="auto", choices=["basic", "medium", "premium", "auto"], help="model tier")
    tr.add_argument("--json", action="store_true", help="print the whole reply as JSON")
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")
    args = _parser().parse_args(argv)
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


def default_endpoint(settings: config.Settings) -> str:
    address = settings.server.bind_address
    if address in ("0.0.0.0", "*", ""):
        address = "127.0.0.1"
    elif address == "::":
        address = "::1"
    return tcp(address, settings.server.zmq_port)


def request(endpoint: str, body: dict, timeout: float) -> dict | None:
    """One REQ round trip; None when nothing answered in time."""
    ctx = zmq.Context()
    sock = make_socket(ctx, Role.CLIENT, endpoint, hwm=10, linger_ms=0)
    try:
        sock.send(json.dumps(body).encode())
        if not sock.poll(int(timeout * 1000)):
            return None
        return json.loads(sock.recv())
    finally:
        sock.close(linger=0)
        ctx.term()


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
    answer = request(endpoint, body, args.timeout)
    if answer is None:
        print(f"meeshy-appliance: no answer from {endpoint} within {args.timeout:g}s", file=sys.stderr)
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
