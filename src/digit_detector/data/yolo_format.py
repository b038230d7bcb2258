"""YOLO-format datasets on disk: images/NNNNNN.png, labels/NNNNNN.txt ("class cx cy w h",
normalised by the image's width and height), data.yaml with the class names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from ..classes import CLASS_NAMES, NUM_CLASSES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class LabelledImage:
    image_path: Path
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) x1 y1 x2 y2 pixels
    class_ids: np.ndarray  # (N,)


def boxes_to_yolo(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 4) pixel x1y1x2y2 -> (N, 4) normalised cx cy w h."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 / width
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 / height
    w = (boxes[:, 2] - boxes[:, 0]) / width
    h = (boxes[:, 3] - boxes[:, 1]) / height
    return np.stack([cx, cy, w, h], axis=1)


def yolo_to_boxes(rows: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 4) normalised cx cy w h -> (N, 4) pixel x1y1x2y2."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    cx, cy, w, h = rows[:, 0] * width, rows[:, 1] * height, rows[:, 2] * width, rows[:, 3] * height
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def write_label_file(path: Path, boxes: np.ndarray, class_ids: np.ndarray, width: int, height: int) -> None:
    rows = boxes_to_yolo(boxes, width, height)
    lines = [
        f"{int(c)} {r[0]:.6f} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f}" for c, r in zip(class_ids, rows, strict=True)
    ]
    path.write_text("".join(line + "\n" for line in lines))


def read_label_file(path: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    if not path.exists():
        return np.zeros((0, 4)), np.zeros((0,), dtype=np.int64)
    ids, rows = [], []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise ValueError(f"{path}:{line_no}: expected 'class cx cy w h', got {line!r}")
        class_id = int(parts[0])
        if not 0 <= class_id < NUM_CLASSES:
            raise ValueError(f"{path}:{line_no}: class id {class_id} outside 0..{NUM_CLASSES - 1}")
        ids.append(class_id)
        rows.append([float(v) for v in parts[1:]])
    return yolo_to_boxes(np.array(rows), width, height), np.array(ids, dtype=np.int64)


def write_data_yaml(root: Path, extra: dict[str, object] | None = None) -> None:
    content: dict[str, object] = {
        "path": ".",
        "train": "images",
        "val": "images",
        "nc": NUM_CLASSES,
        "names": {i: n for i, n in enumerate(CLASS_NAMES)},
    }
    content.update(extra or {})
    (root / "data.yaml").write_text(yaml.safe_dump(content, sort_keys=False))


def read_dataset(root: str | Path) -> list[LabelledImage]:
    """Every image under root/images with its labels (missing label file = no objects)."""
    root = Path(root)
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise FileNotFoundError(f"not a YOLO-format dataset: {images_dir} does not exist")
    data_yaml = root / "data.yaml"
    if data_yaml.exists():
        names = yaml.safe_load(data_yaml.read_text()).get("names")
        if isinstance(names, dict):
            names = [names[k] for k in sorted(names)]
        if names is not None and list(names) != list(CLASS_NAMES):
            raise ValueError(f"{data_yaml}: class names {names} differ from {list(CLASS_NAMES)}")
    items = []
    for image_path in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        with Image.open(image_path) as im:
            width, height = im.size
        boxes, ids = read_label_file(root / "labels" / f"{image_path.stem}.txt", width, height)
        items.append(LabelledImage(image_path, width, height, boxes, ids))
    if not items:
        raise FileNotFoundError(f"no images found in {images_dir}")
    return items
