"""`meeshy-appliance`: run the appliance, or talk to a running one.

    meeshy-appliance [serve] [--config PATH]      run (the default command)
    meeshy-appliance ping                         readiness of a running appliance
    meeshy-appliance stats                        its stats document (JSON)
    meeshy-appliance languages                    the language pairs per tier (JSON)
    meeshy-appliance translate TEXT --to fr [es ...] [--from en] [--model basic] [--json]
    meeshy-appliance keygen [--dir DIR] [--name NAME]   write a CurveZMQ key pair

Client commands talk to `--endpoint` (default: the configured bind address and ZMQ_PORT, with a
wildcard address replaced by loopback) with one REQ round trip (`appliance.client.request`;
`translate` in synchronous mode; appliance/client/cli.py), and exit EXIT_UNAVAILABLE (69) when no
answer comes within `--timeout` or the appliance refuses the CURVE handshake, EXIT_REQUEST_FAILED
(8) when the appliance answers an error. With `--server-key` (the appliance's public NAME.key)
and `--client-key` (this client's NAME.key_secret) they use CurveZMQ (appliance/edge/curve.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from appliance import config
from appliance.client import cli as client_cli
from appliance.lifecycle import logs
from ipc import exitcodes
from ipc.endpoints import tcp
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
        sys.exit(client_cli.keygen(Path(args.dir), args.name))
    if args.command != "serve" and (args.server_key is None) != (args.client_key is None):
        parser.error("--server-key and --client-key go together (CurveZMQ needs both)")
    try:
        settings = config.load(args.config)
    except config.ConfigError as exc:
        print(f"meeshy-appliance: {exc}", file=sys.stderr)
        sys.exit(exitcodes.EXIT_CONFIG)
    if args.command == "serve":
        sys.exit(_serve(settings))
    sys.exit(client_cli.run(args, args.endpoint or default_endpoint(settings)))


def _serve(settings: config.Settings) -> int:
    logs.setup(settings.server.log_level)
    from appliance.lifecycle.supervisor import serve

    return serve(settings)


def default_endpoint(settings: config.Settings) -> str:
    address = settings.server.bind_address
    if address in ("0.0.0.0", "*", ""):
        address = "127.0.0.1"
    elif address == "::":
        address = "::1"
    return tcp(address, settings.server.zmq_port)
