"""torch checkpoint -> single-file ONNX model (decoding included) with a parity check.

The graph takes `images` (B, 3, S, S) float32 from `preprocess` and returns `detections`
(B, N, 5 + C) decoded boxes in input pixels; `postprocess` (numpy) does the rest for every
backend. The exporter folds BatchNorm into the convolutions. `float16=True` stores those weights
as float16 with a Cast back to float32 (half the file; onnxruntime folds the casts when it loads
the model, so it still computes in float32): the rounding moves single scores by up to
0.005-0.009 (measured on pico and its deeper member) and boxes by up to about half a pixel
(0.52 px on an undertrained test model), so its parity check allows `FLOAT16_SCORE_TOL` and
`FLOAT16_BOX_TOL_PX` instead of the float32 bounds. `quantized_int8` (the digit reader's
`--int8`) computes in int8 instead; the detector is not served so: its boxes and its "other" and
censored scores lose more than rounding (docs/MODEL_CARD.md, "An int8 reader").
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from .errors import UserError
from .model.checkpoint import load_model
from .model.yolo import YOLO

T = TypeVar("T")

OPSET = 18
METADATA_KEY = "digit_detector"
FLOAT32_SCORE_TOL = 1e-3
FLOAT16_SCORE_TOL = 1e-2
PARITY_FLOOR = 0.05  # boxes compared: every anchor scoring at least this for some class
BOX_TOL_PX = 0.5  # model-input pixels; a wrong decoding moves boxes by whole grid cells (8+ px)
FLOAT16_BOX_TOL_PX = 1.0
# An int8 file's probabilities may differ from its float model's by this much, class by class:
# the shipped int8 reader differs from its float readers by at most 0.088 on 5,461 writer-
# disjoint crops (its own check crops: 0.024).
INT8_PROB_TOL = 0.15


class ParityError(UserError):
    """The exported file disagrees with the checkpoint; nothing was written."""


# The exporter warns on every export that torchvision (which does not install beside this torch)
# is missing; neither model uses a torchvision op.
_EXPORTER_REGISTRY_LOGGER = "torch.onnx._internal.exporter._registration"


def _not_about_torchvision(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("torchvision is not installed")


@contextlib.contextmanager
def _quiet_torchvision_warnings() -> Iterator[None]:
    logger = logging.getLogger(_EXPORTER_REGISTRY_LOGGER)
    logger.addFilter(_not_about_torchvision)
    try:
        yield
    finally:
        logger.removeFilter(_not_about_torchvision)


def onnx_model(
    model: torch.nn.Module, example: torch.Tensor, input_name: str, output_name: str, max_batch: int
) -> onnx.ModelProto:
    """`model` (whose forward takes `x`) as one ONNX model, opset OPSET, batch size dynamic up
    to `max_batch`; the detector's and the digit reader's exports both go through here."""
    # The exporter narrates every pass on stdout; keep stdout for the CLI's own output.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_torchvision_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            opset_version=OPSET,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", max=max_batch)}},
            external_data=False,
            verbose=False,
        )
    assert program is not None
    proto = program.model_proto
    without_debug_metadata(proto)
    return proto


def without_debug_metadata(proto: onnx.ModelProto) -> None:
    """Drop what the exporter records on every node for debugging: the Python stack trace that
    made it (this checkout's absolute paths and line numbers), module names, rewrite rules.
    Serving reads none of it; it was 8% of the detector's file and 12% of the reader's, and
    without it the same weights and model code export to the same bytes from any folder."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.ClearField("doc_string")


def _to_onnx_model(model: YOLO) -> onnx.ModelProto:
    size = model.config.input_size
    return onnx_model(model, torch.zeros(1, 3, size, size), "images", "detections", max_batch=64)


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


def quantized_int8(proto: onnx.ModelProto, input_name: str, calibration: np.ndarray) -> onnx.ModelProto:
    """`proto` with its convolutions and matrix products computed in int8 (ONNX Runtime's static
    quantization: QDQ, weights per output channel, activation ranges from running `calibration`
    inputs). Weights keep 7 bits (`reduce_range`): on x86 CPUs without VNNI, ONNX Runtime
    multiplies uint8 activations by int8 weights into 16-bit sums, which 8-bit weights can
    overflow, so the file would compute differently on the machine that serves it."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration[i : i + 64] for i in range(0, len(calibration), 64))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

    with tempfile.TemporaryDirectory() as folder, _quiet_quantizer():
        out = Path(folder) / "int8.onnx"
        quantize_static(
            proto,
            out,
            Batches(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        return onnx.load(str(out))


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """The quantizer advises, on the root logger, a pre-processing pass (shape inference and graph
    fusions); tried on the shipped readers with 8-bit weights, it changed none of their figures
    on 5,461 validation crops."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


@dataclass
class ParityReport:
    images: int
    max_score_diff: float
    max_box_diff_px: float
    anchors_compared: int


def export_onnx(
    weights: str | Path, out: str | Path, parity_images: int = 8, float16: bool = False
) -> ParityReport:
    """Export `weights` (.pt) to `out` (.onnx) and check it against torch on generated-like
    inputs; raises ParityError (and leaves `out` as it was) if they disagree."""
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
    tol, box_tol = (FLOAT16_SCORE_TOL, FLOAT16_BOX_TOL_PX) if float16 else (FLOAT32_SCORE_TOL, BOX_TOL_PX)
    return save_checked(
        proto, out, lambda saved: check_parity(model, saved, parity_images, score_tol=tol, box_tol=box_tol)
    )


def save_checked(proto: onnx.ModelProto, out: Path, check: Callable[[Path], T]) -> T:
    """Write `proto` to `out` (one file) only once `check` passes on it, saved beside as .tmp:
    a failed export never overwrites shipped weights, and whatever stops the check (a
    disagreement, a file onnxruntime refuses) leaves no .tmp. Returns what `check` returns."""
    tmp = out.with_suffix(".onnx.tmp")
    onnx.save_model(proto, str(tmp), save_as_external_data=False)
    try:
        result = check(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)
    return result


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
    box_tol: float = BOX_TOL_PX,
) -> ParityReport:
    """Run torch and the ONNX file on the same inputs and `compare_outputs`; raises ParityError."""
    from .inference import _OnnxBackend

    ort = _OnnxBackend(onnx_path, threads=2)
    x = inputs if inputs is not None else parity_inputs(count, model.config.input_size)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    return compare_outputs(ref, ort(x), score_tol, box_tol)


def compare_outputs(
    ref: np.ndarray, got: np.ndarray, score_tol: float, box_tol: float = BOX_TOL_PX
) -> ParityReport:
    """Two backends compute the same function when, anchor by anchor, objectness and class
    probabilities differ by less than `score_tol` and every anchor scoring at least
    PARITY_FLOOR in `ref` has the same box (centre and size within `box_tol` px). Compared per
    anchor, not per decision: where two classes or two boxes tie within the tolerance, the
    argmax or NMS may pick the other one, and that is rounding, not a different model. Pixels,
    not IoU: a 0.1 px rounding is IoU 0.96 on a 5 px box."""
    max_diff = float(np.abs(ref[..., 4:] - got[..., 4:]).max())
    scored = ref[..., 4] * ref[..., 5:].max(axis=-1) >= PARITY_FLOOR
    box_diff = np.abs(ref[..., :4] - got[..., :4])[scored]
    report = ParityReport(len(ref), max_diff, float(box_diff.max(initial=0.0)), int(scored.sum()))
    if report.max_box_diff_px >= box_tol or report.max_score_diff >= score_tol:
        raise ParityError(
            f"the ONNX file does not compute what the checkpoint does (scores may differ by "
            f"{score_tol:g}, boxes by {box_tol:g} px): {describe(report)}"
        )
    return report


def describe(report: ParityReport) -> dict[str, Any]:
    return {
        "images": report.images,
        "anchors_compared": report.anchors_compared,
        "max_score_abs_diff": report.max_score_diff,
        "max_box_abs_diff_px": report.max_box_diff_px,
    }
