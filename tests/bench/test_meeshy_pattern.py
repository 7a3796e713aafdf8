"""bench/meeshy_pattern.py's model of Meeshy's translator batching (no model, no appliance: the
benchmark itself needs the NLLB-600M export and runs from bench/). The rules checked are the ones
its docstring cites from Meeshy's source."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import meeshy_pattern as mp

SHORT, LONG = "a short chat message", "x" * mp.SHORT_TEXT_CHARS


@pytest.mark.timeout(30)
def test_a_backlog_flushes_full_batches_at_once_and_the_rest_at_the_next_tick():
    batches = mp.meeshy_batches([0.0] * 23, [LONG] * 23, "batched")
    assert [(t, fast, len(b)) for t, fast, b in batches] == [
        (0.0, False, 10), (0.0, False, 10), (mp.BATCH_WINDOW_S, False, 3)]


@pytest.mark.timeout(30)
def test_as_deployed_short_texts_take_the_fast_pool_alone_and_long_ones_the_batcher():
    texts = [SHORT, LONG, SHORT, LONG, LONG]
    batches = mp.meeshy_batches([0.0] * 5, texts, "as-deployed")
    assert [(fast, b) for _, fast, b in batches] == [(True, [0]), (True, [2]), (False, [1, 3, 4])]
    assert all(not fast for _, fast, _ in mp.meeshy_batches([0.0] * 5, texts, "batched"))


@pytest.mark.timeout(30)
def test_the_engine_translates_two_texts_alone_and_more_in_chunks_of_eight():
    assert mp.engine_calls([4, 7]) == [[4], [7]]
    assert mp.engine_calls(list(range(10))) == [list(range(8)), [8, 9]]


@pytest.mark.timeout(60)
@given(st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=60),
       st.sampled_from(["batched", "as-deployed"]), st.data())
def test_every_message_is_scheduled_once_after_it_arrives(arrive, policy, data):
    texts = data.draw(st.lists(st.sampled_from([SHORT, LONG]), min_size=len(arrive), max_size=len(arrive)))
    batches = mp.meeshy_batches(arrive, texts, policy)
    scheduled = [i for _, _, b in batches for i in b]
    assert sorted(scheduled) == list(range(len(arrive)))
    for ready, fast, b in batches:
        assert 1 <= len(b) <= mp.BATCH_MAX_SIZE and (not fast or len(b) == 1)
        assert all(arrive[i] <= ready for i in b)
        # nothing waits in the accumulator past the flush tick that follows its arrival
        assert all(ready - arrive[i] <= mp.BATCH_WINDOW_S + 1e-9 for i in b)
