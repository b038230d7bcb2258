"""YOLO-format datasets on disk: images/NNNNNN.png, labels/NNNNNN.txt ("class cx cy w h",
normalised by the image's width and height; the line format is `boxes.py`'s), data.yaml with
the class names (the one part that needs PyYAML: training side only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from ..boxes import LabelFormatError, format_label_lines, parse_label_lines
from ..classes import CLASS_NAMES, NUM_CLASSES

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class LabelledImage:
    image_path: Path
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) x1 y1 x2 y2 pixels
    class_ids: np.ndarray  # (N,)


def write_label_file(path: Path, boxes: np.ndarray, class_ids: np.ndarray, width: int, height: int) -> None:
    path.write_text(format_label_lines(boxes, class_ids, width, height))


def read_label_file(path: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A label file's boxes (pixel xyxy) and class ids; a missing file means no objects."""
    if not path.exists():
        return np.zeros((0, 4)), np.zeros((0,), dtype=np.int64)
    return parse_label_lines(path.read_text(), width, height, NUM_CLASSES, where=str(path))


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
        raise LabelFormatError(f"not a YOLO-format dataset: {images_dir} does not exist")
    data_yaml = root / "data.yaml"
    if data_yaml.exists():
        names = yaml.safe_load(data_yaml.read_text()).get("names")
        if isinstance(names, dict):
            names = [names[k] for k in sorted(names)]
        if names is not None and list(names) != list(CLASS_NAMES):
            raise LabelFormatError(f"{data_yaml}: class names {names} differ from {list(CLASS_NAMES)}")
    items = []
    for image_path in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        with Image.open(image_path) as im:
            width, height = im.size
        boxes, ids = read_label_file(root / "labels" / f"{image_path.stem}.txt", width, height)
        items.append(LabelledImage(image_path, width, height, boxes, ids))
    if not items:
        raise LabelFormatError(f"no images found in {images_dir}")
    return items
