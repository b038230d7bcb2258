"""What the app's "Is this right?" box needs: proposals for missed objects, and an opt-in
submission that stores nothing unless the user chose to donate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..boxes import box_iou
from ..classes import Detection
from .auto_annotate import propose_boxes
from .guard import DonationGuard
from .item import make_item
from .store import FeedbackStore

Box = tuple[float, float, float, float]


def missed_object_proposals(
    gray: np.ndarray, detections: Sequence[Detection], max_iou: float = 0.3
) -> list[Box]:
    """Ink groups that no detection covers: candidate boxes for objects the model missed."""
    proposals = propose_boxes(gray)
    if not proposals or not detections:
        return proposals
    found = np.array([d.box for d in detections], dtype=np.float64)
    ious = box_iou(np.array(proposals, dtype=np.float64), found)
    return [p for p, row in zip(proposals, ious, strict=True) if row.max() < max_iou]


def describe_position(box: Box, shape: tuple[int, ...]) -> str:
    """Where a box sits on the drawing, in words ("top left", "middle", "bottom right")."""
    height, width = shape[0], shape[1]
    cx, cy = (box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else ""
    if row == "middle" and col:
        return f"middle {col}"
    return f"{row} {col}".strip() if col else ("middle" if row == "middle" else f"{row} middle")


def submit(
    store: FeedbackStore | None,
    gray: np.ndarray,
    labelled: Sequence[tuple[Box, int]],
    corrected: bool,
    opted_in: bool,
    guard: DonationGuard | None = None,
) -> str | None:
    """Store the drawing with the user's labels, only when they opted in; returns the item id.
    Raises FeedbackError (with a message for the user) when the submission is refused: bad
    labels, the session's `guard` (a repeat or too many this hour), or the storage failing."""
    if not opted_in or store is None:
        return None
    item = make_item(
        gray,
        [b for b, _ in labelled],
        [c for _, c in labelled],
        kind="corrected" if corrected else "confirmed",
    )
    if guard is not None:
        guard.check(item)
    item_id = store.add(item)
    if guard is not None:
        guard.record(item)
    return item_id
