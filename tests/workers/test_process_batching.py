"""Batch planning inside a worker (pure)."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipc.frames import Task
from workers.batching import approx_tokens, plan

pytestmark = pytest.mark.timeout(60)


def task(uid, text="x" * 20, tgt="fr", tier="basic"):
    return Task(uid, 1, text, "en", tgt, tier)


def test_batch_takes_the_oldest_tasks_group_and_sorts_by_length():
    queued = [task(1, "aaaa", "es"), task(2, "b" * 40), task(3, "c" * 400, "es"), task(5, "e" * 40, "es"),
              task(4, "d", "es", "medium")]
    batch = plan(queued, token_budget=10_000, max_batch_size=32)
    assert [t.uid for t in batch] == [1, 3, 5]


def test_the_oldest_task_is_always_in_the_next_batch():
    """A short old task is not passed over by a full batch of longer, newer ones."""
    old = task(1, "short")
    newer = [task(i, "y" * 400) for i in range(2, 40)]
    batch = plan(deque([old, *newer]), token_budget=101 * 4, max_batch_size=4)  # the worker's queue
    assert batch[0] is old and len(batch) == 4


def test_token_budget_counts_padding_and_a_long_task_goes_alone():
    long = task(1, "x" * 4000)
    short = [task(i, "y" * 40) for i in range(2, 10)]
    assert plan([long, *short], token_budget=500, max_batch_size=32) == [long]
    batch = plan(short, token_budget=3 * approx_tokens("y" * 40), max_batch_size=32)
    assert len(batch) == 3


@given(
    st.lists(st.tuples(st.text(max_size=300), st.sampled_from(["fr", "es"]), st.sampled_from(["basic", "medium"])), min_size=1, max_size=50),
    st.integers(1, 5000),
    st.integers(1, 40),
)
def test_plan_properties(items, budget, max_size):
    queued = [task(i, text, tgt, tier) for i, (text, tgt, tier) in enumerate(items)]
    batch = plan(queued, budget, max_size)
    assert batch and 1 <= len(batch) <= max_size
    assert len({(t.tier, t.target_language) for t in batch}) == 1
    assert batch[0] is queued[0]
    longest = max(approx_tokens(t.text) for t in batch)
    assert len(batch) == 1 or len(batch) * longest <= budget
    assert len({t.uid for t in batch}) == len(batch)
