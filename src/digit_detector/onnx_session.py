"""ONNX Runtime sessions as serving runs them: the detector's and the digit reader's."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def serving_session(path: Path, threads: int) -> Any:
    """A CPU session on `path` with `threads` intra-op threads, one inter-op thread, every graph
    optimisation and no log chatter. ONNX Runtime raises its own exception types for a damaged
    file; callers word the error for their file."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
