"""`Detector`: the public serving API. ONNX Runtime by default (no torch, no matplotlib);
a torch backend for development, selected by passing a .pt checkpoint or backend="torch".

    from digit_detector import Detector
    detections = Detector().predict(image)   # list[Detection], boxes in the image's pixels
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from .classes import CLASS_NAMES, Detection
from .errors import UserError
from .postprocess import (
    CENSORED_CONF,
    DEFAULT_CONF,
    DEFAULT_IOU,
    EVAL_CONF,
    FIT_REACH_INPUT_PX,
    fit_to_ink,
    one_label_per_object,
    postprocess,
    postprocess_for_map,
    without_other,
)
from .preprocess import (
    MAX_SCALE,
    Letterbox,
    ink_under,
    letterbox_gray,
    to_gray_on_white,
    to_model_input,
    unlabelled_ink,
)

# The ONNX weights are package data: `pip install` puts them next to this file.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS_NAME = "digit-detector.onnx"
WEIGHTS_ENV = "DIGIT_DETECTOR_WEIGHTS"
# The second look (`Detector.infer`): taken when the ink no shown box touches (strokes within
# SECOND_LOOK_CLEARANCE_INPUT_PX of a box count as touched; at least SECOND_LOOK_MIN_INK input
# pixels of it) gets SECOND_LOOK_MIN_GAIN times the first look's scale on its own. Chosen on
# held-out writers (docs/MODEL_CARD.md, "A second look at unlabelled ink"): a wider clearance
# loses the missed digits beside read ones.
SECOND_LOOK_MIN_GAIN = 1.3
SECOND_LOOK_CLEARANCE_INPUT_PX = 2.0
SECOND_LOOK_MIN_INK = 4


class WeightsError(UserError, RuntimeError):
    """The weights file is missing, corrupted, or not a digit-detector model."""


def default_weights() -> Path:
    """$DIGIT_DETECTOR_WEIGHTS if set, else the packaged digit_detector/weights/digit-detector.onnx."""
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env) if env else WEIGHTS_DIR / DEFAULT_WEIGHTS_NAME


class _Backend(Protocol):
    input_size: int
    metadata: dict[str, Any]

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


class _OnnxBackend:
    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for a damaged file
            raise WeightsError(
                f"cannot load ONNX weights {path}: the file is corrupted or not an "
                f"ONNX model ({type(exc).__name__}: {exc})"
            ) from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.metadata = json.loads(meta["digit_detector"])
        except (KeyError, json.JSONDecodeError) as exc:
            raise WeightsError(
                f"{path} has no digit-detector metadata; export it with `digit-detector export`"
            ) from exc
        if list(self.metadata.get("class_names", [])) != list(CLASS_NAMES):
            raise WeightsError(f"{path}: class names differ from {list(CLASS_NAMES)}")
        self.input_size = int(self.metadata["preprocess"]["input_size"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        # InferenceSession.run is thread-safe; no lock needed.
        return np.asarray(self.session.run(None, {self.input_name: batch})[0])


class _TorchBackend:
    def __init__(self, path: Path, threads: int) -> None:
        import torch

        from .model.checkpoint import CheckpointError, load_model

        try:
            self.model, info = load_model(path)
        except CheckpointError as exc:
            raise WeightsError(str(exc)) from exc
        self.metadata = info
        self.input_size = int(info["preprocess"]["input_size"])
        self._torch = torch
        self._lock = threading.Lock()
        torch.set_num_threads(threads)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._lock, self._torch.inference_mode():
            out = self.model(self._torch.from_numpy(batch))
        return out.numpy()


class Detector:
    """Finds digits, "other" drawings and "censored" drawings on a canvas image.

    weights: .onnx (ONNX Runtime) or .pt (torch, for development); default: bundled weights.
    backend: "onnx" or "torch"; default: from the file suffix.
    Thread-safe: one instance can serve many app sessions at once.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        backend: str | None = None,
        conf: float = DEFAULT_CONF,
        iou: float = DEFAULT_IOU,
        threads: int = 2,
        censored_conf: float = CENSORED_CONF,
    ) -> None:
        path = Path(weights) if weights is not None else default_weights()
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path}")
        backend = backend or ("torch" if path.suffix == ".pt" else "onnx")
        if backend not in ("onnx", "torch"):
            raise ValueError(f"backend must be 'onnx' or 'torch', got {backend!r}")
        self.weights = path
        self.backend_name = backend
        self.conf = conf
        self.iou = iou
        self.censored_conf = censored_conf
        self._backend: _Backend = (_OnnxBackend if backend == "onnx" else _TorchBackend)(path, threads)

    @property
    def metadata(self) -> dict[str, Any]:
        return self._backend.metadata

    @property
    def input_size(self) -> int:
        return self._backend.input_size

    def predict(
        self,
        image: Image.Image | np.ndarray,
        conf: float | None = None,
        iou: float | None = None,
        censored_conf: float | None = None,
        all_candidates: bool = False,
    ) -> list[Detection]:
        """Detections sorted by descending score, boxes (x1, y1, x2, y2) in `image` pixels,
        each fitted to the ink inside it (`postprocess.fit_to_ink`).

        image: PIL image (any mode) or uint8 array (H, W), (H, W, 3) or (H, W, 4), any size.
        By default exactly what the app shows (one label per object, censored from
        `censored_conf`; see postprocess.py). all_candidates=True: the COCO-convention
        candidates for mAP (best class of all, class-aware NMS, conf 0.001 unless given).
        """
        return self.predict_gray(to_gray_on_white(image), conf, iou, censored_conf, all_candidates)

    def predict_gray(
        self,
        gray: np.ndarray,
        conf: float | None = None,
        iou: float | None = None,
        censored_conf: float | None = None,
        all_candidates: bool = False,
    ) -> list[Detection]:
        """`predict` for an image already converted by `to_gray_on_white` (the app converts
        once and passes the gray image on)."""
        raw, to_source = self.infer(gray)
        return self.decide(raw, to_source, conf, iou, censored_conf, all_candidates)

    def infer(self, gray: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """Letterbox and model: the decoded output (N, 5 + C, in the first look's input pixels)
        and the map of its boxes back to `gray`'s pixels (each then fitted to the ink inside
        it), for any number of `decide` calls.

        The letterbox frames all the ink, so small writing beside a large drawing reaches the
        model a few pixels tall and can be missed. When ink that no shown box touches would be
        SECOND_LOOK_MIN_GAIN times larger framed on its own, the model looks again at that ink
        alone, and the rows of both looks are decided together."""
        square, letterbox = letterbox_gray(gray, self.input_size)
        raw = self.raw(to_model_input(square))
        second = None
        closer = self._second_look_frame(gray, square, raw, letterbox)
        if closer is not None:
            square, second = closer
            closer_rows = without_other(self.raw(to_model_input(square)))
            raw = np.concatenate([raw, second.rows_into(closer_rows, letterbox)])

        def to_source(boxes: np.ndarray) -> np.ndarray:
            source = letterbox.to_source(boxes)
            return fit_to_ink(source, gray, _fit_reach(source, letterbox, second))

        return raw, to_source

    def _second_look_frame(
        self, gray: np.ndarray, square: np.ndarray, raw: np.ndarray, letterbox: Letterbox
    ) -> tuple[np.ndarray, Letterbox] | None:
        """The letterboxed ink that the first look saw and no shown box (at the detector's own
        thresholds) touches, if a second look would see it at least SECOND_LOOK_MIN_GAIN times
        larger; else None. Found on the first look's square, so it costs little."""
        scale = _scale(letterbox)
        if scale * SECOND_LOOK_MIN_GAIN > MAX_SCALE:
            return None  # the first look already sees the ink at (nearly) its drawn size
        shown, _, _ = postprocess(raw, self.conf, self.iou, self.censored_conf)
        unlabelled = unlabelled_ink(square, shown, SECOND_LOOK_CLEARANCE_INPUT_PX)
        if np.count_nonzero(unlabelled) < SECOND_LOOK_MIN_INK:
            return None
        closer, second = letterbox_gray(ink_under(gray, unlabelled, letterbox), self.input_size)
        return (closer, second) if _scale(second) >= SECOND_LOOK_MIN_GAIN * scale else None

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The decoded model output (N, 5 + C) for one preprocessed (3, S, S) input."""
        return self._backend(x[None])[0]

    def decide(
        self,
        raw: np.ndarray,
        to_source: Callable[[np.ndarray], np.ndarray],
        conf: float | None = None,
        iou: float | None = None,
        censored_conf: float | None = None,
        all_candidates: bool = False,
    ) -> list[Detection]:
        """Decisions on a raw output, boxes mapped back by `to_source` (see `predict`)."""
        iou = self.iou if iou is None else iou
        if all_candidates:
            boxes, scores, ids = postprocess_for_map(raw, EVAL_CONF if conf is None else conf, iou)
        else:
            boxes, scores, ids = postprocess(
                raw,
                self.conf if conf is None else conf,
                iou,
                self.censored_conf if censored_conf is None else censored_conf,
            )
        boxes = to_source(boxes)
        if not all_candidates:
            boxes, scores, ids = one_label_per_object(boxes, scores, ids, iou)
        return [
            Detection(
                label=CLASS_NAMES[c],
                class_id=int(c),
                score=float(s),
                box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
            )
            for b, s, c in zip(boxes, scores, ids, strict=True)
        ]


def _scale(letterbox: Letterbox) -> float:
    """Input pixels per canvas pixel (the smaller of the two axes')."""
    return min(letterbox.scale_x, letterbox.scale_y)


def _fit_reach(boxes: np.ndarray, first: Letterbox, second: Letterbox | None) -> float | np.ndarray:
    """How far `fit_to_ink` may move each box's cut sides: FIT_REACH_INPUT_PX in canvas pixels
    of the look the box came from. A box centred in the second look's frame came from it (the
    first look only had weak candidates there, or it would have labelled that ink)."""
    reach = FIT_REACH_INPUT_PX / _scale(first)
    if second is None:
        return reach
    x1, y1, x2, y2 = second.frame
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    centred = (cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)
    return np.where(centred, FIT_REACH_INPUT_PX / _scale(second), reach)
