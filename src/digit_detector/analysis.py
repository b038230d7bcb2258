"""One interaction of the app, as a function: canvas image in, everything the page shows out.
`app.py` only lays this out; the benchmark and the tests call the same function."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .classes import CENSORED_ID, Detection
from .inference import Detector
from .postprocess import CENSORED_CONF
from .preprocess import is_blank, to_gray_on_white
from .render import annotate, read_numbers

BLANK_HINT = "Draw a digit (or a few) on the canvas: detection runs after each stroke."
NOTHING_FOUND = "Nothing detected. Try drawing larger or with a thicker stroke."


@dataclass
class Analysis:
    detections: list[Detection] = field(default_factory=list)
    annotated: Image.Image | None = None
    numbers: list[str] = field(default_factory=list)
    message: str | None = None  # a hint for the user instead of (or beside) results
    blank: bool = False
    gray: np.ndarray | None = field(default=None, repr=False)  # the canvas composited on white

    def table(self) -> list[dict[str, object]]:
        return [
            {
                "label": d.label,
                "score": round(d.score, 3),
                "x1": round(d.box[0]),
                "y1": round(d.box[1]),
                "x2": round(d.box[2]),
                "y2": round(d.box[3]),
            }
            for d in self.detections
        ]


def analyse(
    image: Image.Image | np.ndarray | None,
    detector: Detector,
    conf: float | None = None,
    display_width: int | None = None,
) -> Analysis:
    """Blank or missing canvas: no inference, a hint. Otherwise detections, the annotated
    image (censored regions pixelated) and the numbers read left to right."""
    if image is None:
        return Analysis(message=BLANK_HINT, blank=True)
    gray = to_gray_on_white(image)  # once; every step below accepts it as is
    if is_blank(gray):
        return Analysis(message=BLANK_HINT, blank=True)
    threshold = detector.conf if conf is None else conf
    detections = [
        d
        for d in detector.predict(gray, conf=min(threshold, CENSORED_CONF))
        if d.score >= threshold or (d.class_id == CENSORED_ID and d.score >= CENSORED_CONF)
    ]
    annotated = annotate(gray, detections, display_width=display_width)
    return Analysis(
        detections=detections,
        annotated=annotated,
        numbers=read_numbers(detections),
        message=None if detections else NOTHING_FOUND,
        gray=gray,
    )
