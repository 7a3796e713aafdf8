"""The lifecycle: the supervisor, the worker pool, the run directory, sd_notify and logging."""
