"""Several processes share the table while one is `kill -9`ed mid-write, over and over.

Every value is derived from its key, so a reader can tell a wrong value from a right one. Two
checker processes read and write for the whole test; each round spawns a victim that writes too
and is SIGKILLed. In most rounds the victim is parked, holding the lock, at a chosen point inside
a mutation (a test failpoint), so the kill is mid-write by construction; in the others it is
killed wherever it happens to be. After each kill the checkers must make progress again (the
lock was released, the table repaired). At the end: no wrong value was ever seen, the structure
verifies, and every round's mid-write kill was repaired.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time

import pytest

from ipc.cache_key import cache_key
from ipc.shm_cache import ShmCache

N_KEYS = 48
ROUNDS = 20
POINTS = ["evict", "value", "publish", "link", "touch", None]  # None: killed anywhere


def key_of(i: int) -> bytes:
    return cache_key("m", "r", "en", "fr", f"text {i}")


def value_of(i: int) -> bytes:
    # Lengths from 8 to ~150 bytes: one to five 32-byte blocks.
    return (b"value %d;" % i) * (1 + i % 15)


def poll_until(predicate, deadline_s: float, what: str) -> None:
    end = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def exercise(cache: ShmCache, rnd: random.Random) -> bool:
    """One read (and maybe write) of a random key; False if a wrong value came back."""
    i = rnd.randrange(N_KEYS)
    data = cache.get_bytes(key_of(i))
    if data is not None and data != value_of(i):
        return False
    if data is None or rnd.random() < 0.3:
        cache.put_bytes(key_of(i), value_of(i))
    return True


def checker(name: str, slot: int, ops, wrong, stop) -> None:
    cache = ShmCache.attach(name)
    rnd = random.Random(slot)
    while not stop.is_set():
        if not exercise(cache, rnd):
            wrong[slot] += 1
        ops[slot] += 1
    cache.close()


def victim(name: str, seed: int, point: str | None, parked, ops) -> None:
    cache = ShmCache.attach(name)
    rnd = random.Random(seed)
    if point is not None:
        def park(at: str) -> None:
            if at == point and rnd.random() < 0.5:
                parked.set()
                time.sleep(3600)  # holding the lock, mid-mutation, until SIGKILL

        cache._failpoint = park
    while True:
        exercise(cache, rnd)
        ops.value += 1


@pytest.mark.timeout(90)
def test_kill_9_mid_write_never_yields_a_wrong_value():
    ctx = mp.get_context("spawn")
    name = f"meeshy-crash-{os.getpid()}"
    # Small on purpose: puts evict all the time, so most writes restructure the table.
    table = ShmCache.create(name, entries=24, max_bytes=24 * 64, block_size=32, replace=True)
    ops = ctx.RawArray("q", 2)
    wrong = ctx.RawArray("q", 2)
    stop = ctx.Event()
    checkers = [ctx.Process(target=checker, args=(name, s, ops, wrong, stop)) for s in range(2)]
    victims = []
    try:
        for p in checkers:
            p.start()
        poll_until(lambda: min(ops) > 100, 30, "checkers to start")
        parked_kills = 0
        for round_ in range(ROUNDS):
            point = POINTS[round_ % len(POINTS)]
            parked = ctx.Event()
            victim_ops = ctx.RawValue("q", 0)
            proc = ctx.Process(target=victim, args=(name, round_, point, parked, victim_ops))
            proc.start()
            victims.append(proc)
            if point is None:
                poll_until(lambda v=victim_ops: v.value > 200, 20, "the victim to run")
            else:
                assert parked.wait(20), f"victim never reached failpoint {point!r}"
                parked_kills += 1
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(10)
            assert proc.exitcode == -signal.SIGKILL
            before = list(ops)
            poll_until(lambda b=before: all(n > w + 50 for n, w in zip(ops, b, strict=True)), 20,
                       f"checkers to make progress after kill {round_} ({point})")
        assert list(wrong) == [0, 0]
    finally:
        for p in victims:
            if p.is_alive():
                p.kill()
                p.join()
        stop.set()
        for p in checkers:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
        table.unlink()
    assert [p.exitcode for p in checkers] == [0, 0]
    assert table.verify() == []
    stats = table.stats()
    assert stats["recoveries"] >= parked_kills
    assert stats["corrupt"] == 0
    for i in range(N_KEYS):
        assert table.get_bytes(key_of(i)) in (None, value_of(i))
    table.close()
