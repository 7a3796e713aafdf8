"""export_models.py, the CLI: verified exports in the manifest, the build cache, clear errors, Apertium
registration. The modules under it have their own tests in tests/modelbuild/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BUILTIN_MODELS, REPO
from workers.manifest import file_checksums, read_manifest

pytestmark = pytest.mark.timeout(300)


def export(*args, env=None):
    return subprocess.run([sys.executable, str(REPO / "export_models.py"), *args], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **(env or {})}, timeout=240)


def test_builtin_exports_are_registered_verified_and_checksummed(builtin_models_dir):
    models = read_manifest(builtin_models_dir)["models"]
    for name in BUILTIN_MODELS:
        entry = models[name]
        assert entry["quantization"] == "fp32" and entry["source"] == f"builtin:{name}"
        assert entry["verification"]["exact_match"] == 1.0
        assert entry["files"] == file_checksums(builtin_models_dir / entry["path"])
        assert {"encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx"} <= set(entry["files"])
    assert models["builtin-m2m-mini"]["family"] == "m2m100"
    assert ["en", "de"] in models["builtin-m2m-mini"]["pairs"]
    assert models["builtin-marian-en-fr"]["pairs"] == [["en", "fr"]]


def test_a_second_builtin_run_reuses_the_cache(builtin_models_dir):
    result = export("--builtin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("up to date") == len(BUILTIN_MODELS)


def test_missing_directory_is_a_clear_error(tmp_path):
    result = export(str(tmp_path / "nope"), "--pairs", "en-fr", "--models-dir", str(tmp_path / "models"))
    assert result.returncode == 2
    assert "no such directory" in result.stderr


def test_unsupported_architecture_is_a_clear_error(tmp_path):
    checkpoint = tmp_path / "bert"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text(json.dumps({"model_type": "bert"}))
    result = export(str(checkpoint), "--pairs", "en-fr", "--models-dir", str(tmp_path / "models"))
    assert result.returncode == 2
    assert "unsupported architecture 'bert'" in result.stderr


def test_unreachable_hub_says_how_to_export_from_a_local_directory(tmp_path):
    result = export("Helsinki-NLP/opus-mt-en-fr", "--models-dir", str(tmp_path / "models"), env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2
    assert "cannot fetch 'Helsinki-NLP/opus-mt-en-fr'" in result.stderr
    assert "python export_models.py ./opus-mt-en-fr" in result.stderr
    assert not (tmp_path / "models").exists()


def test_builtin_entries_record_their_closed_vocabulary(builtin_models_dir):
    models = read_manifest(builtin_models_dir)["models"]
    assert set(models["builtin-m2m-to-en"]["vocabulary"]) == {"fr", "es", "de"}
    english = set(models["builtin-marian-en-fr"]["vocabulary"]["en"])
    assert {"the", "cat", "sees", "dog", "hello"} <= english and "neighbour" not in english


APERTIUM_MODES = Path(os.environ.get("APERTIUM_DATADIR") or "/usr/share/apertium") / "modes"
APERTIUM_MISSING = [m for m in ("eng-spa", "spa-eng", "fr-es", "es-fr") if not (APERTIUM_MODES / f"{m}.mode").exists()]


@pytest.mark.skipif(bool(APERTIUM_MISSING), reason=f"Apertium modes {APERTIUM_MISSING} not installed: "
                    "apt-get install apertium apertium-eng-spa apertium-fr-es (make system-deps does it as root)")
def test_apertium_modes_are_registered_as_the_fallback_tier_with_checksums(tmp_path):
    models_dir = tmp_path / "models"
    result = export("--apertium", "--models-dir", str(models_dir))
    assert result.returncode == 0, result.stderr
    models = read_manifest(models_dir)["models"]
    # Every plain mode installed is registered (more with the other Debian pairs), variants never.
    assert {"apertium-eng-spa", "apertium-es-fr", "apertium-fr-es", "apertium-spa-eng"} <= set(models)
    assert all("_" not in name and name.count("-") == 2 for name in models)
    entry = models["apertium-eng-spa"]
    assert (entry["family"], entry["tier"], entry["mode"]) == ("apertium", "fallback", "eng-spa")
    assert entry["pairs"] == [["en", "es"]]
    assert models["apertium-spa-eng"]["pairs"] == [["es", "en"]] and models["apertium-fr-es"]["pairs"] == [["fr", "es"]]
    assert entry["packages"] == ["apertium", "apertium-eng-spa"]
    mode_file = str(Path(entry["path"]) / "eng-spa.mode")
    assert mode_file in entry["files"] and any(f.endswith("eng-spa.automorf.bin") for f in entry["files"])
    assert entry["verification"]["output"] == "Hola, cómo eres?"
    assert "eco-fr-es" not in result.stdout  # variants are not registered
    # A mode whose package went away leaves the manifest on the next registration.
    stale = {**entry, "mode": "xxx-yyy", "source": "apertium:xxx-yyy"}
    from workers.manifest import write_entry

    write_entry(models_dir, "apertium-xxx-yyy", stale)
    assert export("--apertium", "--models-dir", str(models_dir)).returncode == 0
    assert "apertium-xxx-yyy" not in read_manifest(models_dir)["models"]
    only = export("--apertium", "fr-es", "--models-dir", str(tmp_path / "one"))
    assert only.returncode == 0 and list(read_manifest(tmp_path / "one")["models"]) == ["apertium-fr-es"]


def test_registering_apertium_without_its_packages_names_them(tmp_path):
    empty = tmp_path / "no-apertium"
    empty.mkdir()
    result = export("--apertium", "--models-dir", str(tmp_path / "models"),
                    env={"PATH": str(empty), "APERTIUM_DATADIR": str(empty)})
    assert result.returncode == 2
    assert "Apertium is not installed" in result.stderr
    assert "apt-get install apertium apertium-eng-spa apertium-fr-es" in result.stderr
    assert not (tmp_path / "models").exists()
    # No language data (with or without the programs): the same advice.
    for modes in ([], ["xx-yy"]):
        result = export("--apertium", *modes, "--models-dir", str(tmp_path / "models"), env={"APERTIUM_DATADIR": str(empty)})
        assert result.returncode == 2 and "apt-get install apertium apertium-eng-spa apertium-fr-es" in result.stderr
