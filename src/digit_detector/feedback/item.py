"""What a donated item is, and the checks every store runs on it.

An item is a drawing the user chose to donate, with the labels they confirmed or corrected:
the canvas as a grayscale PNG (composited on white), boxes in its pixels and class ids. It
carries a random id and the UTC day, nothing else: no IP address, no cookie, no user id.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..boxes import LabelFormatError, format_label_lines, parse_label_lines
from ..classes import NUM_CLASSES
from ..errors import UserError

MAX_ITEM_BYTES = 1_000_000  # a 400x400 drawing is ~10-40 kB as PNG
MAX_TOTAL_BYTES = 2_000_000_000
MAX_SIDE = 2000
ITEM_KINDS = ("confirmed", "corrected")
_ITEM_ID = re.compile(r"[0-9a-f]{32}")


class FeedbackError(UserError, ValueError):
    """A submission that cannot be stored (corrupt, oversized, bad labels, storage failed);
    the message is meant for the user."""


class StoreFullError(FeedbackError):
    """The store reached its size limit."""


def check_item_id(item_id: str) -> str:
    """Item ids are 32 lowercase hex digits: never a path, whatever a caller passes."""
    if not isinstance(item_id, str) or not _ITEM_ID.fullmatch(item_id):
        raise FeedbackError(f"invalid item id {item_id!r}: expected 32 lowercase hex digits")
    return item_id


@dataclass(frozen=True)
class FeedbackItem:
    png: bytes
    width: int
    height: int
    boxes: np.ndarray = field(repr=False)  # (N, 4) x1 y1 x2 y2 pixels
    class_ids: np.ndarray = field(repr=False)  # (N,)
    item_id: str = field(default_factory=lambda: secrets.token_hex(16))
    day: str = field(default_factory=lambda: time.strftime("%Y-%m-%d", time.gmtime()))
    kind: str = "confirmed"  # one of ITEM_KINDS

    def label_text(self) -> str:
        return format_label_lines(self.boxes, self.class_ids, self.width, self.height)

    @property
    def size(self) -> int:
        return len(self.png) + len(self.label_text())

    @property
    def drawing_digest(self) -> str:
        """Identifies the drawing (not its labels): the same canvas sent twice has one digest."""
        return hashlib.sha256(self.png).hexdigest()


def make_item(
    gray: np.ndarray,
    boxes: list[tuple[float, float, float, float]],
    class_ids: list[int],
    kind: str = "confirmed",
) -> FeedbackItem:
    """Encode a (H, W) uint8 drawing and its labels as an item (validated)."""
    if not isinstance(gray, np.ndarray) or gray.dtype != np.uint8 or gray.ndim != 2 or 0 in gray.shape:
        raise FeedbackError("the drawing must be a non-empty (H, W) uint8 image")
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, format="PNG", optimize=True)
    item = FeedbackItem(
        png=buffer.getvalue(),
        width=gray.shape[1],
        height=gray.shape[0],
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        class_ids=np.asarray(class_ids, dtype=np.int64).reshape(-1),
        kind=kind,
    )
    validate_item(item)
    return item


def validate_item(item: FeedbackItem, max_bytes: int = MAX_ITEM_BYTES) -> None:
    """Raise FeedbackError unless the item has a valid id, is a decodable PNG of the stated
    size within `max_bytes`, and has sane labels."""
    check_item_id(item.item_id)
    if item.size > max_bytes:
        raise FeedbackError(
            f"submission is {item.size / 1e6:.2f} MB, over the {max_bytes / 1e6:.2f} MB limit"
        )
    if not (0 < item.width <= MAX_SIDE and 0 < item.height <= MAX_SIDE):
        raise FeedbackError(f"drawing size {item.width}x{item.height} is outside 1..{MAX_SIDE}")
    _check_png(item.png, item.width, item.height)
    if len(item.boxes) != len(item.class_ids):
        raise FeedbackError("every box needs exactly one label")
    if len(item.class_ids) and not ((item.class_ids >= 0) & (item.class_ids < NUM_CLASSES)).all():
        raise FeedbackError(f"labels must be class ids 0..{NUM_CLASSES - 1}")
    b = item.boxes
    if len(b) and not (
        np.isfinite(b).all()
        and (b[:, 0] < b[:, 2]).all()
        and (b[:, 1] < b[:, 3]).all()
        and (b[:, :2] >= -0.5).all()
        and (b[:, 2] <= item.width + 0.5).all()
        and (b[:, 3] <= item.height + 0.5).all()
    ):
        raise FeedbackError("boxes must lie inside the drawing, with x1 < x2 and y1 < y2")
    if item.kind not in ITEM_KINDS:
        raise FeedbackError(f"unknown feedback kind {item.kind!r}")


def _check_png(png: bytes, width: int, height: int) -> None:
    try:
        with Image.open(io.BytesIO(png)) as im:
            if im.format != "PNG" or im.size != (width, height):
                raise FeedbackError("the drawing is not a PNG of the stated size")
            im.load()
    except FeedbackError:
        raise
    except Exception as exc:  # any decoder error means a corrupt submission
        raise FeedbackError(f"the drawing is not a readable PNG ({exc})") from exc


def parse_item(
    item_id: str, png: bytes, label_text: str, day: str = "", kind: str = "confirmed"
) -> FeedbackItem:
    """A stored item read back; labels are checked line by line."""
    check_item_id(item_id)
    try:
        with Image.open(io.BytesIO(png)) as im:
            width, height = im.size
        boxes, ids = parse_label_lines(label_text, width, height, NUM_CLASSES, where=f"item {item_id}")
    except LabelFormatError as exc:
        raise FeedbackError(f"stored labels are corrupt: {exc}") from exc
    except Exception as exc:  # an unreadable stored image
        raise FeedbackError(f"stored drawing of item {item_id} is unreadable ({exc})") from exc
    return FeedbackItem(png, width, height, boxes, ids, item_id=item_id, day=day, kind=kind)
