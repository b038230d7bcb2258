"""The feedback store interface and what an item is.

An item is a drawing the user chose to donate, with the labels they confirmed or corrected:
the canvas as a grayscale PNG (composited on white), boxes in its pixels and class ids. It
carries a random id and the UTC day, nothing else: no IP address, no cookie, no user id.
"""

from __future__ import annotations

import io
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from ..classes import NUM_CLASSES
from ..data.yolo_format import boxes_to_yolo, yolo_to_boxes

MAX_ITEM_BYTES = 1_000_000  # a 400x400 drawing is ~10-40 kB as PNG
MAX_TOTAL_BYTES = 2_000_000_000
MAX_SIDE = 2000
ENV_KIND = "DIGIT_DETECTOR_FEEDBACK"  # "local" (default), "s3" or "off"
ENV_DIR = "DIGIT_DETECTOR_FEEDBACK_DIR"
DEFAULT_DIR = Path("feedback")


class FeedbackError(ValueError):
    """A submission that cannot be stored as it is (corrupt, oversized, bad labels)."""


class StoreFullError(FeedbackError):
    """The store reached its size limit."""


@dataclass(frozen=True)
class FeedbackItem:
    png: bytes
    width: int
    height: int
    boxes: np.ndarray = field(repr=False)  # (N, 4) x1 y1 x2 y2 pixels
    class_ids: np.ndarray = field(repr=False)  # (N,)
    item_id: str = field(default_factory=lambda: secrets.token_hex(16))
    day: str = field(default_factory=lambda: time.strftime("%Y-%m-%d", time.gmtime()))
    kind: str = "confirmed"  # "confirmed" or "corrected"

    def label_text(self) -> str:
        rows = boxes_to_yolo(self.boxes, self.width, self.height)
        return "".join(
            f"{int(c)} {r[0]:.6f} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f}\n"
            for c, r in zip(self.class_ids, rows, strict=True)
        )

    @property
    def size(self) -> int:
        return len(self.png) + len(self.label_text())


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
    """Raise FeedbackError unless the item is a decodable PNG of the stated size with sane labels."""
    if item.size > max_bytes:
        raise FeedbackError(
            f"submission is {item.size / 1e6:.2f} MB, over the {max_bytes / 1e6:.2f} MB limit"
        )
    if not (0 < item.width <= MAX_SIDE and 0 < item.height <= MAX_SIDE):
        raise FeedbackError(f"drawing size {item.width}x{item.height} is outside 1..{MAX_SIDE}")
    try:
        with Image.open(io.BytesIO(item.png)) as im:
            if im.format != "PNG" or im.size != (item.width, item.height):
                raise FeedbackError("the drawing is not a PNG of the stated size")
            im.load()
    except FeedbackError:
        raise
    except Exception as exc:  # any decoder error means a corrupt submission
        raise FeedbackError(f"the drawing is not a readable PNG ({exc})") from exc
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
    if item.kind not in ("confirmed", "corrected"):
        raise FeedbackError(f"unknown feedback kind {item.kind!r}")


def parse_item(
    item_id: str, png: bytes, label_text: str, day: str = "", kind: str = "confirmed"
) -> FeedbackItem:
    with Image.open(io.BytesIO(png)) as im:
        width, height = im.size
    ids, rows = [], []
    for line in label_text.splitlines():
        if line.strip():
            c, *vals = line.split()
            ids.append(int(c))
            rows.append([float(v) for v in vals])
    return FeedbackItem(
        png,
        width,
        height,
        yolo_to_boxes(np.array(rows), width, height),
        np.array(ids, dtype=np.int64),
        item_id=item_id,
        day=day,
        kind=kind,
    )


class FeedbackStore(Protocol):
    """Where donated drawings go. Implementations: LocalStore, S3Store."""

    def add(self, item: FeedbackItem) -> str:
        """Store the item (all of it or nothing); returns its id."""
        ...

    def ids(self) -> list[str]: ...

    def get(self, item_id: str) -> FeedbackItem: ...

    def describe(self) -> str: ...


def export_yolo(store: FeedbackStore, out: Path) -> int:
    """Write every item as a YOLO-format dataset (images/, labels/, data.yaml); returns the count."""
    from ..data.yolo_format import write_data_yaml

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    count = 0
    for item_id in store.ids():
        item = store.get(item_id)
        (out / "images" / f"{item_id}.png").write_bytes(item.png)
        (out / "labels" / f"{item_id}.txt").write_text(item.label_text())
        count += 1
    write_data_yaml(out, {"source": f"feedback export from {store.describe()}"})
    return count


def store_from_env() -> FeedbackStore | None:
    """The store the environment configures: DIGIT_DETECTOR_FEEDBACK = local (default, folder
    DIGIT_DETECTOR_FEEDBACK_DIR or ./feedback), s3 (see S3Store.from_env) or off (None)."""
    kind = os.environ.get(ENV_KIND, "local").strip().lower()
    if kind == "off":
        return None
    if kind == "s3":
        from .s3 import S3Store

        return S3Store.from_env()
    if kind == "local":
        from .local import LocalStore

        return LocalStore(Path(os.environ.get(ENV_DIR, str(DEFAULT_DIR))))
    raise FeedbackError(f"{ENV_KIND} must be local, s3 or off, got {kind!r}")
