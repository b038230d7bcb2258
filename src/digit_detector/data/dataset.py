"""Torch datasets: infinite on-the-fly training scenes, and fixed validation scenes."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..preprocess import INPUT_SIZE, letterbox_gray, to_gray_on_white
from .augment import RasterNoise
from .compose import Scene, SceneComposer, SceneConfig
from .strokes import Drawing

Sample = tuple[torch.Tensor, torch.Tensor]  # (1, S, S) uint8 gray, (N, 5) [class, x1, y1, x2, y2]


def scene_to_sample(scene: Scene) -> Sample:
    image = torch.from_numpy(np.ascontiguousarray(scene.image))[None]
    targets = torch.cat(
        [
            torch.from_numpy(scene.class_ids).float()[:, None],
            torch.from_numpy(scene.boxes).float(),
        ],
        dim=1,
    ).reshape(-1, 5)
    return image, targets


class LabelledPool:
    """Real labelled canvases from a YOLO-format folder (e.g. exported user feedback), held in
    memory as grayscale and letterboxed with the same `letterbox_gray` as serving."""

    def __init__(self, root: str | Path, input_size: int = INPUT_SIZE) -> None:
        from ..image_io import load_image
        from .yolo_format import read_dataset

        self.items = [
            (to_gray_on_white(load_image(item.image_path, formats=None)), item.boxes, item.class_ids)
            for item in read_dataset(root)
        ]
        self.input_size = input_size

    def __len__(self) -> int:
        return len(self.items)

    def sample(self, rng: np.random.Generator, noise: RasterNoise | None) -> Scene:
        gray, boxes, ids = self.items[int(rng.integers(len(self.items)))]
        square, box = letterbox_gray(gray, self.input_size)
        if noise is not None:
            square = noise(square, rng)
        return Scene(square, box.to_input(boxes).astype(np.float32), ids.astype(np.int64))


class GeneratedScenes(IterableDataset[Sample]):
    """Endless letterboxed training scenes. Each (rank, worker) pair draws from its own seeded
    stream, so no two processes ever generate the same scenes and runs are reproducible."""

    def __init__(
        self,
        drawings: Sequence[Drawing],
        seed: int,
        input_size: int = INPUT_SIZE,
        rank: int = 0,
        extra: LabelledPool | None = None,
        extra_weight: float = 0.0,
        emphasis: Mapping[str, float] | None = None,
    ) -> None:
        self.composer = SceneComposer.for_training(drawings, input_size, emphasis)
        self.seed = seed
        self.rank = rank
        self.extra = extra if extra is not None and len(extra) else None
        self.extra_weight = extra_weight  # fraction of samples drawn from `extra`
        self.start_step = 0  # set on resume so a resumed run continues with fresh scenes

    def __iter__(self) -> Iterator[Sample]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        rng = np.random.default_rng([self.seed, self.rank, worker, self.start_step])
        while True:
            if self.extra is not None and rng.random() < self.extra_weight:
                yield scene_to_sample(self.extra.sample(rng, self.composer.noise))
            else:
                yield scene_to_sample(self.composer.compose_letterboxed(rng))


def fixed_scenes(
    drawings: Sequence[Drawing], count: int, seed: int, config: SceneConfig | None = None
) -> list[Scene]:
    """A reproducible list of scenes without augmentation (the eval pipeline), letterboxed."""
    composer = SceneComposer.from_drawings(drawings, config)
    rng = np.random.default_rng(seed)
    return [composer.compose_letterboxed(rng) for _ in range(count)]


def collate(batch: list[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack images (B, 1, S, S) uint8; targets (M, 6) [batch index, class, x1, y1, x2, y2]."""
    images = torch.stack([img for img, _ in batch])
    targets = [torch.cat([torch.full((len(t), 1), float(i)), t], dim=1) for i, (_, t) in enumerate(batch)]
    return images, torch.cat(targets) if targets else torch.zeros((0, 6))


def default_workers() -> int:
    """One data worker beside the training threads on a 2-core machine; more on bigger ones."""
    return max(1, min(4, math.ceil((os.cpu_count() or 2) / 4)))
