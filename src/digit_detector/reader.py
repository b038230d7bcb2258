"""Digit reader: a second look at each digit the detector shows, cut out on its own.

The detector decides where the digits are. Which digit each one is, it reads from a 192-px view
of the whole canvas in which neighbours crowd it (in multi-digit numbers it reads about 98.4%
of the digits right, so a five-digit number is read exactly about nine times in ten). The
reader is a small classifier over one digit's crop: the digit's box made square with a margin
(`CROP_MARGIN`), resized by area to its input size (`READER_INPUT_PX` unless trained with
`--input-px`; the file records it) and its ink normalised like the
detector's input (`normalise_ink`). It is trained on crops of the composed training scenes
(`reader_train.py`, training-split writers only) and relabels the digits the detector shows
(those it is not sure of); the score shown stays the detector's (how sure it is that a digit is
there). A reader trained with `--read-other` also reads "other" (a doodle), which `Detector`
shows where the detector itself was unsure of the digit. One trained with `--read-censored`
(the bundled one) also reads censored: `Detector` combines its p(censored) with the detector's
censored score.

Serving needs no torch: the reader is a small ONNX file beside the detector's. The bundled
file holds four such classifiers (two seeds, and two seeds of one 1.5x as wide), and returns
the mean of their probabilities (`reader_train.ReaderEnsemble`); served like one, computed in int8
(`ensemble-readers --int8`: half the time of float, the same held-out figures within a few
canvases in thousands).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .classes import (
    CENSORED_ID,
    CLASS_ID_BY_NAME,
    CLASS_NAMES,
    DIGIT_IDS,
    IS_DIGIT_ID,
    NUM_CLASSES,
    OTHER_ID,
)
from .errors import WeightsError
from .onnx_session import serving_session
from .preprocess import INPUT_SCALE, PAD_VALUE, normalise_ink

READER_INPUT_PX = 32  # the default input side; a reader's file records its own
READER_INPUT_PX_RANGE = (16, 96)  # and a multiple of 8 (three 2x poolings)
CROP_MARGIN = 1.15  # crop side = this x the box's longer side (+ CROP_PAD_PX)
CROP_PAD_PX = 2.0
READER_FILE = "digit-reader.onnx"
METADATA_KEY = "digit_reader"
DIGIT_CLASSES: tuple[str, ...] = tuple(CLASS_NAMES[i] for i in sorted(DIGIT_IDS))
# A reader trained with `--read-other` also tells a digit from something that is not one.
DIGIT_OR_OTHER_CLASSES: tuple[str, ...] = (*DIGIT_CLASSES, CLASS_NAMES[OTHER_ID])
# One trained with `--read-censored` also tells an obscene doodle from an ordinary one.
EVERY_CLASS: tuple[str, ...] = (*DIGIT_OR_OTHER_CLASSES, CLASS_NAMES[CENSORED_ID])
READER_CLASS_SETS = (DIGIT_CLASSES, DIGIT_OR_OTHER_CLASSES, EVERY_CLASS)


def reader_crop(
    gray: np.ndarray, box: np.ndarray | tuple[float, ...], input_px: int = READER_INPUT_PX
) -> np.ndarray:
    """The reader's input for one box (x1, y1, x2, y2 in `gray`'s pixels): a square around the
    box's centre, CROP_MARGIN x its longer side, white beyond the image, resized by area to
    (input_px, input_px), ink normalised; float32, white = 1.0."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0) * CROP_MARGIN + CROP_PAD_PX
    n = int(np.ceil(side))
    left, top = int(np.floor((x1 + x2 - n) / 2)), int(np.floor((y1 + y2 - n) / 2))
    square = np.full((n, n), PAD_VALUE, np.uint8)
    height, width = gray.shape
    sx1, sy1, sx2, sy2 = max(left, 0), max(top, 0), min(left + n, width), min(top + n, height)
    if sx2 > sx1 and sy2 > sy1:
        square[sy1 - top : sy2 - top, sx1 - left : sx2 - left] = gray[sy1:sy2, sx1:sx2]
    interpolation = cv2.INTER_AREA if n > input_px else cv2.INTER_LINEAR
    small = cv2.resize(square, (input_px, input_px), interpolation=interpolation)
    return normalise_ink(small).astype(np.float32) * np.float32(INPUT_SCALE)


def reader_batch(gray: np.ndarray, boxes: np.ndarray, input_px: int = READER_INPUT_PX) -> np.ndarray:
    """The reader's input for several boxes: (N, 1, input_px, input_px)."""
    crops = [reader_crop(gray, box, input_px) for box in boxes]
    return np.stack(crops)[:, None] if crops else np.zeros((0, 1, input_px, input_px), np.float32)


def check_input_px(input_px: object) -> int:
    """A reader's input side: an int in READER_INPUT_PX_RANGE, a multiple of 8."""
    low, high = READER_INPUT_PX_RANGE
    if (
        not isinstance(input_px, int)
        or isinstance(input_px, bool)
        or not low <= input_px <= high
        or input_px % 8
    ):
        raise ValueError(
            f"a reader's input side is a multiple of 8 from {low} to {high} px, not {input_px!r}"
        )
    return input_px


def reader_metadata(
    source: dict[str, Any], classes: tuple[str, ...] = DIGIT_CLASSES, input_px: int = READER_INPUT_PX
) -> dict[str, Any]:
    """What an exported reader records, and what `DigitReader` checks on loading: the crop it
    was trained on must be the crop it is served; `classes` are its outputs, in order."""
    return {
        "input_px": input_px,
        "crop_margin": CROP_MARGIN,
        "crop_pad_px": CROP_PAD_PX,
        "classes": list(classes),
        "source": source,
    }


class DigitReader:
    """Serving: the ONNX reader. `read(gray, boxes)` -> (N, len(classes)) probabilities;
    `class_ids[i]` is output i's detector class id."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"digit reader not found: {path}")
        try:
            self.session = serving_session(path, threads)
            self.metadata = json.loads(self.session.get_modelmeta().custom_metadata_map[METADATA_KEY])
        except Exception as exc:  # ORT's own types for a damaged file; KeyError/JSON for foreign ones
            raise WeightsError(
                f"cannot load the digit reader {path}: corrupted, or not exported by "
                f"`digit-detector train-reader` ({type(exc).__name__}: {exc})"
            ) from exc
        classes = tuple(self.metadata.get("classes", ()))
        if classes not in READER_CLASS_SETS:
            raise WeightsError(
                f"{path} reads the classes {list(classes)}; this version serves readers of the "
                "digits, the digits and other, or every class"
            )
        self.input_px = self._checked_input_px(path)
        expected = reader_metadata(self.metadata.get("source", {}), classes, self.input_px)
        if any(self.metadata.get(key) != expected[key] for key in expected if key != "source"):
            raise WeightsError(f"{path} was trained on another crop than this version serves; retrain it")
        self.classes = classes
        self.class_ids = np.array([CLASS_ID_BY_NAME[name] for name in classes])
        self.path = path
        self.input_name = self.session.get_inputs()[0].name

    def _checked_input_px(self, path: Path) -> int:
        """The input side the file records, which its graph must take."""
        try:
            input_px = check_input_px(self.metadata.get("input_px"))
        except ValueError as exc:
            raise WeightsError(
                f"{path} was trained on another crop than this version serves: {exc}"
            ) from None
        if list(self.session.get_inputs()[0].shape[2:]) != [input_px, input_px]:
            raise WeightsError(
                f"{path} was trained on another crop than its graph takes ({input_px} px recorded)"
            )
        return input_px

    @property
    def reads_censored(self) -> bool:
        """Whether the reader tells obscene doodles from ordinary ones (`--read-censored`)."""
        return bool((self.class_ids == CENSORED_ID).any())

    def share(self, probs: np.ndarray, class_id: int) -> np.ndarray:
        """Each row's probability of `class_id` (0 where the reader does not read it)."""
        return probs[:, self.class_ids == class_id].sum(axis=1)

    def class_probs(self, probs: np.ndarray) -> np.ndarray:
        """Rows of `read` as (N, NUM_CLASSES) probabilities, 0 for the classes it does not read."""
        full = np.zeros((len(probs), NUM_CLASSES), dtype=np.float64)
        full[:, self.class_ids] = probs
        return full

    def likeliest_digits(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row of `read`'s likeliest digit: its class id and its probability."""
        column = np.where(IS_DIGIT_ID[self.class_ids], probs, -1.0).argmax(axis=1)
        return self.class_ids[column], probs[np.arange(len(probs)), column]

    def classify_digits(
        self, probs: np.ndarray, other_conf: float | np.ndarray, may_be_other: np.ndarray | None = None
    ) -> np.ndarray:
        """Each digit shown's class id from its row of `read`: "other" where the reader's
        p(other) is at least `other_conf` (one for all rows, or one per row) and `may_be_other`
        allows it (never, for a digits-only reader), else the digit it reads most likely."""
        digit, _ = self.likeliest_digits(probs)
        other = (self.share(probs, OTHER_ID) >= other_conf) & (self.class_ids == OTHER_ID).any()
        if may_be_other is not None:
            other &= may_be_other
        return np.where(other, OTHER_ID, digit)

    def read(self, gray: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        if len(boxes) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        crops = reader_batch(gray, boxes, self.input_px)
        return np.asarray(self.session.run(None, {self.input_name: crops})[0])
