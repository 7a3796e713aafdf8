"""A stand-in for `workers.runtime.Runtime`: 'translates' by reversing the text.

Loaded by the real worker process through its `runtime_factory` seam
(`tests.fakes.fake_runtime:load`). Behaviour comes from the environment, which spawned workers
inherit from the appliance process:

    FAKE_RUNTIME_DELAY_MS   sleep this long per job in `translate` (default 0)
    FAKE_RUNTIME_LOAD       "ok" (default) | "fail" (raise at load) | "exit:N" | "hang"
    FAKE_RUNTIME_LOAD_SLOTS comma-separated worker slots the LOAD behaviour applies to (default all)
    FAKE_RUNTIME_FAIL_FLAG  a path: while that file exists, loading fails (crash loops on respawn)
    FAKE_RUNTIME_ERROR_FLAG a path: while that file exists, every job fails with translation_failed
    FAKE_RUNTIME_HOLD_FLAG  a path: while that file exists, `translate` waits before it starts
    FAKE_RUNTIME_JOB_LOG    a path: every job the fake decodes (not a cache hit, not a repeat in its
                            batch) appends one JSON line {"text", "source", "target", "tier",
                            "pid"} (see `jobs_logged`), so a test can count what was decoded
    FAKE_RUNTIME_RELEASE_LOG a path: every `release_memory` call appends a line

Texts that steer one job: "__crash__" kills the worker (os._exit(13)), "__hang__" blocks it
forever, "__error__" gives a TranslationError, "__raise__" makes the whole batch raise.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ipc.cache_key import CachedTranslation, cache_key
from ipc.tiers import AUTO
from workers.jobs import Translation, TranslationError, TranslationJob

LANGUAGES = {
    "basic": [("en", "fr")],
    "medium": sorted(
        [(a, b) for a in ("en", "fr", "es", "de") for b in ("en", "fr", "es", "de") if a != b]
    ),
}


class FakeLoadError(Exception):
    pass


def _applies_to_this_slot() -> bool:
    slots = os.environ.get("FAKE_RUNTIME_LOAD_SLOTS", "")
    if not slots:
        return True
    return os.environ.get("MEESHY_WORKER_SLOT", "") in slots.split(",")


def load(models_dir: Path, tiers: dict[str, list[str]] | None = None, threads: int = 1, **_routing) -> "FakeRuntime":
    flag = os.environ.get("FAKE_RUNTIME_FAIL_FLAG")
    if flag and Path(flag).exists():
        raise FakeLoadError(f"fail flag {flag} is set")
    mode = os.environ.get("FAKE_RUNTIME_LOAD", "ok")
    if mode != "ok" and _applies_to_this_slot():
        if mode == "fail":
            raise FakeLoadError(f"no usable model in {models_dir} (fake)")
        if mode.startswith("exit:"):
            os._exit(int(mode.split(":", 1)[1]))
        if mode == "hang":
            while True:
                time.sleep(3600)
    return FakeRuntime(float(os.environ.get("FAKE_RUNTIME_DELAY_MS", "0")) / 1000.0)


class FakeRuntime:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def languages(self) -> dict[str, list[tuple[str, str]]]:
        return {tier: list(pairs) for tier, pairs in LANGUAGES.items()}

    def models(self) -> list[dict]:
        return [
            {"name": f"fake-{tier}", "family": "fake", "tier": tier, "quantization": "none",
             "revision": f"fake-{tier}-r1", "languages": pairs}
            for tier, pairs in LANGUAGES.items()
        ]

    def release_memory(self) -> None:
        path = os.environ.get("FAKE_RUNTIME_RELEASE_LOG")
        if path:
            with open(path, "a") as f:
                f.write(f"{os.getpid()}\n")

    def translate(self, jobs: list[TranslationJob], cache=None) -> list[Translation | TranslationError]:
        hold = os.environ.get("FAKE_RUNTIME_HOLD_FLAG")
        while hold and os.path.exists(hold):  # a test holds the batch in the worker, in flight
            time.sleep(0.01)
        if any("__raise__" in job.text for job in jobs):
            raise RuntimeError("fake runtime failure")
        # Like the real runtime, with the whole text as the one segment: cache hits and repeats in
        # the batch are not decoded (nor logged); what is decoded goes into the cache.
        keys = [cache_key("fake", "r1", job.source_language, job.target_language, job.text) for job in jobs]
        hits = {key: cache.get(key) for key in set(keys)} if cache is not None else {}
        decoded = [job for i, job in enumerate(jobs) if not hits.get(keys[i]) and keys[i] not in keys[:i]]
        log_path = os.environ.get("FAKE_RUNTIME_JOB_LOG")
        if log_path:
            with open(log_path, "a") as log:
                for job in decoded:
                    log.write(json.dumps({"text": job.text, "source": job.source_language,
                                          "target": job.target_language, "tier": job.tier,
                                          "pid": os.getpid()}) + "\n")
        if self.delay_s:
            time.sleep(self.delay_s * len(decoded))
        out: list[Translation | TranslationError] = []
        for job, key in zip(jobs, keys):
            if hits.get(key):
                hit = hits[key]
                out.append(Translation(hit.translated_text, job.source_language, job.target_language,
                                       hit.confidence, hit.model, hit.tier, cached_segments=1))
                continue
            if "__crash__" in job.text:
                os._exit(13)
            while "__hang__" in job.text:
                time.sleep(3600)
            flag = os.environ.get("FAKE_RUNTIME_ERROR_FLAG")
            if "__error__" in job.text or (flag and os.path.exists(flag)):
                out.append(TranslationError("translation_failed", "fake error"))
                continue
            source = job.source_language
            tier = job.tier
            if tier == AUTO:
                tier = "basic" if (source, job.target_language) in LANGUAGES["basic"] else "medium"
            result = Translation(
                text=job.text[::-1],
                source_language=source,
                target_language=job.target_language,
                confidence=0.5 + (len(job.text) % 5) / 10.0,
                model=f"fake-{tier}",
                tier=tier,
            )
            if cache is not None:
                cache.put(key, CachedTranslation(result.text, source, result.confidence, result.model, tier))
            out.append(result)
        return out


def jobs_logged(path: Path | str) -> list[dict]:
    """The jobs a FAKE_RUNTIME_JOB_LOG file recorded, oldest first."""
    try:
        with open(path) as log:
            return [json.loads(line) for line in log if line.strip()]
    except FileNotFoundError:
        return []
