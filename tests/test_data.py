from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digit_detector.classes import CENSORED_ID, NUM_CLASSES, OTHER_ID
from digit_detector.data.augment import StrokeAugment, augment_strokes, resample
from digit_detector.data.compose import DrawingPool, Layout, SceneComposer, SceneConfig, draw_strokes, ink_box
from digit_detector.data.generate import make_composer, write_yolo_dataset
from digit_detector.data.strokes import DataDirError, load_drawings, resolve_data_dir
from digit_detector.data.yolo_format import read_dataset
from digit_detector.preprocess import letterbox_gray


@pytest.fixture(scope="module")
def drawings(stroke_dir: Path) -> list:
    return load_drawings(stroke_dir)


def test_reader_labels_and_normalisation(drawings: list) -> None:
    ids = {d.class_id for d in drawings}
    assert ids == set(range(NUM_CLASSES))
    for d in drawings:
        pts = np.concatenate(d.strokes)
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
    draw_strokes(image, layout.objects[index].strokes, layout.stroke_width)
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
            ink = ink_box(_render_alone(layout, i), threshold=128)
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


def test_augmented_strokes_are_normalised(drawings: list) -> None:
    rng = np.random.default_rng(0)
    for d in drawings[:20]:
        out = augment_strokes(d.strokes, rng, StrokeAugment())
        pts = np.concatenate(out)
        assert pts.min() >= -1e-6 and abs(float(np.ptp(pts, axis=0).max()) - 1) < 1e-5


def test_resample_keeps_end_points_and_dots() -> None:
    stroke = np.array([[0, 0], [1, 0], [1, 1]], np.float32)
    out = resample(stroke, 0.1)
    np.testing.assert_allclose(out[0], stroke[0])
    np.testing.assert_allclose(out[-1], stroke[-1], atol=1e-6)
    assert len(out) == 21
    dot = np.array([[0.5, 0.5]], np.float32)
    assert resample(dot, 0.1).shape == (1, 2)


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
    """Training draws straight at 192 px; that must look like the canvas shrunk by `preprocess`."""
    composer = SceneComposer(DrawingPool(drawings))  # no raster noise: compare ink only
    for seed in range(10):
        full = composer.compose(np.random.default_rng(seed))
        fast = composer.compose_letterboxed(np.random.default_rng(seed))
        square, lb = letterbox_gray(full.image)
        assert np.abs(square.astype(int) - fast.image.astype(int)).mean() < 4.0
        np.testing.assert_allclose(lb.to_input(full.boxes), fast.boxes, atol=1e-3)


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
