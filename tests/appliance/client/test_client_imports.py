"""The client package is what a gateway imports: it must load without any of the server."""

import subprocess
import sys

import pytest

from tests.appliance.conftest import REPO, child_env

PROBE = (
    "import sys, appliance.client, appliance.client.cli\n"
    "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in ('appliance', 'workers', 'ipc'))))"
)


@pytest.mark.timeout(60)
def test_the_client_imports_nothing_of_the_server():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=child_env(), capture_output=True, text=True, check=True
    ).stdout.split()
    assert "appliance.client.library" in out
    server = [m for m in out if m.startswith("appliance.") and not m.startswith("appliance.client")]
    assert server == [] and not any(m.startswith("workers") for m in out), out
