"""Session fixtures shared by every test package.

`builtin_models_dir` is the project's `models/` folder holding the built-in models. They are built
once by `python export_models.py --builtin` (the README's test command does it before pytest) and
reused; if they are missing, the fixture builds them, so a single test file still runs on its own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# A loaded 2-core machine makes hypothesis's input-speed health check fail at random: one profile
# for every property test, reproducible and without timing checks (timings belong in bench/).
settings.register_profile("ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / "models"
BUILTIN_MODELS = ("builtin-marian-en-fr", "builtin-m2m-mini", "builtin-m2m-to-en")


@pytest.fixture(scope="session")
def builtin_models_dir() -> Path:
    # export_models.py skips models whose recipe and files are unchanged, so this is quick when built.
    subprocess.run([sys.executable, str(REPO / "export_models.py"), "--builtin"], check=True, cwd=REPO)
    return MODELS_DIR
