from __future__ import annotations

import numpy as np
import pytest

from digit_detector.boxes import box_iou
from digit_detector.classes import CENSORED_ID, CLASS_NAMES, OTHER_ID
from digit_detector.postprocess import (
    CENSORED_DOMINANCE,
    censored_consensus,
    censored_scores,
    class_aware_nms,
    fit_to_ink,
    nms,
    one_label_per_object,
    postprocess,
    postprocess_for_map,
    reader_mixed_candidates,
    without_other,
)


def brute_force_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, thr: float) -> list[int]:
    """Textbook greedy NMS, one box at a time, per class."""
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep: list[int] = []
    for i in order:
        ok = True
        for j in keep:
            if classes[i] != classes[j]:
                continue
            x1, y1 = max(boxes[i][0], boxes[j][0]), max(boxes[i][1], boxes[j][1])
            x2, y2 = min(boxes[i][2], boxes[j][2]), min(boxes[i][3], boxes[j][3])
            inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
            area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
            if inter / (area(boxes[i]) + area(boxes[j]) - inter) > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", range(20))
def test_class_aware_nms_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    xy = rng.uniform(0, 150, (n, 2))
    wh = rng.uniform(5, 60, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1)
    scores = rng.permutation(n) / n + 0.01  # distinct scores: a unique answer
    if seed % 2:
        scores = np.round(scores, 1) + 0.05  # ties: the first in index order goes first, as in sorted()
    classes = rng.integers(0, 3, n)
    thr = float(rng.uniform(0.2, 0.7))
    got = class_aware_nms(boxes, scores, classes, thr).tolist()
    assert got == brute_force_nms(boxes, scores, classes, thr)


def test_nms_and_iou_edge_cases() -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    same = np.array([[0, 0, 10, 10]] * 3, float)
    assert nms(same, np.array([0.5, 0.7, 0.7]), 0.5).tolist() == [1]  # the tie's first
    apart = same + np.array([[0, 0, 0, 0], [20, 0, 20, 0], [40, 0, 40, 0]])
    assert nms(apart, np.array([0.5, 0.0, 0.7]), 0.5).tolist() == [2, 0]  # scoring 0: dropped
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0.0]])


def _raw(rows: list[list[float]], num_classes: int = 12) -> np.ndarray:
    out = np.zeros((len(rows), 5 + num_classes), np.float32)
    for i, (cx, cy, w, h, obj, cls, p) in enumerate(rows):
        out[i, :5] = (cx, cy, w, h, obj)
        out[i, 5 + int(cls)] = p
    return out


def test_postprocess_filters_decodes_and_sorts() -> None:
    raw = _raw(
        [
            [50, 50, 20, 40, 0.9, 3, 0.9],  # 0.81
            [52, 50, 20, 40, 0.8, 3, 0.9],  # duplicate of the first, suppressed
            [52, 50, 20, 40, 0.8, 7, 0.9],  # same place, other class: kept
            [150, 150, 10, 10, 0.3, 1, 0.5],  # 0.15 < conf
        ]
    )
    boxes, scores, classes = postprocess_for_map(raw, conf=0.25, iou=0.45)
    assert classes.tolist() == [3, 7]  # mAP: class-aware only (COCO convention)
    np.testing.assert_allclose(scores, [0.81, 0.72], rtol=1e-5)
    np.testing.assert_allclose(boxes[0], [40, 30, 60, 70])
    boxes, scores, classes = postprocess(raw, conf=0.25, iou=0.45)
    assert classes.tolist() == [3]  # display: one label per object
    np.testing.assert_allclose(boxes[0], [40, 30, 60, 70])
    with pytest.raises(ValueError, match="conf"):
        postprocess(raw, conf=1.5)
    with pytest.raises(ValueError, match="conf"):
        postprocess(raw, censored_conf=-0.1)


def test_reader_mixed_candidates_score_each_box_for_its_two_best_classes() -> None:
    """Score for class k = the box's score x ((1 - w) [k is its class] + w x p_k); a one-hot row
    (a box not read) keeps its class and score; the same class twice on one place is one
    candidate, the stronger (class-aware NMS); classes scored under conf are no candidates."""
    boxes = np.array([[0, 0, 10, 20], [1, 0, 11, 20], [50, 50, 70, 60]], np.float64)
    scores = np.array([0.8, 0.5, 0.6])
    ids = np.array([7, 1, OTHER_ID])
    probs = np.zeros((3, len(CLASS_NAMES)))
    probs[0, [1, 7]] = [0.9, 0.1]  # a "7" the reader reads as 1
    probs[1, [1, 4]] = [0.7, 0.3]  # a "1" on the same ink, weaker
    probs[2, OTHER_ID] = 1.0  # not read
    out_boxes, out_scores, out_ids = reader_mixed_candidates((boxes, scores, ids), probs, 0.5, 0.01, 0.45)
    assert out_ids.tolist() == [OTHER_ID, 7, 1, 4]
    np.testing.assert_allclose(out_scores, [0.6, 0.8 * 0.55, 0.5 * 0.85, 0.5 * 0.15])
    np.testing.assert_array_equal(out_boxes, boxes[[2, 0, 1, 1]])  # the first box's 1 (0.36) under it
    above = reader_mixed_candidates((boxes, scores, ids), probs, 0.5, 0.1, 0.45)
    assert above[2].tolist() == [OTHER_ID, 7, 1]  # the 4 (0.075) under conf
    same = reader_mixed_candidates((boxes, scores, ids), probs, 0.0, 0.01, 0.45)
    assert same[2].tolist() == [7, OTHER_ID, 1] and same[1].tolist() == [0.8, 0.6, 0.5]  # as they came
    with pytest.raises(ValueError, match="weight"):
        reader_mixed_candidates((boxes, scores, ids), probs, 1.5)


def _anchor(box: tuple[float, float, float, float], obj: float, probs: dict[int, float]) -> list[float]:
    row = [0.0] * 17
    row[:5] = [*box, obj]
    for c, p in probs.items():
        row[5 + c] = p
    return row


def test_one_label_per_glyph_and_censored_decided_apart() -> None:
    raw = np.array(
        [
            _anchor((50, 50, 20, 40), 0.95, {5: 0.56, 9: 0.44}),  # a "5" at 0.53 ...
            _anchor((51, 50, 20, 38), 0.95, {9: 0.55, 5: 0.45}),  # ... and a "9" at 0.52, same glyph
            _anchor((120, 50, 40, 40), 0.9, {0: 0.6, OTHER_ID: 0.4}),  # a smiley: "0" ...
            _anchor((121, 51, 40, 40), 0.9, {OTHER_ID: 0.58, 0: 0.42}),  # ... and "other"
            # An obscene doodle whose best class is "other": censored 0.9 x 0.4 = 0.36.
            _anchor((160, 150, 40, 40), 0.9, {OTHER_ID: 0.6, CENSORED_ID: 0.4}),
        ],
        dtype=np.float32,
    )
    boxes, scores, ids = postprocess(raw, conf=0.5, iou=0.45, censored_conf=0.3)
    assert sorted(ids.tolist()) == sorted([5, 0, OTHER_ID, CENSORED_ID])
    np.testing.assert_allclose(scores[ids == 5], [0.532], rtol=1e-3)
    np.testing.assert_allclose(scores[ids == CENSORED_ID], [0.36], rtol=1e-3)
    assert list(scores) == sorted(scores, reverse=True)
    # The censored box does not suppress the "other" box on the same doodle, nor vice versa.
    np.testing.assert_allclose(boxes[ids == CENSORED_ID][0], boxes[ids == OTHER_ID][-1], atol=1e-4)
    # Its own threshold: above 0.36 it is gone, whatever `conf` says.
    _, _, ids = postprocess(raw, conf=0.05, censored_conf=0.4)
    assert CENSORED_ID not in ids.tolist()


def test_a_censored_box_under_a_much_stronger_box_is_dropped() -> None:
    # One doodle: "other" 0.9 x 0.85 = 0.765, censored 0.9 x 0.15 = 0.135 (0.765 >= 3 x 0.135).
    raw = np.array([_anchor((100, 100, 60, 60), 0.9, {OTHER_ID: 0.85, CENSORED_ID: 0.15})], np.float32)
    _, _, ids = postprocess(raw, conf=0.5, censored_conf=0.1)
    assert ids.tolist() == [OTHER_ID]
    raw[0, 5 + CENSORED_ID] = 0.3  # censored 0.27: 0.765 < 3 x 0.27, both shown
    assert CENSORED_DOMINANCE * 0.27 > 0.765
    _, _, ids = postprocess(raw, conf=0.5, censored_conf=0.1)
    assert sorted(ids.tolist()) == [OTHER_ID, CENSORED_ID]
    # A strong "other" elsewhere never drops a censored box.
    apart = np.array(
        [
            _anchor((40, 40, 60, 60), 0.9, {OTHER_ID: 0.99}),
            _anchor((150, 150, 60, 60), 0.9, {OTHER_ID: 0.05, CENSORED_ID: 0.15}),
        ],
        np.float32,
    )
    _, _, ids = postprocess(apart, conf=0.5, censored_conf=0.1)
    assert sorted(ids.tolist()) == [OTHER_ID, CENSORED_ID]


def _paper_with_a_bar() -> np.ndarray:
    """White paper, a dark upright bar in columns 40-43 and rows 20-79 (a thin "1"), a speck
    at row 17 just above it, and a neighbour's ink from column 46 on."""
    gray = np.full((100, 100), 255, np.uint8)
    gray[20:80, 40:44] = 0
    gray[17, 41] = 90
    gray[30:60, 46:55] = 0
    return gray


def test_fit_to_ink_shrinks_loose_sides_and_reaches_only_past_cut_ones() -> None:
    gray = _paper_with_a_bar()
    bar = [40, 20, 44, 80]
    # A loose box: every side has paper along it and shrinks to the bar; neither the speck
    # nor the neighbour, both within reach of a side with paper, is taken.
    np.testing.assert_array_equal(fit_to_ink(np.array([[30.0, 18.5, 45.5, 90.0]]), gray, reach=3), [bar])
    # A short box cuts the bar on the left and at the bottom: those sides move out, by at most
    # `reach` (the bar's last row is 2.5 rows below the box, the reach is 1); the top and the
    # right side have paper along them and stay off the speck and the neighbour.
    short = np.array([[41.0, 19.0, 44.5, 77.5]])
    np.testing.assert_array_equal(fit_to_ink(short, gray, reach=1), [[40, 20, 44, 79]])
    np.testing.assert_array_equal(fit_to_ink(short, gray, reach=3), [[40, 20, 44, 80]])
    np.testing.assert_array_equal(fit_to_ink(short, gray), [[41, 20, 44, 78]])
    # The neighbour, cut on every side but the left, whose paper keeps the box off the bar
    # although the bar lies within reach of it.
    np.testing.assert_array_equal(
        fit_to_ink(np.array([[45.5, 31.0, 52.5, 59.0]]), gray, reach=3), [[46, 30, 55, 60]]
    )
    # A block cut on the left and at the top, with paper on its right and below, where a dot and
    # a dash lie within reach: the box takes the block's cut-off part and neither of them.
    block = np.full((40, 40), 255, np.uint8)
    block[10:20, 10:20] = 0
    block[15, 22] = 0
    block[22, 12:17] = 0
    np.testing.assert_array_equal(
        fit_to_ink(np.array([[11.0, 12.0, 20.5, 20.5]]), block, reach=3), [[10, 10, 20, 20]]
    )
    # A box on bare paper stays as it was; one past the image's edge is clipped to it.
    np.testing.assert_array_equal(
        fit_to_ink(np.array([[60.0, 70.5, 90.0, 95.0]]), gray), [[60, 70.5, 90, 95]]
    )
    np.testing.assert_array_equal(fit_to_ink(np.array([[-10.0, 18.5, 45.0, 30.0]]), gray), [[40, 20, 44, 30]])
    assert fit_to_ink(np.zeros((0, 4)), gray).shape == (0, 4)
    # One reach per box: the same short box twice, reaching 1 and 3 pixels.
    np.testing.assert_array_equal(
        fit_to_ink(np.repeat(short, 2, axis=0), gray, reach=np.array([1.0, 3.0])),
        [[40, 20, 44, 79], [40, 20, 44, 80]],
    )


def test_one_label_per_object_on_fitted_boxes() -> None:
    # Two boxes that fitted onto the same ink, and a censored box there too.
    boxes = np.array([[40, 20, 44, 80], [40, 21, 44, 80], [40, 20, 44, 80], [47, 30, 55, 60]], np.float64)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    ids = np.array([1, OTHER_ID, CENSORED_ID, 7])
    kept_boxes, kept_scores, kept_ids = one_label_per_object(boxes, scores, ids, iou=0.45)
    assert kept_ids.tolist() == [1, CENSORED_ID, 7]
    np.testing.assert_array_equal(kept_scores, [0.9, 0.7, 0.6])
    np.testing.assert_array_equal(kept_boxes, boxes[[0, 2, 3]])


def test_without_other_silences_rows_read_as_other_but_keeps_their_censored_score() -> None:
    rows = np.zeros((3, 5 + 12), np.float32)
    rows[:, :5] = [[10, 10, 4, 4, 0.9], [30, 10, 4, 4, 0.9], [50, 10, 4, 4, 0.9]]  # apart
    rows[0, 5 + 3], rows[0, 5 + OTHER_ID] = 0.7, 0.2  # a "3": untouched
    rows[1, 5 + 3], rows[1, 5 + OTHER_ID], rows[1, 5 + CENSORED_ID] = 0.3, 0.6, 0.8  # "other"
    rows[2, 5 + OTHER_ID], rows[2, 5 + CENSORED_ID] = 0.1, 0.9  # censored, "other" its best plain class
    out = without_other(rows)
    np.testing.assert_array_equal(out[0], rows[0])
    np.testing.assert_array_equal(out[1, 5 : 5 + CENSORED_ID], 0)
    np.testing.assert_array_equal(out[2, 5 : 5 + CENSORED_ID], 0)
    np.testing.assert_array_equal(out[:, :5], rows[:, :5])
    np.testing.assert_array_equal(out[:, 5 + CENSORED_ID], rows[:, 5 + CENSORED_ID])
    assert rows[1, 5 + OTHER_ID] == np.float32(0.6)  # the input is not changed
    shown = postprocess(out, conf=0.5, censored_conf=0.5)
    assert sorted(shown[2].tolist()) == [3, CENSORED_ID, CENSORED_ID]


def test_censored_consensus_scores_censored_reads_by_the_mean_over_views() -> None:
    rows = np.zeros((3, 5 + 12), np.float32)
    rows[:, :5] = [[50, 50, 40, 40, 0.9], [120, 50, 40, 40, 0.5], [50, 120, 20, 20, 0.8]]
    rows[0, 5 + CENSORED_ID] = 1.0  # censored 0.9: a candidate
    rows[1, 5 + CENSORED_ID], rows[1, 5 + 7] = 0.1, 0.9  # censored 0.05, under the floor
    rows[2, 5 + 4] = 1.0  # a "4", no censored score
    agreeing = np.zeros((2, 5 + 12), np.float32)
    agreeing[:, :5] = [[52, 50, 40, 40, 0.6], [120, 50, 40, 40, 1.0]]  # IoU 0.9 with row 0; row 1
    agreeing[:, 5 + CENSORED_ID] = [0.5, 0.99]  # 0.3 over row 0
    elsewhere = agreeing.copy()
    elsewhere[:, 0] += 200  # no box over row 0
    rescored = censored_scores(rows) >= 0.1
    out = censored_consensus(rows, [agreeing], rescored)
    np.testing.assert_allclose(censored_scores(out), [(0.9 + 0.3) / 2, 0.05, 0.0], rtol=1e-6)
    others = [c for c in range(rows.shape[1]) if c != 5 + CENSORED_ID]
    np.testing.assert_array_equal(out[:, others], rows[:, others])
    assert rows[0, 5 + CENSORED_ID] == 1.0  # the input is not changed
    two = censored_consensus(rows, [agreeing, elsewhere], rescored)
    np.testing.assert_allclose(censored_scores(two)[0], (0.9 + 0.3 + 0.0) / 3, rtol=1e-6)
    faint = agreeing.copy()
    faint[0, 5 + CENSORED_ID] = 0.005 / 0.6  # censored 0.005 over row 0: under CONSENSUS_MIN_SCORE, none
    np.testing.assert_allclose(
        censored_scores(censored_consensus(rows, [faint], rescored))[0], 0.9 / 2, rtol=1e-6
    )
    np.testing.assert_array_equal(censored_consensus(rows, [], rescored), rows)
    # Rows not picked keep their scores, even with a view that disagrees.
    np.testing.assert_array_equal(censored_consensus(rows, [elsewhere], np.zeros(3, bool)), rows)
