"""The digit reader: its crop, its training command and file, and the Detector re-reading digits."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
import pytest
import torch

from digit_detector import Detector, WeightsError, reader_train
from digit_detector.classes import CENSORED_ID, CLASS_ID_BY_NAME, OTHER_ID
from digit_detector.cli import main
from digit_detector.data.compose import SceneComposer
from digit_detector.data.procedural import procedural_others
from digit_detector.data.strokes import (
    Drawing,
    is_unseen_category,
    without_generated_censored,
)
from digit_detector.errors import UserError
from digit_detector.reader import (
    DIGIT_CLASSES,
    DIGIT_OR_OTHER_CLASSES,
    EVERY_CLASS,
    READER_FILE,
    READER_INPUT_PX,
    DigitReader,
    reader_batch,
    reader_crop,
)
from digit_detector.reader_train import (
    ReaderNet,
    ReaderTrainConfig,
    accuracies,
    parity_crops,
    real_doodles_as_other,
    save_reader_run,
    train_reader,
    training_crops,
)

from .conftest import (
    SHIPPED_READER,
    ReadsEverythingAs,
    overlay,
    render_digit_canvas,
    stroke_fixture_with,
)


def test_crop_centres_the_box_squared_with_a_margin() -> None:
    """A 10x40 black bar in a 400x300 image: the crop is the bar's box squared (46 px =
    40 x 1.15 + 2) about its centre, so the bar fills the crop's middle, 40/46 of its height."""
    gray = np.full((300, 400), 255, np.uint8)
    gray[100:140, 200:210] = 0
    crop = reader_crop(gray, (200, 100, 210, 140))
    assert crop.shape == (READER_INPUT_PX, READER_INPUT_PX) and crop.dtype == np.float32
    inked_rows = np.flatnonzero(crop.min(axis=1) < 0.5)
    inked_cols = np.flatnonzero(crop.min(axis=0) < 0.5)
    assert inked_rows[0] in (2, 3) and inked_rows[-1] in (28, 29)  # 32 x 40/46 = 27.8 rows, centred
    assert abs((inked_cols[0] + inked_cols[-1]) / 2 - 15.5) <= 0.5 and len(inked_cols) in (
        6,
        7,
        8,
    )  # 10 x 32/46 = 7.0
    assert crop.max() == 1.0  # white stays white


def test_crop_pads_with_paper_beyond_the_image_and_shows_faint_ink_dark() -> None:
    """A box at the image's corner is padded with white, not wrapped or clipped off-centre;
    a faint 1-px line comes out dark (the detector's ink normalisation)."""
    gray = np.full((100, 100), 255, np.uint8)
    gray[0:20, 0] = 200  # faint, 1 px, at the very edge
    crop = reader_crop(gray, (0, 0, 1, 20))
    assert crop[:, :12].min() == 1.0  # left of the box: padding, not image
    assert crop.min() < 0.6  # stretched: 200 alone would be 0.78 after the area resize
    assert reader_crop(gray, (500, 500, 500, 500)).min() == 1.0  # a box off the image: all paper
    assert reader_batch(gray, np.zeros((0, 4))).shape == (0, 1, READER_INPUT_PX, READER_INPUT_PX)


def test_train_reader_writes_a_served_reader(stroke_dir: Path, tmp_path: Path) -> None:
    """The command trains on the fixture strokes, writes the ONNX file with its metadata and a
    summary; the file loads as a DigitReader and gives a distribution over the ten digits."""
    out = tmp_path / "reader"
    args = ["--data-dir", str(stroke_dir), "--out", str(out), "--scenes", "30", "--val-scenes", "10"]
    assert main(["train-reader", *args, "--epochs", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_crops"] > 30 and 0.0 <= summary["val_accuracy"] <= 1.0
    assert summary["parity_max_diff"] < 1e-4
    reader = DigitReader(out / READER_FILE)
    assert reader.metadata["source"]["train_crops"] == summary["train_crops"]
    gray = 255 - render_digit_canvas("4")[..., 3]
    probs = reader.read(gray, np.array([[120.0, 70, 280, 330], [0, 0, 50, 50]]))
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def _reader_run(
    folder: Path, seed: int, classes: tuple[str, ...] = EVERY_CLASS, input_px: int = 32, width: int = 4
) -> ReaderNet:
    """A `train-reader` output folder holding an untrained reader of `seed` (its .pt only)."""
    torch.manual_seed(seed)
    net = ReaderNet(width, len(classes), input_px).eval()
    config = {"width": width, "classes": list(classes), "input_px": input_px, "seed": seed}
    summary = {"config": config, "commit": f"c{seed}", "val_accuracy": 0.5, "train_crops": 10 + seed}
    save_reader_run(net, summary, folder)
    return net


def test_ensemble_readers_serves_the_mean_of_its_readers(tmp_path: Path) -> None:
    """`ensemble-readers` joins runs into one served file whose probabilities are the mean of
    its readers' (of any width), each run recorded; --float16 halves the weights within the
    float16 bound."""
    nets = [_reader_run(tmp_path / f"run{seed}", seed, width=2 + 2 * seed) for seed in (1, 2, 3)]
    out = tmp_path / "served" / READER_FILE
    runs = [str(tmp_path / f"run{seed}") for seed in (1, 2, 3)]
    assert main(["ensemble-readers", *runs, "--out", str(out)]) == 0
    reader = DigitReader(out)
    assert reader.classes == EVERY_CLASS and reader.input_px == 32
    assert [m["seed"] for m in reader.metadata["source"]["members"]] == [1, 2, 3]
    assert [m["width"] for m in reader.metadata["source"]["members"]] == [4, 6, 8]
    assert [m["train_crops"] for m in reader.metadata["source"]["members"]] == [11, 12, 13]
    crops = parity_crops(16, 32, seed=5)
    with torch.no_grad():
        each = [net(crops).numpy() for net in nets]
    served = reader.session.run(None, {"crops": crops.numpy()})[0]
    np.testing.assert_allclose(served, np.mean(each, axis=0), atol=1e-5)
    assert all(np.abs(served - one).max() > 1e-3 for one in each)  # not any one of them
    half = tmp_path / "half.onnx"
    assert main(["ensemble-readers", *runs, "--out", str(half), "--float16"]) == 0
    weights = [t for t in onnx.load(half).graph.initializer if len(t.dims) == 4]  # the convolutions
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    assert half.stat().st_size < 0.9 * out.stat().st_size
    half_reader = DigitReader(half)
    assert half_reader.metadata["source"]["weights_dtype"] == "float16"
    halves = half_reader.session.run(None, {"crops": crops.numpy()})[0]
    np.testing.assert_allclose(halves, served, atol=1e-2)


def test_ensemble_readers_int8_computes_in_int8_near_the_float_mean(
    stroke_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--int8 calibrates on crops of the training drawings, stores int8 convolution weights and
    serves probabilities within the int8 bound of the float mean, though not equal to it; a file
    outside the bound is refused and nothing is written."""
    nets = [_reader_run(tmp_path / f"run{seed}", seed, width=4 * seed) for seed in (1, 2)]
    runs = [str(tmp_path / f"run{seed}") for seed in (1, 2)]
    full, small = tmp_path / "full.onnx", tmp_path / "int8.onnx"
    assert main(["ensemble-readers", *runs, "--out", str(full)]) == 0
    data = ["--data-dir", str(stroke_dir)]
    assert main(["ensemble-readers", *runs, "--out", str(small), "--int8", *data]) == 0
    assert "MB, int8)" in capsys.readouterr().out
    convolutions = [t for t in onnx.load(small).graph.initializer if len(t.dims) == 4]
    assert convolutions and all(t.data_type == onnx.TensorProto.INT8 for t in convolutions)
    assert small.stat().st_size < 0.6 * full.stat().st_size
    package_dir = str(Path(reader_train.__file__).resolve().parent)
    assert package_dir.encode() not in small.read_bytes()  # no exporter stack traces
    reader = DigitReader(small)
    assert reader.metadata["source"]["weights_dtype"] == "int8"
    assert reader.metadata["source"]["calibration_crops"] > 50
    crops = parity_crops(32, 32, seed=7)
    with torch.no_grad():
        mean = np.mean([net(crops).numpy() for net in nets], axis=0)
    served = reader.session.run(None, {"crops": crops.numpy()})[0]
    assert 1e-4 < np.abs(served - mean).max() < reader_train.INT8_PROB_TOL
    monkeypatch.setitem(reader_train.PARITY_TOLERANCES, "int8", 1e-6)
    refused = tmp_path / "refused.onnx"
    assert main(["ensemble-readers", *runs, "--out", str(refused), "--int8", *data]) == 2
    assert "int8 reader disagrees" in capsys.readouterr().err
    assert not refused.exists() and not refused.with_suffix(".onnx.tmp").exists()
    assert main(["ensemble-readers", *runs, "--out", str(refused), *data]) == 2
    assert "give --int8 too" in capsys.readouterr().err
    assert (
        main(["ensemble-readers", *runs, "--out", str(refused), "--int8", "--data-dir", str(tmp_path)]) == 2
    )
    assert "stroke data not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ensemble-readers", *runs, "--out", str(refused), "--int8", "--float16"])


def test_ensemble_readers_refuses_what_cannot_be_joined(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _reader_run(tmp_path / "a", 0)
    _reader_run(tmp_path / "digits", 1, classes=DIGIT_CLASSES)
    _reader_run(tmp_path / "wide", 2, input_px=48)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "digit-reader.pt").write_bytes(b"not a checkpoint")
    out = str(tmp_path / "e.onnx")
    for runs, message in (
        (["a"], "two or more"),
        (["a", "missing"], "no digit-reader.pt"),
        (["a", "broken"], "cannot read the reader"),
        (["a", "digits"], "read alike"),
        (["a", "wide"], "read alike"),
    ):
        assert main(["ensemble-readers", *(str(tmp_path / r) for r in runs), "--out", out]) == 2
        assert message in capsys.readouterr().err
    assert (
        main(["ensemble-readers", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "e.pt")])
        == 2
    )
    assert "ends in .onnx" in capsys.readouterr().err
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    assert (
        main(["ensemble-readers", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(blocked / "e.onnx")])
        == 2
    )
    assert "cannot write" in capsys.readouterr().err
    assert not (tmp_path / "e.onnx").exists()


def test_train_reader_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    assert main(["train-reader", "--out", str(file), "--data-dir", str(tmp_path)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["train-reader", "--out", str(file / "r"), "--data-dir", str(tmp_path)]) == 2
    assert "cannot write into" in capsys.readouterr().err  # before any training
    with pytest.raises(SystemExit):
        main(["train-reader", "--out", str(tmp_path / "r"), "--epochs", "0"])
    for side in ("36", "8", "104"):  # not a multiple of 8, or out of range
        with pytest.raises(SystemExit):
            main(["train-reader", "--out", str(tmp_path / "r"), "--input-px", side])
    with pytest.raises(SystemExit):  # one class set at a time
        main(["train-reader", "--out", str(tmp_path / "r"), "--read-other", "--read-censored"])
    with pytest.raises(ValueError, match="a reader reads one of"):
        ReaderTrainConfig(classes=("0", "other"))
    with pytest.raises(ValueError, match="multiple of 8"):
        ReaderTrainConfig(input_px=30)
    assert main(["train-reader", "--out", str(tmp_path / "r"), "--lone-scenes", "5"]) == 2
    assert "--read-other or --read-censored" in capsys.readouterr().err
    for classes in ([], ["--read-other"]):  # a reader of no censored has no generated censored to drop
        assert main(["train-reader", "--out", str(tmp_path / "r"), *classes, "--no-generated-censored"]) == 2
        assert "give --read-censored" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_missing_damaged_or_foreign_reader_is_refused(tmp_path: Path, onnx_weights: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        DigitReader(tmp_path / "none.onnx")
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(SHIPPED_READER.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="corrupted"):
        DigitReader(damaged)
    with pytest.raises(WeightsError, match="corrupted"):
        DigitReader(onnx_weights)  # the detector's file: no reader metadata
    other_crop = onnx.load(str(SHIPPED_READER))
    meta = next(p for p in other_crop.metadata_props if p.key == "digit_reader")
    meta.value = json.dumps({**json.loads(meta.value), "input_px": 28})
    onnx.save(other_crop, str(tmp_path / "other-crop.onnx"))
    with pytest.raises(WeightsError, match="another crop"):
        DigitReader(tmp_path / "other-crop.onnx")
    meta.value = json.dumps({**json.loads(meta.value), "input_px": 48})  # a size its graph does not take
    onnx.save(other_crop, str(tmp_path / "other-size.onnx"))
    with pytest.raises(WeightsError, match="its graph takes"):
        DigitReader(tmp_path / "other-size.onnx")
    meta.value = json.dumps({**json.loads(meta.value), "input_px": READER_INPUT_PX, "classes": ["a", "b"]})
    onnx.save(other_crop, str(tmp_path / "other-classes.onnx"))
    with pytest.raises(WeightsError, match="reads the classes"):
        DigitReader(tmp_path / "other-classes.onnx")
    with pytest.raises(WeightsError, match="not found"):
        Detector(onnx_weights, reader=tmp_path / "none.onnx")


def test_mAP_candidates_are_ranked_by_the_detector_and_the_reader(onnx_weights: Path) -> None:
    """Every candidate of a class the reader reads is read once; each box is a candidate for its
    two best classes of the mix (reader_mixed_candidates): a "7" the reader reads as 3 is both
    a 7 and a 3 at half the detector's score each. Weight 0: the detector's own candidates."""
    detector = Detector(onnx_weights, reader=False)
    canvas = render_digit_canvas("7")
    own = detector.predict(canvas, all_candidates=True)
    seven = next(d for d in own if d.label == "7")
    detector.reader = fake = ReadsEverythingAs(3)
    mixed = detector.predict(canvas, all_candidates=True)
    assert fake.calls == [sum(d.class_id <= OTHER_ID for d in own)]
    by_label = {d.label: d for d in mixed if d.box == seven.box}
    assert by_label["7"].score == pytest.approx(seven.score / 2)
    assert by_label["3"].score == pytest.approx(seven.score / 2)
    detector.reader_candidate_weight = 0.0
    assert detector.predict(canvas, all_candidates=True) == own


def test_the_reader_names_each_digit_shown_and_nothing_else(onnx_weights: Path) -> None:
    """With a reader that reads every crop as 3, the shown digit becomes a 3 with the detector's
    score and box; non-digits keep the detector's classes; no digit shown, no reader run; a
    digit scored reader_digit_max_score or more is not read either."""
    detector = Detector(onnx_weights, reader=False)
    canvas = render_digit_canvas("7")
    own = detector.predict(canvas)
    assert [d.label for d in own] == ["7"]
    detector.reader = fake = ReadsEverythingAs(3)
    detector.reader_digit_max_score = own[0].score + 0.01
    reread = detector.predict(canvas)
    assert [(d.label, d.class_id, d.score, d.box) for d in reread] == [("3", 3, own[0].score, own[0].box)]
    assert fake.calls == [1]
    assert detector.predict(np.full((200, 200), 255, np.uint8)) == [] and fake.calls == [1]
    detector.reader_digit_max_score = own[0].score
    assert detector.predict(canvas) == own and fake.calls == [1]


def test_a_digit_the_reader_reads_as_other_is_shown_as_other(onnx_weights: Path) -> None:
    """A reader trained with --read-other that reads the crop as "other": the digit shown
    becomes "other" (score and box the detector's), so no digit is read into the number;
    unless the detector's score reaches reader_other_max_score: then the reader's best digit."""
    detector = Detector(onnx_weights, reader=False)
    canvas = render_digit_canvas("7")
    own = detector.predict(canvas)
    detector.reader = ReadsEverythingAs(OTHER_ID)
    detector.reader_other_max_score = own[0].score + 0.01
    shown = detector.predict(canvas)
    assert [(d.label, d.class_id, d.score, d.box) for d in shown] == [
        ("other", OTHER_ID, own[0].score, own[0].box)
    ]
    detector.reader_other_max_score = own[0].score
    assert [d.label for d in detector.predict(canvas)] == ["0"]  # p(every digit) 0: the first


def _digits_side_by_side(gap: int) -> np.ndarray:
    """A 1 and a 7 of one size on one line, `gap` px apart (20: one number; 250: two)."""
    one = render_digit_canvas("1", size=(600, 400), box=(100, 140, 170, 260))
    seven = render_digit_canvas("7", size=(600, 400), box=(170 + gap, 140, 240 + gap, 260), seed=1)
    return overlay(one, seven)


class ReadsOtherWith(ReadsEverythingAs):
    """Reads every crop as "other" with `p_other`, else a 3."""

    def __init__(self, p_other: float) -> None:
        super().__init__(3)
        self.p_other = p_other

    def read(self, gray: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        probs = super().read(gray, boxes) * (1 - self.p_other)
        probs[:, OTHER_ID] = self.p_other
        return probs


@pytest.mark.parametrize("gap", [20, 250])
def test_a_doubtful_digit_beside_a_sure_one_needs_more_to_be_other(onnx_weights: Path, gap: int) -> None:
    """The detector sure of one digit and doubtful of the other (reader_other_max_score
    between their scores), a reader giving every crop p(other) 0.4, else a 3: in one number the
    doubtful digit is shown as a 3, like the sure one (0.4 is under
    reader_other_conf_in_number), two numbers apart as "other" (0.4 is over reader_other_conf);
    from p(other) 0.6 it is "other" in a number too. Two doubtful digits do not vouch for each
    other."""
    detector = Detector(onnx_weights, reader=False)
    canvas = _digits_side_by_side(gap)
    own = sorted(detector.predict(canvas), key=lambda d: d.score)
    assert [d.label for d in own] == ["1", "7"] and own[0].score < own[1].score
    detector.reader = ReadsOtherWith(0.4)
    detector.reader_digit_max_score = 1.01
    detector.reader_other_max_score = (own[0].score + own[1].score) / 2
    assert detector.reader_other_conf < 0.4 < detector.reader_other_conf_in_number < 0.6
    doubtful, sure = sorted(detector.predict(canvas), key=lambda d: d.score)
    assert (doubtful.box, sure.box) == (own[0].box, own[1].box)
    assert (doubtful.label, sure.label) == ("3" if gap == 20 else "other", "3")
    detector.reader = ReadsOtherWith(0.6)
    assert [d.label for d in sorted(detector.predict(canvas), key=lambda d: d.score)] == ["other", "3"]
    detector.reader = ReadsOtherWith(0.4)
    detector.reader_other_max_score = 1.0
    assert [d.label for d in detector.predict(canvas)] == ["other", "other"]


def _reader_of(classes: tuple[str, ...]) -> DigitReader:
    """A DigitReader of those classes without an ONNX file, for its decisions on given rows."""
    reader = DigitReader.__new__(DigitReader)
    reader.classes, reader.class_ids = classes, np.array([CLASS_ID_BY_NAME[c] for c in classes])
    return reader


def test_classify_digits_shows_other_only_from_the_other_threshold() -> None:
    """p(other) 0.6 beside p(7) 0.3: "other" at a 0.5 threshold, the 7 at 0.7; a crop read
    as a 2 stays a 2 at any threshold; a digits-only reader never says "other"; a reader of
    every class never calls a digit shown censored, however sure of it."""
    probs = np.array([[0.0] * 7 + [0.3, 0.1, 0.0, 0.6], [0.0, 0.1, 0.8, *[0.0] * 7, 0.1]])
    reader = _reader_of(DIGIT_OR_OTHER_CLASSES)
    assert reader.classify_digits(probs, 0.5).tolist() == [OTHER_ID, 2]
    assert reader.classify_digits(probs, 0.7).tolist() == [7, 2]
    assert reader.classify_digits(probs, 0.5, np.array([False, True])).tolist() == [7, 2]
    assert reader.classify_digits(probs, np.array([0.7, 0.05])).tolist() == [7, OTHER_ID]  # one per row
    assert _reader_of(DIGIT_CLASSES).classify_digits(probs[:, :10], 0.0).tolist() == [7, 2]
    every = np.array([[0.0] * 5 + [0.2, 0.0, 0.0, 0.0, 0.0, 0.1, 0.7]])
    assert _reader_of(EVERY_CLASS).classify_digits(every, 0.5).tolist() == [5]
    assert _reader_of(EVERY_CLASS).share(every, CENSORED_ID).tolist() == [pytest.approx(0.7)]
    assert not reader.reads_censored and _reader_of(EVERY_CLASS).reads_censored


def test_a_reader_learns_other_from_real_doodles_only(drawings: list[Drawing]) -> None:
    """Digits, censored and real doodles stay; letters/glyphs and generated shapes go."""
    glyphs = [d for d in drawings if d.class_id == OTHER_ID and d.category is None]
    doodle = replace(glyphs[0], id="quickdraw_other/apple/0", source="quickdraw_other", category="apple")
    generated = procedural_others(count_per_shape=1)
    kept = real_doodles_as_other([*drawings, doodle, *generated])
    assert [d for d in kept if d.class_id == OTHER_ID] == [doodle]
    assert [d for d in kept if d.class_id != OTHER_ID] == [d for d in drawings if d.class_id != OTHER_ID]


def test_a_reader_is_validated_on_real_obscene_doodles_only(drawings: list[Drawing]) -> None:
    real = [d for d in drawings if d.class_id == CENSORED_ID]
    generated = replace(real[0], id="censored_procedural/0", synthetic=True)
    kept = without_generated_censored([*drawings, generated])
    assert generated not in kept and kept == drawings and real


TRAINED_CATEGORIES = ["apple", "tree", "house", "car"]


def _with_doodles(stroke_dir: Path, root: Path) -> Path:
    """A copy of the fixture folder with a few Quick, Draw! doodles of trained categories."""
    assert not any(is_unseen_category(c) for c in TRAINED_CATEGORIES)
    return stroke_fixture_with(stroke_dir, root, "quickdraw_other", "other", TRAINED_CATEGORIES * 3)


def test_a_reader_trained_on_larger_crops_is_served_them(stroke_dir: Path, tmp_path: Path) -> None:
    """--input-px 48: the file records 48 px, its graph takes 48x48 crops and DigitReader cuts
    them so (the default 32-px crops would not run)."""
    out = tmp_path / "reader"
    args = ["--data-dir", str(stroke_dir), "--out", str(out), "--scenes", "20", "--val-scenes", "10"]
    assert main(["train-reader", *args, "--epochs", "1", "--input-px", "48"]) == 0
    reader = DigitReader(out / READER_FILE)
    assert reader.input_px == 48 and reader.metadata["input_px"] == 48
    gray = 255 - render_digit_canvas("4")[..., 3]
    assert reader.read(gray, np.array([[120.0, 70, 280, 330]])).shape == (1, 10)
    assert reader_crop(gray, (120, 70, 280, 330), 48).shape == (48, 48)
    assert reader_batch(gray, np.zeros((0, 4)), 48).shape == (0, 1, 48, 48)


def test_train_reader_read_other_learns_and_exports_the_other_class(stroke_dir: Path, tmp_path: Path) -> None:
    out, data = tmp_path / "reader", _with_doodles(stroke_dir, tmp_path / "data")
    args = ["--data-dir", str(data), "--out", str(out), "--scenes", "30", "--val-scenes", "10"]
    assert main(["train-reader", *args, "--epochs", "1", "--read-other"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["config"]["classes"][-1] == "other"
        and 0 < summary["train_other_crops"] < summary["train_crops"]
    )
    reader = DigitReader(out / READER_FILE)
    assert reader.classes == (*"0123456789", "other") and list(reader.class_ids) == [*range(10), OTHER_ID]
    assert reader.read(np.full((50, 50), 255, np.uint8), np.array([[0.0, 0, 50, 50]])).shape == (1, 11)


def test_train_reader_read_censored_learns_every_class(stroke_dir: Path, tmp_path: Path) -> None:
    """--read-censored: "other" and censored crops are learnt besides digits, the validation
    prints a censored accuracy, and the file reads all twelve classes."""
    out, data = tmp_path / "reader", _with_doodles(stroke_dir, tmp_path / "data")
    args = ["--data-dir", str(data), "--out", str(out), "--scenes", "30", "--val-scenes", "10"]
    assert main(["train-reader", *args, "--epochs", "1", "--read-censored"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["classes"] == list(EVERY_CLASS) and "val_censored_accuracy" in summary
    assert summary["train_censored_crops"] > 0 and summary["train_other_crops"] > 0
    reader = DigitReader(out / READER_FILE)
    assert reader.reads_censored and list(reader.class_ids) == [*range(10), OTHER_ID, CENSORED_ID]


def test_lone_scenes_add_one_doodle_or_obscene_crop_each(drawings: list[Drawing]) -> None:
    """--lone-scenes: each extra scene adds one crop, "other" or censored (about half each);
    the mixed scenes' crops come first and are the same as without them; a digit reader's
    config refuses them; --augment draws other crops from the same scenes."""
    config = ReaderTrainConfig(scenes=20, classes=EVERY_CLASS)
    classes = config.classes
    plain_x, plain_y = training_crops(drawings, config, np.random.default_rng(0))
    x, y = training_crops(drawings, replace(config, lone_scenes=60), np.random.default_rng(0))
    assert len(y) == len(plain_y) + 60 and torch.equal(x[: len(plain_y)], plain_x)
    lone = [classes[int(i)] for i in y[len(plain_y) :]]
    assert 15 <= lone.count("censored") <= 45 and lone.count("other") == 60 - lone.count("censored")
    with pytest.raises(ValueError, match="--read-other or --read-censored"):
        ReaderTrainConfig(scenes=20, lone_scenes=60)
    for classes in (DIGIT_CLASSES, DIGIT_OR_OTHER_CLASSES):
        with pytest.raises(ValueError, match="give --read-censored"):
            ReaderTrainConfig(classes=classes, generated_censored=False)
    augmented_x, augmented_y = training_crops(
        drawings, replace(config, augment=True), np.random.default_rng(0)
    )
    assert len(augmented_y) and not (len(augmented_y) == len(plain_y) and torch.equal(augmented_x, plain_x))


def test_readers_trained_otherwise_are_validated_on_the_same_crops(
    drawings: list[Drawing], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Other training scenes, lone scenes or seed: the crops each epoch is validated on stay
    the same, so the validation figures of two readers compare."""
    validated: list[tuple[torch.Tensor, torch.Tensor]] = []

    def recording(net: ReaderNet, crops: torch.Tensor, labels: torch.Tensor, classes: Any) -> Any:
        validated.append((crops, labels))
        return accuracies(net, crops, labels, classes)

    monkeypatch.setattr(reader_train, "accuracies", recording)
    config = ReaderTrainConfig(scenes=10, val_scenes=8, epochs=1, classes=EVERY_CLASS)
    for i, other in enumerate((config, replace(config, scenes=14, lone_scenes=6, seed=3))):
        train_reader(drawings, drawings, other, tmp_path / f"reader{i}")
    (crops, labels), (other_crops, other_labels) = validated
    assert len(labels) and torch.equal(labels, other_labels) and torch.equal(crops, other_crops)


def test_a_reader_without_digits_to_learn_is_refused(drawings: list[Drawing], tmp_path: Path) -> None:
    non_digits = [d for d in drawings if d.class_id in (OTHER_ID, CENSORED_ID)]
    config = ReaderTrainConfig(scenes=10, val_scenes=5, classes=EVERY_CLASS)
    with pytest.raises(UserError, match="training scenes hold no digits"):
        train_reader(non_digits, drawings, config, tmp_path / "reader")
    assert not (tmp_path / "reader").exists()


def _generated_copies(real: list[Drawing]) -> list[Drawing]:
    """Each real obscene doodle again as a generated one (censored_procedural)."""
    return [
        replace(d, id=f"censored_procedural/{i}", source="censored_procedural", synthetic=True)
        for i, d in enumerate(real)
    ]


def _record_scene_pools(monkeypatch: pytest.MonkeyPatch) -> list[list[Drawing]]:
    """The drawings of every SceneComposer.from_drawings call, in call order."""
    pools: list[list[Drawing]] = []
    compose = SceneComposer.from_drawings

    def recording(drawings: list[Drawing], *args: Any, **kwargs: Any) -> SceneComposer:
        pools.append(list(drawings))
        return compose(drawings, *args, **kwargs)

    monkeypatch.setattr(SceneComposer, "from_drawings", recording)
    return pools


def test_train_reader_validates_censored_on_real_obscene_doodles_only(
    drawings: list[Drawing], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Generated obscene doodles of the validation split never reach a validation scene, while
    the real ones do."""
    real = [d for d in drawings if d.class_id == CENSORED_ID]
    pools = _record_scene_pools(monkeypatch)
    config = ReaderTrainConfig(scenes=10, val_scenes=5, epochs=1, classes=EVERY_CLASS)
    train_reader(drawings, [*drawings, *_generated_copies(real)], config, tmp_path / "reader")
    validation_pool = pools[-1]
    assert not any(d.synthetic for d in validation_pool) and all(d in validation_pool for d in real)


@pytest.mark.parametrize("generated_censored", [True, False])
def test_train_reader_learns_censored_from_generated_doodles_unless_told_not_to(
    drawings: list[Drawing], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, generated_censored: bool
) -> None:
    real = [d for d in drawings if d.class_id == CENSORED_ID]
    generated = _generated_copies(real)
    pools = _record_scene_pools(monkeypatch)
    config = ReaderTrainConfig(
        scenes=10, val_scenes=5, epochs=1, classes=EVERY_CLASS, generated_censored=generated_censored
    )
    summary = train_reader([*drawings, *generated], drawings, config, tmp_path / "reader")
    training_pool = pools[0]
    assert all(d in training_pool for d in real)
    assert all((d in training_pool) == generated_censored for d in generated)
    assert summary["config"]["generated_censored"] is generated_censored


class _Reads:
    """Stands in for ReaderNet: `logits` reads crop i as class reads[i]."""

    def __init__(self, reads: list[int]) -> None:
        self.reads = reads

    def eval(self) -> None:
        pass

    def logits(self, crops: torch.Tensor) -> torch.Tensor:
        return torch.eye(12)[self.reads[: len(crops)]]


def test_accuracies_count_digits_other_and_censored_apart() -> None:
    """Four digit crops (one read as "other"), two other crops (one read as a digit) and four
    censored crops (one read as "other", one as a digit)."""
    labels = torch.tensor([3, 3, 7, 1, 10, 10, 11, 11, 11, 11])
    net = cast(ReaderNet, _Reads([3, 3, 7, 10, 10, 4, 11, 10, 11, 2]))
    crops = torch.zeros(10, 1, READER_INPUT_PX, READER_INPUT_PX)
    every = {"val_accuracy": 0.75, "val_other_accuracy": 0.5, "val_censored_accuracy": 0.5}
    assert accuracies(net, crops, labels, EVERY_CLASS) == every
    both = {"val_accuracy": 0.75, "val_other_accuracy": 0.5}
    assert accuracies(net, crops[:6], labels[:6], DIGIT_OR_OTHER_CLASSES) == both
    assert accuracies(net, crops[:4], labels[:4], DIGIT_CLASSES) == {"val_accuracy": 0.75}
    assert accuracies(net, crops[:4], labels[:4], DIGIT_OR_OTHER_CLASSES)["val_other_accuracy"] is None


def test_the_shipped_reader_reads_rendered_digits(onnx_weights: Path) -> None:
    """The bundled reader (of every class) is on by default and reads each fixture digit as drawn."""
    detector = Detector(onnx_weights)
    assert isinstance(detector.reader, DigitReader) and detector.reader.path == SHIPPED_READER
    assert detector.reader.classes == EVERY_CLASS
    for label in "0123456789":
        shown = detector.predict(render_digit_canvas(label, seed=3))
        assert [d.label for d in shown] == [label]
