"""Donated items as a YOLO-format training set (CLI only: data.yaml needs PyYAML)."""

from __future__ import annotations

from pathlib import Path

from ..data.yolo_format import write_data_yaml
from .store import FeedbackStore


def export_yolo(store: FeedbackStore, out: Path) -> int:
    """Write every item as a YOLO-format dataset (images/, labels/, data.yaml); returns the count."""
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
