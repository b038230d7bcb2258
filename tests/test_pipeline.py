"""End to end on tiny data: train a few dozen steps, generate a YOLO set, evaluate, export,
check ONNX parity, resume, and predict with both backends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import digit_detector
from digit_detector import Detector
from digit_detector.cli import build_parser, main
from digit_detector.data.dataset import fixed_scenes
from digit_detector.data.strokes import load_drawings
from digit_detector.export import (
    FLOAT16_BOX_TOL_PX,
    FLOAT16_SCORE_TOL,
    ParityError,
    check_parity,
    compare_outputs,
)
from digit_detector.model.checkpoint import load_model, read_checkpoint
from digit_detector.preprocess import to_model_input

from .conftest import tiny_train_args

pytestmark = pytest.mark.slow

PACKAGE_DIR = str(Path(digit_detector.__file__).resolve().parent)


@pytest.fixture(scope="module")
def trained(stroke_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    code = main(
        [
            *tiny_train_args(stroke_dir, out, steps=30, val_scenes=16),
            "--config",
            "models/yolov3-pico.yaml",
            "--time-budget",
            "10m",
            "--val-every",
            "10m",
        ]
    )
    assert code == 0
    return out


def test_training_writes_checkpoints_metrics_and_curves(trained: Path) -> None:
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["images_seen"] == 240
    assert 0.0 <= summary["best_map50"] <= 1.0
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert train_losses and all(np.isfinite(train_losses))
    assert any(r["kind"] == "val" for r in records)
    assert (trained / "training_curves.png").stat().st_size > 1000
    ckpt = read_checkpoint(trained / "best.pt")
    assert ckpt["config"]["name"] == "yolov3-pico"
    assert ckpt["preprocess"]["input_size"] == 192
    assert len(ckpt["config"]["anchors"]) == 3
    assert ckpt["meta"]["step"] == 30


def test_resume_continues_from_the_checkpoint(trained: Path, stroke_dir: Path, tmp_path: Path) -> None:
    code = main([*tiny_train_args(stroke_dir, tmp_path, steps=36), "--resume", str(trained / "last.pt")])
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 36 and summary["images_seen"] == 288


def test_fine_tune_starts_from_given_weights(trained: Path, stroke_dir: Path, tmp_path: Path) -> None:
    code = main(
        [
            *tiny_train_args(stroke_dir, tmp_path, steps=2, batch=4, val_scenes=4),
            "--init-weights",
            str(trained / "best.pt"),
        ]
    )
    assert code == 0 and (tmp_path / "best.pt").exists()


def test_generate_evaluate_and_report(trained: Path, stroke_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "yolo"
    assert (
        main(
            [
                "data",
                "generate",
                "--data-dir",
                str(stroke_dir),
                "--out",
                str(data),
                "--n",
                "10",
                "--split",
                "train",
            ]
        )
        == 0
    )
    assert len(list((data / "images").iterdir())) == 10
    assert (
        main(
            [
                "evaluate",
                "--weights",
                str(trained / "best.pt"),
                "--data",
                str(data),
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert 0.0 <= report["map50"] <= 1.0 and 0.0 <= report["map50_95"] <= report["map50"] + 1e-9
    assert report["images"] == 10
    matrix = np.array(report["confusion_matrix"]["rows_true_cols_pred"])
    assert matrix.shape == (13, 13) and matrix[:12].sum() == report["objects"]
    for name in ("pr_curves.png", "confusion_matrix.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 1000
    assert report["reader"].endswith("digit-reader.onnx")  # the bundled reader ranks the candidates
    alone = ["evaluate", "--weights", str(trained / "best.pt"), "--data", str(data), "--reader", "none"]
    assert main([*alone, "--out", str(tmp_path / "alone")]) == 0
    assert json.loads((tmp_path / "alone" / "report.json").read_text())["reader"] is None


def test_export_parity_and_both_backends_agree(
    trained: Path, stroke_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    onnx_path = tmp_path / "model.onnx"
    assert main(["export", "--weights", str(trained / "best.pt"), "--out", str(onnx_path)]) == 0
    assert "torchvision" not in capfd.readouterr().err  # the exporter's harmless warnings, hidden
    proto = onnx.load(str(onnx_path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    # No debugging records: stack traces would ship this checkout's paths in the weights.
    assert not any(node.metadata_props for node in proto.graph.node)
    assert PACKAGE_DIR.encode() not in onnx_path.read_bytes()
    # Parity on generated scenes (not only the synthetic strokes export checks by itself).
    scenes = fixed_scenes(load_drawings(stroke_dir), 6, seed=3)
    inputs = np.stack([to_model_input(s.image) for s in scenes])
    model, _ = load_model(trained / "best.pt")
    report = check_parity(model, onnx_path, inputs=inputs)
    assert report.max_score_diff < 1e-3 and report.max_box_diff_px < 0.5
    torch_det = Detector(trained / "best.pt")
    onnx_det = Detector(onnx_path)
    assert torch_det.backend_name == "torch" and onnx_det.backend_name == "onnx"
    canvas = scenes[0].image
    a, b = torch_det.predict(canvas, conf=0.01), onnx_det.predict(canvas, conf=0.01)
    assert [d.class_id for d in a] == [d.class_id for d in b]
    for x, y in zip(a, b, strict=True):
        assert abs(x.score - y.score) < 1e-3
        np.testing.assert_allclose(x.box, y.box, atol=0.05)


def test_float16_export_halves_the_file_and_keeps_the_decisions(
    trained: Path, stroke_dir: Path, tmp_path: Path
) -> None:
    full, half = tmp_path / "full.onnx", tmp_path / "half.onnx"
    weights = str(trained / "best.pt")
    assert main(["export", "--weights", weights, "--out", str(full)]) == 0
    assert main(["export", "--weights", weights, "--out", str(half), "--float16"]) == 0
    assert half.stat().st_size < 0.55 * full.stat().st_size
    initializers = onnx.load(str(half)).graph.initializer
    big = [t for t in initializers if int(np.prod(t.dims)) >= 64]
    assert big and all(t.data_type == onnx.TensorProto.FLOAT16 for t in big)
    assert Detector(half).metadata["weights_dtype"] == "float16"
    scenes = fixed_scenes(load_drawings(stroke_dir), 6, seed=3)
    inputs = np.stack([to_model_input(s.image) for s in scenes])
    model, _ = load_model(trained / "best.pt")
    report = check_parity(model, half, inputs=inputs, score_tol=FLOAT16_SCORE_TOL, box_tol=FLOAT16_BOX_TOL_PX)
    assert report.max_score_diff < FLOAT16_SCORE_TOL and report.max_box_diff_px < FLOAT16_BOX_TOL_PX
    with pytest.raises(ParityError, match="does not compute"):  # float16 is not float32-exact
        check_parity(model, half, inputs=inputs, score_tol=1e-6)
    head_bias = model.head.get_parameter("outputs.0.1.bias")  # the first scale's output conv
    with torch.no_grad():
        head_bias.view(3, -1)[:, 0] += 0.3  # same scores, boxes moved: only the box check sees it
    with pytest.raises(ParityError, match="does not compute"):
        check_parity(model, half, inputs=inputs, score_tol=FLOAT16_SCORE_TOL, box_tol=FLOAT16_BOX_TOL_PX)


def _anchors(rows: list[list[float]]) -> np.ndarray:
    """(1, N, 5 + 12) raw outputs: cx, cy, w, h, objectness, then the given class probabilities."""
    out = np.zeros((1, len(rows), 17), np.float32)
    for i, row in enumerate(rows):
        out[0, i, : len(row)] = row
    return out


def test_parity_compares_anchors_so_a_tie_flipping_the_decision_is_rounding() -> None:
    # Two classes within 1e-3 of each other: the argmax (and so the decision) flips, every
    # number moves less than the tolerance -> the same function.
    ref = _anchors([[50, 50, 20, 40, 0.9, 0.5004, 0.4996], [120, 80, 30, 30, 0.02, 0.9]])
    got = ref.copy()
    got[0, 0, 5:7] = [0.4996, 0.5004]
    report = compare_outputs(ref, got, score_tol=1e-3)
    assert report.anchors_compared == 1 and report.max_box_diff_px == 0.0
    moved = got.copy()
    moved[0, 0, 0] += 2.0  # a scored anchor's box shifted by 2 px
    with pytest.raises(ParityError, match=r"'max_box_abs_diff_px': 2\.0"):
        compare_outputs(ref, moved, score_tol=1e-3)
    unscored = got.copy()
    unscored[0, 1, 0] += 20.0  # an anchor below the floor may move: no decision uses it
    assert compare_outputs(ref, unscored, score_tol=1e-3).max_box_diff_px == 0.0
    rescored = got.copy()
    rescored[0, 1, 4] += 2e-3  # but its scores may not
    with pytest.raises(ParityError, match=r"'max_score_abs_diff': 0\.002"):
        compare_outputs(ref, rescored, score_tol=1e-3)


def test_failed_export_leaves_the_previous_file(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, checkpoint = tmp_path / "shipped.onnx", tmp_path / "shipped.pt"
    out.write_bytes(b"the weights that ship today")
    checkpoint.write_bytes(b"the checkpoint that ships today")
    monkeypatch.setattr("digit_detector.export.FLOAT32_SCORE_TOL", 0.0)  # no file can pass
    args = ["export", "--weights", str(trained / "best.pt"), "--out", str(out)]
    assert main(args) == 2
    assert main([*args, "--slim-checkpoint", str(checkpoint)]) == 2
    assert out.read_bytes() == b"the weights that ship today"
    assert checkpoint.read_bytes() == b"the checkpoint that ships today"
    assert sorted(tmp_path.iterdir()) == [out, checkpoint]


def test_slim_checkpoint_for_shipping_keeps_the_weights_and_drops_the_optimizer(
    trained: Path, tmp_path: Path
) -> None:
    """A run's last.pt (float32 + resume state) -> the shippable float16 checkpoint, exported."""
    slim, onnx_path = tmp_path / "slim.pt", tmp_path / "slim.onnx"
    args = ["export", "--weights", str(trained / "last.pt"), "--out", str(onnx_path)]
    assert main([*args, "--slim-checkpoint", str(slim)]) == 0
    full = torch.load(trained / "last.pt", weights_only=True)
    small = torch.load(slim, weights_only=True)
    assert "resume" in full and "resume" not in small and small["meta"] == full["meta"]
    assert slim.stat().st_size < 0.6 * (trained / "last.pt").stat().st_size
    for name, value in full["model"].items():
        if value.is_floating_point():
            assert small["model"][name].dtype == torch.float16
            torch.testing.assert_close(small["model"][name].float(), value.float(), atol=2e-3, rtol=2e-3)
    assert Detector(onnx_path).metadata["config"] == full["config"]


def test_cli_help_works_as_a_module() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "digit_detector", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("data", "anchors", "train", "evaluate", "export", "predict", "bench"):
        assert command in out.stdout


def test_bad_cli_arguments_fail_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--time-budget", "soon"])
    assert exc.value.code == 2
    assert "duration" in capsys.readouterr().err
    refused = {  # numbers torch or numpy would refuse with a traceback, or that train nothing
        ("train", "--lr", "-1"): "--lr",
        ("train", "--lr", "nan"): "--lr",
        ("train", "--lr", "0"): "--lr",
        ("train", "--workers", "-1"): "--workers",
        ("train", "--seed", "-3"): "--seed",
        ("report", "--seed", "-1"): "--seed",
        ("train", "--max-steps", "0"): "--max-steps",
        ("predict", "--conf", "1.5"): "--conf",
        ("predict", "--iou", "nan"): "--iou",
        ("report", "--censored-conf", "-0.1"): "--censored-conf",
    }
    for argv, name in refused.items():
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args(argv)  # not main: a wrongly accepted argument would train
        assert exc.value.code == 2
        assert f"argument {name}: expected" in capsys.readouterr().err
    edges = build_parser().parse_args(["predict", "--conf", "0", "--iou", "1", "x.png"])
    assert (edges.conf, edges.iou) == (0.0, 1.0)  # probabilities include their ends
    assert (
        main(["data", "generate", "--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path), "--n", "2"])
        == 2
    )
    assert "stroke data not found" in capsys.readouterr().err
    assert main(["export", "--weights", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "not found" in capsys.readouterr().err


def test_anchors_command_fits_and_writes_the_config(stroke_dir: Path, tmp_path: Path) -> None:
    import shutil
    from dataclasses import replace

    from digit_detector.anchors import kmeans_iou, mean_best_iou
    from digit_detector.model.config import MODELS_DIR, load_config

    config = tmp_path / "pico.yaml"
    shutil.copy(MODELS_DIR / "yolov3-pico.yaml", config)
    assert (
        main(["anchors", "--config", str(config), "--data-dir", str(stroke_dir), "--n", "60", "--write"]) == 0
    )
    cfg = load_config(config)
    assert len(cfg.anchors) == 3 and all(len(a) == 3 for a in cfg.anchors)
    areas = [w * h for scale in cfg.anchors for w, h in scale]
    assert areas == sorted(areas)  # shallow scales get the small anchors
    assert replace(cfg, anchors=load_config("yolov3-pico").anchors) == load_config("yolov3-pico")
    written, shipped = (
        config.read_text().splitlines(),
        (MODELS_DIR / "yolov3-pico.yaml").read_text().splitlines(),
    )
    at = shipped.index(next(line for line in shipped if line.startswith("anchors:")))
    assert written[:at] == shipped[:at] and written[at + 4 :] == shipped[at + 4 :]  # only the block changes
    assert written[at].startswith("anchors:  # k-means (1 - IoU) on 60 training scenes at 192 px")
    wh = np.array([[10, 20], [11, 19], [50, 60], [52, 58], [100, 120], [98, 125]], float)
    fitted = kmeans_iou(wh, 3)
    assert mean_best_iou(wh, fitted) > 0.9


def test_writing_anchors_refuses_a_block_it_cannot_replace_and_keeps_the_file(tmp_path: Path) -> None:
    from digit_detector.model.config import MODELS_DIR, ConfigError, write_anchors

    anchors = [[(10.0, 20.0), (20.0, 30.0), (30.0, 40.0)]] * 3
    shipped = (MODELS_DIR / "yolov3-pico.yaml").read_text()
    config = tmp_path / "pico.yaml"
    for broken in (shipped.replace("anchors:", "anchors:\n# a comment inside the block"), "name: x\n"):
        config.write_text(broken)
        with pytest.raises(ConfigError):
            write_anchors(config, anchors, "refit")
        assert config.read_text() == broken


def test_train_state_round_trips_and_reads_older_resume_entries() -> None:
    from digit_detector.train import TrainState

    state = TrainState(step=5, images_seen=160, elapsed=12.5, best_map50=0.3, ema_updates=5)
    assert TrainState.from_dict(state.to_dict()) == state
    older = {"model": {}, "optimizer": {}, "ema_updates": 7, "step": 7, "images_seen": 224, "elapsed": 3.0}
    assert TrainState.from_dict(older) == TrainState(7, 224, 3.0, -1.0, 7)


def test_training_draws_every_scene_at_the_models_input_size(stroke_dir: Path, tmp_path: Path) -> None:
    """A config's input_size is what training, its validation, the real canvases it mixes in
    and the anchors command draw into, not the 192 default."""
    from digit_detector.data.dataset import LabelledPool
    from digit_detector.data.generate import make_composer, write_yolo_dataset
    from digit_detector.distributed import DistContext
    from digit_detector.train import TrainConfig, _data

    drawings = load_drawings(stroke_dir)
    write_yolo_dataset(make_composer(drawings, augment=False), tmp_path / "real", 3, seed=0)
    cfg = TrainConfig(
        data_dir=str(stroke_dir),
        batch_size=4,
        val_scenes=3,
        workers=0,
        extra_data=str(tmp_path / "real"),
        extra_weight=0.5,
    )
    loader, val_images, truths, _ = _data(cfg, DistContext(), 0, input_size=96)
    images, targets = next(iter(loader))
    assert images.shape[1:] == (1, 96, 96)
    assert val_images is not None and val_images.shape[1:] == (1, 96, 96)
    assert len(targets) and float(targets[:, 2:].max()) <= 96.0
    assert all(len(t.boxes) == 0 or float(t.boxes.max()) <= 96.0 for t in truths)
    real = LabelledPool(tmp_path / "real", input_size=96).sample(np.random.default_rng(0), None)
    assert real.image.shape == (96, 96)
    scene = make_composer(drawings, augment=True, input_size=96).compose_letterboxed(np.random.default_rng(0))
    assert scene.image.shape == (96, 96)


@pytest.mark.parametrize("generated_censored", [True, False])
def test_training_learns_censored_from_generated_doodles_unless_told_not_to(
    stroke_dir: Path, tmp_path: Path, generated_censored: bool
) -> None:
    """`train --no-generated-censored` draws censored from the real obscene doodles only."""
    from digit_detector.classes import CENSORED_ID
    from digit_detector.distributed import DistContext
    from digit_detector.train import TrainConfig, _data

    from .conftest import stroke_fixture_with

    given = build_parser().parse_args(["train", *([] if generated_censored else ["--no-generated-censored"])])
    assert given.generated_censored is (None if generated_censored else False)  # None: TrainConfig's True
    data = stroke_fixture_with(
        stroke_dir, tmp_path / "data", "censored_procedural", "censored", ["censored"] * 6
    )
    cfg = TrainConfig(
        data_dir=str(data), batch_size=4, val_scenes=1, workers=0, generated_censored=generated_censored
    )
    loader, _, _, _ = _data(cfg, DistContext(), 0, input_size=96)
    pool = loader.dataset.composer.pool  # type: ignore[attr-defined]
    drawn = [pool.sample(CENSORED_ID, np.random.default_rng(seed)) for seed in range(200)]
    assert any(not d.synthetic for d in drawn)
    assert any(d.synthetic for d in drawn) == generated_censored
