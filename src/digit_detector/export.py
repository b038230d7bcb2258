"""torch checkpoint -> single-file ONNX model (decoding included) with a parity check.

The graph takes `images` (B, 3, S, S) float32 from `preprocess` and returns `detections`
(B, N, 5 + C) decoded boxes in input pixels; `postprocess` (numpy) does the rest for every
backend. The exporter folds BatchNorm into the convolutions; weights stay float32 (rounding the
folded weights to float16 would move scores by ~1e-3, beyond the parity bound).
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

from .model.checkpoint import load_model
from .model.yolo import YOLO

OPSET = 18
METADATA_KEY = "digit_detector"


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


@dataclass
class ParityReport:
    images: int
    max_score_diff: float
    min_box_iou: float
    detections: int


def export_onnx(weights: str | Path, out: str | Path, parity_images: int = 8) -> ParityReport:
    """Export `weights` (.pt) to `out` (.onnx) and check it against torch on generated-like
    inputs; raises RuntimeError if they disagree."""
    model, info = load_model(weights)
    proto = _to_onnx_model(model)
    metadata = {k: v for k, v in info.items() if k in ("config", "class_names", "preprocess", "format")}
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
    return check_parity(model, out, parity_images)


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
    model: YOLO, onnx_path: Path, count: int = 8, inputs: np.ndarray | None = None
) -> ParityReport:
    from .boxes import box_iou
    from .inference import _OnnxBackend
    from .postprocess import postprocess_for_map

    ort = _OnnxBackend(onnx_path, threads=2)
    x = inputs if inputs is not None else parity_inputs(count, model.config.input_size)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    got = ort(x)
    max_diff, min_iou, n = 0.0, 1.0, 0
    for r, g in zip(ref, got, strict=True):
        rb, rs, rc = postprocess_for_map(r, conf=0.05)
        gb, gs, gc = postprocess_for_map(g, conf=0.05)
        if len(rb) != len(gb) or not np.array_equal(rc, gc):
            raise RuntimeError(f"ONNX and torch disagree: {len(rb)} vs {len(gb)} detections")
        if len(rb):
            min_iou = min(min_iou, float(np.diag(box_iou(rb, gb)).min()))
            max_diff = max(max_diff, float(np.abs(rs - gs).max()))
        n += len(rb)
    max_diff = max(max_diff, float(np.abs(ref[..., 4:] - got[..., 4:]).max()))
    report = ParityReport(len(x), max_diff, min_iou, n)
    if min_iou <= 0.99 or max_diff >= 1e-3:
        raise RuntimeError(f"ONNX parity check failed: {report}")
    return report


def describe(report: ParityReport) -> dict[str, Any]:
    return {
        "images": report.images,
        "detections": report.detections,
        "max_score_abs_diff": report.max_score_diff,
        "min_box_iou": report.min_box_iou,
    }
