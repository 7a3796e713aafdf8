"""Fixtures shared by the cache tests."""

import itertools
import os

import pytest

from ipc.shm_cache import ShmCache

_names = itertools.count()


@pytest.fixture
def shm_tables():
    """Factory: make(clock, entries=64) gives a fresh shared-memory table per call (a restarted
    appliance gets a new one); every table is unlinked at teardown."""
    made = []

    def make(clock, entries: int = 64) -> ShmCache:
        name = f"meeshy-test-{os.getpid()}-{next(_names)}"
        table = ShmCache.create(name, entries=entries, max_bytes=64 * 1024, ttl=3600.0, clock=clock)
        made.append(table)
        return table

    yield make
    for table in made:
        table.unlink()
        table.close()
