"""A benchmark's engine in an interpreter of its own, spoken to with one JSON line each way.

Used where two engines must not share an address space (PyTorch's and CTranslate2's OpenMP
runtimes, allocators and thread pools): `bench.engine`'s engines and `bench.meeshy_pattern`'s HF
baseline. The child is `python -m <module> <args>` from the repository root; it answers each line
of its stdin with one line on its stdout ({"error": why} on failure) and exits at end of input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # not bench.harness's: a child imports this module too


class PipeChild:
    def __init__(self, module: str, args: list[str], threads: int, what: str):
        self.what = what  # names the child in errors
        self.log = tempfile.TemporaryFile(mode="w+")  # its stderr, for the error when it dies
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=REPO, env=env)

    def reply(self) -> dict:
        """The child's next line; RuntimeError when it died or answered an error."""
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            tail = self.log.read().strip().splitlines()[-3:] or [f"exit status {self.proc.wait()}"]
            raise RuntimeError(f"{self.what} died: {' | '.join(tail)[:400]}")
        message = json.loads(line)
        if "error" in message:
            raise RuntimeError(f"{self.what}: {message['error']}")
        return message

    def ask(self, message: dict) -> dict:
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        return self.reply()

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()  # the child exits at end of input
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
