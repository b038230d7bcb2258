"""From the model's decoded output to decisions, in numpy (and OpenCV's NMS), shared by every backend.

Input: the model's decoded output for ONE image, (N, 5 + C): cx, cy, w, h (input pixels; with
closer looks, `Detector.infer`, their rows mapped into the first look's), objectness, C class
probabilities.

Two ways to decide, for two purposes:
- `postprocess` (what the app, the CLI and `Detector.predict` show): ONE label per drawn object.
  Digits and "other" take each anchor's best class among them, class-aware NMS, then a
  class-agnostic NMS among all of them (YOLOv5's `agnostic`), so a glyph never carries both a
  "5" and a "9". "censored" is decided apart: every anchor's objectness x p(censored), whatever
  its best class, NMS among censored boxes, its own threshold (CENSORED_CONF); censored boxes
  neither suppress nor are suppressed by the others, except that a censored box is dropped
  under a non-censored box (IoU >= DOMINANCE_IOU) scoring CENSORED_DOMINANCE times as much.
- `postprocess_for_map` (training validation, `evaluate`): the COCO convention, each anchor's
  best class of all twelve, class-aware NMS only, a very low threshold. With a reader
  (`Detector.decide`), `reader_mixed_candidates` then ranks those boxes by both models.

Both are followed, once the boxes are back in the image's pixels, by `fit_to_ink`: each box is
fitted to the ink it holds (and, for what is shown, `one_label_per_object` on the fitted boxes).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .boxes import box_iou, cxcywh_to_xyxy
from .classes import CENSORED_ID, OTHER_ID
from .preprocess import FRAME_INK, ink_box, pixel_region

# The slider's default, read off the PR curve on held-out writers (docs/MODEL_CARD.md).
DEFAULT_CONF = 0.5
DEFAULT_IOU = 0.45
# Censored boxes are shown (pixelated) from this score, whatever the slider. Chosen with the
# bundled reader of every class, whose p(censored) is 0.6 of the score (`Detector`): over twelve
# samples of 400 held-out real obscene doodles and 400 doodles of categories never trained on,
# as many obscene doodles pixelated as the previous reader at 0.55 and fewer ordinary ones
# (docs/MODEL_CARD.md, "The censored threshold", "Reader shipped now").
CENSORED_CONF = 0.6
CENSORED_DOMINANCE = 3.0
DOMINANCE_IOU = 0.5
MAX_DETECTIONS = 100
# How far `fit_to_ink` may move a box's side out onto ink the box cut, in model-input pixels: of
# 0, 1 and 2 the best on held-out writers (0 loses ink just past a short box, 2 takes in a
# neighbour's; docs/MODEL_CARD.md, "Boxes fitted to the ink").
FIT_REACH_INPUT_PX = 1.0
# A view's censored reads under this score count as none in `censored_consensus` (each moves a
# mean by at most half of it; skipping them made the consensus 12x faster: 0.13 ms, not 1.6).
CONSENSUS_MIN_SCORE = 0.01
# mAP settings (COCO convention), shared by training validation and `evaluate`.
EVAL_CONF = 0.001
EVAL_IOU = 0.6
# `reader_mixed_candidates`: the reader's share of a candidate's class scores, and how many
# classes each box is a candidate for (0.3 / 0.5 / 0.7 gave mAP50 0.974 / 0.976 / 0.977 on the
# writer-disjoint canvases, the detector alone 0.962; docs/MODEL_CARD.md, "Candidates the reader
# ranks too"). Two classes per box: a digit the detector doubts is also a candidate as the
# reader's choice, as in YOLOv5's multi-label validation.
READER_CANDIDATE_WEIGHT = 0.5
CANDIDATE_CLASSES_PER_BOX = 2

Decisions = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (K, 4) xyxy, scores (K,), class ids (K,)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS: kept indices in descending score order (ties in index order), each box
    dropped whose IoU with a kept one is over `iou_threshold`; boxes scoring 0 or less are
    dropped too (every caller's scores are above a threshold of 0 or more). OpenCV's
    NMSBoxes does it 4x faster than numpy on the few dozen boxes of a prediction."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    scores = np.asarray(scores, dtype=np.float32)
    # The stubs name sequences; OpenCV takes the arrays as they are.
    kept = cv2.dnn.NMSBoxes(xywh, scores, 0.0, float(iou_threshold))  # type: ignore[arg-type]
    return np.asarray(kept, dtype=np.int64).reshape(-1)


def class_aware_nms(
    boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """NMS within each class: offset each class's boxes so boxes of different classes never
    overlap, then run one NMS."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    offset = class_ids[:, None].astype(np.float64) * (float(boxes.max()) + 1.0)
    return nms(boxes + offset, scores, iou_threshold)


def _check(conf: float, iou: float) -> None:
    if not 0.0 <= conf <= 1.0 or not 0.0 <= iou <= 1.0:
        raise ValueError(f"conf and iou must be within [0, 1], got conf={conf}, iou={iou}")


def _best_class(pred: np.ndarray, classes: slice, conf: float, iou: float) -> Decisions:
    """Each anchor's best class among `classes`, score = objectness x its probability,
    scores above `conf`, class-aware NMS."""
    pred = pred[pred[:, 4] > conf]  # score <= objectness, so this cheap cut loses nothing
    probs = pred[:, 5:][:, classes] * pred[:, 4:5]
    class_ids = probs.argmax(axis=1) + (classes.start or 0)
    scores = probs[np.arange(len(pred)), class_ids - (classes.start or 0)]
    keep = scores > conf
    boxes, scores, class_ids = cxcywh_to_xyxy(pred[keep, :4]), scores[keep], class_ids[keep]
    kept = class_aware_nms(boxes, scores, class_ids, iou)
    return boxes[kept], scores[kept], class_ids[kept].astype(np.int64)


def postprocess(
    prediction: np.ndarray,
    conf: float = DEFAULT_CONF,
    iou: float = DEFAULT_IOU,
    censored_conf: float = CENSORED_CONF,
    max_detections: int = MAX_DETECTIONS,
) -> Decisions:
    """What to show: one label per drawn object (module doc). Boxes in input pixels, sorted
    by descending score. `conf` applies to digits and "other", `censored_conf` to censored."""
    _check(conf, iou)
    _check(censored_conf, iou)
    prediction = np.asarray(prediction, dtype=np.float32)
    boxes, scores, ids = _best_class(prediction, slice(0, CENSORED_ID), conf, iou)
    kept = nms(boxes, scores, iou)  # class-agnostic: one decision per object
    boxes, scores, ids = boxes[kept], scores[kept], ids[kept]

    pred = prediction[prediction[:, 4] > censored_conf]
    c_scores = censored_scores(pred)
    pred, c_scores = pred[c_scores > censored_conf], c_scores[c_scores > censored_conf]
    c_boxes = cxcywh_to_xyxy(pred[:, :4])
    c_kept = nms(c_boxes, c_scores, iou)
    c_boxes, c_scores = c_boxes[c_kept], c_scores[c_kept]
    if len(c_boxes) and len(boxes):
        overlap = box_iou(c_boxes, boxes) >= DOMINANCE_IOU
        stronger = scores[None, :] >= CENSORED_DOMINANCE * c_scores[:, None]
        keep_c = ~(overlap & stronger).any(axis=1)
        c_boxes, c_scores = c_boxes[keep_c], c_scores[keep_c]

    all_boxes = np.concatenate([boxes, c_boxes]).reshape(-1, 4)
    all_scores = np.concatenate([scores, c_scores])
    all_ids = np.concatenate([ids, np.full(len(c_scores), CENSORED_ID, dtype=np.int64)])
    order = np.argsort(-all_scores, kind="stable")[:max_detections]
    return all_boxes[order], all_scores[order], all_ids[order]


def class_scores(prediction: np.ndarray, class_id: int) -> np.ndarray:
    """Each row's score for one class: objectness x p(class)."""
    return prediction[:, 5 + class_id] * prediction[:, 4]


def censored_scores(prediction: np.ndarray) -> np.ndarray:
    """Each row's censored score: objectness x p(censored)."""
    return class_scores(prediction, CENSORED_ID)


def censored_consensus(
    prediction: np.ndarray, views: Sequence[np.ndarray], rescored: np.ndarray, iou: float = DOMINANCE_IOU
) -> np.ndarray:
    """Rows (N, 5 + C) picked by the mask `rescored` get as censored score the mean of theirs
    and, for each view (rows of the same canvas seen otherwise, boxes moved into these rows'
    pixels), the highest censored score of a view row whose box overlaps theirs (IoU >= `iou`;
    0 if none, or under CONSENSUS_MIN_SCORE). Everything else is unchanged. For
    `Detector.infer`'s censored views."""
    rows = np.array(prediction, dtype=np.float32)
    scores = censored_scores(rows)
    candidates = np.flatnonzero(rescored & (rows[:, 4] > 0))
    if len(candidates) == 0 or not views:
        return rows
    boxes = cxcywh_to_xyxy(rows[candidates, :4])
    total = scores[candidates].astype(np.float64)
    for view in views:
        view_scores = censored_scores(view)
        read = view_scores >= CONSENSUS_MIN_SCORE
        overlap = box_iou(boxes, cxcywh_to_xyxy(view[read, :4])) >= iou
        total += np.where(overlap, view_scores[read][None, :], 0.0).max(axis=1, initial=0.0)
    rows[candidates, 5 + CENSORED_ID] = total / (1 + len(views)) / rows[candidates, 4]
    return rows


def without_other(prediction: np.ndarray) -> np.ndarray:
    """Rows (N, 5 + C) whose best class among the digits and "other" is "other" lose their digit
    and "other" probabilities; their censored one stays. For closer looks
    (`Detector.infer`): the ink one sees alone is more often a piece of a drawing than a
    drawing of its own, and read alone such a piece is "other"."""
    rows = np.array(prediction, dtype=np.float32)
    plain = rows[:, 5 : 5 + CENSORED_ID]
    plain[plain.argmax(axis=1) == OTHER_ID] = 0.0
    return rows


def postprocess_for_map(
    prediction: np.ndarray,
    conf: float = EVAL_CONF,
    iou: float = EVAL_IOU,
    max_detections: int = MAX_DETECTIONS,
) -> Decisions:
    """COCO-convention candidates for mAP: each anchor's best class of all, class-aware NMS."""
    _check(conf, iou)
    boxes, scores, ids = _best_class(np.asarray(prediction, dtype=np.float32), slice(0, None), conf, iou)
    order = np.argsort(-scores, kind="stable")[:max_detections]
    return boxes[order], scores[order], ids[order]


def reader_mixed_candidates(
    candidates: Decisions,
    class_probs: np.ndarray,
    weight: float = READER_CANDIDATE_WEIGHT,
    conf: float = EVAL_CONF,
    iou: float = EVAL_IOU,
    max_detections: int = MAX_DETECTIONS,
) -> Decisions:
    """`postprocess_for_map`'s candidates ranked by the detector and a second model together:
    box i's score for class k is its score x ((1 - weight) x [k is its class] + weight x
    class_probs[i, k]), for its CANDIDATE_CLASSES_PER_BOX best classes. class_probs: (K,
    NUM_CLASSES) rows summing to 1; a row one-hot on the box's class leaves it as it was (a box
    the second model does not read). Scores above `conf`, class-aware NMS, best
    `max_detections`."""
    _check(conf, iou)
    boxes, scores, ids = candidates
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be within [0, 1], got {weight}")
    mix = weight * np.asarray(class_probs, dtype=np.float64)
    mix[np.arange(len(ids)), ids] += 1.0 - weight
    best = np.argsort(-mix, axis=1, kind="stable")[:, :CANDIDATE_CLASSES_PER_BOX]
    rows = np.repeat(np.arange(len(ids)), best.shape[1])
    new_ids = best.reshape(-1)
    new_scores = scores[rows] * mix[rows, new_ids]
    keep = new_scores > conf
    rows, new_ids, new_scores = rows[keep], new_ids[keep], new_scores[keep]
    kept = class_aware_nms(boxes[rows], new_scores, new_ids, iou)[:max_detections]
    return boxes[rows[kept]], new_scores[kept], new_ids[kept].astype(np.int64)


def fit_to_ink(
    boxes: np.ndarray, gray: np.ndarray, reach: float | np.ndarray = 0.0, level: int = FRAME_INK
) -> np.ndarray:
    """Each box (x1, y1, x2, y2, pixels of `gray`) fitted to the ink it holds: the pixels darker
    than `level`. The model regresses its boxes at input scale and leaves them a few pixels
    loose or short; a label's box is the ink's box. A side with paper along it shrinks to the
    ink; a side the ink runs into (it cut the drawing) may move out by up to `reach` pixels to
    take the rest of the stroke, and no further, so a neighbour's ink cannot pull a box over.
    A box with no ink stays as it is. `reach`: one for all boxes, or one per box."""
    fitted = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    reaches = np.broadcast_to(np.asarray(reach, dtype=np.float64), (len(fitted),))
    height, width = gray.shape[:2]
    for box, box_reach in zip(fitted, reaches, strict=True):
        region = pixel_region(box, 0.0, width, height)
        inside = _ink_in(gray, region, level)
        if inside is None:
            continue
        cut = [ink == edge for ink, edge in zip(inside, region, strict=True)]  # ink reaches the side
        if box_reach > 0 and any(cut):
            grown = pixel_region(box, box_reach, width, height)
            region = (
                grown[0] if cut[0] else region[0],
                grown[1] if cut[1] else region[1],
                grown[2] if cut[2] else region[2],
                grown[3] if cut[3] else region[3],
            )
            inside = _ink_in(gray, region, level)
        box[:] = inside
    return fitted


def one_label_per_object(
    boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float
) -> Decisions:
    """`postprocess`'s class-agnostic NMS again, on boxes fitted to the ink: two boxes that were
    apart on the model's loose boxes can fit onto the same ink, and one object gets one label
    (the stronger). Censored boxes are left alone, as in `postprocess`; order is kept."""
    plain = np.flatnonzero(class_ids != CENSORED_ID)
    keep = np.ones(len(class_ids), dtype=bool)
    keep[plain] = False
    keep[plain[nms(boxes[plain], scores[plain], iou)]] = True
    return boxes[keep], scores[keep], class_ids[keep]


def _ink_in(
    gray: np.ndarray, region: tuple[int, int, int, int], level: int
) -> tuple[int, int, int, int] | None:
    """The box of the ink in `region` (x1, y1, x2, y2 whole pixels), in image pixels."""
    x1, y1, x2, y2 = region
    if x2 <= x1 or y2 <= y1:
        return None
    inside = ink_box(gray[y1:y2, x1:x2], level)
    if inside is None:
        return None
    return x1 + int(inside[0]), y1 + int(inside[1]), x1 + int(inside[2]), y1 + int(inside[3])
