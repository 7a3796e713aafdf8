"""Exit codes of a worker process: part of the worker -> supervisor contract.

The supervisor reads a dead worker's exit code to say what happened and what to change; a
negative code (from `multiprocessing`) means the worker was killed by that signal.
"""

from __future__ import annotations

import signal

EXIT_OK = 0  # drained on request
EXIT_UNEXPECTED = 1  # an uncaught exception (a bug): the traceback is on stderr
EXIT_BAD_SPEC = 2  # the start arguments did not decode (supervisor and worker out of step)
EXIT_BOOT_ERROR = 3  # the runtime failed to load its models: see the Fatal frame's message
EXIT_ORPHANED = 4  # the supervisor went away

_NAMES = {
    EXIT_OK: "EXIT_OK",
    EXIT_UNEXPECTED: "EXIT_UNEXPECTED",
    EXIT_BAD_SPEC: "EXIT_BAD_SPEC",
    EXIT_BOOT_ERROR: "EXIT_BOOT_ERROR",
    EXIT_ORPHANED: "EXIT_ORPHANED",
}


def describe(exitcode: int | None) -> str:
    """'exit code 3 (EXIT_BOOT_ERROR)', 'killed by SIGKILL', ... for log lines."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    name = _NAMES.get(exitcode)
    return f"exit code {exitcode} ({name})" if name else f"exit code {exitcode}"
