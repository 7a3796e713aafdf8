"""Exit codes of the appliance process (for systemd, scripts and the operations guide).

`systemd/meeshy-appliance.service` lists the ones a restart cannot fix in
`RestartPreventExitStatus=`, so a broken configuration or model directory fails once, loudly,
instead of restarting in a loop. Sysexits values where one fits.
"""

from __future__ import annotations

EXIT_OK = 0  # served and drained (SIGTERM/SIGINT), or a client command succeeded
EXIT_FAILURE = 1  # an unexpected error (a bug): the traceback is in the log
EXIT_USAGE = 64  # bad command line (EX_USAGE)
EXIT_UNAVAILABLE = 69  # CLI: no appliance answered at the endpoint (EX_UNAVAILABLE)
EXIT_CONFIG = 78  # bad config file or environment override (EX_CONFIG)
EXIT_BOOT_ERROR = 3  # a worker failed while loading its models at startup
EXIT_PROTOCOL_MISMATCH = 4  # a worker speaks another internal protocol version
EXIT_CRASH_LOOP = 5  # a worker slot kept crashing; the appliance halted
EXIT_STARTUP_TIMEOUT = 6  # workers did not all report ready within workers.startup_timeout_s
EXIT_BIND_ERROR = 7  # a port or the run directory could not be bound
EXIT_REQUEST_FAILED = 8  # CLI: the appliance answered with an error
