"""ONNX Runtime session settings for one worker per core.

Each worker owns one core: ORT must not start its own thread pools (intra/inter-op threads = 1) and
must not spin idle threads, or idle workers burn the cores their neighbours need. Memory patterns
are planned per input shape; with chat traffic every batch has a new shape, so they are disabled to
keep memory flat (the runtime also buckets lengths, so the arena sees a handful of shapes).
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


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
    return options


def open_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
