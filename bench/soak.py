"""Soak: mixed traffic through a real appliance for a set time, workers killed now and then, RSS sampled.

    python -m bench.soak [--duration 600] [--rate 20] [--kill-every 180] [--sample-every 10]
                         [--workers 2] [--fake] [--clients 3] [--warmup S] [--out report.json]
    python -m bench.soak --hostile [--duration 1800] [--rate 3] [--attack-every 2] [--honest-texts 400] ...

`--hostile` (the last part of this file, "hostile mode", with the attacks in bench/attacks.py):
honest native, compat and HTTP clients whose every result is compared with the same text's
translation made alone on a quiet appliance first, beside the attacks of issue 16 in turn, a
worker killed every `--kill-every`; exits 1 on a foreign, wrong, lost or duplicated result, a
refused honest request, or supervisor RSS at or over 250 MiB (bench/README.md). What follows
describes the default mode.

Starts `python -m appliance serve` with a temp config (ephemeral ports read from
<run_dir>/endpoints.json, HTTP off, the translation cache on with its SQLite level in the temp
state directory) and the built-in models under models/ (`python export_models.py --builtin`), or
with `--fake` the test suite's fake runtime (`tests.fakes.fake_runtime:load`, which reverses the
text: a cheap run that exercises everything but the models).

Traffic, `--rate` requests/s for `--duration` seconds, from `--clients` pipelining DEALERs and one
REQ on the requests port; one SUB reads every event. Each request is drawn from this mix:

    hit           one of a few fixed English chat messages, en -> fr: cache hits after the first
    miss          a sentence never sent before (modelbuild.corpus, in-domain for the built-in
                  models) from en/fr/es/de to another of them; a quarter with sourceLanguage auto
    multi         a new sentence to every other language, a third also to its own (answered at
                  the edge); a quarter with sourceLanguage auto
    retry         an accepted request of the last 30 s (of the last 2048 requests at high rates)
                  sent again with its taskId: must get `duplicate: true` and start no new work;
                  targets already finished may get their event again (DESIGN.md: a retry "gets
                  finished targets' outcomes again"), so a retried task may have one more event
                  per target per retry, never more
    unsupported   a target no model serves (unsupported_language, no events)
    invalid_json  a truncated JSON frame (invalid_json)
    too_long      a text one character over max_text_chars (text_too_long)
    fail          (--fake only) a text the fake fails on: one translation_failed event per target

Every `--kill-every` seconds one worker gets SIGKILL (pids from the `stats` request, slots in
turn); its respawn into the same slot is timed. Keep `--kill-every` well above
[respawn] crash_window_s / max_crashes per slot (60 s / 5), or the appliance halts on purpose.

Every `--sample-every` seconds psutil reads the RSS of the supervisor, of each worker and of the
supervisor's other children (the multiprocessing resource tracker), plus RssAnon and RssShmem
from /proc/<pid>/status: the shared-memory cache is counted in the RSS of every process that
touched its pages, so RSS grows as the cache fills while RssAnon (private heap) does not. One
line per sample is printed as it goes. At the end: RSS first/min/max/last per process (per
incarnation for workers) and the growth from the first sample after `--warmup` (default: 10% of
the run, at least 60 s, at most half of it) to the last; and the accounting: of the accepted
tasks, how many got exactly one event (result or error) per target (retried ones: one, plus at
most one per retry), lost and duplicated events.

Exits 1 when an accepted target got no event or more than one, a reply or event was not the
expected kind, a killed worker was not respawned, the appliance died, or it did not exit 0 after
SIGTERM. RSS growth is reported, not judged. Ctrl-C or an error stops the appliance (SIGTERM,
then SIGKILL) and any worker left behind.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import random
import shutil
import signal
import sys
import queue
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
import zmq

from ipc import curve_keys
from bench import appliance_e2e as e2e
from bench import attacks, harness
from modelbuild.corpus import LANGUAGES, generate_corpus

REPO = e2e.REPO
MIB = 1024 * 1024
MAX_TEXT_CHARS = 5000
HIT_SEED = 4242
MISS_SEED = 7000
RETRY_WINDOW_S = 30.0
RETRY_WINDOW_IDS = 2048  # half of [limits] recent_task_ids: a retried task is still remembered
UNSERVED = ("ja", "sw", "ko")
BASE_MIX = {"hit": 35, "miss": 25, "multi": 15, "retry": 5, "unsupported": 5, "invalid_json": 5,
            "too_long": 5, "fail": 5}
EXPECTED_REPLY = {"unsupported": "unsupported_language", "invalid_json": "invalid_json",
                  "too_long": "text_too_long"}


# ----------------------------------------------------------------------------- appliance


class SoakAppliance(e2e.Appliance):
    """`appliance_e2e.Appliance` (wait_ready, request, stop, close, log) with the soak's config,
    and a child that gets SIGTERM if this process dies without cleaning up (bench/run.py kills
    its benchmark at once on Ctrl-C)."""

    def __init__(self, tmp: Path, workers: int, fake: bool, models_dir: Path):
        self._start(tmp, {
            "limits": {"max_text_chars": MAX_TEXT_CHARS},
            "workers": worker_section(workers, fake, models_dir),
            "shutdown": {"drain_timeout_s": 10.0},
        }, log_level="INFO", preexec_fn=_die_with_parent)


def worker_section(workers: int, fake: bool, models_dir: Path) -> dict:
    """[workers] for `workers` workers on the fake runtime or on the models in `models_dir`."""
    if fake:
        return {"count": workers, "startup_timeout_s": 300.0, "runtime_factory": "tests.fakes.fake_runtime:load"}
    return {"count": workers, "startup_timeout_s": 300.0, "models_dir": str(models_dir)}


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_everything(app: SoakAppliance | None, known: dict[int, psutil.Process]) -> int | None:
    """SIGTERM the appliance and wait for its drain, SIGKILL it if that fails or is interrupted,
    then SIGKILL any child of it still alive. Returns its exit code (None when it was killed)."""
    if app is None:
        return None
    code = None
    try:
        code = app.stop(timeout=30.0)
    except KeyboardInterrupt:
        print("interrupted again: killing the appliance", file=sys.stderr)
    finally:
        app.close()  # SIGKILL if still running, context destroyed
        for proc in known.values():
            try:
                if proc.is_running():  # same pid and start time: still the process we saw
                    proc.kill()
            except psutil.Error:
                pass
    return code


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# ----------------------------------------------------------------------------- memory


def memory(proc: psutil.Process) -> dict | None:
    """RSS (psutil) and RssAnon / RssShmem (/proc/<pid>/status), MiB; None when it is gone (a
    killed worker is a zombie with no memory until the supervisor reaps it)."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        out = {"rss": proc.memory_info().rss / MIB}
    except psutil.Error:
        return None
    if out["rss"] == 0:  # exiting: its memory is already gone
        return None
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "RssShmem"):
                    out["anon" if key == "RssAnon" else "shmem"] = int(value.split()[0]) / 1024
    except (OSError, ValueError):
        pass
    return out


def series_summary(points: list[tuple[float, float]], base_t: float) -> dict:
    """first/min/max/last of (t, MiB) points, and growth from the first point at or after base_t."""
    values = [v for _, v in points]
    row = {"samples": len(values), "first": values[0], "min": min(values), "max": max(values), "last": values[-1]}
    after = [(t, v) for t, v in points if t >= base_t]
    if len(after) >= 2 and after[0][1] > 0:
        row["base_t"] = after[0][0]
        row["base"] = after[0][1]
        row["growth_pct"] = 100.0 * (after[-1][1] - after[0][1]) / after[0][1]
    return row


# ----------------------------------------------------------------------------- traffic


class Texts:
    """Fixed hit texts, and an endless supply of corpus rows whose texts were never sent."""

    def __init__(self, hits: int):
        self.hits = [row["en"] for row in generate_corpus(hits, seed=HIT_SEED)]
        self.seen = set(self.hits)
        self.rows: list[dict[str, str]] = []
        self.seed = MISS_SEED

    def fresh_row(self) -> dict[str, str]:
        while True:
            if not self.rows:
                self.rows = generate_corpus(2000, seed=self.seed)
                self.rows.reverse()
                self.seed += 1
            row = self.rows.pop()
            if not any(text in self.seen for text in row.values()):
                self.seen.update(row.values())
                return row


class Soak:
    """The traffic loop's state: what was sent, what came back, and the checks on it."""

    def __init__(self, app: SoakAppliance, opts, rng: random.Random):
        self.app = app
        self.opts = opts
        self.rng = rng
        self.texts = Texts(12)
        mix = dict(BASE_MIX)
        if not opts.fake:
            mix["miss"] += mix.pop("fail")
        self.categories = list(mix)
        self.weights = list(mix.values())
        self.prefix = f"soak{os.getpid()}-"
        self.ids = itertools.count()
        ctx = app.ctx
        self.dealers = [app.dealer]
        for _ in range(opts.clients - 1):
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(app.endpoints["requests"])
            self.dealers.append(sock)
        self.req = ctx.socket(zmq.REQ)
        self.req.setsockopt(zmq.LINGER, 0)
        self.req.connect(app.endpoints["requests"])
        self.req_busy: str | None = None  # the category of the REQ's unanswered request
        self.sub = app.sub
        self.clients = [*self.dealers, self.req]
        self.turn = itertools.cycle(range(len(self.clients)))
        self.poller = zmq.Poller()
        for sock in (*self.clients, self.sub):
            self.poller.register(sock, zmq.POLLIN)
        # accounting
        self.sent = collections.Counter()  # category -> requests sent
        self.pending: dict[str, tuple[str, float]] = {}  # messageId -> (category, sent at), reply due
        self.bodies: dict[str, bytes] = {}  # messageId -> body, until its reply (kept for retries if accepted)
        self.pending_invalid = collections.Counter()  # socket index -> invalid_json replies due
        self.replies = collections.Counter()  # (category, outcome) -> count
        self.accepted: dict[str, dict] = {}  # taskId -> {"category", "targets", "sent"}
        self.recent: collections.deque = collections.deque()  # (accepted at, taskId, body) for retries
        self.events: dict[str, dict[str, list[dict]]] = {}  # taskId -> target -> [event summary]
        self.complete: set[str] = set()
        self.retried = collections.Counter()  # taskId -> retries answered as duplicates
        self.latency: dict[str, list[float]] = collections.defaultdict(list)
        self.event_count = 0
        self.event_codes = collections.Counter()
        self.foreign_events = 0
        self.unexpected: list[str] = []
        self.unexpected_count = 0

    # ------------------------------------------------------------------ sending

    def _body(self, category: str) -> tuple[str | None, bytes]:
        rng = self.rng
        if category == "invalid_json":
            return None, b'{"messageId": "truncated", "text": "The cat sees'
        mid = f"{self.prefix}{next(self.ids)}"
        body: dict = {"messageId": mid, "taskId": mid}
        if category == "hit":
            body.update(text=rng.choice(self.texts.hits), sourceLanguage="en", targetLanguage="fr")
        elif category in ("miss", "multi", "fail"):
            row = self.texts.fresh_row()
            source = "en" if category == "fail" else rng.choice(LANGUAGES)
            others = [lang for lang in LANGUAGES if lang != source]
            text = f"__error__ {row[source]}" if category == "fail" else row[source]
            body.update(text=text, sourceLanguage="auto" if category != "fail" and rng.random() < 0.25 else source)
            if category == "multi":
                body["targetLanguages"] = others + ([source] if rng.random() < 1 / 3 else [])
            else:
                body["targetLanguage"] = "fr" if category == "fail" else rng.choice(others)
        elif category == "unsupported":
            body.update(text=rng.choice(self.texts.hits), sourceLanguage="en", targetLanguage=rng.choice(UNSERVED))
        elif category == "too_long":
            base = "The cat sees the dog. "
            body.update(text=(base * (MAX_TEXT_CHARS // len(base) + 2))[: MAX_TEXT_CHARS + 1],
                        sourceLanguage="en", targetLanguage="fr")
        return mid, json.dumps(body).encode()

    def send_one(self, now: float) -> None:
        category = self.rng.choices(self.categories, self.weights)[0]
        if category == "retry":
            window = min(RETRY_WINDOW_S, RETRY_WINDOW_IDS / self.opts.rate)
            while self.recent and now - self.recent[0][0] > window:
                self.recent.popleft()
            if not self.recent:
                category = "hit"
        if category == "retry":
            _, mid, raw = self.rng.choice(self.recent)
            mid = f"{mid}#retry{next(self.ids)}"  # its own pending key; the body keeps the original ids
        else:
            mid, raw = self._body(category)
        for _ in range(len(self.clients)):
            index = next(self.turn)
            if self.clients[index] is not self.req or self.req_busy is None:
                break
        sock = self.clients[index]
        if category == "invalid_json":
            self.pending_invalid[index] += 1
        else:
            self.pending[mid] = (category, now)
        if sock is self.req:
            self.req_busy = category
        if category in ("hit", "miss", "multi", "fail"):
            self.bodies[mid] = raw
        sock.send(raw)
        self.sent[category] += 1

    # ------------------------------------------------------------------ receiving

    def _unexpected(self, what: str) -> None:
        self.unexpected_count += 1
        if len(self.unexpected) < 20:
            self.unexpected.append(what)

    def on_reply(self, index: int, raw: bytes, now: float) -> None:
        try:
            reply = json.loads(raw)
        except ValueError:
            self._unexpected(f"unreadable reply {raw[:120]!r}")
            return
        if self.clients[index] is self.req:
            self.req_busy = None
        mid = reply.get("messageId")
        code = reply.get("error", {}).get("code") if reply.get("status") == "error" else None
        if mid is None and code == "invalid_json" and self.pending_invalid[index] > 0:
            self.pending_invalid[index] -= 1
            self.replies[("invalid_json", "error:invalid_json")] += 1
            return
        task_id = reply.get("taskId")
        key = mid
        if mid not in self.pending or reply.get("duplicate"):  # a retry: its pending key has a suffix
            key = next((k for k in self.pending if k.startswith(f"{task_id}#retry")), mid)
        if key not in self.pending:
            self._unexpected(f"reply to nothing pending: {raw[:200]!r}")
            return
        category, sent_at = self.pending.pop(key)
        body = self.bodies.pop(key, None)
        outcome = f"error:{code}" if code else ("duplicate" if reply.get("duplicate") else reply.get("status"))
        self.replies[(category, outcome)] += 1
        if category == "retry":
            if reply.get("duplicate"):
                self.retried[task_id] += 1
            else:
                self._unexpected(f"retry of {task_id} not answered as a duplicate: {raw[:200]!r}")
            return
        if category in EXPECTED_REPLY:
            if code != EXPECTED_REPLY[category]:
                self._unexpected(f"{category} request got {raw[:200]!r}")
            return
        if code:
            self._unexpected(f"{category} request refused: {raw[:300]!r}")
            return
        if reply.get("status") != "queued" or task_id != mid:
            self._unexpected(f"{category} request got {raw[:200]!r}")
            return
        self.accepted[mid] = {"category": category, "targets": list(reply.get("targetLanguages") or []),
                              "sent": sent_at}
        self.recent.append((now, mid, body))
        self._check_complete(mid, now)

    def on_event(self, raw: bytes, now: float) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            self._unexpected(f"unreadable event {raw[:120]!r}")
            return
        task_id = event.get("taskId", "")
        if not task_id.startswith(self.prefix):
            self.foreign_events += 1  # connect_clients' probes
            return
        self.event_count += 1
        if event.get("type") == "translation_completed":
            result = event.get("result", {})
            summary = {"ok": True, "fromCache": bool(result.get("fromCache")),
                       "attempts": event.get("metadata", {}).get("attempts")}
            self.event_codes["completed"] += 1
        else:
            code = event.get("error", {}).get("code")
            summary = {"ok": False, "code": code}
            self.event_codes[f"error:{code}"] += 1
        self.events.setdefault(task_id, {}).setdefault(event.get("targetLanguage"), []).append(summary)
        self._check_complete(task_id, now)

    def _check_complete(self, task_id: str, now: float) -> None:
        task = self.accepted.get(task_id)
        if task is None or task_id in self.complete:
            return
        got = self.events.get(task_id, {})
        if all(t in got for t in task["targets"]):
            self.complete.add(task_id)
            self.latency[task["category"]].append((now - task["sent"]) * 1000)

    def pump(self, timeout_s: float) -> None:
        now = time.monotonic
        for sock, _ in self.poller.poll(max(0, int(timeout_s * 1000))):
            while True:
                try:
                    raw = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if sock is self.sub:
                    self.on_event(raw, now())
                else:
                    self.on_reply(self.clients.index(sock), raw, now())
                if sock is self.req:
                    break

    def settled(self) -> bool:
        return not self.pending and not sum(self.pending_invalid.values()) and len(self.complete) == len(self.accepted)

    # ------------------------------------------------------------------ verdict

    def accounting(self) -> dict:
        exact = lost = duplicated = republished = unexpected_targets = redispatched = from_cache = wrong_kind = 0
        retried_ok = 0
        for task_id, task in self.accepted.items():
            got = self.events.get(task_id, {})
            retries = self.retried[task_id]
            ok = True
            for target in task["targets"]:
                n = len(got.get(target, []))
                lost += n == 0
                again = min(max(0, n - 1), retries)  # a retry may republish a finished target once
                republished += again
                duplicated += max(0, n - 1 - again)
                ok &= 1 <= n <= 1 + retries
                for ev in got.get(target, []):
                    redispatched += ev["ok"] and (ev.get("attempts") or 0) > 1
                    from_cache += ev["ok"] and ev["fromCache"]
                    # "fail" texts must fail (translation_failed); any error elsewhere is a finding
                    wrong_kind += ev["ok"] == (task["category"] == "fail")
            extra = [t for t in got if t not in task["targets"]]
            unexpected_targets += sum(len(got[t]) for t in extra)
            ok &= not extra
            if retries:
                retried_ok += ok
            else:
                exact += ok
        stray = sum(sum(len(v) for v in got.values()) for tid, got in self.events.items() if tid not in self.accepted)
        targets = sum(len(t["targets"]) for t in self.accepted.values())
        retried = sum(1 for t in self.accepted if self.retried[t])
        return {"accepted_tasks": len(self.accepted), "accepted_targets": targets,
                "not_retried_tasks": len(self.accepted) - retried,
                "tasks_exactly_one_event_per_target": exact,
                "retried_tasks": retried, "retried_tasks_within_one_more_per_retry": retried_ok,
                "republished_events_for_retries": republished, "lost_targets": lost,
                "duplicated_events": duplicated, "events_for_unrequested_targets": unexpected_targets,
                "events_for_unaccepted_tasks": stray, "wrong_kind_events": wrong_kind,
                "redispatched_results": redispatched, "from_cache_results": from_cache}


def percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    v = sorted(values)
    return {"n": len(v), "p50_ms": v[len(v) // 2], "p99_ms": v[min(len(v) - 1, int(len(v) * 0.99))], "max_ms": v[-1]}


# ----------------------------------------------------------------------------- monitor and main loop


class Monitor:
    """RSS samples, worker kills and respawn timing, all from `stats` and psutil."""

    def __init__(self, app: SoakAppliance, t0: float):
        self.app = app
        self.t0 = t0
        self.supervisor = psutil.Process(app.proc.pid)
        self.known: dict[int, psutil.Process] = {}  # every child seen, for the final cleanup
        self.samples: list[dict] = []
        self.kills: list[dict] = []
        self.slots: list[dict] = []
        self.kill_turn = 0
        self.restarts0: int | None = None

    def stats(self) -> dict:
        stats = self.app.request({"type": "stats"}, timeout=5.0) or {}
        self.slots = stats.get("workers", {}).get("slots", []) or self.slots
        if self.restarts0 is None and self.slots:
            self.restarts0 = sum(s.get("restarts", 0) for s in self.slots)
        return stats

    def restarts(self) -> int:
        return sum(s.get("restarts", 0) for s in self.slots) - (self.restarts0 or 0)

    def _proc(self, pid: int) -> psutil.Process | None:
        if pid not in self.known:
            try:
                self.known[pid] = psutil.Process(pid)
            except psutil.Error:
                return None
        return self.known[pid]

    def sample(self, soak: Soak, now: float) -> dict:
        self.stats()
        try:
            children = {c.pid: c for c in self.supervisor.children(recursive=True)}
        except psutil.Error:
            children = {}
        for pid, child in children.items():
            self.known.setdefault(pid, child)
        workers = []
        worker_pids = set()
        for slot in self.slots:
            pid = slot.get("pid")
            proc = self._proc(pid) if pid else None
            mem = memory(proc) if proc else None
            if pid:
                worker_pids.add(pid)
            workers.append({"slot": slot["slot"], "pid": pid, "state": slot.get("state"), **(mem or {})})
        other = 0.0
        for pid in children.keys() - worker_pids:
            mem = memory(self.known[pid]) if pid in self.known else None
            other += mem["rss"] if mem else 0.0
        sample = {"t": round(now - self.t0, 1), "supervisor": memory(self.supervisor) or {}, "workers": workers,
                  "other_rss": other, "sent": sum(soak.sent.values()), "accepted": len(soak.accepted),
                  "done": len(soak.complete), "events": soak.event_count, "kills": len(self.kills),
                  "respawns": self.restarts()}
        self.samples.append(sample)
        return sample

    def kill(self, now: float) -> None:
        self.stats()
        ready = [s for s in self.slots if s.get("state") == "ready" and s.get("pid")]
        pending = {k["slot"] for k in self.kills if k.get("respawn_s") is None}
        ready = [s for s in ready if s["slot"] not in pending]
        if not ready:
            print(f"[{now - self.t0:7.1f}s] no ready worker to kill: skipped", flush=True)
            return
        n = len(self.slots)
        order = [(self.kill_turn + i) % n for i in range(n)]
        slot = next(s for i in order for s in ready if s["slot"] == i)
        self.kill_turn = slot["slot"] + 1
        try:
            os.kill(slot["pid"], signal.SIGKILL)
        except ProcessLookupError:
            return
        self.kills.append({"t": round(now - self.t0, 1), "slot": slot["slot"], "pid": slot["pid"],
                           "respawn_s": None, "new_pid": None})
        print(f"[{now - self.t0:7.1f}s] SIGKILL worker slot {slot['slot']} (pid {slot['pid']})", flush=True)

    def watch(self, now: float) -> bool:
        """Times the respawns of killed workers; True while one is still awaited."""
        waiting = [k for k in self.kills if k["respawn_s"] is None]
        if not waiting:
            return False
        self.stats()
        by_slot = {s["slot"]: s for s in self.slots}
        for k in waiting:
            s = by_slot.get(k["slot"], {})
            if s.get("pid") and s.get("pid") != k["pid"] and s.get("state") == "ready":
                k["respawn_s"] = round(now - self.t0 - k["t"], 2)
                k["new_pid"] = s["pid"]
                print(f"[{now - self.t0:7.1f}s] worker slot {k['slot']} respawned (pid {s['pid']}) "
                      f"after {k['respawn_s']:.1f}s", flush=True)
        return any(k["respawn_s"] is None for k in self.kills)


HEADER = (f"{'elapsed':>8} {'sup MiB':>8} {'(anon)':>7}  {'workers MiB':<22} {'other':>6} "
          f"{'sent':>7} {'accepted':>8} {'done':>7} {'events':>7} {'kills':>5} {'respawns':>8}")


def print_sample(s: dict, suffix: str = "") -> None:
    sup = s["supervisor"]
    workers = " ".join(f"{w['rss']:.1f}" if "rss" in w else "-" for w in s["workers"])
    rss = f"{sup['rss']:8.1f} {sup.get('anon', 0):7.1f}" if "rss" in sup else f"{'-':>8} {'-':>7}"
    print(f"{s['t']:7.0f}s {rss}  {workers:<22} {s['other_rss']:6.1f} "
          f"{s['sent']:7} {s['accepted']:8} {s['done']:7} {s['events']:7} {s['kills']:5} {s['respawns']:8}{suffix}",
          flush=True)


def run(app: SoakAppliance, opts) -> dict:
    rng = random.Random(opts.seed)
    soak = Soak(app, opts, rng)
    t0 = time.monotonic()
    mon = Monitor(app, t0)
    app.monitor = mon
    end = t0 + opts.duration
    interval = 1.0 / opts.rate
    next_send = t0
    next_sample = t0
    next_kill = t0 + opts.kill_every if opts.kill_every > 0 else float("inf")
    next_watch = float("inf")
    next_alive = t0
    drain_until = None
    died = None
    print(HEADER, flush=True)
    interrupted = False
    try:
        while True:
            now = time.monotonic()
            if now >= next_alive:
                if app.proc.poll() is not None:  # a finding, not a crash of the soak: report what came before
                    died = app.proc.returncode
                    print(f"[{now - t0:7.1f}s] the appliance exited with code {died}", flush=True)
                    break
                next_alive = now + 1.0
            if drain_until is None and now >= end:
                drain_until = now + opts.drain
                print(f"[{now - t0:7.1f}s] traffic stopped; waiting up to {opts.drain:.0f}s for replies and events",
                      flush=True)
            if drain_until is None:
                while now >= next_send:
                    if now - next_send > 1.0:  # fell behind (a slow stats call): skip, do not burst
                        next_send = now
                    soak.send_one(now)
                    next_send += interval
                if now >= next_kill:
                    mon.kill(now)
                    next_kill += opts.kill_every
                    next_watch = now + 0.5
            if now >= next_sample:
                print_sample(mon.sample(soak, now))
                next_sample = max(next_sample + opts.sample_every, now)  # no burst after a slow stats call
            if now >= next_watch:
                next_watch = now + 0.5 if mon.watch(now) else float("inf")
            if drain_until is not None:
                respawning = any(k["respawn_s"] is None for k in mon.kills)
                if (soak.settled() and not respawning) or now >= drain_until:
                    break
            deadline = min(next_send if drain_until is None else drain_until, next_sample, next_watch,
                           next_kill if drain_until is None else float("inf"), next_alive)
            soak.pump(min(0.2, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:  # Ctrl-C: stop here and report what was seen so far
        interrupted = True
    late_until = time.monotonic() + (0 if interrupted else 1.0)  # late duplicates would show up here
    while time.monotonic() < late_until:
        soak.pump(0.1)
    now = time.monotonic()
    final_stats = {}
    if died is None and not interrupted:
        mon.watch(now)
        print_sample(mon.sample(soak, now))
        final_stats = mon.stats()
    return {"soak": soak, "monitor": mon, "stats": final_stats, "elapsed_s": now - t0, "died": died,
            "interrupted": interrupted}


def summarize(opts, result: dict, exit_code, boot_s: float) -> tuple[dict, list[str]]:
    soak: Soak = result["soak"]
    mon: Monitor = result["monitor"]
    samples = mon.samples
    warmup = opts.warmup if opts.warmup is not None else min(max(60.0, 0.1 * opts.duration), 0.5 * opts.duration)
    rss: dict[str, dict] = {}
    for key in ("rss", "anon", "shmem"):
        points = [(s["t"], s["supervisor"][key]) for s in samples if key in s["supervisor"]]
        if points:
            rss[f"supervisor {key}"] = series_summary(points, warmup)
    incarnations: dict[tuple[int, int], list] = {}
    for s in samples:
        for w in s["workers"]:
            if "rss" in w:
                incarnations.setdefault((w["slot"], w["pid"]), []).append((s["t"], w["rss"], w.get("anon")))
    workers = []
    for (slot, pid), points in sorted(incarnations.items(), key=lambda kv: (kv[0][0], kv[1][0][0])):
        row = {"slot": slot, "pid": pid, "from_t": points[0][0], "to_t": points[-1][0],
               "rss": series_summary([(t, v) for t, v, _ in points], warmup)}
        anon = [(t, a) for t, _, a in points if a is not None]
        if anon:
            row["anon"] = series_summary(anon, warmup)
        workers.append(row)
    other = [(s["t"], s["other_rss"]) for s in samples]
    if other:
        rss["other children rss"] = series_summary(other, warmup)

    acc = soak.accounting()
    kills = mon.kills
    stats = result["stats"]
    problems = []
    if acc["tasks_exactly_one_event_per_target"] != acc["not_retried_tasks"]:
        problems.append(f"{acc['not_retried_tasks'] - acc['tasks_exactly_one_event_per_target']} accepted task(s) "
                        f"without exactly one event per target")
    if acc["retried_tasks_within_one_more_per_retry"] != acc["retried_tasks"]:
        problems.append(f"{acc['retried_tasks'] - acc['retried_tasks_within_one_more_per_retry']} retried task(s) "
                        f"without one event per target plus at most one per retry")
    for key in ("lost_targets", "duplicated_events", "events_for_unrequested_targets", "events_for_unaccepted_tasks",
                "wrong_kind_events"):
        if acc[key]:
            problems.append(f"{key}: {acc[key]}")
    if soak.pending or sum(soak.pending_invalid.values()):
        problems.append(f"{len(soak.pending) + sum(soak.pending_invalid.values())} request(s) got no reply")
    if soak.unexpected_count:
        problems.append(f"{soak.unexpected_count} unexpected reply(ies); first: {soak.unexpected[0]}")
    not_back = [k for k in kills if k["respawn_s"] is None]
    if not_back:
        problems.append(f"{len(not_back)} killed worker(s) not respawned: slots {[k['slot'] for k in not_back]}")
    if mon.restarts() < len(kills):
        problems.append(f"stats counted {mon.restarts()} restart(s) for {len(kills)} kill(s)")
    if result["interrupted"]:
        problems.insert(0, "interrupted: the run is partial (tasks in flight at the interruption count as lost)")
    if result["died"] is not None:
        problems.append(f"the appliance exited with code {result['died']} during the run (log tail below)")
    elif exit_code != 0:
        problems.append(f"exit code after SIGTERM: {exit_code}")
    dropped = stats.get("edge", {})
    if any(dropped.values()):
        problems.append(f"edge dropped replies/events: {dropped}")

    report = {
        "benchmark": "soak",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
        "warmup_s": warmup,
        "boot_s": boot_s,
        "elapsed_s": result["elapsed_s"],
        "cpu_count": os.cpu_count(),
        "sent": dict(soak.sent),
        "replies": {f"{c} {o}": n for (c, o), n in sorted(soak.replies.items())},
        "events": {"total": soak.event_count, **dict(soak.event_codes), "foreign": soak.foreign_events},
        "accounting": acc,
        "latency_ms": {c: percentiles(v) for c, v in sorted(soak.latency.items())},
        "unexpected": soak.unexpected,
        "kills": kills,
        "respawns_in_stats": mon.restarts(),
        "rss_mib": rss,
        "workers_rss_mib": workers,
        "samples": samples,
        "final_stats": stats,
        "exit_code_after_sigterm": exit_code if result["died"] is None else None,
        "died_with_code": result["died"],
        "problems": problems,
    }
    return report, problems


def print_summary(report: dict) -> None:
    def row(name: str, r: dict) -> str:
        growth = f"{r['growth_pct']:+7.1f}%" if "growth_pct" in r else "       -"
        base = f"{r['base']:8.1f} @{r['base_t']:.0f}s" if "base" in r else f"{'-':>8}      "
        return (f"  {name:34} {r['samples']:4} {r['first']:8.1f} {r['min']:8.1f} {r['max']:8.1f} {r['last']:8.1f} "
                f"{base} {growth}")

    print(f"\nsoak: {report['elapsed_s']:.0f}s, warm-up {report['warmup_s']:.0f}s "
          f"(growth is from the first sample after it to the last)")
    print(f"  {'RSS, MiB':34} {'n':>4} {'first':>8} {'min':>8} {'max':>8} {'last':>8} {'base':>14} {'growth':>8}")
    for name, r in report["rss_mib"].items():
        print(row(name, r))
    for w in report["workers_rss_mib"]:
        label = f"worker {w['slot']} pid {w['pid']} ({w['from_t']:.0f}-{w['to_t']:.0f}s)"
        print(row(label + " rss", w["rss"]))
        if "anon" in w:
            print(row(label + " anon", w["anon"]))
    acc = report["accounting"]
    print(f"\nrequests sent: {sum(report['sent'].values())} {report['sent']}")
    print(f"replies: {report['replies']}")
    print(f"events: {report['events']}")
    print(f"accepted tasks {acc['accepted_tasks']} ({acc['accepted_targets']} targets); not retried "
          f"{acc['not_retried_tasks']}, with exactly one event per target {acc['tasks_exactly_one_event_per_target']}; "
          f"retried {acc['retried_tasks']}, with one event per target plus at most one per retry "
          f"{acc['retried_tasks_within_one_more_per_retry']} ({acc['republished_events_for_retries']} republished)")
    print(f"  lost {acc['lost_targets']}, duplicated {acc['duplicated_events']}, "
          f"unrequested targets {acc['events_for_unrequested_targets']}, unaccepted tasks "
          f"{acc['events_for_unaccepted_tasks']}, wrong kind {acc['wrong_kind_events']}; "
          f"results from cache {acc['from_cache_results']}, redispatched {acc['redispatched_results']}")
    lat = ", ".join(f"{c} p50 {v['p50_ms']:.0f} p99 {v['p99_ms']:.0f} max {v['max_ms']:.0f}"
                    for c, v in report["latency_ms"].items() if v)
    print(f"latency ms, send -> last event: {lat}")
    respawn = [k["respawn_s"] for k in report["kills"]]
    print(f"kills {len(report['kills'])}, respawned {sum(r is not None for r in respawn)} "
          f"(seconds to ready: {respawn}), restarts counted in stats {report['respawns_in_stats']}")
    st = report["final_stats"]
    if st:
        print(f"appliance: cache {st.get('cache', {}).get('hit_rate')} hit rate, tasks {st.get('tasks')}, "
              f"edge {st.get('edge')}; exit code after SIGTERM {report['exit_code_after_sigterm']}")
    if report["died_with_code"] is not None:
        print(f"appliance log tail:\n{report['appliance_log_tail'][-2500:]}")
    for p in report["problems"]:
        print(f"PROBLEM: {p}")
    if not report["problems"]:
        print("OK: every accepted target got exactly one event (retried tasks: plus at most one per retry)")


# ----------------------------------------------------------------------------- hostile mode

RSS_LIMIT_MIB = 250.0  # the bound on the supervisor, throughout
HOSTILE_DRAIN_S = 150.0  # past [limits] task_timeout_s (120 s): a target with no event by then is lost
HTTP_TOKEN = "soak-token-for-the-honest-http-client"
PIVOT_TIMES = ("20h30", "18h15", "7h05", "21h10", "12h45")


def honest_pool(size: int, seed: int) -> list[dict]:
    """Honest requests, each text once: neural (basic, medium, auto), Apertium-bound (rule-based),
    pivot legs with times ("à 20h30"), through native 5555, compat and HTTP."""
    pool = []
    for i, row in enumerate(generate_corpus(size, seed=seed)):
        kind = i % 8
        if kind == 0:
            e = ("native", row["en"], "en", ["fr"], "basic")
        elif kind == 1:
            e = ("native", row["en"], "en", ["fr", "es", "de"], "medium")
        elif kind == 2:
            e = ("native", row["fr"], "fr", ["en"], "auto")
        elif kind == 3:
            e = ("native", row["en"], "en", ["es"], "rule-based")
        elif kind == 4:
            e = ("native", row["es"], "es", ["fr"], "rule-based")
        elif kind == 5:
            e = ("compat", row["en"], "en", ["fr", "es"], "medium")
        elif kind == 6:
            e = ("http", row["en"], "en", ["fr"], "basic")
        else:
            text = f"{row['fr'].rstrip('.?! ')} à {PIVOT_TIMES[i % len(PIVOT_TIMES)]}."
            e = ("native", text, "fr", ["es"] if i % 16 == 7 else ["de"], "rule-based" if i % 16 == 7 else "auto")
        channel, text, source, targets, model = e
        pool.append({"channel": channel, "text": text, "source": source, "targets": targets, "model": model})
    return pool


def reference_translations(app, pool: list[dict]) -> dict[tuple[str, str, str, str], str]:
    """Each honest text's translations, asked alone and synchronously of a quiet appliance whose
    cache is off: (text, source, target, modelType) -> translatedText."""
    refs: dict[tuple[str, str, str, str], str] = {}
    for n, e in enumerate(pool):
        body = {"messageId": f"ref-{n}", "text": e["text"], "sourceLanguage": e["source"],
                "targetLanguages": e["targets"], "modelType": e["model"], "sync": True}
        reply = app.request(body, timeout=120.0)
        if not reply or reply.get("status") != "completed":
            raise RuntimeError(f"no reference for {e}: {reply}")
        for result in reply["results"]:
            refs[(e["text"], e["source"], result["targetLanguage"], e["model"])] = result["translatedText"]
    return refs


class HostileAppliance(SoakAppliance):
    """The soak's appliance with compat (Meeshy's gateway drop-in) and HTTP with a token on; or,
    `quiet`, the reference appliance: no cache, nothing but 5555. `curve`: CURVE on 5555/5556, one
    key pair for the honest clients and one for the attackers (`curve_client(name)`), both allowed:
    the attackers are authenticated clients, and per-client scope is what keeps them apart."""

    def __init__(self, tmp: Path, workers: int, models_dir: Path, quiet: bool = False, curve: bool = False):
        sections = {"limits": {"max_text_chars": MAX_TEXT_CHARS},
                    "workers": worker_section(workers, False, models_dir),
                    "shutdown": {"drain_timeout_s": 10.0}}
        if quiet:
            sections["cache"] = {"enabled": False}
        else:
            sections["server"] = {"http_enabled": True}
            sections["security"] = {"http_token": HTTP_TOKEN}
            sections["compat"] = {"enabled": True, "meeshy_pull_port": 0, "meeshy_pub_port": 0, "pong_interval_s": 5.0}
        tmp.mkdir(parents=True, exist_ok=True)
        self.keys = tmp / "keys" if curve else None
        if self.keys is not None:
            self.server_public, server_secret = curve_keys.generate(self.keys, "server")
            allowed = self.keys / "allowed"
            allowed.mkdir()
            for name in ("honest", "attacker"):
                shutil.copy(curve_keys.generate(self.keys, name)[0], allowed)
            sections["security"] |= {"curve": True, "server_secret_key": str(server_secret),
                                     "client_keys_dir": str(allowed)}
        self._start(tmp, sections, log_level="INFO", preexec_fn=_die_with_parent)
        if self.keys is not None:  # every socket of self.ctx (5555, 5556) is the honest client's
            curve_keys.client_options(self.ctx, self.server_public, self.keys / "honest.key_secret")

    def curve_client(self, name: str) -> zmq.Context:
        """A context whose sockets are CURVE client `name`'s."""
        ctx = zmq.Context()
        curve_keys.client_options(ctx, self.server_public, self.keys / f"{name}.key_secret")
        return ctx


class HttpCaller(threading.Thread):
    """The honest token holder: one synchronous POST /translate at a time, from its own thread so a
    held-shut HTTP port stalls only it. Outcomes go to `done` for the main loop."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url + "/translate"
        self.todo: queue.Queue = queue.Queue(maxsize=1)
        self.done: queue.Queue = queue.Queue()

    def run(self) -> None:
        while True:
            task_id, body = self.todo.get()
            if task_id is None:
                return
            req = urllib.request.Request(self.url, data=json.dumps(body).encode(), method="POST", headers={
                "Authorization": f"Bearer {HTTP_TOKEN}", "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=20) as resp:
                    self.done.put((task_id, json.loads(resp.read())))
            except (OSError, ValueError) as exc:  # urllib's errors are OSErrors; a bad body ValueError
                self.done.put((task_id, {"http_error": f"{type(exc).__name__}: {exc}"[:200]}))


class Honest:
    """Honest clients and the check of each of their results against its reference.

    native  two DEALERs on 5555 and the soak's SUB on 5556; taskIds predictable (h<pid>-<n>, as a
            gateway numbering its messages would), so the squatting attacks can take them first
    compat  a PUSH to the compat PULL and a SUB on the compat PUB, taskIds UUIDs (the gateway's)
    http    the token holder (HttpCaller)

    A result is `good` when it equals the reference; `foreign` when it holds an attacker's text
    (attacks.MARK) or another honest text's translation; else `wrong`. An `overloaded` answer is
    asked again a second later with the same taskId (a gateway's retry), not counted as a failure.
    """

    def __init__(self, app: HostileAppliance, pool: list[dict], refs: dict, rng: random.Random,
                 compat_ctx: zmq.Context | None = None):
        self.app = app
        self.refs = refs
        self.all_refs = set(refs.values())  # another honest text's translation, whole, is foreign
        self.ref_texts = {t for t in self.all_refs if len(t) > 12}  # and so is one inside a result
        self.rng = rng
        self.order = itertools.cycle(rng.sample(pool, len(pool)))
        self.native_order = itertools.cycle([e for e in pool if e["channel"] == "native"])
        self.prefix = f"h{os.getpid()}-"
        self.ids = itertools.count()
        self.upcoming_native: collections.deque = collections.deque()
        ctx = app.ctx
        self.dealers = []
        for _ in range(2):
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(app.endpoints["requests"])
            self.dealers.append(sock)
        self.turn = itertools.cycle(self.dealers)
        self.sub = app.sub
        ctx = compat_ctx or ctx  # the compat door is plain ZMTP, never CURVE
        self.push = ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect(app.endpoints["compat_pull"])
        self.compat_sub = ctx.socket(zmq.SUB)
        self.compat_sub.setsockopt(zmq.LINGER, 0)
        self.compat_sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.compat_sub.connect(app.endpoints["compat_events"])
        self.http = HttpCaller(app.endpoints["http"])
        self.http.start()
        self.poller = zmq.Poller()
        for sock in (*self.dealers, self.sub, self.compat_sub):
            self.poller.register(sock, zmq.POLLIN)
        self.entries: dict[str, dict] = {}  # taskId -> pool entry, every honest request sent
        self.channel: dict[str, str] = {}
        self.accepted: dict[str, dict] = {}  # taskId -> {"targets", "sent"}: waiting for events
        self.complete: set[str] = set()
        self.got: dict[str, dict[str, list[str]]] = {}  # taskId -> target -> ["good"|"foreign"|...]
        self.retry_at: list[tuple[float, str]] = []
        self.sent = collections.Counter()
        self.counts = collections.Counter()
        self.examples: dict[str, list[str]] = collections.defaultdict(list)
        self.event_count = 0

    # ------------------------------------------------------------------ sending

    def upcoming(self, n: int) -> list[tuple[str, dict]]:
        """The next `n` native requests, (taskId, body), drawn now so an attacker can take them."""
        while len(self.upcoming_native) < n:
            e = next(self.native_order)
            task_id = f"{self.prefix}{next(self.ids)}"
            self.upcoming_native.append((task_id, self._body(task_id, e)))
            self.entries[task_id] = e
            self.channel[task_id] = "native"
        return list(itertools.islice(self.upcoming_native, n))

    @staticmethod
    def _body(task_id: str, e: dict) -> dict:
        return {"messageId": task_id, "taskId": task_id, "text": e["text"], "sourceLanguage": e["source"],
                "targetLanguages": e["targets"], "modelType": e["model"]}

    def send_one(self, now: float) -> None:
        e = next(self.order)
        if e["channel"] == "native":
            task_id, body = self.upcoming(1)[0]
            self.upcoming_native.popleft()
            self._send_native(task_id, body)
            self.sent["native"] += 1
            return
        elif e["channel"] == "compat":
            task_id = str(uuid.uuid4())
            self.entries[task_id] = e
            self._send_compat(task_id)
            self.accepted[task_id] = {"targets": e["targets"], "sent": now}  # no reply channel: sent is accepted
        elif self.http.todo.empty():
            task_id = f"{self.prefix}{next(self.ids)}"
            self.entries[task_id] = e
            self.http.todo.put((task_id, dict(self._body(task_id, e), sync=True)))
        else:
            self.counts["http_busy_skipped"] += 1
            return
        self.channel[task_id] = e["channel"]
        self.sent[e["channel"]] += 1

    def _send_native(self, task_id: str, body: dict) -> None:
        next(self.turn).send(json.dumps(body, ensure_ascii=False).encode())

    def _send_compat(self, task_id: str) -> None:
        e = self.entries[task_id]
        self.push.send(json.dumps({"type": "translation", "taskId": task_id, "messageId": task_id, "text": e["text"],
                                   "sourceLanguage": e["source"], "targetLanguages": e["targets"],
                                   "conversationId": "honest", "modelType": e["model"],
                                   "timestamp": int(time.time() * 1000)}, ensure_ascii=False).encode())

    def resend_due(self, now: float) -> None:
        due = [t for at, t in self.retry_at if at <= now]
        self.retry_at = [(at, t) for at, t in self.retry_at if at > now]
        for task_id in due:
            self.counts["overloaded_retries"] += 1
            if self.channel[task_id] == "native":
                self._send_native(task_id, self._body(task_id, self.entries[task_id]))
            else:
                self._send_compat(task_id)

    # ------------------------------------------------------------------ receiving

    def pump(self, timeout_s: float) -> None:
        now = time.monotonic()
        for sock, _ in self.poller.poll(max(0, int(timeout_s * 1000))):
            for frames in harness.waiting(sock, multipart=True):
                raw = frames[-1]  # a CURVE client's events: [topic, json]
                if sock is self.sub:
                    self.on_native_event(json.loads(raw))
                elif sock is self.compat_sub:
                    self.on_compat_event(json.loads(raw), now)
                else:
                    self.on_reply(json.loads(raw), now)
        while not self.http.done.empty():
            self.on_http(*self.http.done.get(), now)

    def on_reply(self, reply: dict, now: float) -> None:
        task_id = reply.get("taskId")
        if task_id not in self.entries:
            self.counts["reply_to_nothing"] += 1
            return
        if reply.get("status") == "queued":
            targets = self.entries[task_id]["targets"]
            self.accepted[task_id] = {"targets": targets, "sent": now}
            if all(t in self.got.get(task_id, {}) for t in targets):  # its events came before this reply
                self.complete.add(task_id)
            return
        code = reply.get("error", {}).get("code")
        if code == "overloaded":
            self.retry_at.append((now + 1.0, task_id))
        else:
            self.counts[f"refused:{code}"] += 1  # task_id_conflict: its taskId was squatted
            self._example(f"refused:{code}", f"{task_id}: {json.dumps(reply)[:200]}")

    def on_native_event(self, event: dict) -> None:
        task_id = event.get("taskId", "")
        ok = event.get("type") == "translation_completed"
        text = event.get("result", {}).get("translatedText", "") if ok else ""
        if task_id.startswith("atk-") and ok:
            leaked = next((t for t in self.ref_texts if t in text), None)
            if leaked:  # an attacker's result holds an honest client's translation
                self.counts["leaked_to_attacker"] += 1
                self._example("leaked_to_attacker", f"{task_id}: {text[:200]!r}")
            return
        if self.channel.get(task_id) != "native":
            return
        self.record(task_id, event.get("targetLanguage"), ok, text, event.get("error", {}).get("code"))

    def on_compat_event(self, event: dict, now: float) -> None:
        task_id = event.get("taskId", "")
        if task_id not in self.entries or event.get("type") not in ("translation_completed", "translation_error"):
            return
        if self.channel.get(task_id) != "compat":
            # The compat squat's own task under a native client's taskId (its own scope, its own
            # events): harmless. Had it moved the native task's events, they would be lost on 5556.
            self.counts["compat_events_under_native_ids"] += 1
            return
        ok = event["type"] == "translation_completed"
        if not ok and event.get("error") == "translation pool full":
            self.retry_at.append((now + 1.0, task_id))  # overloaded: the gateway asks again
            return
        code = (event.get("metadata") or {}).get("errorCode") or event.get("error")
        self.record(task_id, event.get("targetLanguage") or event.get("result", {}).get("targetLanguage"), ok,
                    event.get("result", {}).get("translatedText", "") if ok else "", code)

    def on_http(self, task_id: str, answer: dict, now: float) -> None:
        if "http_error" in answer:
            self.counts["http_failed"] += 1
            self._example("http_failed", answer["http_error"])
            return
        if answer.get("status") == "error" and answer.get("error", {}).get("code") == "overloaded":
            self.counts["http_overloaded"] += 1
            return
        self.accepted[task_id] = {"targets": self.entries[task_id]["targets"], "sent": now}
        for result in answer.get("results", []):
            self.record(task_id, result["targetLanguage"], True, result["translatedText"], None)
        for error in answer.get("errors", []):
            self.record(task_id, error["targetLanguage"], False, "", error["error"]["code"])

    def record(self, task_id: str, target: str, ok: bool, text: str, code) -> None:
        self.event_count += 1
        e = self.entries[task_id]
        ref = self.refs.get((e["text"], e["source"], target, e["model"]))
        if not ok:
            verdict = f"error:{code}"
        elif text == ref:
            verdict = "good"
        elif attacks.MARK in text or text in self.all_refs or any(t in text for t in self.ref_texts if t != ref):
            verdict = "foreign"
        else:
            verdict = "wrong"
        self.counts[verdict] += 1
        if verdict != "good":
            self._example(verdict, f"{task_id} {e['source']}->{target} {e['model']} {e['text'][:80]!r}: "
                                   f"got {text[:120]!r}, reference {str(ref)[:120]!r}")
        self.got.setdefault(task_id, {}).setdefault(target, []).append(verdict)
        task = self.accepted.get(task_id)
        if task is not None and all(t in self.got[task_id] for t in task["targets"]):
            self.complete.add(task_id)

    def _example(self, kind: str, what: str) -> None:
        if len(self.examples[kind]) < 5:
            self.examples[kind].append(what)

    def settled(self) -> bool:
        return not self.retry_at and len(self.complete) == len(self.accepted)

    def accounting(self) -> dict:
        lost = duplicated = 0
        for task_id, task in self.accepted.items():
            got = self.got.get(task_id, {})
            for target in task["targets"]:
                n = len(got.get(target, []))
                lost += n == 0
                duplicated += max(0, n - 1)
        return {"sent": dict(self.sent), "accepted_tasks": len(self.accepted),
                "accepted_targets": sum(len(t["targets"]) for t in self.accepted.values()),
                "lost_targets": lost, "duplicated_events": duplicated,
                "not_sent_overloaded_at_end": len(self.retry_at), **dict(self.counts)}

    def close(self) -> None:
        try:
            self.http.todo.put_nowait((None, None))
        except queue.Full:
            pass  # still calling: a daemon thread, it ends with this process
        for sock in (*self.dealers, self.push, self.compat_sub):
            sock.close(linger=0)


def run_hostile(app: HostileAppliance, honest: Honest, arena: attacks.Arena, opts) -> dict:
    """Honest traffic at --rate, one attack every --attack-every seconds in turn, a worker killed
    every --kill-every, RSS (and a ping's round trip) sampled every --sample-every. The traffic
    goes on past --duration until every attack has run at least once (a loaded machine may take
    longer than --attack-every per attack)."""
    t0 = time.monotonic()
    mon = Monitor(app, t0)
    app.monitor = mon
    end = t0 + opts.duration
    next_send = next_sample = next_attack = t0
    next_kill = t0 + opts.kill_every if opts.kill_every > 0 else float("inf")
    turn = itertools.cycle(attacks.ATTACKS)
    launched = collections.Counter()
    pings: list[float] = []
    drain_until = died = None
    interrupted = False
    print(HEADER + f" {'ping ms':>8}", flush=True)
    try:
        while True:
            now = time.monotonic()
            if app.proc.poll() is not None:
                died = app.proc.returncode
                print(f"[{now - t0:7.1f}s] the appliance exited with code {died}", flush=True)
                break
            if drain_until is None and now >= end and len(launched) == len(attacks.ATTACKS):
                drain_until = now + opts.drain
                arena.release_http()
                print(f"[{now - t0:7.1f}s] traffic stopped; waiting up to {drain_until - now:.0f}s", flush=True)
            if drain_until is None:
                while now >= next_send:
                    next_send = max(next_send + 1.0 / opts.rate, now - 1.0)
                    honest.send_one(now)
                if now >= next_attack:
                    attack = next(turn)
                    what = attack(arena)
                    launched[attack.__name__] += 1
                    print(f"[{now - t0:7.1f}s] attack {attack.__name__}: {what}", flush=True)
                    next_attack = now + opts.attack_every
                if now >= next_kill:
                    mon.kill(now)
                    next_kill += opts.kill_every
            honest.resend_due(now)
            arena.drain()
            if now >= next_sample:
                started = time.monotonic()
                pong = app.request({"type": "ping"}, timeout=30.0)
                pings.append((time.monotonic() - started) * 1000 if pong else float("inf"))
                sample = mon.sample(honest, now)
                sample["ping_ms"] = pings[-1]
                mon.watch(now)
                print_sample(sample, suffix=f" {pings[-1]:8.0f}")
                next_sample = max(next_sample + opts.sample_every, time.monotonic())
            if drain_until is not None and ((honest.settled() and not any(k["respawn_s"] is None for k in mon.kills))
                                            or now >= drain_until):
                break
            honest.pump(min(0.05, max(0.0, min(next_send, next_attack, next_sample) - time.monotonic())))
    except KeyboardInterrupt:
        interrupted = True
    late_until = time.monotonic() + (0 if interrupted else 1.0)
    while time.monotonic() < late_until:
        honest.pump(0.1)
    if died is None and not interrupted:
        print_sample(mon.sample(honest, time.monotonic()))
    return {"monitor": mon, "launched": dict(launched), "pings_ms": pings, "died": died, "interrupted": interrupted,
            "elapsed_s": time.monotonic() - t0}


def summarize_hostile(opts, honest: Honest, arena: attacks.Arena, result: dict, exit_code) -> tuple[dict, list[str]]:
    mon: Monitor = result["monitor"]
    sup = [s["supervisor"]["rss"] for s in mon.samples if "rss" in s["supervisor"]]
    acc = honest.accounting()
    pings = [p for p in result["pings_ms"] if p != float("inf")]
    problems = []
    for key in ("foreign", "wrong", "lost_targets", "duplicated_events", "leaked_to_attacker", "http_failed"):
        if acc.get(key):
            problems.append(f"{key}: {acc[key]}")
    errors = {k: v for k, v in acc.items() if k.startswith(("error:", "refused:"))}
    if errors:
        problems.append(f"honest requests refused or failed: {errors}")
    if sup and max(sup) >= RSS_LIMIT_MIB:
        problems.append(f"supervisor RSS reached {max(sup):.0f} MiB (limit {RSS_LIMIT_MIB:.0f})")
    if len(pings) < len(result["pings_ms"]):
        problems.append(f"{len(result['pings_ms']) - len(pings)} ping(s) unanswered within 30 s")
    if result["died"] is not None:
        problems.append(f"the appliance exited with code {result['died']} during the run")
    elif exit_code != 0:
        problems.append(f"exit code after SIGTERM: {exit_code}")
    if result["interrupted"]:
        problems.insert(0, "interrupted: the run is partial")
    report = {
        "benchmark": "soak --hostile", "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "elapsed_s": result["elapsed_s"],
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
        "attacks_launched": result["launched"], "attacker": dict(arena.counts), "honest": acc,
        "examples": dict(honest.examples), "kills": mon.kills,
        "supervisor_rss_mib": {"first": sup[0], "max": max(sup), "last": sup[-1]} if sup else {},
        "ping_ms": percentiles(pings), "samples": mon.samples, "problems": problems,
    }
    return report, problems


def print_hostile_summary(report: dict) -> None:
    acc = report["honest"]
    print(f"\nhostile soak: {report['elapsed_s']:.0f}s; attacks {report['attacks_launched']}")
    print(f"attacker sockets: {report['attacker']}")
    print(f"honest: sent {acc['sent']}, accepted {acc['accepted_tasks']} tasks ({acc['accepted_targets']} targets)")
    print(f"  results: {({k: v for k, v in acc.items() if k not in ('sent', 'accepted_tasks', 'accepted_targets')})}")
    for kind, lines in report["examples"].items():
        for line in lines[:3]:
            print(f"  e.g. {kind}: {line}")
    rss = report["supervisor_rss_mib"]
    if rss:
        print(f"supervisor RSS MiB: first {rss['first']:.0f}, max {rss['max']:.0f}, last {rss['last']:.0f} "
              f"(limit {RSS_LIMIT_MIB:.0f}); ping ms {report['ping_ms']}")
    print(f"kills {len(report['kills'])}, respawned {sum(k['respawn_s'] is not None for k in report['kills'])}")
    for p in report["problems"]:
        print(f"PROBLEM: {p}")
    if not report["problems"]:
        print("OK: every honest result equals its reference; none lost, duplicated or foreign; RSS within bounds")


def main_hostile(opts) -> int:
    """Reference translations from a quiet appliance, then the hostile mix against a fresh one."""
    if not (opts.models_dir / "manifest.json").exists():
        print(f"no {opts.models_dir}/manifest.json: run `python export_models.py --builtin` (and --apertium)",
              file=sys.stderr)
        return 2
    rng = random.Random(opts.seed)
    pool = honest_pool(opts.honest_texts, MISS_SEED + opts.seed)
    tmp = Path(tempfile.mkdtemp(prefix="meeshy-hostile-"))
    app = honest = arena = None
    try:
        quiet = HostileAppliance(tmp / "quiet", opts.workers, opts.models_dir.resolve(), quiet=True)
        try:
            quiet.wait_ready()
            started = time.monotonic()
            refs = reference_translations(quiet, pool)
            print(f"references: {len(refs)} translations of {len(pool)} honest texts, alone, in "
                  f"{time.monotonic() - started:.0f}s", flush=True)
        finally:
            stop_everything(quiet, {})
        app = HostileAppliance(tmp / "soak", opts.workers, opts.models_dir.resolve(), curve=opts.curve)
        app.wait_ready()
        plain = zmq.Context() if opts.curve else None
        if opts.curve:
            e2e.connect_clients(app, topic=curve_keys.client_topic(app.keys / "honest.key_secret"))
        else:
            e2e.connect_clients(app)
        honest = Honest(app, pool, refs, rng, compat_ctx=plain)
        attacker_ctx = app.curve_client("attacker") if opts.curve else app.ctx
        arena = attacks.Arena(attacker_ctx, app.endpoints, random.Random(opts.seed + 1), HTTP_TOKEN, honest.upcoming,
                              compat_ctx=plain)
        print(f"ready; endpoints {app.endpoints}", flush=True)
        result = run_hostile(app, honest, arena, opts)
        arena.close()
        honest.close()
        for ctx in {plain, attacker_ctx} - {None, app.ctx}:
            ctx.destroy(linger=0)
        exit_code = stop_everything(app, result["monitor"].known)
    except BaseException:
        if app is not None:
            print(f"appliance log tail:\n{app.log(3000)}", file=sys.stderr)
            monitor = getattr(app, "monitor", None)
            stop_everything(app, monitor.known if monitor else {})
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report, problems = summarize_hostile(opts, honest, arena, result, exit_code)
    report["appliance_log_tail"] = app.log(4000)
    shutil.rmtree(tmp, ignore_errors=True)
    print_hostile_summary(report)
    if opts.out:
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
        print(f"wrote {opts.out}")
    return 130 if result["interrupted"] else (1 if problems else 0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of traffic (default 600)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    parser.add_argument("--kill-every", type=float, default=180.0,
                        help="SIGKILL a worker this often, seconds; 0: never (default 180)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="RSS sample period, seconds (default 10)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="growth is measured from the first sample after this (default: 10%% of the run, "
                             "at least 60 s, at most half the run)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--clients", type=int, default=3, help="pipelining DEALER clients, besides one REQ (default 3)")
    parser.add_argument("--fake", action="store_true", help="the fake runtime instead of the built-in models")
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--drain", type=float, default=None,
                        help="after the traffic, seconds to wait for outstanding events (default 60; --hostile: 150, "
                             "past [limits] task_timeout_s, so a target with no event then is lost)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--hostile", action="store_true",
                        help="honest native, compat and HTTP clients checked against reference translations, "
                             "beside the attacks of bench/attacks.py in turn (built-in models and Apertium)")
    parser.add_argument("--attack-every", type=float, default=2.0, help="--hostile: seconds between attacks (default 2)")
    parser.add_argument("--curve", action="store_true",
                        help="--hostile: CURVE on 5555/5556, the attackers an allowed client of their own")
    parser.add_argument("--honest-texts", type=int, default=400,
                        help="--hostile: distinct honest texts, each translated alone first (default 400)")
    opts = parser.parse_args(argv)
    if opts.drain is None:
        opts.drain = HOSTILE_DRAIN_S if opts.hostile else 60.0
    if opts.hostile:
        if opts.fake:
            parser.error("--hostile needs the built-in models and Apertium (no --fake)")
        return opts
    if opts.rate <= 0 or opts.duration <= 0 or opts.sample_every <= 0 or opts.clients < 1:
        parser.error("--rate, --duration, --sample-every and --clients must be positive")
    if not opts.fake and not (opts.models_dir / "manifest.json").exists():
        parser.error(f"no {opts.models_dir}/manifest.json: run `python export_models.py --builtin`, or use --fake")
    return opts


def serve_and_soak(opts) -> tuple[dict, float, int | None, str] | None:
    """Boot the soak's appliance, run the traffic and stop it with SIGTERM: (the run's result, boot
    seconds, exit code, log tail); None after Ctrl-C before the run could finish (appliance stopped)."""
    tmp = Path(tempfile.mkdtemp(prefix="meeshy-soak-"))  # short: ipc:// paths are limited to 107 bytes
    app = None
    known: dict[int, psutil.Process] = {}
    try:
        t0 = time.perf_counter()
        app = SoakAppliance(tmp, opts.workers, opts.fake, opts.models_dir.resolve())
        app.wait_ready()
        boot_s = time.perf_counter() - t0
        e2e.connect_clients(app)
        print(f"ready in {boot_s:.1f}s; endpoints {app.endpoints}", flush=True)
        result = run(app, opts)
        known = result["monitor"].known
        if result["interrupted"]:
            print("\ninterrupted: stopping the appliance", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the appliance", file=sys.stderr, flush=True)
        monitor = getattr(app, "monitor", None)
        code = stop_everything(app, monitor.known if monitor else {})
        print(f"appliance stopped (exit code {code})", file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    except BaseException as exc:
        tail = app.log(3000) if app is not None else ""
        if tail and tail not in str(exc):
            print(f"appliance log tail:\n{tail}", file=sys.stderr)
        monitor = getattr(app, "monitor", None)
        stop_everything(app, monitor.known if monitor else {})
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        exit_code = stop_everything(app, known)
        log_tail = app.log(4000)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result, boot_s, exit_code, log_tail


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if opts.hostile:
        return main_hostile(opts)
    what = "fake runtime" if opts.fake else f"built-in models ({opts.models_dir})"
    print(f"soak: {opts.duration:.0f}s at {opts.rate:g} req/s, {opts.workers} worker(s), {what}, "
          f"kill every {opts.kill_every:g}s, sample every {opts.sample_every:g}s; load {e2e.load_average()}",
          flush=True)
    served = serve_and_soak(opts)
    if served is None:
        return 130
    result, boot_s, exit_code, log_tail = served
    report, problems = summarize(opts, result, exit_code, boot_s)
    report["appliance_log_tail"] = log_tail
    print_summary(report)
    if opts.out:
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
        print(f"wrote {opts.out}")
    if result["interrupted"]:
        return 130
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
