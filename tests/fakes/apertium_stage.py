"""A stand-in Apertium stage: NUL-framed like an Apertium program in null-flush mode; it upper-cases
each frame. "CRASH" in a frame kills it, "FLAKY" kills it once when given a flag file as its last
argument (it leaves the file behind), "HANG" blocks it, and "SWALLOW" (once, with the flag file)
eats the NUL that ends its frame, so its answer runs into the next one's: a desynced chain."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

STAGE = """\
#!{python}
import os, sys, time
flag = sys.argv[-1] if len(sys.argv) > 2 else ""
buf = b""
while True:
    data = os.read(0, 65536)
    if not data:
        break
    buf += data
    while b"\\0" in buf:
        frame, buf = buf.split(b"\\0", 1)
        if b"CRASH" in frame:
            os._exit(3)
        if b"FLAKY" in frame and flag and not os.path.exists(flag):
            open(flag, "w").close()
            os._exit(4)
        if b"HANG" in frame:
            time.sleep(3600)
        if b"SWALLOW" in frame and flag and not os.path.exists(flag + ".swallowed"):
            open(flag + ".swallowed", "w").close()
            os.write(1, frame.upper())
            continue
        os.write(1, frame.upper() + b"\\0")
"""


def write_stage(path: Path) -> Path:
    """The stage as an executable script at `path`."""
    path.write_text(STAGE.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path
