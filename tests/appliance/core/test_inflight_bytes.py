"""The in-flight table's byte budget, from outside: a stalled worker, the table filled through the
requests socket with 5,000-emoji texts (4 bytes a character in memory), `overloaded` once the
texts held reach [limits] max_inflight_bytes, supervisor RSS before and after, and the budget
given back when the tasks finish."""

from __future__ import annotations

import json

import psutil
import pytest
import zmq

from tests.fakes.waiting import poll_until

pytestmark = pytest.mark.timeout(180)

MIB = 1024 * 1024
RSS_CEILING = 250 * MIB  # the bound for the supervisor under any attack
EMOJI = "\U0001F600"


def emoji_text(n: int) -> str:
    return EMOJI * 4990 + f"{n:010d}"  # 5,000 characters, each text new (no cache hit, no taskId clash)


def test_the_in_flight_table_is_bounded_in_bytes(start_appliance):
    # max_attempts 1: killing the stalled worker ends what it holds, so the budget comes back.
    app = start_appliance(config={"limits": {"max_attempts": 1}})
    stats = app.stats()["tasks"]
    budget = stats["bytes_capacity"]
    assert budget == 32 * MIB and stats["in_flight_bytes"] == 0  # the default
    supervisor = psutil.Process(app.proc.pid)
    before = supervisor.memory_info().rss
    hang = app.request({"messageId": "h", "text": "__hang__", "sourceLanguage": "en", "targetLanguage": "fr"})
    assert hang["status"] == "queued"
    poll_until(lambda: app.stats()["workers"]["slots"][0]["held"] == 1, 30, what="the worker stalled")

    dealer = app.socket(zmq.DEALER)
    codes: dict[str, int] = {}
    n = 0
    while "overloaded" not in codes:
        assert n < 4000, f"no overloaded after {n} requests: {app.stats()['tasks']}"
        for _ in range(100):
            body = {"messageId": f"m{n}", "taskId": f"t{n}", "text": emoji_text(n), "sourceLanguage": "en",
                    "targetLanguages": ["fr", "es"]}
            dealer.send(json.dumps(body, ensure_ascii=False).encode())
            n += 1
        for _ in range(100):
            assert dealer.poll(30_000), "a reply is missing"
            reply = json.loads(dealer.recv())
            code = reply["status"] if reply["status"] != "error" else reply["error"]["code"]
            codes[code] = codes.get(code, 0) + 1
    # Requests waiting on the persistent cache count too, so a burst is refused a little early:
    # one at a time, the table fills to within one text of the budget.
    while True:
        assert n < 4000, f"no overloaded after {n} requests: {app.stats()['tasks']}"
        reply = app.request({"messageId": f"m{n}", "taskId": f"t{n}", "text": emoji_text(n), "sourceLanguage": "en",
                             "targetLanguages": ["fr", "es"]})
        n += 1
        code = reply["status"] if reply["status"] != "error" else reply["error"]["code"]
        codes[code] += 1
        if code == "overloaded":
            break
    after = supervisor.memory_info().rss
    tasks = app.stats()["tasks"]
    print(f"in-flight bytes: {codes.get('queued', 0)} accepted 5,000-emoji texts x 2 targets, "
          f"{tasks['in_flight_bytes'] / MIB:.1f} MiB held of {budget / MIB:.0f}; "
          f"supervisor RSS {before / MIB:.0f} -> {after / MIB:.0f} MiB")
    assert set(codes) == {"queued", "overloaded"}
    # The bytes refused it, at the budget: far below the count limit, and no room for one more
    # request (its text twice while it is admitted: the str and the UTF-8 its cache keys made).
    assert tasks["in_flight"] < tasks["capacity"] // 2 and tasks["refused_for_bytes"] == codes["overloaded"]
    assert budget - 2 * 22_000 < tasks["in_flight_bytes"] <= budget
    assert after < RSS_CEILING, f"supervisor RSS {before / MIB:.0f} -> {after / MIB:.0f} MiB"

    # The worker dies: what it held fails (max_attempts 1), the rest runs on its successor.
    pid = app.stats()["workers"]["slots"][0]["pid"]
    psutil.Process(pid).kill()
    poll_until(lambda: app.stats()["tasks"]["in_flight"] == 0, 120, what="the table emptied")
    assert app.stats()["tasks"]["in_flight_bytes"] == 0
    again = app.request({"messageId": "again", "text": emoji_text(n), "sourceLanguage": "en", "targetLanguage": "fr"})
    assert again["status"] == "queued"
