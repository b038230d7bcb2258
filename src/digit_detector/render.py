"""What the user sees: boxes, labels and scores drawn on the drawing, censored regions
pixelated, and the digits read left to right as numbers. Pillow only (no matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .boxes import box_coverage
from .classes import CENSORED_ID, OTHER_ID, Detection

OTHER_COVER = 0.6  # a digit this much inside an "other" box is part of that drawing
NUMBER_GAP = 1.0  # a gap wider than this x the digits' height starts a new number
NUMBER_HEIGHT_RATIO = 2.0  # digits of one number: neither this many times taller than the other

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
def label_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # very old Pillow without sized default fonts
        return ImageFont.load_default()


PIXEL_CELLS = 4  # cells along the longer side of a censored box: the shape cannot be read back


def pixelate(image: Image.Image, box: tuple[float, float, float, float], cells: int = PIXEL_CELLS) -> None:
    """Replace the box's pixels, in place, by a few coarse cells (at most `cells` along its
    longer side), each the mean of what it covers: the tone is kept, the shape is not."""
    x1, y1, x2, y2 = (round(v) for v in box)
    x1, y1 = max(0, x1), max(0, y1)
    x2, y2 = min(image.width, x2), min(image.height, y2)
    if x2 - x1 < 1 or y2 - y1 < 1:
        return
    region = image.crop((x1, y1, x2, y2))
    side = max(region.size)
    grid = (max(1, round(cells * region.width / side)), max(1, round(cells * region.height / side)))
    small = region.resize(grid, Image.Resampling.BOX)
    image.paste(small.resize(region.size, Image.Resampling.NEAREST), (x1, y1))


def annotate(
    gray: np.ndarray,
    detections: Sequence[Detection],
    display_width: int | None = None,
    show_scores: bool = True,
) -> Image.Image:
    """The drawing ((H, W) uint8, composited on white: `to_gray_on_white`) with every
    detection drawn on it, as an RGB image. Labels are numbered 1, 2, ... in the order given
    (the app passes reading order, the order of its table), placed where they cover no other
    label, in black or white text, whichever reads better on the class colour.

    display_width: scale the result to this width first, so line widths and text stay
    readable whatever the canvas size; boxes are scaled with it.
    """
    base = Image.fromarray(gray).convert("RGB")
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
    font = label_font(max(12, round(min(base.size) / 22)))
    for d, box in zip(detections, boxes, strict=True):
        draw.rectangle(box, outline=CLASS_COLOURS.get(d.class_id, (0, 0, 0)), width=line)
    placed: list[tuple[float, float, float, float]] = []
    for number, (d, box) in enumerate(zip(detections, boxes, strict=True), 1):
        colour = CLASS_COLOURS.get(d.class_id, (0, 0, 0))
        text = f"{number}: {d.label} {d.score:.2f}" if show_scores else f"{number}: {d.label}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        size = (right - left + 2 * line, bottom - top + 2 * line)
        x, y = _label_position(box, size, base.size, placed)
        placed.append((x, y, x + size[0], y + size[1]))
        draw.rectangle(placed[-1], fill=colour)
        draw.text((x + line - left, y + line - top), text, fill=text_colour(colour), font=font)
    return base


def text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with `background` (WCAG relative luminance)."""

    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    lum = 0.2126 * channel(background[0]) + 0.7152 * channel(background[1]) + 0.0722 * channel(background[2])
    on_white = 1.05 / (lum + 0.05)
    on_black = (lum + 0.05) / 0.05
    return (255, 255, 255) if on_white >= on_black else (0, 0, 0)


def _label_position(
    box: tuple[float, float, float, float],
    size: tuple[float, float],
    image_size: tuple[int, int],
    placed: Sequence[tuple[float, float, float, float]],
) -> tuple[float, float]:
    """Above the box, else inside its top, else below it, else further up or down: the first
    place inside the image that overlaps no label already placed."""
    x1, y1, _, y2 = box
    w, h = size
    x = min(max(0.0, x1), max(0.0, image_size[0] - w))
    candidates = [y1 - h, y1, y2, *(y1 - h - k * h for k in range(1, 4)), *(y2 + k * h for k in range(1, 4))]
    inside = [y for y in candidates if 0 <= y <= image_size[1] - h] or [max(0.0, min(y1, image_size[1] - h))]
    for y in inside:
        if not any(x < p[2] and p[0] < x + w and y < p[3] and p[1] < y + h for p in placed):
            return x, y
    return x, inside[0]


def _centre_within_rows(boxes: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """(N, M): does box i's vertical centre lie within the rows span j covers (both xyxy)?
    What "on the same line" means, for lines of writing and digits of one number."""
    centre = (boxes[:, None, 1] + boxes[:, None, 3]) / 2
    return (centre >= spans[None, :, 1]) & (centre <= spans[None, :, 3])


def lines_of_writing(detections: Sequence[Detection]) -> list[list[Detection]]:
    """Detections grouped into lines, top line first, each left to right. A detection joins a
    line when its vertical centre falls within that line's mean vertical extent."""
    lines: list[list[Detection]] = []
    for d in sorted(detections, key=lambda d: d.center[1]):
        box = np.array([d.box])
        for line in lines:
            if _centre_within_rows(box, np.mean([m.box for m in line], axis=0, keepdims=True))[0, 0]:
                line.append(d)
                break
        else:
            lines.append([d])
    lines.sort(key=lambda ln: float(np.mean([m.center[1] for m in ln])))
    return [sorted(line, key=lambda m: m.center[0]) for line in lines]


def reading_order(detections: Sequence[Detection]) -> list[Detection]:
    """Every detection in reading order: the order of the table and of the numbers drawn next
    to the boxes."""
    return [d for line in lines_of_writing(detections) for d in line]


def covered_by_other(detections: Sequence[Detection], min_cover: float = OTHER_COVER) -> list[bool]:
    """For each detection: is it a digit lying mostly (min_cover of its area) inside an
    "other" box? Such a digit belongs to a drawing (a clock face, a house number on a house)."""
    others = np.array([d.box for d in detections if d.class_id == OTHER_ID], dtype=np.float64).reshape(-1, 4)
    if not len(others):
        return [False] * len(detections)
    boxes = np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4)
    cover = box_coverage(boxes, others).max(axis=1)
    return [d.is_digit and bool(c >= min_cover) for d, c in zip(detections, cover, strict=True)]


def beside_in_number(boxes: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """For each (N, 4) xyxy box: does one of the (M, 4) `neighbours` sit where the next digit
    of the same number would? On its line (each one's vertical centre within the other's
    extent), of a like height (NUMBER_HEIGHT_RATIO) and at most NUMBER_GAP x their mean height
    apart, as `read_numbers` joins digits."""
    if len(boxes) == 0 or len(neighbours) == 0:
        return np.zeros(len(boxes), dtype=bool)
    same_line = _centre_within_rows(boxes, neighbours) & _centre_within_rows(neighbours, boxes).T
    box, other = boxes[:, None, :], neighbours[None, :, :]
    height, other_height = box[..., 3] - box[..., 1], other[..., 3] - other[..., 1]
    like_height = (height <= NUMBER_HEIGHT_RATIO * other_height) & (
        other_height <= NUMBER_HEIGHT_RATIO * height
    )
    gap = np.maximum(other[..., 0] - box[..., 2], box[..., 0] - other[..., 2])
    close = gap <= NUMBER_GAP * (height + other_height) / 2
    return (same_line & like_height & close).any(axis=1)


def read_numbers(detections: Sequence[Detection]) -> list[str]:
    """Digits read left to right, one string per line of writing, top line first.

    Only digits count, and not those inside an "other" box. Within a line, a horizontal gap
    wider than NUMBER_GAP x the line's mean digit height starts a new number (shown after a
    space).
    """
    inside = covered_by_other(detections)
    digits = [d for d, covered in zip(detections, inside, strict=True) if d.is_digit and not covered]
    out = []
    for line in lines_of_writing(digits):
        height = float(np.mean([m.height for m in line]))
        text = line[0].label
        for prev, cur in pairwise(line):
            gap = cur.box[0] - prev.box[2]
            text += (" " if gap > NUMBER_GAP * height else "") + cur.label
        out.append(text)
    return out
