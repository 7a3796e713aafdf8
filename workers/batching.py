"""Cross-request batching inside a worker: pure planning, no sockets, no runtime.

A worker drains every task waiting on its socket, then asks `plan` for the next batch:

  1. group by (tier, target language): one model decodes one target language per batch;
  2. take the group holding the oldest task (FIFO across groups, so no group starves);
  3. the oldest task is always in the batch (so no task starves, however short or long);
     the rest of its group joins longest first while (tasks in batch) x (longest task's
     tokens) stays within the token budget: the padded size is what a decoder step pays for.
     A task longer than the budget goes alone.

Token counts are estimates (`approx_tokens`): a subword tokenizer makes roughly one token per
four characters of Latin text. The budget bounds memory and step latency, not correctness.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol, TypeVar


class Batchable(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def tier(self) -> str: ...
    @property
    def target_language(self) -> str: ...


def approx_tokens(text: str) -> int:
    return len(text) // 4 + 1


T = TypeVar("T", bound=Batchable)


def plan(queued: Sequence[T], token_budget: int, max_batch_size: int) -> list[T]:
    """The next batch to decode from `queued` (in arrival order); empty only if `queued` is."""
    if not queued:
        return []
    first = queued[0]
    key = (first.tier, first.target_language)
    others = [t for t in itertools.islice(queued, 1, None) if (t.tier, t.target_language) == key]
    others.sort(key=lambda t: approx_tokens(t.text), reverse=True)
    batch = [first]
    longest = approx_tokens(first.text)
    for task in others:
        if len(batch) >= max_batch_size:
            break
        width = max(longest, approx_tokens(task.text))
        if (len(batch) + 1) * width <= token_budget:
            batch.append(task)
            longest = width
    return batch
