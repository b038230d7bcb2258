"""Boxes from ink alone: group the strokes of a drawing into objects.

The seed project's trick (threshold, findContours, boundingRect) splits a 4, 5 or 7 drawn in
two strokes that do not touch, and merges neighbours that do. Here: ink pixels (the same 50%
threshold as the training boxes) are closed with a kernel a little wider than the stroke, so
gaps of about a stroke width heal; the pieces that remain are merged when they overlap
horizontally (parts of one character stack vertically, characters in a number sit side by
side), and specks far from everything are dropped.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..preprocess import to_gray_on_white

INK_THRESHOLD = 128


def stroke_width(ink: np.ndarray) -> float:
    """Typical stroke width in pixels: twice the median distance-to-paper along the skeleton."""
    if not ink.any():
        return 0.0
    dist = cv2.distanceTransform(ink.astype(np.uint8), cv2.DIST_L2, 5)
    ridge = dist[(dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8))) & (dist > 0)]
    return float(2 * np.median(ridge)) if len(ridge) else 1.0


def _merge(boxes: list[list[float]], min_overlap: float, max_gap: float) -> list[list[float]]:
    """Merge boxes whose x-ranges overlap by > min_overlap of the narrower one and that are at
    most max_gap x (taller height) apart vertically; repeat until nothing merges."""
    boxes = [b[:] for b in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                overlap_x = min(a[2], b[2]) - max(a[0], b[0])
                narrow = min(a[2] - a[0], b[2] - b[0])
                gap_y = max(a[1], b[1]) - min(a[3], b[3])
                tall = max(a[3] - a[1], b[3] - b[1])
                if overlap_x > min_overlap * narrow and gap_y < max_gap * tall:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def propose_boxes(
    image: np.ndarray, min_size: float | None = None
) -> list[tuple[float, float, float, float]]:
    """Object boxes (x1, y1, x2, y2, exclusive x2/y2) from the ink of a drawing, left to right."""
    gray = to_gray_on_white(image)
    ink = gray < INK_THRESHOLD
    if not ink.any():
        return []
    width = stroke_width(ink)
    k = max(3, round(width * 1.2) | 1)
    closed = cv2.morphologyEx(
        ink.astype(np.uint8), cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    )
    count, labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
    boxes = []
    for i in range(1, count):
        x, y, w, h, _ = stats[i]
        part = (labels[y : y + h, x : x + w] == i) & ink[y : y + h, x : x + w]
        ys, xs = np.nonzero(part)  # tight box of the real ink, not of the closed mask
        if len(xs):
            boxes.append(
                [float(x + xs.min()), float(y + ys.min()), float(x + xs.max() + 1), float(y + ys.max() + 1)]
            )
    boxes = _merge(boxes, min_overlap=0.3, max_gap=0.35)
    smallest = min_size if min_size is not None else max(3.0 * width, 0.02 * max(gray.shape))
    boxes = [b for b in boxes if max(b[2] - b[0], b[3] - b[1]) >= smallest]
    return [(b[0], b[1], b[2], b[3]) for b in sorted(boxes, key=lambda b: b[0])]
