"""Apertium registration: the installed plain translation modes as fallback-tier manifest entries.

One entry per plain mode, its pair in our language codes (eng-spa -> en-es), the checksums of the
mode file and every data file it reads (the revision caches key on), and a sample translated
through the engine as its verification. Entries of modes no longer installed are removed."""

from __future__ import annotations

import shutil
from pathlib import Path

from ipc.languages import canonical
from modelbuild.report import ExportError, log
from modelbuild.verify import FALLBACK_SAMPLES
from workers.manifest import APERTIUM, read_manifest, remove_entries, sha256_file, spec_from_entry, write_entry


def export_apertium(models_dir: Path, only: list[str] | None = None) -> list[str]:
    """Register the installed Apertium modes (all plain ones, or `only`) as fallback-tier entries."""
    from ipc.tiers import FALLBACK
    from workers.apertium import (
        DEBIAN_PACKAGES, ApertiumError, ApertiumModel, data_dir, data_files, install_hint, installed_modes,
        mode_languages, mode_packages, read_stages,
    )

    if shutil.which("apertium") is None and shutil.which("lt-proc") is None:
        raise ExportError(f"Apertium is not installed: {install_hint(DEBIAN_PACKAGES)}")
    modes = installed_modes()
    if only:
        absent = [m for m in only if m not in modes]
        if absent:
            raise ExportError(f"Apertium modes {absent} are not installed in {data_dir() / 'modes'} "
                              f"(installed: {sorted(modes) or 'none'}): {install_hint(DEBIAN_PACKAGES)}")
    wanted = {m: path for m, path in modes.items() if (m in only if only else mode_languages(m) is not None)}
    if not wanted:
        raise ExportError(f"no Apertium language pair is installed in {data_dir() / 'modes'}: "
                          f"{install_hint(DEBIAN_PACKAGES)}")
    names, taken = [], set()
    for mode, mode_file in sorted(wanted.items()):
        codes = mode_languages(mode) or tuple(mode.split("-", 1))
        pair = (canonical(codes[0]), canonical(codes[-1]))
        if pair in taken or pair[0] == pair[1]:
            log(f"apertium-{mode}: {pair[0]}-{pair[1]} is served by another mode already; skipped")
            continue
        try:
            stages = read_stages(mode_file)
        except ApertiumError as exc:
            raise ExportError(str(exc)) from exc
        files = [mode_file, *sorted(set(data_files(stages)))]
        name = f"apertium-{mode}"
        entry = {
            "path": str(mode_file.parent),
            "family": APERTIUM,
            "tier": FALLBACK,
            "quantization": "none",
            "source": f"apertium:{mode}",
            "mode": mode,
            "pairs": [list(pair)],
            "packages": mode_packages(stages),
            "files": {str(p): sha256_file(p) for p in files if p.is_file()},
        }
        sample = FALLBACK_SAMPLES.get(pair[0], FALLBACK_SAMPLES["en"])[0]
        try:
            engine = ApertiumModel(spec_from_entry(name, models_dir, entry))
            try:
                output = engine.translate([sample])[0]
            finally:
                engine.close()
        except ApertiumError as exc:
            raise ExportError(f"{name}: {exc}") from exc
        if not output.strip():
            raise ExportError(f"{name}: Apertium translated {sample!r} to nothing; check the {mode} mode")
        entry["verification"] = {"sample": sample, "output": output}
        write_entry(models_dir, name, entry)
        log(f"{name}: {pair[0]} -> {pair[1]} registered, tier {FALLBACK}: {sample!r} -> {output!r}")
        names.append(name)
        taken.add(pair)
    if not only:
        stale = _stale_apertium_entries(models_dir, names)
        remove_entries(models_dir, stale)
        for name in stale:
            log(f"{name}: its mode is no longer installed; removed from the manifest")
    return names


def _stale_apertium_entries(models_dir: Path, keep: list[str]) -> list[str]:
    try:
        models = read_manifest(models_dir)["models"]
    except Exception:
        return []
    return [name for name, entry in models.items() if entry.get("family") == APERTIUM and name not in keep]
