"""The `meeshy-appliance` command against running appliances (fake runtime, and the real one)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.util import find_spec

import pytest

from appliance import exitcodes
from tests.appliance.conftest import REPO, child_env

pytestmark = pytest.mark.timeout(120)


def cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_ping_stats_languages_translate(shared_appliance):
    ep = shared_appliance.endpoints["requests"]
    ping = cli("ping", "--endpoint", ep)
    assert ping.returncode == 0 and "2/2 worker(s) ready" in ping.stdout
    stats = cli("stats", "--endpoint", ep)
    assert stats.returncode == 0 and json.loads(stats.stdout)["workers"]["max_workers"] == 2
    langs = cli("languages", "--endpoint", ep)
    assert ["en", "fr"] in json.loads(langs.stdout)["languages"]["basic"]
    one = cli("translate", "the cat sees the dog", "--to", "fr", "--endpoint", ep)
    assert one.returncode == 0 and one.stdout == "god eht sees tac eht\n"
    two = cli("translate", "hello", "--to", "fr", "es", "--endpoint", ep)
    assert two.stdout.splitlines() == ["fr: olleh", "es: olleh"]
    bad = cli("translate", "hello", "--to", "xx", "--endpoint", ep)
    assert bad.returncode == exitcodes.EXIT_REQUEST_FAILED and "unsupported_language" in bad.stderr


def test_no_appliance_answering_exits_unavailable(tmp_path):
    result = cli("ping", "--endpoint", "tcp://127.0.0.1:9", "--timeout", "0.3")
    assert result.returncode == exitcodes.EXIT_UNAVAILABLE and "no answer" in result.stderr


def test_bad_config_file_exits_with_config_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[workers]\ncuont = 2\n")
    result = cli("serve", "--config", str(bad))
    assert result.returncode == exitcodes.EXIT_CONFIG and "cuont" in result.stderr


@pytest.mark.timeout(600)
@pytest.mark.skipif(find_spec("workers.runtime") is None, reason="workers/runtime.py has not landed yet")
def test_translate_with_the_real_runtime_and_builtin_models(start_appliance, request):
    try:
        models = request.getfixturevalue("builtin_models_dir")
    except pytest.FixtureLookupError:
        pytest.skip("the builtin_models_dir fixture (tests/conftest.py) is not there yet")
    app = start_appliance(
        config={
            "workers": {
                "count": 1,
                "runtime_factory": "workers.runtime:Runtime.load",
                "models_dir": str(models),
                "startup_timeout_s": 300.0,
            }
        }
    )
    result = cli("translate", "the cat sees the dog", "--to", "fr", "--endpoint", app.endpoints["requests"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and result.stdout.strip() != "the cat sees the dog"
    reply = app.request({"messageId": "m", "text": "the cat sees the dog", "targetLanguage": "fr", "sync": True}, timeout=60)
    assert reply["status"] == "completed"
    result0 = reply["results"][0]
    assert result0["sourceLanguage"] == "en" and 0 < result0["confidenceScore"] <= 1
    assert result0["translatorModel"]
