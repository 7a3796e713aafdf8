"""Exit codes, of both processes: one home, so two meanings never share a name.

The appliance's (the supervisor process: for systemd, scripts and the operations guide):
`systemd/meeshy-appliance.service` lists the ones a restart cannot fix in
`RestartPreventExitStatus=`, so a broken configuration or model directory fails once, loudly,
instead of restarting in a loop. Sysexits values where one fits.

A worker's (part of the worker -> supervisor contract): the supervisor reads a dead worker's exit
code to say what happened and what to change; a negative code (from `multiprocessing`) means the
worker was killed by that signal.
"""

from __future__ import annotations

import signal

# ---------------------------------------------------------------- the appliance process

EXIT_OK = 0  # served and drained (SIGTERM/SIGINT), or a client command succeeded; a worker: drained
EXIT_FAILURE = 1  # an unexpected error (a bug): the traceback is in the log
EXIT_USAGE = 64  # bad command line (EX_USAGE)
EXIT_UNAVAILABLE = 69  # CLI: no appliance answered at the endpoint (EX_UNAVAILABLE)
EXIT_CONFIG = 78  # bad config file or environment override (EX_CONFIG)
EXIT_BOOT_ERROR = 3  # a worker failed while loading its models (the worker's code and the appliance's)
EXIT_PROTOCOL_MISMATCH = 4  # a worker speaks another internal protocol version
EXIT_CRASH_LOOP = 5  # a worker slot kept crashing; the appliance halted
EXIT_STARTUP_TIMEOUT = 6  # workers did not all report ready within workers.startup_timeout_s
EXIT_BIND_ERROR = 7  # a port or the run directory could not be bound
EXIT_REQUEST_FAILED = 8  # CLI: the appliance answered with an error

# ---------------------------------------------------------------- a worker process

EXIT_UNEXPECTED = 1  # an uncaught exception (a bug): the traceback is on stderr
EXIT_BAD_SPEC = 2  # the start arguments did not decode (supervisor and worker out of step)
EXIT_ORPHANED = 4  # the supervisor went away

_NAMES = {
    EXIT_OK: "EXIT_OK",
    EXIT_UNEXPECTED: "EXIT_UNEXPECTED",
    EXIT_BAD_SPEC: "EXIT_BAD_SPEC",
    EXIT_BOOT_ERROR: "EXIT_BOOT_ERROR",
    EXIT_ORPHANED: "EXIT_ORPHANED",
}


def describe(exitcode: int | None) -> str:
    """A worker's exit: 'exit code 3 (EXIT_BOOT_ERROR)', 'killed by SIGKILL', ... for log lines."""
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    name = _NAMES.get(exitcode)
    return f"exit code {exitcode} ({name})" if name else f"exit code {exitcode}"
