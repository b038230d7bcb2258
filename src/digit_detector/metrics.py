"""Detection metrics: COCO mAP via pycocotools, recall at a threshold, confusion matrix.

Every function takes per-image ground truth and predictions as plain arrays (boxes x1y1x2y2 in
any pixel space, the same for both), so training-time validation and `evaluate` share them.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .boxes import box_iou, xyxy_to_xywh
from .classes import CLASS_NAMES, NUM_CLASSES, Detection


@dataclass
class ImageTruth:
    boxes: np.ndarray  # (N, 4)
    class_ids: np.ndarray  # (N,)


@dataclass
class ImagePrediction:
    boxes: np.ndarray  # (K, 4)
    scores: np.ndarray  # (K,)
    class_ids: np.ndarray  # (K,)

    @classmethod
    def from_detections(cls, detections: Sequence[Detection]) -> ImagePrediction:
        return cls(
            np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4),
            np.array([d.score for d in detections], dtype=np.float64),
            np.array([d.class_id for d in detections], dtype=np.int64),
        )


@dataclass
class CocoResult:
    map50: float
    map50_95: float
    ap50_per_class: dict[str, float]  # NaN-free: classes absent from the truth are left out
    ap_per_class: dict[str, float]
    # precision[r, k] at IoU 0.5 for 101 recall points r and class k (-1 where undefined)
    pr_precision: np.ndarray = field(repr=False)
    recall_points: np.ndarray = field(repr=False)


def coco_evaluate(truths: list[ImageTruth], preds: list[ImagePrediction]) -> CocoResult:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    detections: list[dict[str, object]] = []
    present_ids: set[int] = set()
    for image_id, (t, p) in enumerate(zip(truths, preds, strict=True)):
        images.append({"id": image_id, "width": 1, "height": 1})
        for bbox, c in zip(xyxy_to_xywh(t.boxes).tolist(), t.class_ids, strict=True):
            present_ids.add(int(c))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(c),
                    "bbox": bbox,
                    "area": bbox[2] * bbox[3],
                    "iscrowd": 0,
                }
            )
        for bbox, s, c in zip(xyxy_to_xywh(p.boxes).tolist(), p.scores, p.class_ids, strict=True):
            detections.append({"image_id": image_id, "category_id": int(c), "score": float(s), "bbox": bbox})
    present = sorted(present_ids)
    empty = CocoResult(0.0, 0.0, {}, {}, np.full((101, NUM_CLASSES), -1.0), np.linspace(0, 1, 101))
    if not present:
        return empty
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for i, n in enumerate(CLASS_NAMES)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        if not detections:
            return empty
        dt = gt.loadRes(detections)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.catIds = list(range(NUM_CLASSES))
        ev.params.maxDets = [1, 10, 100]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = ev.eval["precision"]  # (T, R, K, A, M)
    ap50, ap = {}, {}
    for k in present:
        p50 = precision[0, :, k, 0, -1]
        pall = precision[:, :, k, 0, -1]
        ap50[CLASS_NAMES[k]] = float(p50[p50 > -1].mean()) if (p50 > -1).any() else 0.0
        ap[CLASS_NAMES[k]] = float(pall[pall > -1].mean()) if (pall > -1).any() else 0.0
    return CocoResult(
        map50=float(np.mean(list(ap50.values()))),
        map50_95=float(np.mean(list(ap.values()))),
        ap50_per_class=ap50,
        ap_per_class=ap,
        pr_precision=precision[0, :, :, 0, -1],
        recall_points=np.linspace(0, 1, 101),
    )


def match_at_threshold(
    truths: list[ImageTruth], preds: list[ImagePrediction], conf: float, iou: float = 0.5
) -> np.ndarray:
    """Confusion matrix (C + 1, C + 1): rows = true class (last row: background, i.e. false
    positives), columns = predicted class (last column: missed). Greedy matching by score of
    predictions with score >= conf to unmatched truths with IoU >= iou, any class."""
    n = NUM_CLASSES
    matrix = np.zeros((n + 1, n + 1), dtype=np.int64)
    for t, p in zip(truths, preds, strict=True):
        keep = p.scores >= conf
        boxes, classes = p.boxes[keep], p.class_ids[keep]
        order = np.argsort(-p.scores[keep], kind="stable")
        matched_truth = np.zeros(len(t.boxes), dtype=bool)
        ious = (
            box_iou(boxes, t.boxes) if len(boxes) and len(t.boxes) else np.zeros((len(boxes), len(t.boxes)))
        )
        for j in order:
            cand = (
                np.where(~matched_truth & (ious[j] >= iou))[0]
                if len(t.boxes)
                else np.array([], dtype=np.int64)
            )
            if len(cand):
                best = cand[np.argmax(ious[j, cand])]
                matched_truth[best] = True
                matrix[int(t.class_ids[best]), int(classes[j])] += 1
            else:
                matrix[n, int(classes[j])] += 1
        for k in np.where(~matched_truth)[0]:
            matrix[int(t.class_ids[k]), n] += 1
    return matrix


def recall_per_class(matrix: np.ndarray) -> dict[str, float]:
    """Recall with the right class, per class present in the truth, from a confusion matrix."""
    out = {}
    for k, name in enumerate(CLASS_NAMES):
        total = matrix[k].sum()
        if total:
            out[name] = float(matrix[k, k] / total)
    return out
