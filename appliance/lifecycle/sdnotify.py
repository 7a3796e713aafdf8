"""systemd's notify protocol: datagrams such as b"READY=1" to the socket in $NOTIFY_SOCKET.

With no NOTIFY_SOCKET (a plain run, or `Type=simple`) every call is a no-op, so the supervisor
calls it unconditionally. An address starting with "@" is in the abstract namespace. Sending never
raises: losing a status line must not take the appliance down.

The watchdog interval comes from $WATCHDOG_USEC (set by systemd from `WatchdogSec=`); when
$WATCHDOG_PID is set and is not this process, the watchdog is someone else's.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("meeshy.sdnotify")


class Notifier:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        self.address: str | None = env.get("NOTIFY_SOCKET") or None
        self.sock: socket.socket | None = None
        if self.address:
            if self.address.startswith("@"):
                self.address = "\0" + self.address[1:]
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            except OSError as exc:
                log.warning("cannot open the notify socket: %s", exc)
        self.watchdog_s: float | None = None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if usec and (not pid or pid == str(os.getpid())):
            try:
                self.watchdog_s = int(usec) / 1_000_000
            except ValueError:
                log.warning("ignoring WATCHDOG_USEC=%r: not an integer", usec)

    @property
    def enabled(self) -> bool:
        return self.sock is not None

    def notify(self, *lines: str) -> None:
        if self.sock is None or self.address is None:
            return
        try:
            self.sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            log.debug("sd_notify %s failed: %s", lines, exc)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def stopping(self, status: str) -> None:
        self.notify("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> None:
        self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
