"""appliance/lifecycle/phase.py: the phase graph (every path the supervisor takes, and nothing
else), and what readers see in each phase."""

from __future__ import annotations

import pytest

from appliance.lifecycle.phase import Lifecycle, Phase

pytestmark = pytest.mark.timeout(30)

# Each verb sequence the supervisor can run (appliance/lifecycle/supervisor.py), and its end.
PATHS = [
    ([], Phase.STARTING),
    (["stop"], Phase.STOPPED),  # a signal while the workers load
    (["start_serving"], Phase.SERVING),
    (["start_serving", "stop"], Phase.STOPPED),  # a halt
    (["start_serving", "drain"], Phase.DRAINING),
    (["start_serving", "drain", "stop"], Phase.STOPPED),  # drained, or halted while draining
]


@pytest.mark.parametrize(("verbs", "end"), PATHS)
def test_supervisor_paths(verbs, end):
    lifecycle = Lifecycle()
    for verb in verbs:
        getattr(lifecycle, verb)()
    assert lifecycle.phase is end and lifecycle.name == end.value


@pytest.mark.parametrize(("verbs", "wrong"), [
    ([], "drain"),  # a drain before serving
    (["start_serving"], "start_serving"),
    (["start_serving", "drain"], "start_serving"),  # serving again after a drain
    (["start_serving", "drain"], "drain"),
    (["stop"], "start_serving"),
    (["stop"], "stop"),
])
def test_a_step_off_the_graph_raises_and_changes_nothing(verbs, wrong):
    lifecycle = Lifecycle()
    for verb in verbs:
        getattr(lifecycle, verb)()
    before = lifecycle.phase
    with pytest.raises(RuntimeError, match="cannot go from"):
        getattr(lifecycle, wrong)()
    assert lifecycle.phase is before


def test_readers_see_one_phase_at_a_time():
    seen = []
    lifecycle = Lifecycle()
    for step in (None, "start_serving", "drain", "stop"):
        if step:
            getattr(lifecycle, step)()
        seen.append((lifecycle.name, lifecycle.is_starting, lifecycle.is_serving, lifecycle.is_draining,
                     lifecycle.shutting_down))
    assert seen == [
        ("starting", True, False, False, False),
        ("serving", False, True, False, False),
        ("draining", False, False, True, True),
        ("stopped", False, False, False, True),
    ]
