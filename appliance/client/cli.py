"""The client commands of `meeshy-appliance`: ping, stats, languages, translate, keygen.

appliance/cli.py parses the command line and, for these commands, calls `run` with the endpoint
(`--endpoint`, or the configured one) or `keygen`. One REQ round trip each (`request`;
`translate` in synchronous mode). Exit codes are ipc/exitcodes.py's: EXIT_UNAVAILABLE (69) when
no answer comes within `--timeout` or the appliance refuses the CURVE handshake,
EXIT_REQUEST_FAILED (8) when the appliance answers an error, EXIT_CONFIG for a bad key file.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

from appliance.client.library import NoAnswer, TranslationResult, request, sync_outcomes
from ipc import curve_keys, exitcodes


def keygen(directory: Path, name: str) -> int:
    try:
        public, secret = curve_keys.generate(directory, name)
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


def run(args: argparse.Namespace, endpoint: str) -> int:
    """Run the client command `args.command` (ping, stats, languages, translate) against `endpoint`."""
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
    except curve_keys.CurveError as exc:
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
    outcomes = sync_outcomes(answer)
    failed = False
    for target, outcome in outcomes.items():
        if isinstance(outcome, TranslationResult):
            print(outcome.translated_text if len(args.to) == 1 else f"{target}: {outcome.translated_text}")
        else:
            failed = True
            print(f"{target}: error {outcome.code}: {outcome.message}", file=sys.stderr)
    return exitcodes.EXIT_REQUEST_FAILED if failed else exitcodes.EXIT_OK
