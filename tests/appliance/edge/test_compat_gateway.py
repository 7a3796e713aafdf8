"""Meeshy's gateway under load against [compat] (issue 17's done-when): a real PUSH and SUB that
behave like its client (tests/fakes/gateway.py: one event read per tick, re-push of the missing
languages at its timeout, 4 times, de-duplication of 1,000 keys, circuit breaker), its timing
scaled down 5x (tick 20 ms, re-push after 6 s), and the appliance told that pace
([compat] gateway_read_rate 50). The fake runtime translates by reversing the text."""

from __future__ import annotations

import time

import pytest

from tests.appliance.conftest import module_appliance
from tests.fakes.gateway import FakeGateway

pytestmark = pytest.mark.timeout(240)

TICK_S, RETRY_S, RETRIES = 0.02, 6.0, 4  # the gateway's 100 ms and 30 s, scaled 5x
GIVE_UP_S = RETRY_S * (RETRIES + 1)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    extra = {
        "compat": {"enabled": True, "meeshy_pull_port": 0, "meeshy_pub_port": 0, "pong_interval_s": 30.0,
                   "gateway_read_rate": 1 / TICK_S, "max_delivery_delay_s": GIVE_UP_S - 2.0,
                   "retry_window_s": 2 * GIVE_UP_S},
        "workers": {"count": 2},
    }
    with module_appliance(tmp_path_factory, "compat_gateway", extra) as a:
        yield a


@pytest.fixture
def gateway(app):
    gw = FakeGateway(app.ctx, app.endpoints["compat_pull"], app.endpoints["compat_events"],
                     tick_s=TICK_S, retry_s=RETRY_S, retries=RETRIES)
    gw.subscribe()
    yield gw
    gw.close()


def translation(task_id: str, targets: list[str], text: str, message_id: str | None = None) -> dict:
    return {
        "type": "translation", "taskId": task_id, "messageId": message_id or f"msg-{task_id}", "text": text,
        "sourceLanguage": "en", "targetLanguages": targets, "conversationId": "conv-1",
        "modelType": "medium" if len(text) < 80 else "premium", "timestamp": int(time.time() * 1000),
    }


def send_all(gw: FakeGateway, name: str, count: int, targets: list[str], text: str, deadline: float) -> list[str]:
    """`count` messages `name-i`, text `text` with {i} filled in, as fast as the gateway takes them;
    their task ids, once the gateway has nothing pending (or `deadline` has passed)."""
    tasks = [f"{name}-{i}" for i in range(count)]
    for i, task in enumerate(tasks):
        gw.translate(translation(task, targets, text.format(i=i)))
    gw.run(lambda: not gw.pending, deadline=deadline)
    return tasks


def test_a_burst_of_400_three_language_messages_is_delivered_once_each(app, gateway):
    before = app.request({"type": "stats"})["compat"]
    tasks = send_all(gateway, "burst", 400, ["fr", "es", "de"], "Burst message number {i} for everyone.", GIVE_UP_S + 60)
    t = gateway.tally
    after = app.request({"type": "stats"})["compat"]
    print(f"400 x 3: read {t.read}, translation events {t.translation_events}, re-pushes {t.repushes}, "
          f"suppressed {after['suppressed_repeats'] - before['suppressed_repeats']}, "
          f"wire repeats {t.wire_repeats}, duplicates {t.duplicates}, timeouts {t.timeouts}, "
          f"pool full {t.pool_full}, dropped {after['dropped_events'] - before['dropped_events']}")
    assert all(t.delivered.get(task) == {"fr", "es", "de"} for task in tasks)
    assert t.translation_events <= 1.05 * 1200
    assert t.duplicates == 0 and t.wire_repeats == 0
    assert t.timeouts == 0 and t.errors == 0
    assert after["dropped_events"] == before["dropped_events"]


def test_ten_messages_with_a_language_no_model_serves_deliver_every_other_language(app, gateway):
    tasks = send_all(gateway, "mixed", 10, ["fr", "ja"], "Mixed conversation line {i}.", GIVE_UP_S + 30)
    t = gateway.tally
    assert all("fr" in t.delivered.get(task, set()) for task in tasks)
    # ja is settled without anything the gateway counts as a failure
    assert all(t.delivered[task] == {"fr", "ja"} for task in tasks) and t.unserved == 10
    assert t.errors == 0 and t.breaker_openings == 0 and t.timeouts == 0 and t.repushes == 0


def test_a_story_with_one_bad_target_gets_the_other_languages_in_one_event(gateway):
    gateway.story({"type": "story_text_object_translation", "postId": "post-9", "textObjectIndex": 0,
                   "text": "A story for the weekend.", "sourceLanguage": "en", "targetLanguages": ["fr", "ja", "de"],
                   "timestamp": int(time.time() * 1000)})
    gateway.run(lambda: gateway.tally.stories, deadline=30)
    gateway.run(lambda: False, deadline=0.5)  # nothing else comes for it
    (story,) = gateway.tally.stories
    assert story["postId"] == "post-9" and story["translations"] == {"fr": "A story for the weekend."[::-1],
                                                                     "de": "A story for the weekend."[::-1]}


def test_an_8000_character_text_is_translated(gateway):
    text = ("Long messages are translated whole. " * 250)[:8000]
    gateway.translate(translation("long-8000", ["fr"], text))
    gateway.run(lambda: not gateway.pending, deadline=60)
    assert gateway.tally.delivered == {"long-8000": {"fr"}} and gateway.tally.errors == 0


def test_work_the_gateway_could_not_read_in_time_is_refused_at_once(start_appliance, zctx):
    """Room for about 50 unread events (1 s at 50 events/s): the rest of a 40 x 3 burst is
    answered "translation pool full", and nothing the appliance accepted is lost or repeated."""
    app = start_appliance(config={
        "compat": {"enabled": True, "meeshy_pull_port": 0, "meeshy_pub_port": 0, "pong_interval_s": 30.0,
                   "gateway_read_rate": 1 / TICK_S, "max_delivery_delay_s": 1.0, "retry_window_s": 60.0},
    })
    gw = FakeGateway(zctx, app.endpoints["compat_pull"], app.endpoints["compat_events"],
                     tick_s=TICK_S, retry_s=RETRY_S, retries=RETRIES)
    try:
        gw.subscribe()
        tasks = send_all(gw, "over", 40, ["fr", "es", "de"], "Over the read budget, line {i}.", GIVE_UP_S + 30)
        t = gw.tally
        stats = app.request({"type": "stats"})["compat"]
    finally:
        gw.close()
    whole = [task for task in tasks if t.delivered.get(task) == {"fr", "es", "de"}]
    print(f"40 x 3 over a 1 s budget: {len(whole)} delivered, {t.pool_full} pool full, {t.timeouts} timeouts")
    assert whole and t.pool_full == stats["pool_full"] > 0
    assert len(whole) + t.pool_full == 40 and t.timeouts == 0
    assert t.duplicates == 0 and stats["dropped_events"] == 0
