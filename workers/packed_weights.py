"""This host's copy of a model's graphs with their weights pre-packed, mapped by every worker.

onnxruntime re-lays each constant weight for its GEMM kernels ("pre-packing") when a session
loads. Those packed copies live on each worker's heap: 121 MB of the synthetic opus-mt-base int8
model, in every worker. Instead, the first worker to load a model on this host writes the
optimized graphs with their packed weights into one file under the cache directory
(`session.save_external_prepacked_constant_initializers`), every tensor once (the decoder and
decoder-with-past graphs pack the same weights) and page-aligned; then every worker loads that
copy, and onnxruntime memory-maps the packed weights like the others: the host holds them once.

The packed layout depends on the CPU's instruction set and on the onnxruntime version, so the
copy is keyed on both (and on the export's files) and is never shipped with a model. Workers that
start together take a file lock: one builds, the others wait and load its result.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import shutil
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort

log = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.bin"
ALIGN = 4096  # onnxruntime maps an external tensor only when its offset is page-aligned
KEY_BYTES = 8  # of a copy's key, hex in its directory's name


def packed_copy(directory: Path, graphs: tuple[str, ...], cache_root: Path,
                options: Callable[[], ort.SessionOptions]) -> Path:
    """The directory holding `graphs` of `directory` optimized and packed for this host; built
    on first use. `options` makes the session options the graphs will run with."""
    target = cache_root / f"{directory.name}-{_host_key(directory, graphs)}"
    if target.is_dir():
        return target
    cache_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(cache_root / f"{directory.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per model; the others wait for its copy
        if target.is_dir():
            return target
        building = cache_root / f"{target.name}.building-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(mode=0o700)
        try:
            for graph in graphs:
                _optimize(directory / graph, building / graph, options())
            _store_once(building, graphs)
            os.rename(building, target)
        finally:
            shutil.rmtree(building, ignore_errors=True)
        for stale in cache_root.iterdir():  # this model's copies of older exports or runtimes
            if stale != target and stale.is_dir() and _model_of(stale.name) == directory.name:
                shutil.rmtree(stale, ignore_errors=True)  # a worker still mapping one keeps its pages
        log.info("packed the weights of %s for this host in %s", directory.name, target)
    return target


def _model_of(copy_name: str) -> str:
    """The model a copy's directory `<model>-<16 hex key>` belongs to ("" for anything else): by
    the key's exact shape, so "m-int8-<key>" is never taken for a copy of model "m"."""
    model, _, key = copy_name.rpartition("-")
    return model if len(key) == 2 * KEY_BYTES and all(c in "0123456789abcdef" for c in key) else ""


def _host_key(directory: Path, graphs: tuple[str, ...]) -> str:
    digest = hashlib.blake2b(digest_size=KEY_BYTES)
    digest.update(f"{ort.__version__} {platform.machine()} {_cpu_flags()}".encode())
    for graph in graphs:
        digest.update((directory / graph).read_bytes())  # the graph itself: kilobytes
    for data in sorted(directory.glob(f"{WEIGHTS_FILE}*")):  # its weights: size and time, not 100s of MB
        stat = data.stat()
        digest.update(f"{data.name} {stat.st_size} {stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        return ""


def _optimize(source: Path, target: Path, options: ort.SessionOptions) -> None:
    options.optimized_model_filepath = str(target)
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", f"{target.name}.data")
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    options.add_session_config_entry("session.save_external_prepacked_constant_initializers", "1")
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def _store_once(directory: Path, graphs: tuple[str, ...]) -> None:
    """Merge the graphs' data files into one, each distinct blob once, every blob page-aligned.

    A tensor's external data names its bytes by offset and length, and its packed forms by
    `prepacked_N` entries: "kernel key|offset;length;checksum[|offset;length;checksum...]".
    """
    import onnx

    stored: dict[bytes, int] = {}
    with open(directory / WEIGHTS_FILE, "wb") as out:

        def place(source, offset: int, length: int) -> int:
            source.seek(offset)
            blob = source.read(length)
            key = hashlib.blake2b(blob, digest_size=32).digest() + length.to_bytes(8, "little")
            if key not in stored:
                out.write(bytes(-out.tell() % ALIGN))
                stored[key] = out.tell()
                out.write(blob)
            return stored[key]

        for graph in graphs:
            model = onnx.load(str(directory / graph), load_external_data=False)
            data_file = directory / f"{graph}.data"
            with open(data_file, "rb") as source:
                for tensor in model.graph.initializer:
                    if tensor.data_location != onnx.TensorProto.EXTERNAL:
                        continue
                    entries = {e.key: e.value for e in tensor.external_data}
                    length = int(entries["length"])
                    entries["offset"] = str(place(source, int(entries.get("offset", 0)), length))
                    entries["location"] = WEIGHTS_FILE
                    for key, value in entries.items():
                        if key.startswith("prepacked"):
                            kernel, *blobs = value.split("|")
                            moved = []
                            for blob in blobs:
                                offset, size, checksum = blob.split(";")
                                moved.append(f"{place(source, int(offset), int(size))};{size};{checksum}")
                            entries[key] = "|".join([kernel, *moved])
                    del tensor.external_data[:]
                    for key, value in entries.items():
                        tensor.external_data.add(key=key, value=value)
            (directory / graph).write_bytes(model.SerializeToString())
            data_file.unlink()
