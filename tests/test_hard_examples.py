"""Hard examples: what `mine` scores, the file it writes, and how training draws from it."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from digit_detector import Detector
from digit_detector.classes import CENSORED_ID, DIGIT_IDS, NUM_CLASSES, OTHER_ID
from digit_detector.cli import main
from digit_detector.data.compose import DrawingPool
from digit_detector.data.dataset import GeneratedScenes
from digit_detector.data.procedural import procedural_others
from digit_detector.data.strokes import Drawing, load_drawings
from digit_detector.hard_examples import (
    HardExamples,
    HardExamplesError,
    hardness,
    is_mined,
    mine_hard_examples,
)
from digit_detector.inference import Inference
from digit_detector.model.checkpoint import read_checkpoint

from .conftest import tiny_train_args


def _rows(objectness: float, probs: dict[int, float]) -> np.ndarray:
    row = np.zeros((1, 5 + NUM_CLASSES), dtype=np.float32)
    row[0, :4] = (50, 50, 40, 40)
    row[0, 4] = objectness
    for class_id, p in probs.items():
        row[0, 5 + class_id] = p
    return row


def test_hardness_is_what_would_go_wrong_for_each_side() -> None:
    quiet = _rows(0.9, {OTHER_ID: 0.95, CENSORED_ID: 0.05})
    pixelated = _rows(0.9, {OTHER_ID: 0.2, CENSORED_ID: 0.8})
    read_as_7 = _rows(0.8, {7: 0.9, OTHER_ID: 0.1})
    assert hardness(quiet, OTHER_ID) == pytest.approx(0.9 * 0.05)
    assert hardness(np.concatenate([quiet, pixelated]), OTHER_ID) == pytest.approx(0.9 * 0.8)
    assert hardness(np.concatenate([quiet, read_as_7]), OTHER_ID) == pytest.approx(0.8 * 0.9)
    # an obscene doodle is hard when its best censored score is low, whatever else is read
    assert hardness(np.concatenate([pixelated, read_as_7]), CENSORED_ID) == pytest.approx(1 - 0.9 * 0.8)
    assert hardness(quiet, CENSORED_ID) == pytest.approx(1 - 0.9 * 0.05)
    # a digit is hard when its own class scores low: a "1" read as "7" is as hard as a missed one
    assert hardness(read_as_7, 7) == pytest.approx(1 - 0.8 * 0.9)
    assert hardness(read_as_7, 1) == pytest.approx(1.0)
    assert hardness(np.concatenate([read_as_7, _rows(0.5, {1: 0.6})]), 1) == pytest.approx(1 - 0.5 * 0.6)
    empty = np.zeros((0, 5 + NUM_CLASSES), dtype=np.float32)
    assert hardness(empty, CENSORED_ID) == 1.0 and hardness(empty, 4) == 1.0
    assert hardness(empty, OTHER_ID) == 0.0


def test_only_training_doodles_real_obscene_doodles_and_digits_are_mined(drawings: list[Drawing]) -> None:
    doodle = procedural_others(count_per_shape=1)[0]
    assert doodle.split == "train" and doodle.category is not None and is_mined(doodle)
    obscene = [d for d in drawings if d.class_id == CENSORED_ID]
    assert obscene and all(is_mined(d) == (d.split == "train") for d in obscene)
    assert not is_mined(replace(obscene[0], synthetic=True, source="censored_procedural"))
    glyph = next(d for d in drawings if d.class_id == OTHER_ID)
    assert glyph.category is None and not is_mined(glyph)  # letters and glyphs are not the boundary
    digits = [d for d in drawings if d.class_id in DIGIT_IDS]
    assert {d.split for d in digits} == {"train", "val"}
    assert all(is_mined(d) == (d.split == "train") for d in digits)
    unseen = replace(doodle, category="crayon", synthetic=False)  # a held-out category (data README)
    assert unseen.split == "unseen" and not is_mined(unseen)


class _ScriptedDetector:
    """Reads the canvases it is given as censored at 0.7 and 0.9 in turn (whatever is drawn),
    and keeps them."""

    weights = Path("scripted.onnx")

    def __init__(self) -> None:
        self.canvases: list[np.ndarray] = []

    def infer(self, gray: np.ndarray) -> Inference:
        self.canvases.append(gray)
        censored = 0.9 if len(self.canvases) % 2 == 0 else 0.7
        return Inference(_rows(1.0, {CENSORED_ID: censored}), gray, lambda boxes: boxes)


def test_mining_scores_each_mined_drawing_alone_on_a_canvas(drawings: list[Drawing]) -> None:
    pool = [*drawings, *procedural_others(count_per_shape=1)]
    mined = [d for d in pool if is_mined(d)]
    detector = _ScriptedDetector()
    hard = mine_hard_examples(detector, pool, gain=2.0, progress=False)  # type: ignore[arg-type]
    assert list(hard.hardness) == [d.id for d in mined]
    assert len(detector.canvases) == len(mined)
    assert all(c.shape == (400, 400) and (c < 200).any() for c in detector.canvases)  # one drawing, drawn
    for i, d in enumerate(mined):
        censored = 0.9 if (i + 1) % 2 == 0 else 0.7
        expected = {OTHER_ID: censored, CENSORED_ID: 1 - censored}.get(d.class_id, 1.0)  # digits: unread
        assert hard.hardness[d.id] == pytest.approx(expected)
    assert hard.emphasis()[mined[0].id] == pytest.approx(1 + 2.0 * hard.hardness[mined[0].id])
    counts = Counter(d.class_id for d in mined)
    assert hard.meta["doodles"]["drawings"] == counts[OTHER_ID]
    assert hard.meta["obscene"]["drawings"] == counts[CENSORED_ID]
    assert hard.meta["digits"]["drawings"] == sum(counts[d] for d in DIGIT_IDS) > 0
    assert hard.meta["digits"]["hard_share"] == 1.0
    with pytest.raises(HardExamplesError, match="no training drawings of the sides doodles, obscene, digits"):
        mine_hard_examples(detector, [d for d in drawings if d.split != "train"])  # type: ignore[arg-type]


def test_mining_only_the_chosen_sides(drawings: list[Drawing], tmp_path: Path) -> None:
    pool = [*drawings, *procedural_others(count_per_shape=1)]
    hard = mine_hard_examples(_ScriptedDetector(), pool, sides=["obscene", "digits"], progress=False)  # type: ignore[arg-type]
    chosen = {d.id for d in pool if is_mined(d) and d.class_id != OTHER_ID}
    assert chosen and set(hard.hardness) == chosen  # doodles unscored: weight 1 in training
    assert hard.meta["sides"] == ["obscene", "digits"] and "doodles" not in hard.meta
    only_doodles = mine_hard_examples(_ScriptedDetector(), pool, sides=["doodles"], progress=False)  # type: ignore[arg-type]
    assert set(only_doodles.hardness) == {d.id for d in pool if is_mined(d) and d.class_id == OTHER_ID}
    for bad in ([], ["doodle"]):
        with pytest.raises(HardExamplesError, match="sides are some of doodles, obscene, digits"):
            mine_hard_examples(_ScriptedDetector(), pool, sides=bad)  # type: ignore[arg-type]
    numpy_gain = mine_hard_examples(_ScriptedDetector(), pool, gain=np.float32(2.0), progress=False)  # type: ignore[arg-type]
    numpy_gain.save(tmp_path / "hard.json")  # a numpy gain is written as a plain number
    assert HardExamples.load(tmp_path / "hard.json").gain == 2.0
    for gain in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="gain must be a number >= 0"):
            mine_hard_examples(_ScriptedDetector(), pool, gain=gain)  # type: ignore[arg-type]


def test_mining_with_the_shipped_weights(drawings: list[Drawing], onnx_weights: Path) -> None:
    pool = [d for d in drawings if d.class_id == CENSORED_ID and d.split == "train"]
    hard = mine_hard_examples(Detector(onnx_weights), pool, progress=False)
    assert set(hard.hardness) == {d.id for d in pool}
    assert all(0.0 <= h <= 1.0 for h in hard.hardness.values())
    assert hard.meta["weights"] == str(onnx_weights)


def test_hard_examples_file_round_trips_and_bad_files_are_refused(tmp_path: Path) -> None:
    hard = HardExamples({"a": 0.25, "b": 1.0}, 3.0, {"seed": 0})
    path = tmp_path / "sub" / "hard.json"
    hard.save(path)
    assert HardExamples.load(path) == hard
    assert HardExamples.load(path).emphasis() == {"a": 1.75, "b": 4.0}

    def written(payload: object) -> Path:
        bad = tmp_path / "bad.json"
        bad.write_text(payload if isinstance(payload, str) else json.dumps(payload))
        return bad

    def refused(payload: object, match: str) -> None:
        with pytest.raises(HardExamplesError, match=match):
            HardExamples.load(written(payload))

    good = json.loads(path.read_text())
    refused("{not json", "cannot read")
    refused([1, 2], "not a hard-examples file")
    refused({**good, "format": "something else"}, "not a hard-examples file")
    refused({**good, "hardness": {"a": 1.5}}, "outside")
    refused({**good, "hardness": {"a": float("nan")}}, "outside")
    refused({**good, "gain": -1}, "gain")
    refused({**good, "gain": True}, "gain")  # JSON true is not a gain
    refused({**good, "hardness": {"a": "0.5"}}, "outside")
    refused({**good, "hardness": [0.5]}, "hardness")
    with pytest.raises(HardExamplesError, match="not found"):
        HardExamples.load(tmp_path / "missing.json")
    assert HardExamples.load(written({**good, "meta": "not an object"})).meta == {}  # dropped, not fatal
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(HardExamplesError, match="cannot write"):
        hard.save(tmp_path / "taken" / "hard.json")


def test_emphasis_draws_a_hard_drawing_more_often_within_its_source_only(drawings: list[Drawing]) -> None:
    obscene = [d for d in drawings if d.class_id == CENSORED_ID]
    doodles = procedural_others(count_per_shape=2)
    pool = [*obscene, *doodles]
    hard_one = obscene[0]
    plain = DrawingPool(pool)
    emphasised = DrawingPool(pool, emphasis={hard_one.id: 1 + 3.0 * len(obscene)})

    def draws(p: DrawingPool, class_id: int) -> Counter[str]:
        rng = np.random.default_rng(0)
        return Counter(p.sample(class_id, rng).id for _ in range(4000))

    share = draws(emphasised, CENSORED_ID)[hard_one.id] / 4000
    expected = (1 + 3.0 * len(obscene)) / (len(obscene) - 1 + 1 + 3.0 * len(obscene))
    assert share == pytest.approx(expected, abs=0.03)
    assert draws(plain, CENSORED_ID)[hard_one.id] / 4000 == pytest.approx(1 / len(obscene), abs=0.03)
    # other classes draw exactly as without emphasis; no emphasis (or an empty one) is the old pool
    assert draws(emphasised, OTHER_ID) == draws(plain, OTHER_ID)
    assert draws(DrawingPool(pool, emphasis={}), CENSORED_ID) == draws(plain, CENSORED_ID)


def test_training_scenes_take_the_emphasis(drawings: list[Drawing]) -> None:
    obscene = [d for d in drawings if d.class_id == CENSORED_ID]
    emphasis = {obscene[0].id: 1000.0, "no/such/drawing": 2.0}
    composer = GeneratedScenes(drawings, seed=0, emphasis=emphasis).composer
    assert composer.pool.emphasised == 1  # what train reports: the named drawings it has
    rng = np.random.default_rng(0)
    picked = Counter(composer.pool.sample(CENSORED_ID, rng).id for _ in range(200))
    assert picked[obscene[0].id] > 150


def test_train_draws_hard_examples_and_refuses_a_bad_file(stroke_dir: Path, tmp_path: Path) -> None:
    obscene = [d for d in load_drawings(stroke_dir) if d.class_id == CENSORED_ID and d.split == "train"]
    path = tmp_path / "hard.json"
    HardExamples({d.id: 0.5 for d in obscene}, 3.0, {}).save(path)
    out = tmp_path / "run"
    args = tiny_train_args(stroke_dir, out, steps=2, batch=4, val_scenes=4)
    assert main([*args, "--hard-examples", str(path)]) == 0
    meta = read_checkpoint(out / "last.pt")["meta"]  # the checkpoint records what it was trained on
    assert meta["data"]["hard_examples"] == len(obscene)
    assert meta["train_config"]["hard_examples"] == str(path)

    path.write_text("{}")
    assert main([*tiny_train_args(stroke_dir, tmp_path / "bad", steps=2), "--hard-examples", str(path)]) == 2
    assert not (tmp_path / "bad" / "summary.json").exists()


def test_mine_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for gain in ("-1", "inf", "nan"):
        with pytest.raises(SystemExit) as exc:
            main(["mine", "--out", str(tmp_path / "h.json"), "--gain", gain])
        assert exc.value.code == 2
        assert "--gain" in capsys.readouterr().err
    assert main(["mine", "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    (tmp_path / "taken").write_text("a file, not a folder")
    assert main(["mine", "--out", str(tmp_path / "taken" / "h.json")]) == 2
    assert "cannot write into" in capsys.readouterr().err
    assert main(["mine", "--out", str(tmp_path / "h.json"), "--sides", "obscene", "doodle"]) == 2
    assert "--sides: sides are some of doodles, obscene, digits; got doodle" in capsys.readouterr().err
    assert main(["mine", "--out", str(tmp_path / "h.json"), "--weights", str(tmp_path / "no.onnx")]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "h.json").exists()


def test_mine_scores_every_side_unless_told(stroke_dir: Path, tmp_path: Path) -> None:
    every, obscene = tmp_path / "every.json", tmp_path / "obscene.json"
    assert main(["mine", "--data-dir", str(stroke_dir), "--out", str(every)]) == 0
    assert main(["mine", "--data-dir", str(stroke_dir), "--out", str(obscene), "--sides", "obscene"]) == 0
    assert HardExamples.load(every).meta["sides"] == ["doodles", "obscene", "digits"]
    assert HardExamples.load(obscene).meta["sides"] == ["obscene"]
