"""ONNX Runtime sessions as serving runs them: the detector's and the digit reader's."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def serving_session(path: Path, threads: int) -> Any:
    """A CPU session on `path` with `threads` intra-op threads, one inter-op thread, every graph
    optimisation and no log chatter. Its threads sleep between runs instead of spinning: on two
    cores, the detector's and the reader's pools (and a second visitor's request) would
    otherwise spin against each other and against the Python work between runs. ONNX Runtime
    raises its own exception types for a damaged file; callers word the error for their file."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
