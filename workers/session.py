"""ONNX Runtime session settings for one worker per core.

Each worker owns one core: ORT must not start its own thread pools (intra/inter-op threads = 1) and
must not spin idle threads, or idle workers burn the cores their neighbours need. Memory patterns
are planned per input shape; with chat traffic every batch has a new shape, so they are disabled to
keep memory flat (the runtime also buckets lengths, so the arena sees a handful of shapes).

Memory per worker: the sessions of a process (five per model) share one CPU arena instead of one
each; the weights are memory-mapped (workers.packed_weights), not copied. The arena grows by
doubling: growing by what is asked (kSameAsRequested), or no arena at all, let the key/value
caches, one step longer at every step, fragment it until a beam-4 batch of 32 peaked at 2.4 GB
instead of 0.6 GB, and decode 1.5x slower.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

from workers.packed_weights import packed_copy

log = logging.getLogger(__name__)

_shared_arena = False


def session_options(threads: int = 1) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_mem_pattern = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    _use_shared_arena(options)
    return options


def _use_shared_arena(options: ort.SessionOptions) -> None:
    global _shared_arena
    if not _shared_arena:
        doubling = 0  # OrtArenaCfg's arena_extend_strategy: 0 = kNextPowerOfTwo, 1 = kSameAsRequested
        memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, doubling, -1, -1))
        _shared_arena = True
    options.add_session_config_entry("session.use_env_allocators", "1")


def open_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])


def open_graphs(directory: Path, graphs: tuple[str, ...], threads: int = 1,
                packed_dir: Path | None = None) -> list[ort.InferenceSession]:
    """Sessions for `graphs` of an export; from this host's packed copy when `packed_dir` is set.

    A copy that cannot be made (a read-only or full disk) costs memory, not service: the worker
    loads the export itself and packs its weights on its own heap."""
    if packed_dir is not None:
        try:
            packed = packed_copy(directory, graphs, packed_dir, lambda: session_options(threads))
            optimized = session_options(threads)
            optimized.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # done when packed
            return [ort.InferenceSession(str(packed / g), optimized, providers=["CPUExecutionProvider"])
                    for g in graphs]
        except Exception as exc:
            log.warning("cannot use packed weights for %s in %s (%s: %s): every worker packs its own copy",
                        directory.name, packed_dir, type(exc).__name__, exc)
    return [open_session(directory / g, threads) for g in graphs]
