"""One copy of the weights per host: workers map this host's packed copy instead of each packing
its own, the copy is built once even when workers start together, and it changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from modelbuild.corpus import generate_corpus
from tests.conftest import REPO
from workers.manifest import load_specs
from workers.runtime import Model

pytestmark = pytest.mark.timeout(300)

NAME = "builtin-marian-en-fr"
TEXTS = [s["en"] for s in generate_corpus(12, seed=99)]

# A worker-like process: load the model, translate, print the tokens and the mappings of every
# file named weights.bin, then wait for a line on stdin (so that two such processes overlap).
WORKER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from workers.manifest import load_specs
    from workers.runtime import Model
    models_dir, name, packed, texts = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    model = Model(load_specs(Path(models_dir))[name], 1, Path(packed) if packed else None)
    sources = [model.source_ids(t, "en", "fr") for t in texts]
    tokens = [h.tokens for h in model.generate(sources, "fr")]
    mapped, current = {}, None
    for line in open("/proc/self/smaps"):
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 6:
            current = fields[5] if fields[5].endswith("weights.bin") else None
        elif current and fields[0] in ("Rss:", "Shared_Clean:", "Shared_Dirty:"):  # dirty: just written
            key = fields[0][:-1].split("_")[0]  # Rss or Shared
            mapped.setdefault(current, {}).setdefault(key, 0)
            mapped[current][key] += int(fields[1])
    print(json.dumps({"tokens": tokens, "mapped": mapped}), flush=True)
    sys.stdin.readline()
""")


def start_worker(models_dir, packed_dir):
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(models_dir), NAME, str(packed_dir or ""), json.dumps(TEXTS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )


def test_workers_starting_together_build_one_packed_copy_and_share_its_pages(builtin_models_dir, tmp_path):
    packed = tmp_path / "packed"
    workers = [start_worker(builtin_models_dir, packed) for _ in range(2)]
    try:
        reports = [json.loads(w.stdout.readline()) for w in workers]  # both alive and holding the model
        assert all(reports), [w.stderr.read() for w in workers]
    finally:
        for w in workers:
            w.communicate("\n", timeout=60)
    copies = [p for p in packed.iterdir() if p.is_dir()]
    assert len(copies) == 1, copies  # one builder; the other waited on the lock and loaded its copy
    copy = copies[0] / "weights.bin"
    plain = Model(load_specs(builtin_models_dir)[NAME])
    expected = [h.tokens for h in plain.generate([plain.source_ids(t, "en", "fr") for t in TEXTS], "fr")]
    for report in reports:
        assert report["tokens"] == expected  # the packed copy translates exactly as the export does
        assert list(report["mapped"]) == [str(copy)]  # the weights come from the host's copy, mapped
        assert report["mapped"][str(copy)]["Rss"] > 0
    # Both processes were alive when each read its mappings, so at least the second saw its pages
    # shared with the first: the host holds them once.
    assert max(r["mapped"][str(copy)]["Shared"] for r in reports) > 0


def test_a_re_exported_model_gets_a_new_copy_and_the_old_one_goes(builtin_models_dir, tmp_path):
    import shutil

    models_dir = tmp_path / "models"
    shutil.copytree(builtin_models_dir / NAME, models_dir / NAME)
    shutil.copy(builtin_models_dir / "manifest.json", models_dir / "manifest.json")
    packed = tmp_path / "packed"
    spec = load_specs(models_dir)[NAME]
    Model(spec, 1, packed)
    first = {p.name for p in packed.iterdir() if p.is_dir()}
    weights = models_dir / NAME / "weights.bin"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # as a re-export does
    Model(spec, 1, packed)
    second = {p.name for p in packed.iterdir() if p.is_dir()}
    assert len(first) == len(second) == 1 and first != second


def test_a_model_whose_name_extends_another_keeps_its_copy(builtin_models_dir, tmp_path):
    import shutil

    from workers.decoding import GRAPHS
    from workers.packed_weights import packed_copy
    from workers.session import session_options

    models_dir = tmp_path / "models"  # "m" and "m-int8", as an export and its int8 twin are named
    for name in (NAME, f"{NAME}-int8"):
        shutil.copytree(builtin_models_dir / NAME, models_dir / name)
    packed = tmp_path / "packed"
    int8_copy = packed_copy(models_dir / f"{NAME}-int8", GRAPHS, packed, session_options)
    packed_copy(models_dir / NAME, GRAPHS, packed, session_options)  # a copy of "m" removes older ones of "m" only
    assert int8_copy.is_dir()


def test_an_unwritable_cache_directory_costs_memory_not_service(builtin_models_dir, tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    model = Model(load_specs(builtin_models_dir)[NAME], 1, blocked / "packed")
    assert model.generate([model.source_ids("the cat sees the dog", "en", "fr")], "fr")[0].tokens
    assert "cannot use packed weights" in caplog.text
