"""What the user sees: boxes, labels and scores drawn on the drawing, censored regions
pixelated, and the digits read left to right as numbers. Pillow only (no matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .classes import CENSORED_ID, OTHER_ID, Detection
from .preprocess import to_gray_on_white

# Readable on white, distinct per digit (Tableau 10), grey for "other", red for "censored".
CLASS_COLOURS: dict[int, tuple[int, int, int]] = {
    0: (31, 119, 180),
    1: (255, 127, 14),
    2: (44, 160, 44),
    3: (214, 39, 40),
    4: (148, 103, 189),
    5: (140, 86, 75),
    6: (227, 119, 194),
    7: (23, 190, 207),
    8: (188, 189, 34),
    9: (0, 90, 60),
    OTHER_ID: (110, 110, 110),
    CENSORED_ID: (200, 0, 0),
}


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # very old Pillow without sized default fonts
        return ImageFont.load_default()


def pixelate(image: Image.Image, box: tuple[float, float, float, float], block: int = 12) -> None:
    """Replace the box's pixels, in place, by coarse blocks that hide what was drawn."""
    x1, y1, x2, y2 = (round(v) for v in box)
    x1, y1 = max(0, x1), max(0, y1)
    x2, y2 = min(image.width, x2), min(image.height, y2)
    if x2 - x1 < 1 or y2 - y1 < 1:
        return
    region = image.crop((x1, y1, x2, y2))
    small = region.resize((max(1, (x2 - x1) // block), max(1, (y2 - y1) // block)), Image.Resampling.BOX)
    image.paste(small.resize(region.size, Image.Resampling.NEAREST), (x1, y1))


def annotate(
    image: Image.Image | np.ndarray,
    detections: Sequence[Detection],
    display_width: int | None = None,
    show_scores: bool = True,
) -> Image.Image:
    """The drawing (composited on white) with every detection drawn on it, as an RGB image.

    display_width: scale the result to this width first, so line widths and text stay
    readable whatever the canvas size; boxes are scaled with it.
    """
    base = Image.fromarray(to_gray_on_white(image)).convert("RGB")
    scale = 1.0
    if display_width and display_width != base.width:
        scale = display_width / base.width
        base = base.resize((display_width, max(1, round(base.height * scale))), Image.Resampling.LANCZOS)
    boxes = [(d.box[0] * scale, d.box[1] * scale, d.box[2] * scale, d.box[3] * scale) for d in detections]
    for d, box in zip(detections, boxes, strict=True):
        if d.class_id == CENSORED_ID:
            pixelate(base, box)
    draw = ImageDraw.Draw(base)
    line = max(2, round(min(base.size) / 160))
    font = _font(max(12, round(min(base.size) / 22)))
    for d, box in sorted(zip(detections, boxes, strict=True), key=lambda p: p[0].score):
        colour = CLASS_COLOURS.get(d.class_id, (0, 0, 0))
        x1, y1, x2, y2 = box
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        text = f"{d.label} {d.score:.2f}" if show_scores else d.label
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
        ty = y1 - th - 2 * line if y1 - th - 2 * line >= 0 else y1
        draw.rectangle((x1, ty, x1 + tw + 2 * line, ty + th + 2 * line), fill=colour)
        draw.text((x1 + line - left, ty + line - top), text, fill=(255, 255, 255), font=font)
    return base


def read_numbers(detections: Sequence[Detection]) -> list[str]:
    """Digits read left to right, one string per line of writing, top line first.

    A digit joins a line when its vertical centre falls within that line's vertical extent;
    within a line, a horizontal gap wider than the line's mean digit height starts a new
    number (shown after a space).
    """
    digits = sorted((d for d in detections if d.is_digit), key=lambda d: d.center[1])
    lines: list[list[Detection]] = []
    for d in digits:
        cy = d.center[1]
        for line in lines:
            top = float(np.mean([m.box[1] for m in line]))
            bottom = float(np.mean([m.box[3] for m in line]))
            if top <= cy <= bottom:
                line.append(d)
                break
        else:
            lines.append([d])
    lines.sort(key=lambda ln: float(np.mean([m.center[1] for m in ln])))
    out = []
    for line in lines:
        line.sort(key=lambda m: m.center[0])
        height = float(np.mean([m.height for m in line]))
        text = line[0].label
        for prev, cur in pairwise(line):
            gap = cur.box[0] - prev.box[2]
            text += (" " if gap > height else "") + cur.label
        out.append(text)
    return out
