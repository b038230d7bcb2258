from __future__ import annotations

import numpy as np
import pytest

from digit_detector.boxes import box_iou
from digit_detector.postprocess import class_aware_nms, nms, postprocess


def brute_force_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, thr: float) -> list[int]:
    """Textbook greedy NMS, one box at a time, per class."""
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        ok = True
        for j in keep:
            if classes[i] != classes[j]:
                continue
            x1, y1 = max(boxes[i][0], boxes[j][0]), max(boxes[i][1], boxes[j][1])
            x2, y2 = min(boxes[i][2], boxes[j][2]), min(boxes[i][3], boxes[j][3])
            inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
            area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
            if inter / (area(boxes[i]) + area(boxes[j]) - inter) > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", range(20))
def test_class_aware_nms_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    xy = rng.uniform(0, 150, (n, 2))
    wh = rng.uniform(5, 60, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1)
    scores = rng.permutation(n) / n + 0.01  # distinct scores: a unique answer
    classes = rng.integers(0, 3, n)
    thr = float(rng.uniform(0.2, 0.7))
    got = class_aware_nms(boxes, scores, classes, thr).tolist()
    assert got == brute_force_nms(boxes, scores, classes, thr)


def test_nms_and_iou_edge_cases() -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0.0]])


def _raw(rows: list[list[float]], num_classes: int = 12) -> np.ndarray:
    out = np.zeros((len(rows), 5 + num_classes), np.float32)
    for i, (cx, cy, w, h, obj, cls, p) in enumerate(rows):
        out[i, :5] = (cx, cy, w, h, obj)
        out[i, 5 + int(cls)] = p
    return out


def test_postprocess_filters_decodes_and_sorts() -> None:
    raw = _raw(
        [
            [50, 50, 20, 40, 0.9, 3, 0.9],  # 0.81
            [52, 50, 20, 40, 0.8, 3, 0.9],  # duplicate of the first, suppressed
            [52, 50, 20, 40, 0.8, 7, 0.9],  # same place, other class: kept
            [150, 150, 10, 10, 0.3, 1, 0.5],  # 0.15 < conf
        ]
    )
    boxes, scores, classes = postprocess(raw, conf=0.25, iou=0.45)
    assert classes.tolist() == [3, 7]
    np.testing.assert_allclose(scores, [0.81, 0.72], rtol=1e-5)
    np.testing.assert_allclose(boxes[0], [40, 30, 60, 70])
    with pytest.raises(ValueError, match="conf"):
        postprocess(raw, conf=1.5)
