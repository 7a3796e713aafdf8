"""Meeshy's gateway against [compat] under a burst: what its client would see.

    python -m bench.gateway_burst --messages 400 2000 [--languages fr es de] [--scale 5] [--fake]

For each burst size, a fresh appliance (the fake runtime with --fake, else the built-in models)
with [compat] on, and one fake of the gateway's client (tests/fakes/gateway.py: one event read
per tick, re-push of the missing languages at its timeout, 4 times, 1,000-key de-duplication,
circuit breaker). `--scale k` runs the gateway's clock k times faster (tick 100/k ms, re-push
after 30/k s) and tells the appliance so ([compat] gateway_read_rate 10k, max_delivery_delay_s
140/k, retry_window_s 300/k). All messages are pushed at once, distinct texts, source en.

Reported per burst: tasks delivered whole, (task, language) pairs delivered, translation events
read, duplicates at the client and repeats on the wire, "translation pool full" answers and when
the last one was read, gateway timeouts, re-pushes, and the door's counters (suppressed repeats,
dropped events). JSON on stdout with --json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.appliance_e2e import Appliance
from bench.harness import FAKE_RUNTIME
from tests.fakes.gateway import FakeGateway


def burst(n: int, languages: list[str], scale: float, fake: bool) -> dict:
    tick, retry = 0.1 / scale, 30.0 / scale
    sections = {
        "compat": {"enabled": True, "meeshy_pull_port": 0, "meeshy_pub_port": 0, "gateway_read_rate": 10.0 * scale,
                   "max_delivery_delay_s": 140.0 / scale, "retry_window_s": 300.0 / scale},
        "workers": {"count": 2, "startup_timeout_s": 300.0,
                    **({"runtime_factory": FAKE_RUNTIME} if fake else {})},
    }
    with tempfile.TemporaryDirectory(prefix="gateway-burst-") as tmp:
        app = Appliance.with_sections(Path(tmp), sections)
        try:
            app.wait_ready()
            gw = FakeGateway(app.ctx, app.endpoints["compat_pull"], app.endpoints["compat_events"],
                             tick_s=tick, retry_s=retry)
            gw.subscribe()
            started = time.monotonic()
            for i in range(n):
                gw.translate({"type": "translation", "taskId": f"b{n}-{i}", "messageId": f"m{n}-{i}",
                              "text": f"Message {i} of the burst, for everyone here.", "sourceLanguage": "en",
                              "targetLanguages": languages, "conversationId": "c", "modelType": "medium",
                              "timestamp": int(time.time() * 1000)})
            sent_s = time.monotonic() - started
            first_pool_full = None
            while gw.pending and time.monotonic() - started < 6 * retry + 60:
                gw.tick()
                if gw.tally.pool_full and first_pool_full is None:
                    first_pool_full = time.monotonic() - started
            wall = time.monotonic() - started
            t = gw.tally
            stats = app.request({"type": "stats"}, timeout=10.0)["compat"]
            gw.close()
        finally:
            app.proc.terminate()
            app.proc.wait(30)
    whole = sum(1 for langs in t.delivered.values() if set(languages) <= langs)
    return {
        "messages": n, "languages": len(languages), "pairs": n * len(languages), "scale": scale,
        "tasks_delivered": whole, "pairs_delivered": sum(len(v) for v in t.delivered.values()),
        "translation_events": t.translation_events, "duplicates": t.duplicates, "wire_repeats": t.wire_repeats,
        "pool_full": t.pool_full, "first_pool_full_read_s": round(first_pool_full, 2) if first_pool_full else None,
        "timeouts": t.timeouts, "repushes": t.repushes, "breaker_openings": t.breaker_openings,
        "suppressed_repeats": stats["suppressed_repeats"], "dropped_events": stats["dropped_events"],
        "push_s": round(sent_s, 2), "wall_s": round(wall, 1), "wall_s_at_real_pace": round(wall * scale, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, nargs="+", default=[400, 2000])
    ap.add_argument("--languages", nargs="+", default=["fr", "es", "de"])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--fake", action="store_true", help="the test suite's fake runtime instead of the models")
    ap.add_argument("--json", action="store_true")
    opts = ap.parse_args()
    rows = [burst(n, opts.languages, opts.scale, opts.fake) for n in opts.messages]
    if opts.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return
    for r in rows:
        print(f"{r['messages']} x {r['languages']}: {r['tasks_delivered']} tasks delivered whole, "
              f"{r['pairs_delivered']}/{r['pairs']} pairs, {r['translation_events']} events read, "
              f"{r['duplicates']} duplicates ({r['wire_repeats']} wire repeats), {r['pool_full']} pool full "
              f"(first read at {r['first_pool_full_read_s']} s), {r['timeouts']} timeouts, {r['repushes']} re-pushes, "
              f"breaker opened {r['breaker_openings']}x, {r['suppressed_repeats']} suppressed, "
              f"{r['dropped_events']} dropped; {r['wall_s']} s ({r['wall_s_at_real_pace']} s at the real pace)")


if __name__ == "__main__":
    main()
