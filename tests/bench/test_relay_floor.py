"""bench/relay_floor.py, the transport floor chat_latency measures the appliance's overhead
against: it must answer as the appliance does, so that the same client code drives both."""

from __future__ import annotations

import os

import pytest

from bench.appliance_e2e import _request, connect_clients
from bench.chat_latency import await_event
from bench.relay_floor import RelayFloor

pytestmark = pytest.mark.timeout(60)


def test_the_floor_answers_each_message_like_the_appliance_and_stops_cleanly(tmp_path):
    floor = RelayFloor(tmp_path, cpu=min(os.sched_getaffinity(0)))
    try:
        connect_clients(floor)  # the appliance's own subscription probe: a reply, then an event
        for i, spin in enumerate((0.0, 3.5)):
            floor.send(_request(f"m{i}", "the cat sees the dog"), spin)
            event = await_event(floor, f"m{i}", deadline_s=10)
            assert event == {"type": "translation_completed", "taskId": f"m{i}",
                             "result": {"translatedText": "", "processingTime": spin}}
    finally:
        floor.close()
    assert floor.proc.exitcode == 0 and floor.worker.exitcode == 0
