"""The run directory: where the internal ipc:// sockets, endpoints.json and the instance lock live.

Anyone who can reach into it can talk to the workers' sockets, so it must be ours alone: a
configured directory is created 0700, and an existing one is refused when another user owns it
or others may write into it; one of ours that others may only read is tightened to 0700. Without a setting, a fresh private directory under /tmp is
made and removed at exit. The lock (`supervisor.lock`, flock) refuses a second appliance there.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

import msgspec

log = logging.getLogger("meeshy.rundir")

SOCKET_FILES = ("results.ipc", "endpoints.json")


class RunDirError(OSError):
    pass


class RunDir:
    def __init__(self, configured: str) -> None:
        """`configured`: [server] run_dir or systemd's $RUNTIME_DIRECTORY; "" for a private one."""
        self.owned = not configured
        if configured:
            self.path = Path(configured)
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
            _check_private(self.path)
        else:
            self.path = Path(tempfile.mkdtemp(prefix="meeshy-"))
        fd = os.open(self.path / "supervisor.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunDirError(f"another appliance is using run directory {self.path} (set a different run_dir)") from None
        self._lock_fd = fd

    def write_endpoints(self, info: dict) -> None:
        """endpoints.json: where this instance listens (useful with ephemeral ports)."""
        path = self.path / "endpoints.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.encode(info))
        tmp.rename(path)

    def close(self, slots: int) -> None:
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            for name in [*SOCKET_FILES, *(f"tasks-{i}.ipc" for i in range(slots))]:
                try:
                    (self.path / name).unlink()
                except OSError:
                    pass
        os.close(self._lock_fd)


def _check_private(path: Path) -> None:
    info = path.stat()
    if info.st_uid != os.geteuid():
        raise RunDirError(
            f"run directory {path} belongs to uid {info.st_uid}, not to this user ({os.geteuid()}): "
            "refusing it (set [server] run_dir to a directory of ours)"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise RunDirError(f"run directory {path} is not a directory")
    if info.st_mode & 0o022:
        raise RunDirError(
            f"run directory {path} is mode {stat.S_IMODE(info.st_mode):o}: others may write into it; "
            "refusing it (chmod 700 it, or let the appliance create it)"
        )
    if info.st_mode & 0o077:
        log.warning("run directory %s was mode %o: making it 0700", path, stat.S_IMODE(info.st_mode))
        os.chmod(path, 0o700)
