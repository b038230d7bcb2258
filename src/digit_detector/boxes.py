"""The one place where a box changes format (numpy only, serving side).

Formats, all (N, 4) float arrays:
- xyxy: x1, y1, x2, y2 in continuous pixel coordinates (pixel i covers [i, i + 1)); the
  project's own format everywhere between functions.
- xywh: x1, y1, width, height (COCO's "bbox").
- cxcywh: centre x, centre y, width, height (the model's decoded output, the loss).
- yolo: cxcywh divided by the image's width and height (YOLO label files).

A YOLO label line is "class cx cy w h" with the four numbers normalised; `format_label_lines`
and `parse_label_lines` are its only writer and reader. The loss has torch twins of the
centre conversions (`model/loss.py`); they follow the formulas here.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import UserError


class LabelFormatError(UserError, ValueError):
    """A YOLO label text that is not "class cx cy w h" lines with valid values."""


def _as_boxes(boxes: np.ndarray) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    b = _as_boxes(boxes)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    b = _as_boxes(boxes)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    b = _as_boxes(boxes)
    return np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1)


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes).reshape(-1, 4)  # keeps float32 on the serving hot path
    half = b[:, 2:] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def xyxy_to_yolo(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel xyxy -> cx, cy, w, h normalised by the image size."""
    return xyxy_to_cxcywh(boxes) / np.array([width, height, width, height], dtype=np.float64)


def yolo_to_xyxy(rows: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised cx, cy, w, h -> pixel xyxy."""
    scaled = _as_boxes(rows) * np.array([width, height, width, height], dtype=np.float64)
    return cxcywh_to_xyxy(scaled)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M): the area each (N, 4) xyxy box of `a` shares with each (M, 4) box of `b`. Width
    and height computed apart: 3-4x faster than one (N, M, 2) array and its product, on the
    few dozen boxes of every prediction's NMS."""
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(width, 0, None) * np.clip(height, 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M)."""
    inter = _intersection(a, b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def box_coverage(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """(N, M): the share of each `inner` box's area that lies inside each `outer` box."""
    area = (inner[:, 2] - inner[:, 0]) * (inner[:, 3] - inner[:, 1])
    return _intersection(inner, outer) / np.maximum(area[:, None], 1e-9)


def format_label_lines(boxes: np.ndarray, class_ids: np.ndarray, width: int, height: int) -> str:
    """YOLO label text: one "class cx cy w h\\n" line per box (6 decimals)."""
    rows = xyxy_to_yolo(boxes, width, height)
    ids = np.asarray(class_ids).reshape(-1)
    if len(ids) != len(rows):
        raise ValueError(f"{len(rows)} boxes but {len(ids)} class ids")
    return "".join(
        f"{int(c)} {r[0]:.6f} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f}\n" for c, r in zip(ids, rows, strict=True)
    )


def parse_label_lines(
    text: str, width: int, height: int, num_classes: int, where: str = "labels"
) -> tuple[np.ndarray, np.ndarray]:
    """YOLO label text -> (boxes (N, 4) pixel xyxy, class ids (N,)). Blank lines are skipped;
    anything else that is not "class cx cy w h" with a known class, finite values, a positive
    size and a centre inside the image raises LabelFormatError naming `where` and the line."""
    ids: list[int] = []
    rows: list[list[float]] = []
    for line_no, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        problem = _label_line_problem(parts, num_classes)
        if problem:
            raise LabelFormatError(f"{where}:{line_no}: {problem}: {line.strip()!r}")
        ids.append(int(parts[0]))
        rows.append([float(v) for v in parts[1:]])
    return yolo_to_xyxy(np.array(rows), width, height), np.array(ids, dtype=np.int64)


def _label_line_problem(parts: list[str], num_classes: int) -> str:
    if len(parts) != 5:
        return "expected 'class cx cy w h'"
    try:
        class_id = int(parts[0])
        cx, cy, w, h = (float(v) for v in parts[1:])
    except ValueError:
        return "not numbers"
    if not 0 <= class_id < num_classes:
        return f"class id {class_id} outside 0..{num_classes - 1}"
    if not all(math.isfinite(v) for v in (cx, cy, w, h)):
        return "values must be finite"
    # Sizes a little over 1: boxes may reach half a pixel past the edge of a tiny image.
    if not (0 <= cx <= 1 and 0 <= cy <= 1 and 0 < w <= 1.1 and 0 < h <= 1.1):
        return "centre must lie in [0, 1] and size in (0, 1] (normalised by the image size)"
    return ""
