"""Find "other" drawings that look like a digit, so the loader can leave them out.

"other" must hold no digit look-alikes. The conversion of the shared data removed the UNIPEN
letters and QuickDraw categories that resemble digits, but did not filter Omniglot glyphs (or
single odd drawings) by content. Here a small glyph classifier (10 digits + other) is trained
once per fold, each time without that fold's "other" drawings, and then scores them: an "other"
drawing that a classifier which never saw it calls a digit with high probability is a
look-alike. Folds are keyed like the train/val split (writer where known, else the drawing), so
no writer is scored by a model that saw that writer. The ids found are committed
(`other_lookalikes.txt`) and `load_drawings` leaves them out.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn
from tqdm import tqdm

from ..classes import DIGIT_IDS, OTHER_ID
from .compose import draw_polylines
from .strokes import Drawing

GLYPH_SIZE = 28


def render_glyph(drawing: Drawing, width: float, size: int = GLYPH_SIZE) -> np.ndarray:
    """The drawing alone, aspect kept, centred in a (size, size) uint8 image (ink dark)."""
    margin = width / 2 + 1
    extent = np.maximum(drawing.ink.points.max(axis=0), 1e-6)
    scale = (size - 2 * margin) / float(extent.max())
    offset = (size - extent * scale) / 2
    image = np.full((size, size), 255, np.uint8)
    draw_polylines(image, drawing.ink.moved(drawing.ink.points * np.float32(scale) + offset), width)
    return image


class GlyphNet(nn.Module):
    """A LeNet-sized classifier over 28x28 glyphs: 10 digits + "other" (index 10)."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(block(1, 16), block(16, 32), block(32, 64))  # 28 -> 14 -> 7 -> 3
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 3 * 3, 128), nn.ReLU(), nn.Linear(128, 11))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _as_input(glyphs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(1.0 - glyphs.astype(np.float32) / 255.0)[:, None]  # ink = 1


def _fold(drawing: Drawing, folds: int) -> int:
    return zlib.crc32(f"lookalike-fold/{drawing.group}".encode()) % folds


@dataclass
class Lookalike:
    id: str
    source: str
    digit: int  # the digit the classifier sees
    probability: float


@dataclass
class LookalikeSearch:
    threshold: float
    folds: int
    epochs: int
    seed: int
    scored: int  # "other" drawings scored
    found: list[Lookalike]
    fold_accuracy: list[float]  # on the held-out fold's "other" drawings (called "other")
    seconds: float

    def summary(self) -> str:
        by_source = Counter(f.source for f in self.found)
        by_digit = Counter(f.digit for f in self.found)
        return "\n".join(
            [
                f"{len(self.found)} of {self.scored} 'other' drawings look like a digit "
                f"(p >= {self.threshold}) in {self.seconds:.0f} s",
                "by source: " + ", ".join(f"{s} {n}" for s, n in sorted(by_source.items())),
                "by digit: " + ", ".join(f"{d}: {n}" for d, n in sorted(by_digit.items())),
                "held-out 'other' called 'other' per fold: "
                + ", ".join(f"{a:.3f}" for a in self.fold_accuracy),
            ]
        )


def find_lookalikes(
    drawings: Sequence[Drawing],
    threshold: float = 0.5,
    folds: int = 3,
    epochs: int = 3,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
) -> LookalikeSearch:
    """Score every "other" drawing with a classifier trained without its fold (see module doc)."""
    start = time.perf_counter()
    usable = [d for d in drawings if d.class_id in DIGIT_IDS or d.class_id == OTHER_ID]
    others = [i for i, d in enumerate(usable) if d.class_id == OTHER_ID]
    if not others or len(others) == len(usable):
        raise ValueError("need both digit and 'other' drawings to look for look-alikes")
    rng = np.random.default_rng(seed)
    widths = rng.uniform(1.2, 3.0, len(usable))
    glyphs = np.stack(
        [
            render_glyph(d, float(w))
            for d, w in tqdm(
                zip(usable, widths, strict=True), total=len(usable), desc="render", disable=not progress
            )
        ]
    )
    labels = torch.tensor([d.class_id for d in usable])
    fold_of = np.array([_fold(d, folds) if d.class_id == OTHER_ID else -1 for d in usable])
    scores = np.zeros(len(usable), np.float32)
    digits = np.zeros(len(usable), np.int64)
    accuracy: list[float] = []
    for fold in range(folds):
        torch.manual_seed(seed * 1000 + fold)
        train_idx = np.flatnonzero(fold_of != fold)
        test_idx = np.flatnonzero(fold_of == fold)
        model = _train_glyph_net(
            glyphs[train_idx], labels[train_idx], epochs, batch_size, rng, progress, fold
        )
        probs = _predict(model, glyphs[test_idx], batch_size)
        scores[test_idx] = probs[:, :10].max(axis=1)
        digits[test_idx] = probs[:, :10].argmax(axis=1)
        accuracy.append(float((probs.argmax(axis=1) == OTHER_ID).mean()) if len(test_idx) else float("nan"))
    found = [
        Lookalike(usable[i].id, usable[i].source, int(digits[i]), round(float(scores[i]), 4))
        for i in others
        if scores[i] >= threshold
    ]
    found.sort(key=lambda f: -f.probability)
    return LookalikeSearch(
        threshold,
        folds,
        epochs,
        seed,
        len(others),
        found,
        accuracy,
        time.perf_counter() - start,
    )


def _train_glyph_net(
    glyphs: np.ndarray,
    labels: torch.Tensor,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    progress: bool,
    fold: int,
) -> GlyphNet:
    model = GlyphNet()
    steps = epochs * max(1, len(glyphs) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    model.train()
    bar = tqdm(total=steps, desc=f"fold {fold}", disable=not progress)
    for _ in range(epochs):
        order = rng.permutation(len(glyphs))
        for b in range(max(1, len(glyphs) // batch_size)):
            idx = order[b * batch_size : (b + 1) * batch_size]
            # Light shift augmentation: a glyph one or two pixels off centre is the same glyph.
            x = torch.roll(_as_input(glyphs[idx]), shifts=tuple(rng.integers(-2, 3, 2).tolist()), dims=(2, 3))
            loss = nn.functional.cross_entropy(model(x), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


@torch.no_grad()
def _predict(model: GlyphNet, glyphs: np.ndarray, batch_size: int) -> np.ndarray:
    out = [
        torch.softmax(model(_as_input(glyphs[i : i + batch_size])), dim=1).numpy()
        for i in range(0, len(glyphs), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, 11), np.float32)


def write_lookalikes(search: LookalikeSearch, path: Path, command: str) -> None:
    lines = [
        "# 'other' drawings of ../shared/data that look like a digit: load_drawings leaves them out.",
        f"# made by: {command}",
        f"# {len(search.found)} of {search.scored} scored; threshold {search.threshold}, "
        f"folds {search.folds}, epochs {search.epochs}, seed {search.seed}",
        "# id<TAB>digit it looks like<TAB>probability",
        *[f"{f.id}\t{f.digit}\t{f.probability:.4f}" for f in search.found],
    ]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def lookalike_sheet(
    search: LookalikeSearch, drawings: Sequence[Drawing], count: int = 96, cols: int = 12, tile: int = 72
) -> Image.Image:
    """The found drawings spread over the probability range, each with the digit it resembles."""
    by_id = {d.id: d for d in drawings}
    found = search.found
    picks = [found[int(i)] for i in np.linspace(0, len(found) - 1, min(count, len(found)))] if found else []
    rows = max(1, (len(picks) + cols - 1) // cols)
    sheet = Image.new("RGB", (cols * tile, rows * tile), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, f in enumerate(picks):
        glyph = Image.fromarray(render_glyph(by_id[f.id], 2.5, size=tile - 16))
        x, y = (k % cols) * tile, (k // cols) * tile
        sheet.paste(glyph, (x + 8, y + 2))
        draw.text(
            (x + 4, y + tile - 14),
            f"{f.digit} {f.probability:.2f} {f.source.split('_')[0]}",
            fill=(200, 0, 0),
        )
        draw.rectangle((x, y, x + tile - 1, y + tile - 1), outline=(210, 210, 210))
    return sheet
