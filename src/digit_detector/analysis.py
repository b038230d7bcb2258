"""One interaction of the app, as a function: canvas image in, everything the page shows out.
`app.py` only lays this out; the benchmark and the tests call the same function."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .classes import CENSORED_ID, Detection
from .inference import Detector
from .preprocess import is_blank, to_gray_on_white
from .render import annotate, read_numbers, reading_order

BLANK_HINT = "Draw a digit (or a few) on the canvas: detection runs after each stroke."
NOTHING_FOUND = "Nothing detected. Try drawing larger or with a thicker stroke."
HIDDEN_BY_SLIDER = "Nothing detected at this confidence threshold: lower the slider to see weaker detections."


@dataclass
class Analysis:
    detections: list[Detection] = field(default_factory=list)  # in reading order
    annotated: Image.Image | None = None
    numbers: list[str] = field(default_factory=list)
    message: str | None = None  # a hint for the user instead of (or beside) results
    blank: bool = False
    gray: np.ndarray | None = field(default=None, repr=False)  # the canvas composited on white
    censor_note: str | None = None  # why something is pixelated although it scores below the slider

    def table(self) -> list[dict[str, object]]:
        """One row per detection, numbered as in the annotated image."""
        return [
            {
                "box": i,
                "label": d.label,
                "score": round(d.score, 3),
                "x1": round(d.box[0]),
                "y1": round(d.box[1]),
                "x2": round(d.box[2]),
                "y2": round(d.box[3]),
            }
            for i, d in enumerate(self.detections, 1)
        ]


def analyse(
    image: Image.Image | np.ndarray | None,
    detector: Detector,
    conf: float | None = None,
    display_width: int | None = None,
) -> Analysis:
    """Blank or missing canvas: no inference, a hint. Otherwise the detections `predict` gives
    at the same settings (one label per object; censored from the detector's censored
    threshold, whatever `conf`), in reading order, the annotated image (censored regions
    pixelated, boxes numbered) and the numbers read left to right."""
    if image is None:
        return Analysis(message=BLANK_HINT, blank=True)
    gray = to_gray_on_white(image)  # once; every step below takes the gray image
    if is_blank(gray):
        return Analysis(message=BLANK_HINT, blank=True)
    threshold = detector.conf if conf is None else conf
    inference = detector.infer(gray)  # the model runs once; decisions are cheap
    detections = reading_order(detector.decide(inference, conf=threshold))
    message = None
    if not detections:
        weaker = detector.decide(inference, conf=min(threshold, 0.1))
        message = HIDDEN_BY_SLIDER if weaker and threshold > 0.1 else NOTHING_FOUND
    return Analysis(
        detections=detections,
        annotated=annotate(gray, detections, display_width=display_width),
        numbers=read_numbers(detections),
        message=message,
        gray=gray,
        censor_note=_censor_note(detections, threshold, detector.censored_conf),
    )


def warm_up(detector: Detector) -> None:
    """One interaction on a small drawing, so a session's first stroke finds the model, the
    font and the image code already loaded (the first ONNX run alone costs ~100 ms)."""
    canvas = np.full((96, 96), 255, np.uint8)
    canvas[20:76, 44:52] = 0  # a "1"
    analyse(canvas, detector, display_width=96)


def _censor_note(detections: list[Detection], threshold: float, censored_conf: float) -> str | None:
    weak = [d for d in detections if d.class_id == CENSORED_ID and d.score < threshold]
    if not weak:
        return None
    return (
        f"Pixelated: a drawing that may be obscene (censored score {max(d.score for d in weak):.2f}). "
        f"Censored drawings are hidden from a score of {censored_conf:.2f}, below the confidence "
        "slider, because showing one costs more than hiding a doodle."
    )
