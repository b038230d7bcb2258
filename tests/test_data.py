from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from digit_detector.classes import CENSORED_ID, DIGIT_IDS, NUM_CLASSES, OTHER_ID
from digit_detector.data.augment import StrokeAugment, augment_drawings
from digit_detector.data.compose import (
    Categorical,
    DrawingPool,
    Layout,
    SceneComposer,
    SceneConfig,
    draw_polylines,
    draw_strokes,
)
from digit_detector.data.dataset import GeneratedScenes
from digit_detector.data.generate import make_composer, write_yolo_dataset
from digit_detector.data.polylines import Polylines
from digit_detector.data.strokes import DataDirError, Drawing, load_drawings, resolve_data_dir
from digit_detector.data.yolo_format import read_dataset
from digit_detector.preprocess import ink_box, letterbox_gray


def test_reader_labels_and_normalisation(drawings: list) -> None:
    ids = {d.class_id for d in drawings}
    assert ids == set(range(NUM_CLASSES))
    for d in drawings:
        pts = d.ink.points
        assert pts.min() >= -1e-6 and abs(float(np.ptp(pts, axis=0).max()) - 1.0) < 1e-5
        if d.source == "quickdraw_censored":
            assert d.class_id == CENSORED_ID
        if d.source == "unipen_other":
            assert d.class_id == OTHER_ID


def test_missing_data_dir_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataDirError, match=str(missing)):
        resolve_data_dir(missing)
    with pytest.raises(DataDirError, match="strokes"):
        load_drawings(missing)


def test_split_is_by_writer_and_reproducible(drawings: list, stroke_dir: Path) -> None:
    by_writer: dict[str, set[str]] = {}
    for d in drawings:
        by_writer.setdefault(d.group, set()).add(d.split)
    assert all(len(s) == 1 for s in by_writer.values()), "a writer appears in both splits"
    again = load_drawings(stroke_dir)
    assert [d.split for d in drawings] == [d.split for d in again]
    assert {d.split for d in drawings} == {"train", "val"}


def _render_alone(layout: Layout, index: int) -> np.ndarray:
    image = np.full((layout.height, layout.width), 255, np.uint8)
    draw_polylines(image, layout.objects[index].ink, layout.stroke_width)
    return image


@pytest.mark.parametrize("augment", [None, StrokeAugment()])
def test_boxes_match_each_objects_own_ink(drawings: list, augment: StrokeAugment | None) -> None:
    composer = SceneComposer(DrawingPool(drawings), augment=augment)
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(40):
        layout = composer.layout(rng)
        boxes = layout.boxes()
        for i in range(len(layout.objects)):
            ink = ink_box(_render_alone(layout, i), level=128)
            assert ink is not None
            # Exact up to rasterisation: the centre line is drawn to the nearest pixel (<= 0.5 px)
            # and the ink box counts whole pixels (<= 0.5 px).
            np.testing.assert_allclose(ink, boxes[i], atol=1.05)
            checked += 1
    assert checked > 40


def test_every_augmentation_keeps_ink_inside_the_box(drawings: list) -> None:
    """Each stroke-space step alone, at its extreme, still gives boxes that match the ink."""
    extremes = [
        StrokeAugment(rotation_deg=30, shear=0, log_aspect=0, jitter=0, smooth_prob=0),
        StrokeAugment(rotation_deg=0, shear=0.5, log_aspect=0, jitter=0, smooth_prob=0),
        StrokeAugment(rotation_deg=0, shear=0, log_aspect=0.5, jitter=0, smooth_prob=0),
        StrokeAugment(rotation_deg=0, shear=0, log_aspect=0, jitter=0.02, smooth_prob=1.0),
        StrokeAugment(drop_tiny_stroke_prob=1.0, tiny_stroke_size=0.5),
    ]
    for aug in extremes:
        test_boxes_match_each_objects_own_ink(drawings, aug)


def test_a_batch_of_augmented_drawings_is_fitted_and_split_back_per_drawing(drawings: list) -> None:
    rng = np.random.default_rng(0)
    inks = [d.ink for d in drawings[:20]]
    strokes_per_drawing = np.array([len(ink) for ink in inks])
    joined = Polylines.concat(inks)
    points_per_drawing = joined.points_per_drawing(strokes_per_drawing)
    np.testing.assert_array_equal(points_per_drawing, [len(ink.points) for ink in inks])
    batch = augment_drawings(joined, points_per_drawing, rng, StrokeAugment())
    sides = rng.uniform(5, 300, len(inks))
    fitted, sizes = batch.fit_each(points_per_drawing, sides)
    parts = fitted.split_each(strokes_per_drawing, points_per_drawing)
    assert len(parts) == len(inks)
    for part, ink, side, size in zip(parts, inks, sides, sizes, strict=True):
        np.testing.assert_array_equal(part.lengths, ink.lengths)
        np.testing.assert_allclose(part.points.min(axis=0), 0, atol=1e-4)
        np.testing.assert_allclose(part.points.max(axis=0), size, rtol=1e-5, atol=1e-4)
        assert abs(float(size.max()) - side) < 1e-3 * side


def test_resample_keeps_end_points_and_dots() -> None:
    stroke = np.array([[0, 0], [1, 0], [1, 1]], np.float32)
    out = Polylines.from_strokes([stroke]).resample(0.1).points
    np.testing.assert_allclose(out[0], stroke[0])
    np.testing.assert_allclose(out[-1], stroke[-1], atol=1e-6)
    assert len(out) == 21
    np.testing.assert_allclose(np.linalg.norm(np.diff(out, axis=0), axis=1), 0.1, atol=1e-6)
    dot = np.array([[0.5, 0.5]], np.float32)
    assert Polylines.from_strokes([dot]).resample(0.1).points.shape == (1, 2)


def _resample_one_stroke(stroke: np.ndarray, spacing: float) -> np.ndarray:
    """Reference: the plain per-stroke definition the vectorised resample must equal."""
    seg = np.linalg.norm(np.diff(stroke.astype(np.float64), axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    if len(stroke) < 2 or arc[-1] == 0:
        return stroke[:1]
    at = np.linspace(0.0, arc[-1], int(np.ceil(arc[-1] / spacing)) + 1)
    return np.stack([np.interp(at, arc, stroke[:, 0]), np.interp(at, arc, stroke[:, 1])], 1)


def test_resampling_a_whole_drawing_equals_resampling_each_stroke() -> None:
    rng = np.random.default_rng(4)
    for _ in range(30):
        strokes = [
            np.cumsum(rng.normal(0, 0.05, (int(rng.integers(1, 12)), 2)), axis=0).astype(np.float32)
            for _ in range(int(rng.integers(1, 6)))
        ]
        strokes.append(np.repeat(strokes[0][:1], 3, axis=0))  # a dot recorded as 3 equal points
        spacing = float(rng.uniform(0.005, 0.1))
        out = Polylines.from_strokes(strokes).resample(spacing).strokes()
        assert len(out) == len(strokes)
        for got, stroke in zip(out, strokes, strict=True):
            np.testing.assert_allclose(got, _resample_one_stroke(stroke, spacing), atol=1e-5)


def test_drawing_strokes_together_is_the_darkest_of_drawing_them_alone() -> None:
    """Rendering only transforms a window around the ink; that must not cut any ink off."""
    rng = np.random.default_rng(2)
    for width in (1.0, 2.0, 7.0, 18.0, 32.0):
        strokes = [rng.uniform(-10, 200, (int(rng.integers(1, 5)), 2)).astype(np.float32) for _ in range(4)]
        together = np.full((192, 192), 255, np.uint8)
        draw_strokes(together, strokes, width)
        alone = np.full((192, 192), 255, np.uint8)
        for stroke in strokes:
            one = np.full((192, 192), 255, np.uint8)
            draw_strokes(one, [stroke], width)
            np.minimum(alone, one, out=alone)
        assert (together < 255).any()
        np.testing.assert_array_equal(together, alone)


def test_categorical_matches_its_probabilities() -> None:
    pick = Categorical([1.0, 0.0, 3.0])
    rng = np.random.default_rng(0)
    counts = np.bincount([pick.sample(rng) for _ in range(20000)], minlength=3)
    np.testing.assert_allclose(counts / counts.sum(), [0.25, 0.0, 0.75], atol=0.01)
    with pytest.raises(ValueError):
        Categorical([0.0, 0.0])


def _drawing_with_strokes(class_id: int, index: int) -> Drawing:
    """A drawing whose stroke count tells its class: class_id + 1 separate short strokes."""
    strokes = [np.array([[k / 12, 0.0], [k / 12, 1.0]], np.float32) for k in range(class_id + 1)]
    source = "quickdraw_censored" if class_id == CENSORED_ID else "unipen_digits"
    return Drawing(f"t/{class_id}/{index}", class_id, source, None, Polylines.from_strokes(strokes))


def test_every_placed_object_keeps_its_own_drawings_label() -> None:
    """Objects are resampled and augmented in batches; each must come back with its own label."""
    pool = DrawingPool([_drawing_with_strokes(c, i) for c in range(NUM_CLASSES) for i in range(3)])
    no_drop = StrokeAugment(drop_tiny_stroke_prob=0.0)
    composer = SceneComposer(pool, augment=no_drop)
    rng = np.random.default_rng(7)
    seen: set[int] = set()
    for _ in range(200):
        layout = composer.layout(rng)
        for obj in layout.objects:
            assert len(obj.ink) == obj.class_id + 1
            seen.add(obj.class_id)
        np.testing.assert_array_equal(layout.class_ids(), [o.class_id for o in layout.objects])
    assert seen == set(range(NUM_CLASSES))


def test_objects_never_overlap_and_labels_are_valid(drawings: list) -> None:
    composer = make_composer(drawings, augment=True)
    rng = np.random.default_rng(3)
    kinds_seen_multi = 0
    for _ in range(150):
        scene = composer.compose_letterboxed(rng)
        b = scene.boxes
        assert set(scene.class_ids.tolist()) <= set(range(NUM_CLASSES))
        assert ((b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])).all()
        assert (b >= -1e-3).all() and (b <= 192 + 1e-3).all()
        for i in range(len(b)):
            for j in range(i + 1, len(b)):
                iw = min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0])
                ih = min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1])
                assert iw <= 0 or ih <= 0, "objects overlap"
        kinds_seen_multi += len(b) > 1
    assert kinds_seen_multi > 10


def test_same_seed_same_scenes(drawings: list) -> None:
    a = make_composer(drawings, augment=True)
    b = make_composer(drawings, augment=True)
    for seed in range(5):
        sa, sb = a.compose(np.random.default_rng(seed)), b.compose(np.random.default_rng(seed))
        np.testing.assert_array_equal(sa.image, sb.image)
        np.testing.assert_array_equal(sa.boxes, sb.boxes)


def test_letterboxed_fast_path_matches_full_canvas_path(drawings: list) -> None:
    """Training draws straight at 192 px; that must look like the canvas framed and shrunk by
    `preprocess`. The frame comes from the exact ink box in training and from the pixels in
    serving, so boxes may differ by up to a pixel of the input."""
    composer = SceneComposer(DrawingPool(drawings))  # no raster noise: compare ink only
    for seed in range(10):
        full = composer.compose(np.random.default_rng(seed))
        fast = composer.compose_letterboxed(np.random.default_rng(seed))
        square, lb = letterbox_gray(full.image)
        served, drawn = square < 128, fast.image < 128
        assert served.any() == drawn.any()
        if not served.any():
            continue
        near = np.ones((3, 3), np.uint8)  # within a pixel: the frames may differ by that much
        assert (cv2.dilate(served.astype(np.uint8), near)[drawn] > 0).mean() > 0.97
        assert (cv2.dilate(drawn.astype(np.uint8), near)[served] > 0).mean() > 0.97
        assert abs(int(served.sum()) - int(drawn.sum())) <= 0.15 * int(served.sum())
        np.testing.assert_allclose(lb.to_input(full.boxes), fast.boxes, atol=1.0)


def test_empty_scenes_have_empty_label_files(drawings: list, tmp_path: Path) -> None:
    cfg = SceneConfig(kind_weights=(0, 0, 0, 0, 1, 1))
    composer = SceneComposer(DrawingPool(drawings), cfg)
    summary = write_yolo_dataset(composer, tmp_path, 6, seed=0, progress=False)
    assert summary.empty == 6
    for label in (tmp_path / "labels").iterdir():
        assert label.read_text() == ""


def test_yolo_files_round_trip_to_the_same_pixel_boxes(drawings: list, tmp_path: Path) -> None:
    composer = make_composer(drawings, augment=True)
    write_yolo_dataset(composer, tmp_path, 12, seed=5, progress=False)
    items = read_dataset(tmp_path)
    rng = np.random.default_rng(5)
    for item in items:
        scene = composer.compose(rng)
        assert (item.height, item.width) == scene.image.shape
        np.testing.assert_allclose(item.boxes, scene.boxes, atol=0.01)
        np.testing.assert_array_equal(item.class_ids, scene.class_ids)
    assert (tmp_path / "data.yaml").read_text().count("censored") == 1


@pytest.mark.parametrize("kind", ["single", "number"])
def test_digit_emphasis_makes_a_digit_that_much_more_frequent(drawings: list, kind: str) -> None:
    def digit_counts(emphasis: tuple[tuple[str, float], ...]) -> np.ndarray:
        cfg = SceneConfig(kinds=(kind,), kind_weights=(1.0,), digit_emphasis=emphasis)
        composer = SceneComposer(DrawingPool(drawings), cfg)
        rng = np.random.default_rng(0)
        ids = np.concatenate([composer.layout(rng).class_ids() for _ in range(700)])
        return np.bincount(ids[np.isin(ids, list(DIGIT_IDS))], minlength=10)

    plain = digit_counts(())
    tilted = digit_counts((("1", 3.0),))
    others = [d for d in range(10) if d != 1]
    assert 0.7 < plain[1] / plain[others].mean() < 1.4
    assert 2.3 < tilted[1] / tilted[others].mean() < 3.9


def test_digit_emphasis_of_a_non_digit_is_refused(drawings: list) -> None:
    with pytest.raises(ValueError, match="other"):
        SceneComposer(DrawingPool(drawings), SceneConfig(digit_emphasis=(("other", 2.0),)))


def test_training_scenes_emphasise_the_confused_digits_and_evaluation_scenes_do_not(drawings: list) -> None:
    training = dict(GeneratedScenes(drawings, seed=0).composer.config.digit_emphasis)
    assert training["1"] > 1 and training["7"] > 1
    assert SceneComposer.from_drawings(drawings).config.digit_emphasis == ()
    # `data preview --augment` and `anchors` see training's scenes; `data generate` evaluation's
    assert dict(make_composer(drawings, augment=True).config.digit_emphasis) == training
    assert make_composer(drawings, augment=False).config.digit_emphasis == ()


def test_single_mix_sets_the_lone_drawings_classes_and_leaves_other_scenes_alone(drawings: list) -> None:
    def class_shares(kind: str, single_mix: tuple[float, float, float] | None) -> np.ndarray:
        cfg = SceneConfig(kinds=(kind,), kind_weights=(1.0,), single_mix=single_mix)
        composer = SceneComposer(DrawingPool(drawings), cfg)
        rng = np.random.default_rng(0)
        ids = np.concatenate([composer.layout(rng).class_ids() for _ in range(600)])
        digit = np.isin(ids, list(DIGIT_IDS))
        return np.array([digit.mean(), (ids == OTHER_ID).mean(), (ids == CENSORED_ID).mean()])

    np.testing.assert_allclose(class_shares("single", (0.2, 0.3, 0.5)), [0.2, 0.3, 0.5], atol=0.06)
    np.testing.assert_allclose(class_shares("single", None), [0.62, 0.26, 0.12], atol=0.06)
    # the mix of objects in every other scene stays the config's
    np.testing.assert_allclose(class_shares("scatter", (0.2, 0.3, 0.5)), class_shares("scatter", None))
