"""`Detector`: the public serving API. ONNX Runtime by default (no torch, no matplotlib);
a torch backend for development, selected by passing a .pt checkpoint or backend="torch".

    from digit_detector import Detector
    detections = Detector().predict(image)   # list[Detection], boxes in the image's pixels
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from .classes import CENSORED_ID, CLASS_NAMES, IS_DIGIT_ID, NUM_CLASSES, Detection
from .errors import WeightsError
from .onnx_session import serving_session
from .postprocess import (
    CENSORED_CONF,
    DEFAULT_CONF,
    DEFAULT_IOU,
    EVAL_CONF,
    FIT_REACH_INPUT_PX,
    READER_CANDIDATE_WEIGHT,
    Decisions,
    censored_consensus,
    censored_scores,
    fit_to_ink,
    one_label_per_object,
    postprocess,
    postprocess_for_map,
    reader_mixed_candidates,
    without_other,
)
from .preprocess import (
    MAX_SCALE,
    Letterbox,
    ink_halves,
    ink_mask,
    ink_under,
    letterbox_gray,
    to_gray_on_white,
    to_model_input,
    unlabelled_ink,
    unlabelled_parts,
)
from .reader import READER_FILE, DigitReader
from .render import NUMBER_GAP, beside_in_number

# The ONNX weights are package data: `pip install` puts them next to this file.
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS_NAME = "digit-detector.onnx"
DEFAULT_READER = WEIGHTS_DIR / READER_FILE  # the bundled digit reader, `Detector(reader=True)`
WEIGHTS_ENV = "DIGIT_DETECTOR_WEIGHTS"
# Closer looks (`Detector.infer`) are taken at parts of the ink that framed alone get at least
# CLOSER_LOOK_MIN_GAIN times the first look's scale: the two halves of a row of shown drawings
# when they are small in the first look (median height under CLOSER_LOOK_SMALL_INPUT_PX), else
# the ink no shown box touches (strokes within CLOSER_LOOK_CLEARANCE_INPUT_PX of a box
# count as touched; at least CLOSER_LOOK_MIN_INK input pixels of it), or, when that ink spans
# the first frame, its two halves if each gets CLOSER_LOOK_SPREAD_GAIN. Chosen on held-out
# writers (docs/MODEL_CARD.md, "Closer looks"): a wider clearance loses the missed digits beside
# read ones; spread halves at 1.3x pixelated one more unseen doodle in 400 than at 1.5x.
CLOSER_LOOK_MIN_GAIN = 1.3
CLOSER_LOOK_SPREAD_GAIN = 1.5
CLOSER_LOOK_CLEARANCE_INPUT_PX = 2.0
CLOSER_LOOK_MIN_INK = 4
CLOSER_LOOK_SMALL_INPUT_PX = 40.0
# Censored views (`Detector._with_censored_views`): when the first look reads censored at
# CENSORED_VIEW_FLOOR or more in a box CENSORED_VIEW_MIN_INPUT_PX or more on its longer side,
# it looks again at the same frame CENSORED_VIEW_FACTORS times as large, and those reads'
# censored scores are the mean of the looks'. The model tells obscene from ordinary doodles
# better seen smaller, but not once they are small (docs/MODEL_CARD.md, "Censored views").
CENSORED_VIEW_FACTORS = (0.4,)
CENSORED_VIEW_FLOOR = 0.1
CENSORED_VIEW_MIN_INPUT_PX = 64.0
# A digit shown becomes "other" when a reader that reads "other" gives it this much, unless
# the detector is this sure it is a digit: the reader's "other" also takes some real digits
# (both chosen on the report's held-out groups for a reader of every class: 0.2 / 0.8 for the
# first, 0.15 / 0.85 for the one after, fewer doodles shown as digits on twelve samples for a
# little small writing misread; 0.9 once digits in a number were kept apart, below; 0.1 for the
# readers of two seeds: a sixth fewer doodles shown as digits on the twelve and on sixteen
# fresh samples, for about one number in 1,200 more misread; 0.5 suited the
# digits-or-other reader; model card, "Reader shipped now", "Digits in a number", "Readers of
# two seeds").
READER_OTHER_CONF = 0.1
READER_OTHER_MAX_SCORE = 0.9
# Beside a digit the detector is that sure of, as the next digit of a number
# (`render.beside_in_number`), a doubtful digit is "other" only from this p(other): there it is
# more likely a digit drawn badly than a doodle (twelve samples: more numbers and small writing
# read exactly, and numbers beside doodles, for a few more doodles beside a number shown as a
# digit; model card, "Digits in a number").
READER_OTHER_CONF_IN_NUMBER = 0.5
# The reader reads the digits the detector scores under this; the detector's reading of the
# others was as good on held-out numbers (model card, "Reader of every class"): about two in
# three digits shown need no reader run.
READER_DIGIT_MAX_SCORE = 0.95
# With a reader of every class, a censored drawing's score is (1 - READER_CENSORED_WEIGHT) x the
# detector's + READER_CENSORED_WEIGHT x the reader's p(censored) of its crop, shown from
# censored_conf as ever: fewer ordinary doodles pixelated at the same share of obscene ones, on
# four held-out samples (model card, "Reader of every class"); 0.6 since the bundled reader
# reads obscene doodles better than the detector (twelve samples, then eight fresh ones; model
# card, "Reader shipped now").
READER_CENSORED_WEIGHT = 0.6
# Ink no decided box (grown by UNLABELLED_CLEARANCE_PX canvas pixels) covers, beside a digit
# shown as the next digit of a number, is read by the reader (`Detector._unlabelled_digits`)
# and shown as the digit it reads with at least this probability (or the slider's conf, if
# higher), that probability its score; strokes up to 2 x UNLABELLED_JOIN_PX pixels apart are
# one drawing. Chosen on the report's held-out groups (model card, "Digits no look labelled").
READER_UNLABELLED_DIGIT_CONF = 0.7
UNLABELLED_CLEARANCE_PX = 2.0
UNLABELLED_JOIN_PX = 1
# Nor is a censored read under this a candidate, whatever the reader would say: from 0.01 to
# 0.2, the same canvases were pixelated on twenty samples of every held-out group, and from
# 0.1 the reader has fewer crops to read (model card, "Reader shipped now").
MIN_CENSORED_CANDIDATE = 0.1


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
        try:
            self.session = serving_session(path, threads)
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


@dataclass(frozen=True)
class Inference:
    """What `Detector.infer` found on one canvas, for any number of `Detector.decide` calls:
    the rows of every look (N, 5 + C, in the first look's input pixels), the gray canvas, and
    the map of boxes back to its pixels (each then fitted to the ink inside it)."""

    raw: np.ndarray
    gray: np.ndarray
    to_source: Callable[[np.ndarray], np.ndarray]


class Detector:
    """Finds digits, "other" drawings and "censored" drawings on a canvas image.

    weights: .onnx (ONNX Runtime) or .pt (torch, for development); default: bundled weights.
    backend: "onnx" or "torch"; default: from the file suffix.
    reader: the reader that re-reads the digits shown and scores the censored drawings
    (reader.py, `_read_again`): True for the bundled one, a path for another, False for none
    (the detector alone).
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
        reader: str | Path | bool = True,
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
        self.reader_other_conf = READER_OTHER_CONF
        self.reader_other_max_score = READER_OTHER_MAX_SCORE
        self.reader_other_conf_in_number = READER_OTHER_CONF_IN_NUMBER
        self.reader_digit_max_score = READER_DIGIT_MAX_SCORE
        self.reader_censored_weight = READER_CENSORED_WEIGHT
        self.reader_candidate_weight = READER_CANDIDATE_WEIGHT
        self.reader_unlabelled_digit_conf = READER_UNLABELLED_DIGIT_CONF
        reader_path = DEFAULT_READER if reader is True else reader
        # As many threads as the detector: their pools sleep between runs (`serving_session`),
        # so they no longer spin against each other as when a 2-thread reader took the 400x400
        # predict from 5 to 13 ms.
        self.reader = DigitReader(reader_path, threads=threads) if reader_path is not False else None

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
        return self.decide(self.infer(gray), conf, iou, censored_conf, all_candidates)

    def infer(self, gray: np.ndarray) -> Inference:
        """Letterbox and model: the decoded output of every look and the map of its boxes back
        to `gray`'s pixels (`Inference`), for any number of `decide` calls.

        The letterbox frames all the ink, so a row of small digits or small writing beside a
        large drawing reaches the model a few pixels tall. Then the model looks again, closer,
        at parts of the ink (`_closer_looks`), and the rows of all looks are decided together;
        a closer look's "other" reads are dropped (`without_other`). Before that, a censored
        read of the first look is checked on the same frame seen smaller
        (`_with_censored_views`)."""
        if not (isinstance(gray, np.ndarray) and gray.ndim == 2 and gray.dtype == np.uint8 and gray.size):
            got = f"{gray.dtype} {gray.shape}" if isinstance(gray, np.ndarray) else type(gray).__name__
            raise ValueError(
                f"infer and predict_gray take the (H, W) uint8 image of to_gray_on_white, got {got}; "
                "predict takes any image"
            )
        square, letterbox = letterbox_gray(gray, self.input_size)
        raw = self._with_censored_views(gray, letterbox, self.raw(to_model_input(square)))
        closer = self._closer_looks(gray, square, raw, letterbox)
        for look_square, look in closer:
            rows = without_other(self.raw(to_model_input(look_square)))
            raw = np.concatenate([raw, look.rows_into(rows, letterbox)])
        looks = [look for _, look in closer]

        def to_source(boxes: np.ndarray) -> np.ndarray:
            source = letterbox.to_source(boxes)
            return fit_to_ink(source, gray, _fit_reach(source, letterbox, looks))

        return Inference(raw, gray, to_source)

    def _with_censored_views(self, gray: np.ndarray, letterbox: Letterbox, raw: np.ndarray) -> np.ndarray:
        """The first look's rows, each large censored read (CENSORED_VIEW_FLOOR,
        CENSORED_VIEW_MIN_INPUT_PX) scored by the mean of its score and the censored score the
        same frame seen smaller gives it (`censored_consensus`). No extra model run on a
        canvas without such a read."""
        large = np.maximum(raw[:, 2], raw[:, 3]) >= CENSORED_VIEW_MIN_INPUT_PX
        rescored = large & (censored_scores(raw) >= CENSORED_VIEW_FLOOR)
        if not np.any(rescored):
            return raw
        views = [letterbox.smaller(factor) for factor in CENSORED_VIEW_FACTORS]
        rows = [view.rows_into(self.raw(to_model_input(view.apply(gray))), letterbox) for view in views]
        return censored_consensus(raw, rows, rescored)

    def _closer_looks(
        self, gray: np.ndarray, square: np.ndarray, raw: np.ndarray, letterbox: Letterbox
    ) -> list[tuple[np.ndarray, Letterbox]]:
        """The letterboxed parts of the ink to look at again, each at least CLOSER_LOOK_MIN_GAIN
        times larger than in the first look: with two or more small drawings shown (at the
        detector's own thresholds), the two halves of the ink between them (`ink_halves`);
        else the ink no shown box touches (`unlabelled_ink`), or, when that ink spans the
        first frame (small writing far apart that the first look did not read), its two halves
        (each CLOSER_LOOK_SPREAD_GAIN times larger). Found on the first look's square.
        Drawings already large in the first look are not split: they are read well, and a
        closer look at each half would cost two more model runs on most canvases."""
        scale = letterbox.scale
        if scale * CLOSER_LOOK_MIN_GAIN > MAX_SCALE:
            return []  # the first look already sees the ink at (nearly) its drawn size
        shown, _, ids = postprocess(raw, self.conf, self.iou, self.censored_conf)
        drawings = shown[ids != CENSORED_ID]
        ink = ink_mask(square)
        if len(drawings) >= 2 and np.median(drawings[:, 3] - drawings[:, 1]) < CLOSER_LOOK_SMALL_INPUT_PX:
            halves = ink_halves(ink, drawings)
            if halves is not None:
                return self._framed_alone(gray, halves, letterbox, CLOSER_LOOK_MIN_GAIN * scale)
        unlabelled = unlabelled_ink(ink, shown, CLOSER_LOOK_CLEARANCE_INPUT_PX)
        if np.count_nonzero(unlabelled) < CLOSER_LOOK_MIN_INK:
            return []
        looks = self._framed_alone(gray, [unlabelled], letterbox, CLOSER_LOOK_MIN_GAIN * scale)
        if looks:
            return looks
        spread = ink_halves(unlabelled, np.empty((0, 4))) or ()  # cut between unread strokes
        return self._framed_alone(gray, spread, letterbox, CLOSER_LOOK_SPREAD_GAIN * scale)

    def _framed_alone(
        self, gray: np.ndarray, parts: Sequence[np.ndarray], letterbox: Letterbox, min_scale: float
    ) -> list[tuple[np.ndarray, Letterbox]]:
        """Each part of the ink (a mask on `letterbox`'s square) letterboxed alone, if that
        frames it at `min_scale` input pixels per canvas pixel or more."""
        looks = [letterbox_gray(ink_under(gray, part, letterbox), self.input_size) for part in parts]
        return [(look_square, look) for look_square, look in looks if look.scale >= min_scale]

    def raw(self, x: np.ndarray) -> np.ndarray:
        """The decoded model output (N, 5 + C) for one preprocessed (3, S, S) input."""
        return self._backend(x[None])[0]

    def decide(
        self,
        inference: Inference,
        conf: float | None = None,
        iou: float | None = None,
        censored_conf: float | None = None,
        all_candidates: bool = False,
    ) -> list[Detection]:
        """Decisions on what `infer` found (see `predict`). What is shown has each digit (and
        censored drawing) re-read by the reader, if any (`_read_again`); the mAP candidates are
        ranked by the reader too (`_candidates_read_again`)."""
        raw = inference.raw
        iou = self.iou if iou is None else iou
        if all_candidates:
            conf = EVAL_CONF if conf is None else conf
            boxes, scores, ids = postprocess_for_map(raw, conf, iou)
            boxes = inference.to_source(boxes)
            boxes, scores, ids = self._candidates_read_again(inference.gray, (boxes, scores, ids), conf, iou)
        else:
            conf = self.conf if conf is None else conf
            censored_conf = self.censored_conf if censored_conf is None else censored_conf
            candidates = self._censored_candidates_from(censored_conf)
            boxes, scores, ids = postprocess(raw, conf, iou, candidates)
            boxes = inference.to_source(boxes)
            boxes, scores, ids = one_label_per_object(boxes, scores, ids, iou)
            ids, scores = self._read_again(inference.gray, boxes, scores, ids)
            boxes, scores, ids = self._unlabelled_digits(inference, (boxes, scores, ids), conf)
            shown = np.flatnonzero((ids != CENSORED_ID) | (scores >= censored_conf))
            shown = shown[np.argsort(-scores[shown], kind="stable")]  # strongest first, as ever
            boxes, scores, ids = boxes[shown], scores[shown], ids[shown]
        return [
            Detection(
                label=CLASS_NAMES[c],
                class_id=int(c),
                score=float(s),
                box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
            )
            for b, s, c in zip(boxes, scores, ids, strict=True)
        ]

    def _censored_candidates_from(self, censored_conf: float) -> float:
        """The detector's censored score from which a drawing may still be shown as censored:
        `censored_conf`, or lower with a reader of every class (its p(censored) may lift it)."""
        if self.reader is None or not self.reader.reads_censored:
            return censored_conf
        weight = self.reader_censored_weight
        return min(censored_conf, max(MIN_CENSORED_CANDIDATE, (censored_conf - weight) / (1 - weight)))

    def _unlabelled_digits(self, inference: Inference, decisions: Decisions, conf: float) -> Decisions:
        """The decisions and the digits no look labelled: parts of the ink near the digits
        shown (`unlabelled_parts`, at the canvas's resolution) beside one of them as the next
        digit of a number (`beside_in_number`), which the reader reads as a digit with at least
        reader_unlabelled_digit_conf (or `conf`, if higher): shown as that digit, that
        probability their score. A bare bar, or a digit in a row the detector missed, mostly."""
        boxes, scores, ids = decisions
        digits = boxes[IS_DIGIT_ID[ids]]
        if self.reader is None or not len(digits):
            return decisions
        reach = (NUMBER_GAP + 1.0) * float(np.max(digits[:, 3] - digits[:, 1]))  # a digit further
        (x1, y1), (x2, y2) = digits[:, :2].min(axis=0), digits[:, 2:].max(axis=0)
        near = np.array([x1 - reach, y1 - reach / 2, x2 + reach, y2 + reach / 2])
        parts = unlabelled_parts(inference.gray, boxes, near, UNLABELLED_CLEARANCE_PX, UNLABELLED_JOIN_PX)
        parts = parts[beside_in_number(parts, digits)]
        if not len(parts):
            return decisions
        digit, p_digit = self.reader.likeliest_digits(self.reader.read(inference.gray, parts))
        found = p_digit >= max(self.reader_unlabelled_digit_conf, conf)
        return (
            np.concatenate([boxes, parts[found]]),
            np.concatenate([scores, p_digit[found]]),
            np.concatenate([ids, digit[found]]),
        )

    def _candidates_read_again(
        self, gray: np.ndarray, candidates: Decisions, conf: float, iou: float
    ) -> Decisions:
        """The mAP candidates ranked by the detector and the reader together
        (`reader_mixed_candidates`): each box of a class the reader reads is read from its crop;
        the others keep the detector's class and score."""
        if self.reader is None:
            return candidates
        boxes, _, ids = candidates
        class_probs = np.eye(NUM_CLASSES)[ids]
        read = np.isin(ids, self.reader.class_ids)
        class_probs[read] = self.reader.class_probs(self.reader.read(gray, boxes[read]))
        return reader_mixed_candidates(candidates, class_probs, self.reader_candidate_weight, conf, iou)

    def _read_again(
        self, gray: np.ndarray, boxes: np.ndarray, scores: np.ndarray, ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Classes and scores after the reader's look at each crop. A digit shown with a score
        under reader_digit_max_score becomes the digit the reader reads, or "other" for a reader
        that reads "other" where the detector's digit score is below reader_other_max_score
        (from reader_other_conf_in_number beside a digit scored that much, as in a number). Its
        score stays the detector's. A reader of every class also scores each censored drawing
        (READER_CENSORED_WEIGHT)."""
        if self.reader is None:
            return ids, scores
        is_digit = IS_DIGIT_ID[ids]
        digits = is_digit & (scores < self.reader_digit_max_score)
        censored = (ids == CENSORED_ID) & self.reader.reads_censored
        if not (digits | censored).any():
            return ids, scores
        ids, scores = ids.copy(), scores.copy()
        probs = self.reader.read(gray, boxes[digits | censored])
        from_digit = digits[digits | censored]
        doubtful = scores[digits] < self.reader_other_max_score
        sure = is_digit & (scores >= self.reader_other_max_score)
        in_number = beside_in_number(boxes[digits], boxes[sure])
        other_conf = np.where(in_number, self.reader_other_conf_in_number, self.reader_other_conf)
        ids[digits] = self.reader.classify_digits(probs[from_digit], other_conf, doubtful)
        weight = self.reader_censored_weight
        p_censored = self.reader.share(probs[~from_digit], CENSORED_ID)
        scores[censored] = (1 - weight) * scores[censored] + weight * p_censored
        return ids, scores


def _fit_reach(boxes: np.ndarray, first: Letterbox, closer: list[Letterbox]) -> np.ndarray:
    """How far `fit_to_ink` may move each box's cut sides: FIT_REACH_INPUT_PX in canvas pixels
    of the finest look whose frame holds the box's centre (the look it most likely came from:
    a closer look's rows outscore the first look's there, or it would not have been needed)."""
    reach = np.full(len(boxes), FIT_REACH_INPUT_PX / first.scale)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    for look in closer:
        x1, y1, x2, y2 = look.frame
        centred = (cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)
        reach[centred] = np.minimum(reach[centred], FIT_REACH_INPUT_PX / look.scale)
    return reach
