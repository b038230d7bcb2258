"""Fixed datasets on disk (YOLO format), preview grids and generation throughput."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from ..classes import CLASS_NAMES, Detection
from ..preprocess import INPUT_SIZE, to_model_input
from ..render import annotate
from .compose import Scene, SceneComposer, SceneConfig
from .strokes import Drawing
from .yolo_format import write_data_yaml, write_label_file


def make_composer(drawings: list[Drawing], augment: bool, input_size: int = INPUT_SIZE) -> SceneComposer:
    """augment=False: the evaluation scenes (every digit equally often, drawings as drawn);
    True: training's (TRAINING_SCENES' digit emphasis, stroke augmentation, raster noise), so
    a preview or an anchor fit sees what training draws. `input_size`: the model input that
    letterboxed scenes are drawn into."""
    if not drawings:
        raise ValueError("no drawings to compose scenes from")
    if augment:
        return SceneComposer.for_training(drawings, input_size)
    return SceneComposer.from_drawings(drawings, SceneConfig(input_size=input_size))


@dataclass
class GenerateSummary:
    out: Path
    images: int
    objects: int
    empty: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"wrote {self.images} images ({self.objects} objects, {self.empty} empty) "
            f"to {self.out} in {self.seconds:.1f} s "
            f"({self.images / max(self.seconds, 1e-9):.0f} images/s)"
        )


def write_yolo_dataset(
    composer: SceneComposer, out: Path, count: int, seed: int, progress: bool = True
) -> GenerateSummary:
    """Canvases at their full size (as the app sends them) with YOLO labels."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    objects = empty = 0
    start = time.perf_counter()
    for i in tqdm(range(count), desc="generate", unit="img", disable=not progress):
        scene = composer.compose(rng)
        name = f"{i:06d}"
        Image.fromarray(scene.image).save(out / "images" / f"{name}.png", optimize=False, compress_level=1)
        height, width = scene.image.shape
        write_label_file(out / "labels" / f"{name}.txt", scene.boxes, scene.class_ids, width, height)
        objects += len(scene.boxes)
        empty += len(scene.boxes) == 0
    write_data_yaml(out, {"generator": {"seed": seed, "count": count}})
    return GenerateSummary(out, count, objects, empty, time.perf_counter() - start)


def scene_detections(scene: Scene) -> list[Detection]:
    """Ground truth as Detection objects (score 1), for drawing."""
    return [
        Detection(CLASS_NAMES[int(c)], int(c), 1.0, (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
        for b, c in zip(scene.boxes, scene.class_ids, strict=True)
    ]


def preview_grid(
    composer: SceneComposer, count: int, seed: int, tile: int = 256, cols: int = 4
) -> Image.Image:
    """Generated canvases with their true boxes and labels, in a grid of square tiles."""
    rng = np.random.default_rng(seed)
    rows = (count + cols - 1) // cols
    sheet = Image.new("RGB", (cols * tile, rows * tile), (180, 180, 180))
    for i in range(count):
        scene = composer.compose(rng)
        img = annotate(scene.image, scene_detections(scene), show_scores=False)
        img.thumbnail((tile - 6, tile - 6), Image.Resampling.LANCZOS)
        x = (i % cols) * tile + (tile - img.width) // 2
        y = (i // cols) * tile + (tile - img.height) // 2
        sheet.paste(img, (x, y))
    return sheet


def generation_throughput(composer: SceneComposer, count: int = 1000, seed: int = 0) -> dict[str, float]:
    """Scenes per second on ONE core: the training path (drawn straight at 192 px, model input
    included) and the full-canvas path used by `data generate`. OpenCV is held to one thread
    while measuring (its default uses every core for the distance transform)."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        rng = np.random.default_rng(seed)
        objects = 0
        start = time.perf_counter()
        for _ in range(count):
            scene = composer.compose_letterboxed(rng)
            to_model_input(scene.image)
            objects += len(scene.boxes)
        seconds = time.perf_counter() - start
        n_full = max(1, count // 4)
        start = time.perf_counter()
        for _ in range(n_full):
            composer.compose(rng)
        full = n_full / (time.perf_counter() - start)
    finally:
        cv2.setNumThreads(threads)
    return {
        "training_scenes_per_s": count / seconds,
        "training_objects_per_s": objects / seconds,
        "full_canvas_scenes_per_s": full,
    }
