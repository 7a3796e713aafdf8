"""The shared-memory table against a pure-Python reference model (OrderedDict LRU + TTL).

Operations go through two handles on the same table (a creator and an attacher), so the model
also checks that the table really is shared. Besides puts, gets, deletes, sweeps and the clock,
the machine injects crashes: an exception raised at a named point inside a put or a get leaves
the table as a killed process would (dirty flag up, structures half-updated), and the model
predicts exactly what recovery keeps.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import OrderedDict

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ipc.shm_cache import H_DIRTY, ShmCache
from tests.fakes.clock import Clock

ENTRIES = 6
BLOCK = 32
MAX_BYTES = 16 * BLOCK
MAX_VALUE = 6 * BLOCK
KEYS = [bytes([i]) * 16 for i in range(10)]
_names = itertools.count()


class Crash(Exception):
    pass


class Model:
    """What the table must do: LRU by entries and by blocks, lazy TTL."""

    def __init__(self) -> None:
        self.items: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()  # last = MRU
        self.counters = dict(hits=0, misses=0, evictions=0, expirations=0, puts=0, rejected=0,
                             recoveries=0, corrupt=0)

    def blocks(self) -> int:
        return sum(-(-len(d) // BLOCK) for d, _ in self.items.values())

    def get(self, key: bytes, now: float) -> bytes | None:
        if key not in self.items:
            self.counters["misses"] += 1
            return None
        data, expires = self.items[key]
        if expires <= now:
            del self.items[key]
            self.counters["expirations"] += 1
            self.counters["misses"] += 1
            return None
        self.items.move_to_end(key)
        self.counters["hits"] += 1
        return data

    def make_room(self, need: int, now: float, limit: int | None = None) -> int:
        evicted = 0
        while len(self.items) >= ENTRIES or MAX_BYTES // BLOCK - self.blocks() < need:
            if limit is not None and evicted == limit:
                break
            _, (_, expires) = self.items.popitem(last=False)
            self.counters["expirations" if expires <= now else "evictions"] += 1
            evicted += 1
        return evicted

    def put(self, key: bytes, data: bytes, expires: float, now: float, crash: str | None) -> bool:
        """Returns whether the crash point was reached."""
        if len(data) > MAX_VALUE or expires <= now:
            self.counters["rejected"] += 1
            return False
        self.items.pop(key, None)
        need = -(-len(data) // BLOCK)
        if crash == "evict":
            if self.make_room(need, now, limit=1):
                return True
        else:
            self.make_room(need, now)
        if crash == "value" and need:
            return True
        if crash == "publish":
            return True
        self.items[key] = (data, expires)
        if crash == "link":
            return True  # state is "used": recovery keeps it, as the newest
        self.counters["puts"] += 1
        return False


class CacheMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        name = f"meeshy-test-{os.getpid()}-{next(_names)}"
        self.owner = ShmCache.create(name, ENTRIES, MAX_BYTES, ttl=100.0, block_size=BLOCK,
                                     max_value_bytes=MAX_VALUE, replace=True, clock=self.clock)
        self.other = ShmCache.attach(name, clock=self.clock)
        self.model = Model()

    def handle(self, which: bool) -> ShmCache:
        return self.owner if which else self.other

    @rule(which=st.booleans(), key=st.sampled_from(KEYS),
          data=st.binary(max_size=MAX_VALUE + 20),
          ttl=st.sampled_from([None, 1.0, 5.0, 50.0, math.inf]))
    def put(self, which, key, data, ttl):
        now = self.clock.now
        expires = now + (100.0 if ttl is None else ttl)
        self.model.put(key, data, expires, now, None)
        stored = self.handle(which).put_bytes(key, data, ttl=ttl)
        assert stored == (len(data) <= MAX_VALUE)

    @rule(which=st.booleans(), key=st.sampled_from(KEYS))
    def get(self, which, key):
        assert self.handle(which).get_bytes(key) == self.model.get(key, self.clock.now)

    @rule(which=st.booleans(), key=st.sampled_from(KEYS))
    def delete(self, which, key):
        existed = self.model.items.pop(key, None) is not None
        assert self.handle(which).delete(key) == existed

    @rule(dt=st.sampled_from([0.5, 1.0, 3.0, 10.0, 60.0]))
    def advance(self, dt):
        self.clock.now += dt

    @rule()
    def sweep(self):
        now = self.clock.now
        expired = [k for k, (_, exp) in self.model.items.items() if exp <= now]
        for k in expired:
            del self.model.items[k]
        self.model.counters["expirations"] += len(expired)
        assert self.owner.sweep() == len(expired)

    @rule(which=st.booleans(), key=st.sampled_from(KEYS),
          data=st.binary(min_size=1, max_size=MAX_VALUE),
          point=st.sampled_from(["evict", "value", "publish", "link"]))
    def crash_during_put(self, which, key, data, point):
        now = self.clock.now
        expected = self.model.put(key, data, now + 100.0, now, point)
        handle = self.handle(which)

        def failpoint(at: str) -> None:
            if at == point:
                raise Crash(at)

        handle._failpoint = failpoint
        try:
            handle.put_bytes(key, data)
            crashed = False
        except Crash:
            crashed = True
        finally:
            handle._failpoint = None
        assert crashed == expected
        if crashed:
            self.model.counters["recoveries"] += 1  # the next operation repairs

    @precondition(lambda self: len(self.model.items) >= 2)
    @rule(which=st.booleans(), data=st.data())
    def crash_during_get(self, which, data):
        # Crash between unlinking an entry from the LRU list and linking it back at the head.
        now = self.clock.now
        live = [k for k, (_, exp) in self.model.items.items() if exp > now]
        candidates = [k for k in live if k != next(reversed(self.model.items))]
        if not candidates:
            return
        key = data.draw(st.sampled_from(candidates))
        self.model.items.move_to_end(key)  # its tick was already bumped: recovery makes it MRU
        self.model.counters["recoveries"] += 1
        handle = self.handle(which)

        def failpoint(at: str) -> None:
            raise Crash(at)

        handle._failpoint = failpoint
        try:
            with pytest.raises(Crash):
                handle.get_bytes(key)
        finally:
            handle._failpoint = None

    @rule()
    def recover_clean_table(self):
        # A dirty flag over an intact table (a holder killed just after finishing): recovery
        # must keep everything, in the same LRU order.
        self.owner._h[H_DIRTY] = 1
        self.model.counters["recoveries"] += 1

    @invariant()
    def matches_model(self):
        assert self.other.keys_lru() == list(reversed(self.model.items))
        stats = self.owner.stats()
        for name, count in self.model.counters.items():
            assert stats[name] == count, name
        assert stats["size"] == len(self.model.items)
        assert stats["bytes_used"] == sum(len(d) for d, _ in self.model.items.values())
        assert self.owner.verify() == []

    def teardown(self):
        self.other.close()
        self.owner.unlink()
        self.owner.close()


CacheMachine.TestCase.settings = settings(
    max_examples=120, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_cache_against_model = pytest.mark.timeout(120)(CacheMachine.TestCase)
