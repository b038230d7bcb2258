"""Scene composer: draws canvases the way the app's canvas does (white paper, black anti-aliased
round-capped strokes), from real stroke recordings, with the exact box of every object's ink.

Boxes are (x1, y1, x2, y2) in canvas pixels, continuous coordinates (pixel i covers [i, i+1)).
A round-capped polyline of width w is the set of points within w/2 of its points, so its ink
box is exactly the points' box grown by w/2 on every side: no rendering is needed to know it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..classes import CENSORED_ID, DIGIT_IDS, NUM_CLASSES, OTHER_ID
from ..preprocess import Letterbox
from .augment import RasterNoise, StrokeAugment, augment_strokes
from .strokes import Drawing

_SHIFT = 4  # cv2 sub-pixel bits: coordinates are drawn at 1/16 px precision
_ONE = 1 << _SHIFT
_SPACINGS = (0.012, 0.018, 0.027)  # point spacing, fraction of the drawing's longer side


@dataclass(frozen=True)
class SceneConfig:
    """What kind of canvases to draw. Weights need not sum to 1."""

    # Desktop square most often; wide and tall desktop canvases; phone-sized canvases.
    canvas_sizes: tuple[tuple[int, int], ...] = (
        (400, 400),
        (600, 400),
        (700, 250),
        (800, 300),
        (350, 600),
        (250, 700),
        (340, 340),
    )
    canvas_weights: tuple[float, ...] = (0.5, 0.1, 0.08, 0.05, 0.1, 0.05, 0.12)
    stroke_width: tuple[float, float] = (2.0, 32.0)  # the app slider's range, canvas px
    kinds: tuple[str, ...] = ("single", "number", "scatter", "mixed", "blank", "specks")
    kind_weights: tuple[float, ...] = (0.42, 0.25, 0.13, 0.12, 0.04, 0.04)
    # Per-object class mix: digits, other, censored.
    digit_weight: float = 0.7
    other_weight: float = 0.17
    censored_weight: float = 0.13
    min_object_input_px: float = 14.0  # smallest object side after letterboxing to 192
    input_size: int = 192


@dataclass
class Scene:
    image: np.ndarray  # (H, W) uint8, white paper, dark ink
    boxes: np.ndarray  # (N, 4) float32, canvas pixels
    class_ids: np.ndarray  # (N,) int64
    stroke_width: float = 0.0


@dataclass
class PlacedObject:
    class_id: int
    strokes: list[np.ndarray]  # canvas pixel coordinates
    box: np.ndarray  # (4,) ink box including the stroke radius


@dataclass(frozen=True)
class Space:
    """What a layout works within: the canvas, the smallest legible object, the pen width."""

    width: int
    height: int
    min_side: float
    stroke_width: float


@dataclass
class Layout:
    """A scene before rendering: canvas size, objects in canvas pixels, one stroke width."""

    width: int
    height: int
    objects: list[PlacedObject]
    stroke_width: int
    specks: list[np.ndarray]  # unlabelled dots ("nearly empty" canvases)

    def boxes(self) -> np.ndarray:
        """Ink boxes: each object's point box grown by the stroke radius (round caps)."""
        r = self.stroke_width / 2
        grow = np.array([-r, -r, r, r])
        return np.array([o.box + grow for o in self.objects], dtype=np.float32).reshape(-1, 4)

    def class_ids(self) -> np.ndarray:
        return np.array([o.class_id for o in self.objects], dtype=np.int64)


def render_layout(
    layout: Layout, scale_x: float, scale_y: float, pad: tuple[int, int], shape: tuple[int, int]
) -> np.ndarray:
    """Draw the layout's strokes, mapped by `canvas * scale + pad`, onto white paper."""
    image = np.full(shape, 255, dtype=np.uint8)
    scale = np.array([scale_x, scale_y], dtype=np.float32)
    offset = np.array(pad, dtype=np.float32)
    strokes = [s * scale + offset for o in layout.objects for s in o.strokes]
    width = layout.stroke_width * min(scale_x, scale_y)
    draw_strokes(image, strokes, width)
    if layout.specks:
        draw_strokes(image, [s * scale + offset for s in layout.specks], min(width, 6.0 * scale_x))
    return image


class DrawingPool:
    """Drawings grouped by class; each class samples its sources with weight sqrt(count) so a
    small source is not drowned by a large one, then a drawing uniformly within the source."""

    def __init__(self, drawings: Sequence[Drawing]) -> None:
        by_class: dict[int, dict[str, list[Drawing]]] = {}
        for d in drawings:
            by_class.setdefault(d.class_id, {}).setdefault(d.source, []).append(d)
        self._sources: dict[int, list[list[Drawing]]] = {}
        self._weights: dict[int, np.ndarray] = {}
        for class_id, sources in by_class.items():
            groups = [sources[name] for name in sorted(sources)]
            weights = np.sqrt([len(g) for g in groups])
            self._sources[class_id] = groups
            self._weights[class_id] = weights / weights.sum()
        self.size = len(drawings)

    def classes(self) -> set[int]:
        return set(self._sources)

    def sample(self, class_id: int, rng: np.random.Generator) -> Drawing:
        groups = self._sources[class_id]
        group = groups[int(rng.choice(len(groups), p=self._weights[class_id]))]
        return group[int(rng.integers(len(group)))]


@dataclass
class SceneComposer:
    pool: DrawingPool
    config: SceneConfig = field(default_factory=SceneConfig)
    augment: StrokeAugment | None = None  # None: the eval pipeline (no stroke augmentation)
    noise: RasterNoise | None = None

    def __post_init__(self) -> None:
        available = self.pool.classes()
        digits = sorted(DIGIT_IDS & available)
        weights: dict[int, float] = {}
        for d in digits:
            weights[d] = self.config.digit_weight / len(digits)
        if OTHER_ID in available:
            weights[OTHER_ID] = self.config.other_weight
        if CENSORED_ID in available:
            weights[CENSORED_ID] = self.config.censored_weight
        if not weights:
            raise ValueError("the drawing pool is empty")
        self._class_ids = np.array(list(weights), dtype=np.int64)
        probs = np.array(list(weights.values()))
        self._class_probs = probs / probs.sum()
        self._digit_ids = np.array(digits or list(weights), dtype=np.int64)
        cw = np.asarray(self.config.canvas_weights, dtype=np.float64)
        self._canvas_probs = cw / cw.sum()
        kw = np.asarray(self.config.kind_weights, dtype=np.float64)
        self._kind_probs = kw / kw.sum()

    # -- public -------------------------------------------------------------------------------

    def layout(self, rng: np.random.Generator) -> Layout:
        """Decide the canvas, the objects (strokes in canvas px) and the stroke width."""
        cfg = self.config
        canvas = cfg.canvas_sizes[int(rng.choice(len(cfg.canvas_sizes), p=self._canvas_probs))]
        width, height = canvas
        kind = cfg.kinds[int(rng.choice(len(cfg.kinds), p=self._kind_probs))]
        # Smallest object side in canvas px such that it is still visible after letterboxing.
        min_side = cfg.min_object_input_px * max(width, height) / cfg.input_size
        wanted_width = float(np.exp(rng.uniform(*np.log(cfg.stroke_width))))
        place = getattr(self, f"_layout_{kind}")
        objects: list[PlacedObject] = place(rng, Space(width, height, min_side, wanted_width))
        stroke_width = self._stroke_width_for(objects, wanted_width)
        specks: list[np.ndarray] = []
        if kind == "specks":
            specks = [
                np.array([[rng.uniform(0, width), rng.uniform(0, height)]], dtype=np.float32)
                for _ in range(int(rng.integers(1, 4)))
            ]
        return Layout(width, height, objects, stroke_width, specks)

    def compose(self, rng: np.random.Generator) -> Scene:
        """A canvas at its full size, exactly as the app would send it (plus raster noise)."""
        layout = self.layout(rng)
        image = render_layout(
            layout, scale_x=1.0, scale_y=1.0, pad=(0, 0), shape=(layout.height, layout.width)
        )
        if self.noise is not None:
            image = self.noise(image, rng)
        return Scene(image, layout.boxes(), layout.class_ids(), float(layout.stroke_width))

    def compose_letterboxed(self, rng: np.random.Generator) -> Scene:
        """The same scene drawn straight into the letterboxed model-input square.

        Equivalent to `letterbox_gray(compose(rng).image)` up to the resampling filter (a test
        holds the two together), and ~4x faster because strokes are drawn once, at 192 px,
        instead of at canvas size and then shrunk. Boxes are in model-input pixels.
        """
        layout = self.layout(rng)
        box = Letterbox.fit(layout.width, layout.height, self.config.input_size)
        image = render_layout(
            layout, box.scale_x, box.scale_y, (box.pad_x, box.pad_y), shape=(box.size, box.size)
        )
        if self.noise is not None:
            image = self.noise(image, rng)
        boxes = box.to_input(layout.boxes()).astype(np.float32)
        return Scene(image, boxes, layout.class_ids(), float(layout.stroke_width))

    # -- layouts: each returns objects with strokes in canvas px and a point box (radius 0) ----

    def _layout_single(self, rng: np.random.Generator, space: Space) -> list[PlacedObject]:
        short = min(space.width, space.height)
        side = rng.uniform(max(space.min_side, 0.18 * short), 0.93 * short)
        return self._scatter_place([self._object(self._sample_class(rng), side, rng)], rng, space)

    def _layout_scatter(self, rng: np.random.Generator, space: Space) -> list[PlacedObject]:
        count = int(rng.integers(2, 6))
        hi = max(space.min_side * 1.2, 0.42 * min(space.width, space.height))
        objs = [
            self._object(self._sample_class(rng), rng.uniform(space.min_side, hi), rng) for _ in range(count)
        ]
        return self._scatter_place(objs, rng, space)

    def _layout_number(self, rng: np.random.Generator, space: Space) -> list[PlacedObject]:
        rows = 1 if rng.random() < 0.75 else 2
        return self._number_rows(rng, space, rows)

    def _layout_mixed(self, rng: np.random.Generator, space: Space) -> list[PlacedObject]:
        placed = self._number_rows(rng, space, 1, max_height=0.45)
        hi = max(space.min_side * 1.2, 0.35 * min(space.width, space.height))
        extras = [
            self._object(int(rng.choice([OTHER_ID, CENSORED_ID])), rng.uniform(space.min_side, hi), rng)
            for _ in range(int(rng.integers(1, 3)))
        ]
        extras = [e for e in extras if e.class_id in self.pool.classes()]
        return self._scatter_place(extras, rng, space, placed=placed)

    def _layout_blank(self, rng: np.random.Generator, space: Space) -> list[PlacedObject]:
        return []

    _layout_specks = _layout_blank  # specks are drawn after layout, with no label

    # -- helpers ------------------------------------------------------------------------------

    def _sample_class(self, rng: np.random.Generator) -> int:
        return int(rng.choice(self._class_ids, p=self._class_probs))

    def _object(self, class_id: int, side: float, rng: np.random.Generator) -> PlacedObject:
        """A drawing of `class_id`, longer side `side` px, points placed with min at (0, 0)."""
        drawing = self.pool.sample(class_id, rng)
        # Point spacing varies in training (a coarse or dense pen); a few fixed levels are cached.
        spacing = float(rng.choice(_SPACINGS)) if self.augment is not None else _SPACINGS[1]
        strokes = drawing.resampled(spacing)
        if self.augment is not None:
            strokes = augment_strokes(strokes, rng, self.augment)
        scaled = [s * side for s in strokes]
        return PlacedObject(class_id=class_id, strokes=scaled, box=_points_box(scaled))

    def _number_rows(
        self, rng: np.random.Generator, space: Space, rows: int, max_height: float = 0.8
    ) -> list[PlacedObject]:
        width, height, min_side, stroke_width = space.width, space.height, space.min_side, space.stroke_width
        placed: list[PlacedObject] = []
        row_tops = np.linspace(0, height, rows + 1)
        for r in range(rows):
            count = int(rng.integers(2, 7))
            band = row_tops[r + 1] - row_tops[r]
            fit_w = width * 0.92 / (count * 0.85)  # digits are ~0.6 as wide as tall, plus gaps
            hi = min(band * max_height, fit_w)
            digit_h = rng.uniform(min(min_side, hi), max(min(min_side, hi), hi))
            gap = digit_h * rng.uniform(0.05, 0.45)
            chars: list[PlacedObject] = []
            for _ in range(count):
                class_id = (
                    int(rng.choice(self._digit_ids)) if rng.random() > 0.08 else self._sample_class(rng)
                )
                chars.append(self._object(class_id, digit_h * rng.uniform(0.85, 1.1), rng))
            total = sum(float(c.box[2] - c.box[0]) for c in chars) + gap * (count - 1) + stroke_width * count
            x = rng.uniform(0, max(0.0, width - total - stroke_width)) + stroke_width / 2
            row_h = max(float(c.box[3] - c.box[1]) for c in chars)
            base = row_tops[r] + rng.uniform(0, max(0.0, band - row_h - 2 * stroke_width)) + stroke_width / 2
            drift = 0.0
            for c in chars:
                drift += rng.normal(0.0, 0.04 * digit_h)
                y = float(
                    np.clip(
                        base + drift + (row_h - (c.box[3] - c.box[1])) * rng.uniform(0.3, 1.0),
                        stroke_width / 2,
                        height - (c.box[3] - c.box[1]) - stroke_width / 2,
                    )
                )
                _translate(c, x, y)
                x += float(c.box[2] - c.box[0]) + gap + stroke_width
                if c.box[2] + stroke_width / 2 <= width and c.box[3] + stroke_width / 2 <= height:
                    placed.append(c)
        return placed

    def _scatter_place(
        self,
        objs: list[PlacedObject],
        rng: np.random.Generator,
        space: Space,
        placed: list[PlacedObject] | None = None,
    ) -> list[PlacedObject]:
        """Random non-overlapping placement (rejection sampling); objects that fit nowhere are
        dropped."""
        placed = list(placed or [])
        width, height = space.width, space.height
        r = space.stroke_width / 2 + 2  # keep a small gap between inks
        for obj in objs:
            w, h = float(obj.box[2]), float(obj.box[3])
            if w + 2 * r > width or h + 2 * r > height:
                continue
            for _ in range(40):
                x = rng.uniform(r, width - w - r)
                y = rng.uniform(r, height - h - r)
                cand = np.array([x - r, y - r, x + w + r, y + h + r])
                if all(not _overlaps(cand, p.box, r) for p in placed):
                    _translate(obj, x, y)
                    placed.append(obj)
                    break
        return placed

    @staticmethod
    def _stroke_width_for(objects: list[PlacedObject], stroke_width: float) -> int:
        """One whole-pixel width per canvas, as in the app; capped so the smallest object
        stays legible."""
        if objects:
            smallest = min(float(max(o.box[2] - o.box[0], o.box[3] - o.box[1])) for o in objects)
            stroke_width = min(stroke_width, 0.2 * smallest)
        return max(1, int(stroke_width))  # never above the width layouts left room for


def _points_box(strokes: list[np.ndarray]) -> np.ndarray:
    pts = np.concatenate(strokes)
    return np.concatenate([pts.min(axis=0), pts.max(axis=0)]).astype(np.float64)


def _translate(obj: PlacedObject, x: float, y: float) -> None:
    """Move the object so its point box starts at (x, y)."""
    offset = np.array([x, y], dtype=np.float32) - obj.box[:2].astype(np.float32)
    obj.strokes = [s + offset for s in obj.strokes]
    obj.box = _points_box(obj.strokes)


def _overlaps(a: np.ndarray, b: np.ndarray, margin: float) -> bool:
    return not (
        a[2] <= b[0] - margin or b[2] + margin <= a[0] or a[3] <= b[1] - margin or b[3] + margin <= a[1]
    )


def draw_strokes(image: np.ndarray, strokes: Sequence[np.ndarray], width: float, ink: int = 0) -> None:
    """Anti-aliased strokes with round caps and joins, exactly `width` px wide, in place, on a
    uint8 (H, W) image (darkest wins where strokes meet).

    cv2's own thick lines only come in odd effective widths (2 -> 3.4 px, 3 and 4 -> 5.4 px),
    which would break the exact-box rule; instead the centre lines are rasterised 1 px thin and
    the ink is the coverage of a disk of radius width/2 around them, from a distance transform.
    Continuous coordinates (pixel i covers [i, i+1)) are shifted by half a pixel into cv2's
    pixel-centre convention.
    """
    if not strokes:
        return
    centre = np.full(image.shape, 255, dtype=np.uint8)
    lines = [np.round((s - 0.5) * _ONE).astype(np.int32) for s in strokes]
    cv2.polylines(centre, lines, False, 0, thickness=1, lineType=cv2.LINE_8, shift=_SHIFT)
    distance = cv2.distanceTransform(centre, cv2.DIST_L2, cv2.DIST_MASK_5)
    r = width / 2
    # coverage = clip(r + 0.5 - d, 0, 1); paper where d >= r + 0.5, full ink where d <= r - 0.5
    np.maximum(distance, r - 0.5, out=distance)
    _, distance = cv2.threshold(distance, r + 0.5, r + 0.5, cv2.THRESH_TRUNC)
    shade = cv2.convertScaleAbs(distance, alpha=(255 - ink), beta=ink - (255 - ink) * (r - 0.5))
    np.minimum(image, shade, out=image)


def ink_box(image: np.ndarray, threshold: int = 128) -> np.ndarray | None:
    """Tight box of the pixels darker than `threshold`, (x1, y1, x2, y2) with exclusive x2/y2."""
    ys, xs = np.nonzero(image < threshold)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


__all__ = [
    "NUM_CLASSES",
    "DrawingPool",
    "Scene",
    "SceneComposer",
    "SceneConfig",
    "draw_strokes",
    "ink_box",
]
