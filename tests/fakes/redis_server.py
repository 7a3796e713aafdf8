"""A real redis-server for tests: ephemeral loopback port, temp dir, no persistence.

`REDIS_SERVER` is None where the Debian package is missing; test modules skip on it with the reason.
"""

from __future__ import annotations

import shutil
import socket
import subprocess

from tests.fakes.waiting import poll_until

REDIS_SERVER = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=0.2, socket_connect_timeout=0.2)
    try:
        return client.ping()
    except redis.RedisError:
        return False
    finally:
        client.close()


class RedisServer:
    def __init__(self, workdir) -> None:
        # The port is free when chosen but could be taken before redis binds it: retry then.
        for _ in range(5):
            self.port = _free_port()
            self.url = f"redis://127.0.0.1:{self.port}/0"
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                poll_until(lambda: _answers(self.url) or self.proc.poll() is not None, 10, what="redis-server")
            except AssertionError:
                self.stop()
                raise
            if self.proc.poll() is None:
                return
        raise RuntimeError("could not start redis-server on a free port")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
