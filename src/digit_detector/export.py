"""torch checkpoint -> single-file ONNX model (decoding included) with a parity check.

The graph takes `images` (B, 3, S, S) float32 from `preprocess` and returns `detections`
(B, N, 5 + C) decoded boxes in input pixels; `postprocess` (numpy) does the rest for every
backend. The exporter folds BatchNorm into the convolutions. `float16=True` stores those weights
as float16 with a Cast back to float32 (half the file; onnxruntime folds the casts when it loads
the model, so it still computes in float32): the rounding moves scores by ~1e-3, so its parity
check allows `FLOAT16_SCORE_TOL` instead of `FLOAT32_SCORE_TOL`.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from .boxes import box_iou
from .model.checkpoint import load_model
from .model.yolo import YOLO
from .postprocess import Decisions, postprocess_for_map

OPSET = 18
METADATA_KEY = "digit_detector"
FLOAT32_SCORE_TOL = 1e-3
FLOAT16_SCORE_TOL = 1e-2
PARITY_FLOOR = 0.05  # candidates compared: every one scoring at least this


def _to_onnx_model(model: YOLO) -> onnx.ModelProto:
    size = model.config.input_size
    example = torch.zeros(1, 3, size, size)
    # The exporter narrates every pass on stdout; keep stdout for the CLI's own output.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=OPSET,
            input_names=["images"],
            output_names=["detections"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", max=64)}},
            external_data=False,
            verbose=False,
        )
    assert program is not None
    return program.model_proto


def store_weights_float16(proto: onnx.ModelProto) -> None:
    """Every float32 weight tensor -> a float16 initializer and a Cast node that restores it."""
    graph = proto.graph
    kept, casts = [], []
    for tensor in graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT:
            kept.append(tensor)
            continue
        values = numpy_helper.to_array(tensor).astype(np.float16)
        half = numpy_helper.from_array(values, tensor.name + "_fp16")
        kept.append(half)
        casts.append(onnx.helper.make_node("Cast", [half.name], [tensor.name], to=onnx.TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


@dataclass
class ParityReport:
    images: int
    max_score_diff: float
    min_box_iou: float
    detections: int


def export_onnx(
    weights: str | Path, out: str | Path, parity_images: int = 8, float16: bool = False
) -> ParityReport:
    """Export `weights` (.pt) to `out` (.onnx) and check it against torch on generated-like
    inputs; raises RuntimeError if they disagree."""
    model, info = load_model(weights)
    proto = _to_onnx_model(model)
    if float16:
        store_weights_float16(proto)
    metadata = {k: v for k, v in info.items() if k in ("config", "class_names", "preprocess", "format")}
    metadata["weights_dtype"] = "float16" if float16 else "float32"
    meta_train = info.get("meta", {})
    metadata["source"] = {
        "checkpoint": Path(weights).name,
        "val": meta_train.get("val"),
        "commit": meta_train.get("commit"),
        "step": meta_train.get("step"),
    }
    proto.metadata_props.append(onnx.StringStringEntryProto(key=METADATA_KEY, value=json.dumps(metadata)))
    proto.producer_name = "digit-detector"
    onnx.checker.check_model(proto)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".onnx.tmp")
    onnx.save_model(proto, str(tmp), save_as_external_data=False)
    tmp.replace(out)
    tol = FLOAT16_SCORE_TOL if float16 else FLOAT32_SCORE_TOL
    return check_parity(model, out, parity_images, score_tol=tol)


def parity_inputs(count: int, size: int, seed: int = 0) -> np.ndarray:
    """Canvas-like inputs without the stroke data: random thick strokes on white."""
    from .data.compose import draw_strokes
    from .preprocess import preprocess

    rng = np.random.default_rng(seed)
    batch = []
    for _ in range(count):
        canvas = np.full((400, 400), 255, dtype=np.uint8)
        strokes = [
            np.cumsum(rng.normal(0, 12, (30, 2)), axis=0).astype(np.float32) + rng.uniform(60, 340, 2)
            for _ in range(int(rng.integers(1, 6)))
        ]
        draw_strokes(canvas, strokes, float(rng.uniform(4, 20)))
        batch.append(preprocess(canvas, size)[0])
    return np.stack(batch)


def check_parity(
    model: YOLO,
    onnx_path: Path,
    count: int = 8,
    inputs: np.ndarray | None = None,
    score_tol: float = FLOAT32_SCORE_TOL,
) -> ParityReport:
    """Torch and ONNX must give the same candidates: same class, box IoU > 0.99, score within
    `score_tol`; only a candidate within `score_tol` of the candidate floor may be one-sided."""
    from .inference import _OnnxBackend

    ort = _OnnxBackend(onnx_path, threads=2)
    x = inputs if inputs is not None else parity_inputs(count, model.config.input_size)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    got = ort(x)
    max_diff, min_iou, n = float(np.abs(ref[..., 4:] - got[..., 4:]).max()), 1.0, 0
    for r, g in zip(ref, got, strict=True):
        a, b = postprocess_for_map(r, conf=PARITY_FLOOR), postprocess_for_map(g, conf=PARITY_FLOOR)
        for one, other in ((a, b), (b, a)):
            iou, diff = _match(one, other, score_tol)
            min_iou, max_diff = min(min_iou, iou), max(max_diff, diff)
        n += len(a[0])
    report = ParityReport(len(x), max_diff, min_iou, n)
    if min_iou <= 0.99 or max_diff >= score_tol:
        raise RuntimeError(f"ONNX parity check failed: {report}")
    return report


def _match(one: Decisions, other: Decisions, score_tol: float) -> tuple[float, float]:
    """Worst box IoU and score difference of `one`'s candidates (clear of the floor) against
    their best same-class match in `other`; IoU 0 when one has no match."""
    boxes, scores, ids = one
    if not len(boxes):
        return 1.0, 0.0
    same_class = ids[:, None] == other[2][None, :]
    iou = box_iou(boxes, other[0]) * same_class if len(other[0]) else np.zeros((len(boxes), 1))
    worst_iou, worst_diff = 1.0, 0.0
    for i in np.flatnonzero(scores >= PARITY_FLOOR + score_tol):
        j = int(np.argmax(iou[i]))
        worst_iou = min(worst_iou, float(iou[i, j]))
        if iou[i, j] > 0:
            worst_diff = max(worst_diff, abs(float(scores[i] - other[1][j])))
    return worst_iou, worst_diff


def describe(report: ParityReport) -> dict[str, Any]:
    return {
        "images": report.images,
        "detections": report.detections,
        "max_score_abs_diff": report.max_score_diff,
        "min_box_iou": report.min_box_iou,
    }
