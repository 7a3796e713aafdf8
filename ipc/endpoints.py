"""Endpoint names: `ipc://` files under the run directory, `tcp://` for the edge.

    <run_dir>/results.ipc      workers -> supervisor (one PULL, many PUSH)
    <run_dir>/tasks-<slot>.ipc supervisor -> worker <slot> (one PUSH per slot, reused on respawn)

A Unix socket path is limited to 107 bytes; a longer run directory is refused here with the
setting to change, rather than failing later inside ZeroMQ with "File name too long".
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

MAX_IPC_PATH = 107


class EndpointError(ValueError):
    pass


class RunEndpoints:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(os.path.abspath(run_dir))
        # Check the longest name we will make (a slot index of up to 5 digits).
        self._ipc(self.run_dir / "tasks-99999.ipc")

    @staticmethod
    def _ipc(path: Path) -> str:
        if len(os.fsencode(path)) > MAX_IPC_PATH:
            raise EndpointError(
                f"run directory {path.parent} is too long for ipc:// endpoints "
                f"({len(os.fsencode(path))} > {MAX_IPC_PATH} bytes for {path.name}); "
                "set a shorter run_dir (config [server] run_dir or MEESHY_RUN_DIR)"
            )
        return f"ipc://{path}"

    @property
    def results(self) -> str:
        return self._ipc(self.run_dir / "results.ipc")

    def tasks(self, slot: int) -> str:
        return self._ipc(self.run_dir / f"tasks-{slot}.ipc")


def tcp(address: str, port: int) -> str:
    """'tcp://127.0.0.1:5555'; port 0 binds an ephemeral port; IPv6 literals get brackets."""
    host = address
    try:
        if ipaddress.ip_address(address).version == 6:
            host = f"[{address}]"
    except ValueError:
        pass  # a host name or "*": used as given
    return f"tcp://{host}:{port if port else '*'}"
