"""The socket factory and endpoint names."""

from __future__ import annotations

import pytest
import zmq

from ipc.endpoints import EndpointError, RunEndpoints, tcp
from ipc.sockets import Role, bound_endpoint, make_socket

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.name)
def test_every_role_gets_bounded_hwm_and_linger(ctx, role, tmp_path):
    sock = make_socket(ctx, role, f"ipc://{tmp_path}/{role.name}.ipc", hwm=17, linger_ms=5)
    try:
        assert sock.getsockopt(zmq.SNDHWM) == 17
        assert sock.getsockopt(zmq.RCVHWM) == 17
        assert sock.getsockopt(zmq.LINGER) == 5
        assert sock.type == role.socket_type
        assert (tmp_path / f"{role.name}.ipc").exists() == role.binds
    finally:
        sock.close(linger=0)


def test_unbounded_settings_are_refused(ctx, tmp_path):
    with pytest.raises(ValueError):
        make_socket(ctx, Role.RESULTS_IN, f"ipc://{tmp_path}/a.ipc", hwm=0, linger_ms=0)
    with pytest.raises(ValueError):
        make_socket(ctx, Role.RESULTS_IN, f"ipc://{tmp_path}/a.ipc", hwm=10, linger_ms=-1)


def test_push_pull_over_run_dir_endpoints(ctx, tmp_path):
    eps = RunEndpoints(tmp_path)
    pull = make_socket(ctx, Role.RESULTS_IN, eps.results, hwm=10, linger_ms=0)
    push = make_socket(ctx, Role.RESULTS_OUT, eps.results, hwm=10, linger_ms=0)
    try:
        push.send(b"x")
        assert pull.poll(5000) and pull.recv() == b"x"
    finally:
        push.close(linger=0)
        pull.close(linger=0)


def test_ephemeral_tcp_port_and_max_msg_size(ctx):
    router = make_socket(ctx, Role.REQUESTS, tcp("127.0.0.1", 0), hwm=10, linger_ms=0, max_msg_size=100)
    try:
        endpoint = bound_endpoint(router)
        assert endpoint.startswith("tcp://127.0.0.1:") and not endpoint.endswith(":0")
        assert router.getsockopt(zmq.MAXMSGSIZE) == 100
    finally:
        router.close(linger=0)


def test_long_run_dir_is_refused_with_the_setting_to_change(tmp_path):
    with pytest.raises(EndpointError, match="run_dir"):
        RunEndpoints(tmp_path / ("x" * 120))


def test_tcp_endpoint_names():
    assert tcp("127.0.0.1", 5555) == "tcp://127.0.0.1:5555"
    assert tcp("::1", 5556) == "tcp://[::1]:5556"
    assert tcp("0.0.0.0", 0) == "tcp://0.0.0.0:*"
