"""The in-flight table's memory: supervisor RSS with the table filled by 5,000-emoji texts.

    python bench/run.py inflight_memory [--tasks 10000] [--max-inflight-bytes N]

Starts `python -m appliance serve` on the fake runtime (tests.fakes.fake_runtime) with its one
worker stalled (each job sleeps 10 minutes), so nothing accepted ever leaves the table, then sends
`--tasks` translation requests of 5,000 emoji each (a new text every time, UTF-8 on the wire) from
one DEALER, 200 at a time, and reads the replies: `queued` or `overloaded`. Prints the
supervisor's RSS before and after, the tasks accepted and the RSS per accepted task, and the
stats' tasks section (in_flight_bytes against [limits] max_inflight_bytes). `--max-inflight-bytes`
overrides the budget (2000000000: as good as none, to measure the per-task cost).

Exits 1 when a reply is missing or the appliance does not start.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil
import zmq

from bench.appliance_e2e import Appliance
from bench.harness import FAKE_RUNTIME

MIB = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10000, help="requests sent (default 10000)")
    parser.add_argument("--max-inflight-bytes", type=int, help="[limits] max_inflight_bytes (default: the appliance's)")
    opts = parser.parse_args(argv)
    limits = {"max_attempts": 1}
    if opts.max_inflight_bytes:
        limits["max_inflight_bytes"] = opts.max_inflight_bytes
    tmp = Path(tempfile.mkdtemp(prefix="meeshy-inflight-"))
    app = Appliance.with_sections(tmp, {"limits": limits, "workers": {"count": 1, "runtime_factory": FAKE_RUNTIME}},
                                  env={"FAKE_RUNTIME_DELAY_MS": "600000"})  # a stalled worker
    try:
        app.wait_ready(120)
        supervisor = psutil.Process(app.proc.pid)
        time.sleep(1.0)
        before = supervisor.memory_info().rss
        dealer = app.ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.connect(app.endpoints["requests"])
        codes: dict[str, int] = {}
        sent = 0
        while sent < opts.tasks:
            batch = min(200, opts.tasks - sent)
            for i in range(sent, sent + batch):
                text = "\U0001F600" * 4990 + f"{i:010d}"
                dealer.send(json.dumps({"messageId": f"m{i}", "taskId": f"t{i}", "text": text, "sourceLanguage": "en",
                                        "targetLanguage": "fr"}, ensure_ascii=False).encode())
            for _ in range(batch):
                if not dealer.poll(60_000):
                    print("a reply is missing", file=sys.stderr)
                    return 1
                reply = json.loads(dealer.recv())
                code = reply["status"] if reply["status"] != "error" else reply["error"]["code"]
                codes[code] = codes.get(code, 0) + 1
            sent += batch
        time.sleep(2.0)
        after = supervisor.memory_info().rss
        tasks = app.request({"type": "stats"}, timeout=10.0)["tasks"]
        accepted = codes.get("queued", 0)
        print(f"replies {codes}; stats tasks {tasks}")
        print(f"supervisor RSS {before / MIB:.0f} -> {after / MIB:.0f} MiB; "
              f"{(after - before) / max(1, accepted) / 1024:.1f} KiB per accepted task")
        dealer.close(linger=0)
        return 0
    finally:
        app.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
