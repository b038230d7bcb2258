"""`digit-detector` (or `python -m digit_detector`): data, anchors, mine, train, evaluate, report,
export, predict, bench. Training-side imports happen inside the commands, so `predict` stays light."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import UserError
from .postprocess import CENSORED_CONF, DEFAULT_CONF, DEFAULT_IOU, EVAL_CONF

NO_GENERATED_CENSORED_HELP = (
    "learn censored from the real obscene doodles only, not the generated ones (censored_procedural)"
)


def _whole_number(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _reader_input_px(text: str) -> int:
    from .reader import check_input_px

    try:
        return check_input_px(_positive_int(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    """Seeds and worker counts: 0 or more (numpy refuses negative seeds)."""
    return _whole_number(text, 0)


def _finite_float(text: str, low: float, low_allowed: bool = True, high: float = math.inf) -> float:
    lower = f">= {low:g}" if low_allowed else f"> {low:g}"
    bound = f"in [{low:g}, {high:g}]" if high < math.inf else lower
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text!r}") from None
    above_low = value >= low if low_allowed else value > low
    if not (math.isfinite(value) and above_low and value <= high):
        raise argparse.ArgumentTypeError(f"expected a number {bound}, got {value}")
    return value


def _probability(text: str) -> float:
    return _finite_float(text, 0.0, high=1.0)


def _positive_float(text: str) -> float:
    return _finite_float(text, 0.0, low_allowed=False)


def _non_negative_float(text: str) -> float:
    return _finite_float(text, 0.0, low_allowed=True)


def parse_duration(text: str) -> float:
    """'45m', '90s', '1h30m', '1.5h' or plain seconds -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"cannot read duration {text!r}: use e.g. 45m, 90s, 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="digit-detector", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_data,
        _add_anchors,
        _add_mine,
        _add_train,
        _add_train_reader,
        _add_ensemble_readers,
        _add_evaluate,
        _add_report,
        _add_export,
        _add_predict,
        _add_bench,
    ):
        add(sub)
    return parser


def _add_data(sub: Any) -> None:
    """`data generate|preview|bench|export-feedback|lookalikes`"""
    data = sub.add_parser("data", help="generate, preview and benchmark training scenes")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    for name, help_text in (
        ("generate", "write a fixed YOLO-format dataset"),
        ("preview", "draw a grid of generated scenes with their boxes"),
        ("bench", "print scene generation throughput"),
    ):
        p = data_sub.add_parser(name, help=help_text)
        p.add_argument("--data-dir", default=None, help="stroke data folder (default ../shared/data)")
        p.add_argument("--seed", type=_count, default=0)
        p.add_argument(
            "--split",
            choices=("train", "val"),
            default="val",
            help="drawings to compose from: held-out writers (val) or training ones",
        )
        p.add_argument(
            "--augment", action="store_true", help="training's scenes: its augmentation and digit emphasis"
        )
        if name == "generate":
            p.add_argument("--out", required=True, type=Path)
            p.add_argument("--n", type=_positive_int, required=True, help="number of images")
        elif name == "preview":
            p.add_argument("--out", type=Path, default=Path("grid.png"))
            p.add_argument("--n", type=_positive_int, default=16)
        else:
            p.add_argument("--n", type=_positive_int, default=1000)
    _add_export_feedback(data_sub)
    _add_lookalikes(data_sub)


def _add_export_feedback(data_sub: Any) -> None:
    """`data export-feedback`"""
    fb = data_sub.add_parser("export-feedback", help="write donated drawings as a YOLO-format dataset")
    fb.add_argument("--out", required=True, type=Path)
    fb.add_argument(
        "--store", choices=("local", "s3"), default=None, help="default: $DIGIT_DETECTOR_FEEDBACK (local)"
    )
    fb.add_argument(
        "--feedback-dir",
        default=None,
        help="local store folder (default: $DIGIT_DETECTOR_FEEDBACK_DIR or ./feedback)",
    )


def _add_lookalikes(data_sub: Any) -> None:
    """`data lookalikes`"""
    look = data_sub.add_parser(
        "lookalikes", help="find 'other' drawings that look like a digit (the loader leaves them out)"
    )
    look.add_argument("--data-dir", default=None, help="stroke data folder (default ../shared/data)")
    look.add_argument("--out", type=Path, default=None, help="id list (default: the packaged list)")
    look.add_argument("--preview", type=Path, default=None, help="also draw the found drawings here")
    look.add_argument("--threshold", type=_probability, default=0.5, help="digit probability to flag")
    look.add_argument("--folds", type=_positive_int, default=3)
    look.add_argument("--epochs", type=_positive_int, default=3)
    look.add_argument("--seed", type=_count, default=0)


def _add_anchors(sub: Any) -> None:
    """`anchors`"""
    anchors = sub.add_parser("anchors", help="fit anchors to training boxes (k-means, IoU distance)")
    anchors.add_argument("--config", required=True, help="models/X.yaml")
    anchors.add_argument("--data-dir", default=None)
    anchors.add_argument("--n", type=_positive_int, default=4000, help="scenes to sample")
    anchors.add_argument("--seed", type=_count, default=0)
    anchors.add_argument("--write", action="store_true", help="store the anchors in the config file")


def _add_mine(sub: Any) -> None:
    """`mine`"""
    mine = sub.add_parser(
        "mine",
        help="score training doodles, obscene doodles and digits with given weights; the hard ones are "
        "drawn more often by `train --hard-examples`",
    )
    mine.add_argument("--weights", default=None, help=".onnx or .pt (default: bundled weights)")
    mine.add_argument("--data-dir", default=None, help="stroke data folder (default ../shared/data)")
    mine.add_argument("--out", type=Path, required=True, help="hard-examples file to write (.json)")
    mine.add_argument(
        "--gain",
        type=_non_negative_float,
        default=None,
        help="a drawing's sampling weight is 1 + gain x hardness (default 3)",
    )
    mine.add_argument(
        "--sides",
        nargs="+",
        default=None,
        metavar="SIDE",
        help="which drawings to score: doodles, obscene, digits; the others keep weight 1 in "
        "training (default: all three)",
    )
    mine.add_argument("--seed", type=_count, default=0)
    mine.add_argument("--limit-per-file", type=_positive_int, default=None, help="quick runs")


def _add_train(sub: Any) -> None:
    """`train`"""
    train = sub.add_parser(
        "train",
        help="train a model from scratch (or fine-tune / resume)",
        description="Defaults not shown here are TrainConfig's (src/digit_detector/train.py).",
    )
    train.add_argument(
        "--config", dest="model_config", default=None, help="models/X.yaml (default yolov3-pico)"
    )
    train.add_argument("--out", dest="out_dir", default=None, help="output folder (default runs/train)")
    train.add_argument(
        "--time-budget",
        type=_duration,
        default=None,
        help="wall time including validation, e.g. 45m, 90s, 1h (default 45m)",
    )
    train.add_argument("--max-steps", type=_positive_int, default=None)
    train.add_argument("--batch-size", type=_positive_int, default=None)
    train.add_argument("--lr", type=_positive_float, default=None, help="peak AdamW learning rate")
    train.add_argument("--seed", type=_count, default=None)
    train.add_argument("--workers", type=_count, default=None, help="data worker processes")
    train.add_argument("--threads", type=_positive_int, default=None, help="torch threads")
    train.add_argument("--val-every", type=_duration, default=None, help="time between validations")
    train.add_argument("--val-scenes", type=_positive_int, default=None)
    train.add_argument("--resume", default=None, help="last.pt of an interrupted run")
    train.add_argument("--init-weights", default=None, help="fine-tune from this checkpoint")
    train.add_argument("--data-dir", default=None)
    train.add_argument(
        "--limit-per-file",
        type=_positive_int,
        default=None,
        help="read at most this many drawings per stroke file (quick runs)",
    )
    train.add_argument("--extra-data", default=None, help="YOLO-format folder mixed into training (feedback)")
    train.add_argument(
        "--extra-weight",
        type=_probability,
        default=None,
        help="fraction of training samples taken from --extra-data (default 0.2)",
    )
    train.add_argument(
        "--hard-examples", default=None, help="`digit-detector mine` output: hard drawings drawn more often"
    )
    train.add_argument(
        "--no-generated-censored",
        dest="generated_censored",
        action="store_false",
        default=None,
        help=NO_GENERATED_CENSORED_HELP,
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_train_reader(sub: Any) -> None:
    """`train-reader`"""
    tr = sub.add_parser(
        "train-reader",
        help="train the digit reader (a second look at each digit shown) and export it to ONNX",
    )
    tr.add_argument("--data-dir", default=None, help="stroke data folder (default ../shared/data)")
    tr.add_argument("--out", type=Path, required=True, help="folder for digit-reader.onnx and .pt")
    tr.add_argument("--scenes", type=_positive_int, default=None, help="training scenes (default 30000)")
    tr.add_argument("--val-scenes", type=_positive_int, default=None, help="validation scenes (default 2000)")
    tr.add_argument("--epochs", type=_positive_int, default=None, help="default 8")
    tr.add_argument("--width", type=_positive_int, default=None, help="first block channels (default 16)")
    tr.add_argument(
        "--input-px", type=_reader_input_px, default=None, help="crop side in pixels (default 32)"
    )
    reads = tr.add_mutually_exclusive_group()
    reads.add_argument(
        "--read-other",
        action="store_true",
        help='also learn "other" from real doodles (served: an unsure digit it reads as "other" is shown so)',
    )
    reads.add_argument(
        "--read-censored",
        action="store_true",
        help='also learn "other" and censored (served: its p(censored) is part of each censored score)',
    )
    tr.add_argument(
        "--augment", action="store_true", help="draw training scenes with the stroke augmentation of `train`"
    )
    tr.add_argument(
        "--lone-scenes",
        type=_count,
        default=0,
        help="extra training scenes of one doodle or obscene drawing alone (reader of other/censored)",
    )
    tr.add_argument(
        "--no-generated-censored",
        dest="generated_censored",
        action="store_false",
        help=NO_GENERATED_CENSORED_HELP + " (with --read-censored)",
    )
    tr.add_argument("--seed", type=_count, default=0)
    tr.add_argument("--limit-per-file", type=_positive_int, default=None, help="quick runs")


def _add_ensemble_readers(sub: Any) -> None:
    """`ensemble-readers`"""
    en = sub.add_parser(
        "ensemble-readers",
        help="join train-reader runs reading the same classes from the same crop (other seeds or "
        "widths) into one served reader: their mean",
    )
    en.add_argument("runs", type=Path, nargs="+", help="train-reader --out folders (two or more)")
    en.add_argument("--out", type=Path, required=True, help="the reader file to write (.onnx)")
    weights = en.add_mutually_exclusive_group()
    weights.add_argument(
        "--float16",
        action="store_true",
        help="store the weights as float16 (half the file; computed in float32; parity bound 1e-2)",
    )
    weights.add_argument(
        "--int8",
        action="store_true",
        help="compute in int8 (a third of the float32 file, about half the time a crop), calibrated "
        "on crops of training-split drawings from --data-dir; parity bound 0.15",
    )
    en.add_argument("--data-dir", default=None, help="stroke data folder for --int8 (default ../shared/data)")


def _add_evaluate(sub: Any) -> None:
    """`evaluate`"""
    ev = sub.add_parser("evaluate", help="COCO metrics, PR curves and confusion matrix on a YOLO dir")
    ev.add_argument("--weights", default=None, help=".onnx or .pt (default: bundled weights)")
    ev.add_argument("--data", required=True, help="YOLO-format folder (images/, labels/)")
    ev.add_argument("--out", default=None, help="report folder (default: <data>/eval)")
    ev.add_argument(
        "--conf",
        type=_probability,
        default=None,
        help="threshold for recall and the confusion matrix (default: best F1)",
    )
    _add_reader_option(ev)


def _add_report(sub: Any) -> None:
    """`report`"""
    rp = sub.add_parser(
        "report",
        help="held-out groups: per-group mAP, numbers read, doodles pixelated, censored threshold sweep",
    )
    rp.add_argument("--weights", default=None, help=".onnx or .pt (default: bundled weights)")
    rp.add_argument("--data-dir", default=None, help="stroke data folder (default ../shared/data)")
    rp.add_argument("--n", type=_positive_int, default=300, help="canvases per group")
    rp.add_argument("--seed", type=_count, default=0)
    rp.add_argument("--censored-conf", type=_probability, default=None, help="app threshold to report at")
    rp.add_argument("--out", type=Path, default=Path("runs/report"), help="report folder")
    _add_reader_option(rp)


def _add_export(sub: Any) -> None:
    """`export`"""
    ex = sub.add_parser("export", help="torch checkpoint -> ONNX, with a parity check")
    ex.add_argument("--weights", required=True, help="checkpoint .pt")
    ex.add_argument("--out", required=True, help="output .onnx")
    ex.add_argument(
        "--slim-checkpoint",
        type=Path,
        default=None,
        help="first write the weights here as a float16 checkpoint without optimizer state (what "
        "weights/digit-detector.pt holds), and export that",
    )
    ex.add_argument(
        "--float16",
        action="store_true",
        help="store the ONNX weights as float16 (half the file; computed in float32; parity "
        "bound on scores 1e-2 instead of 1e-3)",
    )


def _add_predict(sub: Any) -> None:
    """`predict`"""
    pr = sub.add_parser(
        "predict",
        help="detect on image files: by default exactly what the app shows",
        description="With no flags: the app's decisions (one label per object, censored from "
        f"{CENSORED_CONF}), in reading order, with the numbers read. --all: every candidate "
        "(COCO convention, for evaluation).",
    )
    pr.add_argument("images", nargs="+", metavar="IMG")
    pr.add_argument("--json", action="store_true", help="print one JSON array on stdout")
    pr.add_argument("--conf", type=_probability, default=None, help=f"digits/other (default {DEFAULT_CONF})")
    pr.add_argument("--iou", type=_probability, default=None, help=f"NMS IoU (default {DEFAULT_IOU})")
    pr.add_argument(
        "--censored-conf", type=_probability, default=None, help=f"censored (default {CENSORED_CONF})"
    )
    pr.add_argument(
        "--all",
        action="store_true",
        help=f"every candidate: best class of all, ranked with the reader (two classes per box), "
        f"class-aware NMS, conf {EVAL_CONF} unless --conf",
    )
    pr.add_argument("--weights", default=None, help=".onnx or .pt (default: bundled weights)")
    _add_reader_option(pr)


def _add_reader_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reader",
        default=None,
        metavar="ONNX|none",
        help="reader that re-reads the digits shown, scores censored drawings and ranks the mAP "
        "candidates with the detector (default: the bundled one; none: the detector alone)",
    )


def _reader(args: argparse.Namespace) -> str | bool:
    """`Detector`'s reader argument from --reader."""
    return True if args.reader is None else (False if args.reader == "none" else args.reader)


def _add_bench(sub: Any) -> None:
    """`bench`"""
    be = sub.add_parser("bench", help="latency, cold start, memory, size; YOLOv3 speed-up")
    be.add_argument("--weights", default=None)
    be.add_argument("--runs", type=_positive_int, default=200)
    be.add_argument("--repeat", type=_positive_int, default=3, help="rounds; medians and ranges are printed")
    be.add_argument(
        "--family",
        nargs="*",
        default=None,
        metavar="CONFIG",
        help="also measure these configs (params, GFLOPs, latency, train images/s)",
    )
    be.add_argument(
        "--train-procs",
        nargs="*",
        type=_positive_int,
        default=None,
        metavar="N",
        help="also measure training images/s with these process counts (torchrun), e.g. 1 2",
    )
    be.add_argument("--train-steps", type=_positive_int, default=40)
    be.add_argument("--data-dir", default=None)
    be.add_argument("--json", action="store_true")


class UsageError(UserError):
    """Arguments that parse but do not fit together."""


def _check_writable(folder: Path) -> None:
    """Make `folder` if need be and check a file can be written there, before any long work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write into {folder}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command. A UserError (bad file, missing data, bad arguments) is one line on
    stderr and exit code 2; anything else is a bug and keeps its traceback. --debug: always."""
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"digit-detector {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "export-feedback":
        return _export_feedback(args)
    if args.data_command == "lookalikes":
        return _find_lookalikes(args)
    from .data.generate import (
        generation_throughput,
        make_composer,
        preview_grid,
        write_yolo_dataset,
    )
    from .data.strokes import load_drawings

    drawings = [d for d in load_drawings(args.data_dir) if d.split == args.split]
    composer = make_composer(drawings, augment=args.augment)
    if args.data_command == "generate":
        print(write_yolo_dataset(composer, args.out, args.n, args.seed))
    elif args.data_command == "preview":
        preview_grid(composer, args.n, args.seed).save(args.out)
        print(f"wrote a preview of {args.n} scenes to {args.out}")
    else:
        figures = generation_throughput(composer, args.n, args.seed)
        print(
            f"training path (drawn at 192 px, model input): {figures['training_scenes_per_s']:.0f} "
            f"scenes/s on one core ({figures['training_objects_per_s']:.0f} objects/s)"
        )
        print(f"full canvas path (data generate): {figures['full_canvas_scenes_per_s']:.0f} scenes/s")
    return 0


def _find_lookalikes(args: argparse.Namespace) -> int:
    from .data.lookalikes import find_lookalikes, lookalike_sheet, write_lookalikes
    from .data.strokes import OTHER_LOOKALIKES_FILE, load_drawings

    if args.folds < 2:
        raise UsageError("--folds must be at least 2: every drawing is scored by a model that never saw it")
    drawings = load_drawings(args.data_dir, lookalikes=None)
    search = find_lookalikes(drawings, args.threshold, args.folds, args.epochs, args.seed)
    out = args.out or OTHER_LOOKALIKES_FILE
    command = (
        " ".join(["digit-detector", *sys.argv[1:]]) if sys.argv[1:] else "digit-detector data lookalikes"
    )
    write_lookalikes(search, out, command)
    print(search.summary())
    print(f"wrote {len(search.found)} ids to {out}")
    if args.preview:
        lookalike_sheet(search, drawings).save(args.preview)
        print(f"wrote a sheet of found drawings to {args.preview}")
    return 0


def _export_feedback(args: argparse.Namespace) -> int:
    import dataclasses

    from .feedback.export import export_yolo
    from .feedback.factory import FeedbackSettings, make_store

    settings = FeedbackSettings.from_env()  # arguments override the environment
    if args.store:
        settings = dataclasses.replace(settings, kind=args.store)
    if args.feedback_dir:
        settings = dataclasses.replace(settings, local_dir=Path(args.feedback_dir))
    store = make_store(settings)
    if store is None:
        raise UsageError("feedback is turned off (DIGIT_DETECTOR_FEEDBACK=off); pass --store local or s3")
    count = export_yolo(store, args.out)
    print(f"exported {count} donated drawings from {store.describe()} to {args.out}")
    return 0


def _cmd_anchors(args: argparse.Namespace) -> int:
    import numpy as np

    from .anchors import kmeans_iou, mean_best_iou
    from .data.generate import make_composer
    from .data.strokes import load_drawings
    from .model.config import config_path, load_config, write_anchors

    cfg = load_config(args.config)
    drawings = [d for d in load_drawings(args.data_dir) if d.split == "train"]
    composer = make_composer(drawings, augment=True, input_size=cfg.input_size)
    rng = np.random.default_rng(args.seed)
    wh = np.concatenate(
        [
            (s.boxes[:, 2:] - s.boxes[:, :2])
            for s in (composer.compose_letterboxed(rng) for _ in range(args.n))
        ]
    )
    k = len(cfg.strides) * cfg.num_anchors
    anchors = np.round(kmeans_iou(wh, k, seed=args.seed), 1)
    print(
        f"{len(wh)} boxes; mean best IoU {mean_best_iou(wh, anchors):.3f} (current "
        f"{mean_best_iou(wh, np.array(cfg.anchors).reshape(-1, 2)):.3f})"
    )
    per_scale = anchors.reshape(len(cfg.strides), cfg.num_anchors, 2).tolist()
    for stride, scale in zip(cfg.strides, per_scale, strict=True):
        print(f"  stride {stride}: {scale}")
    if args.write:
        path = config_path(args.config)
        comment = (
            f"k-means (1 - IoU) on {args.n} training scenes at {cfg.input_size} px: "
            "`digit-detector anchors --config <this file> --write`"
        )
        write_anchors(path, per_scale, comment)
        print(f"wrote anchors to {path}")
    return 0


def _cmd_mine(args: argparse.Namespace) -> int:
    from .data.procedural import training_drawings
    from .hard_examples import HARD_EXAMPLE_GAIN, check_sides, mine_hard_examples
    from .inference import Detector

    gain = HARD_EXAMPLE_GAIN if args.gain is None else args.gain
    if args.sides is not None:  # None: every side (mine_hard_examples)
        try:
            check_sides(args.sides)
        except UserError as exc:
            raise UsageError(f"--sides: {exc}") from None
    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; give a file name such as hard.json")
    _check_writable(args.out.parent)  # fail before minutes of mining, not after
    detector = Detector(args.weights)
    drawings = training_drawings(args.data_dir, args.limit_per_file)
    hard = mine_hard_examples(detector, drawings, gain, args.seed, sides=args.sides)
    hard.save(args.out)
    for side in hard.meta["sides"]:
        info = hard.meta[side]
        share = "-" if info["hard_share"] is None else f"{info['hard_share']:.1%}"
        mean = info["mean_hardness"]
        print(f"{side}: {info['drawings']} drawings, mean hardness {mean}, {share} at 0.5 or more")
    print(f"wrote {args.out}: train with --hard-examples {args.out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from .train import TrainConfig, train

    given = {
        f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None
    }
    summary = train(TrainConfig(**given), progress=not args.quiet)
    print(json.dumps(summary, indent=2))
    return 0


def _cmd_train_reader(args: argparse.Namespace) -> int:
    from .classes import DIGIT_IDS
    from .data.procedural import training_drawings
    from .reader import DIGIT_CLASSES, DIGIT_OR_OTHER_CLASSES, EVERY_CLASS
    from .reader_train import ReaderTrainConfig, train_reader
    from .train import git_commit, split_drawings

    classes = DIGIT_CLASSES  # the two flags are exclusive
    if args.read_censored:
        classes = EVERY_CLASS
    elif args.read_other:
        classes = DIGIT_OR_OTHER_CLASSES
    defaults = ReaderTrainConfig()
    try:
        config = ReaderTrainConfig(
            scenes=args.scenes or defaults.scenes,
            val_scenes=args.val_scenes or defaults.val_scenes,
            epochs=args.epochs or defaults.epochs,
            width=args.width or defaults.width,
            input_px=args.input_px or defaults.input_px,
            classes=classes,
            augment=args.augment,
            lone_scenes=args.lone_scenes,
            generated_censored=args.generated_censored,
            seed=args.seed,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file; give a folder")
    _check_writable(args.out)  # fail before minutes of training, not after
    train, val = split_drawings(training_drawings(args.data_dir, args.limit_per_file))
    summary = train_reader(train, val, config, args.out, commit=git_commit())
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    other = "".join(
        f", {name} read as {name} {summary[f'val_{name}_accuracy']}"
        for name in config.classes[len(DIGIT_IDS) :]
    )
    print(
        f"{summary['train_crops']} training crops, {summary['val_crops']} writer-disjoint crops: "
        f"digits read right {summary['val_accuracy']:.4f}{other} after {config.epochs} epochs, "
        f"{summary['seconds']:.0f} s; wrote {args.out / 'digit-reader.onnx'} "
        f"(parity max diff {summary['parity_max_diff']:.1e})"
    )
    return 0


def _cmd_ensemble_readers(args: argparse.Namespace) -> int:
    from .reader_train import ensemble_readers

    if args.out.suffix != ".onnx":
        raise UsageError(f"--out {args.out}: the reader file ends in .onnx")
    if args.data_dir is not None and not args.int8:
        raise UsageError("--data-dir is where --int8 calibrates; give --int8 too, or leave it out")
    _check_writable(args.out.parent)
    weights, calibration_drawings = "float32", None
    if args.float16:
        weights = "float16"
    elif args.int8:
        from .data.procedural import training_drawings
        from .train import split_drawings

        weights = "int8"
        calibration_drawings, _ = split_drawings(training_drawings(args.data_dir))
    written = ensemble_readers(args.runs, args.out, weights, calibration_drawings)
    members = ", ".join(f"seed {m['seed']} width {m['width']}" for m in written["members"])
    print(
        f"wrote {args.out} ({written['bytes'] / 1e6:.2f} MB, {weights}): the mean of {len(args.runs)} "
        f"readers ({members}); parity with torch: max diff {written['parity_max_diff']:.1e}"
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_dataset
    from .inference import Detector

    detector = Detector(args.weights, reader=_reader(args))
    out = Path(args.out) if args.out else Path(args.data) / "eval"
    result = evaluate_dataset(detector, args.data, out, threshold=args.conf)
    print(result.table())
    print(
        f"best-F1 threshold {result.report['best_f1_threshold']:.2f} (F1 {result.report['best_f1']:.4f}); "
        f"report: {result.report_path}"
    )
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .data.strokes import load_drawings
    from .inference import Detector
    from .report import generalisation_report, report_markdown

    detector = Detector(args.weights, reader=_reader(args))
    if args.censored_conf is not None:
        detector.censored_conf = args.censored_conf
    report = generalisation_report(detector, load_drawings(args.data_dir), args.n, args.seed, args.out)
    print(report_markdown(report))
    print(f"report: {args.out / 'report.json'} ({report['seconds']} s)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import describe, export_onnx
    from .model.checkpoint import slim_checkpoint

    if args.slim_checkpoint is None:
        report = export_onnx(args.weights, args.out, float16=args.float16)
    else:
        # Slimmed beside its destination, under its own name (the ONNX metadata records it),
        # and moved into place only once the export from it has passed its parity check.
        target = Path(args.slim_checkpoint)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            slim = Path(scratch) / target.name
            slim_checkpoint(args.weights, slim)
            report = export_onnx(slim, args.out, float16=args.float16)
            slim.replace(target)
        print(f"wrote {target} ({target.stat().st_size / 1e6:.2f} MB, float16, no optimizer state)")
    size = Path(args.out).stat().st_size / 1e6
    dtype = "float16" if args.float16 else "float32"
    parity = json.dumps(describe(report))
    print(f"wrote {args.out} ({size:.2f} MB, {dtype} weights); parity with torch: {parity}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .image_io import ImageLoadError, load_image
    from .inference import Detector
    from .render import read_numbers, reading_order

    detector = Detector(args.weights, reader=_reader(args))
    results, failed = [], 0
    for name in args.images:
        try:
            image = load_image(name, formats=None)
        except ImageLoadError as exc:
            print(f"digit-detector predict: {exc}", file=sys.stderr)
            failed += 1
            results.append({"path": name, "error": str(exc)})
            continue
        dets = detector.predict(image, args.conf, args.iou, args.censored_conf, all_candidates=args.all)
        if not args.all:  # candidates stay by score: a box may be one for two classes, no number
            dets = reading_order(dets)
        results.append(
            {
                "path": name,
                "width": image.width,
                "height": image.height,
                "detections": [d.to_dict() for d in dets],
                "numbers": [] if args.all else read_numbers(dets),
            }
        )
    if args.json:
        print(json.dumps([r for r in results if "error" not in r]))
    else:
        for r in results:
            if "error" in r:
                continue
            size = f"{r['width']}x{r['height']}"
            if args.all:
                print(f"{r['path']} ({size}): {len(r['detections'])} mAP candidates, by score")
            else:
                numbers = " / ".join(r["numbers"]) or "-"
                print(f"{r['path']} ({size}): {len(r['detections'])} detections, number {numbers}")
            for i, d in enumerate(r["detections"], 1):
                box = " ".join(f"{v:7.1f}" for v in d["box"])
                print(f"  {i:>3}  {d['label']:>9}  {d['score']:.3f}  [{box}]")
    return 1 if failed else 0


def _print_serving(serving: dict[str, Any]) -> None:
    s, last = serving["summary"], serving["last"]

    def fig(key: str, unit: str, digits: int = 2) -> str:
        v = s[key]
        return f"{v['median']:.{digits}f} {unit} (rounds {v['min']:.{digits}f}-{v['max']:.{digits}f})"

    print(f"CPU: {serving['cpu']}; {len(serving['rounds'])} rounds, medians (range over rounds)")
    print(f"weights: {last['weights']} ({last['weights_mb']:.2f} MB)")
    print(f"digit reader: {last['reader']} ({last['reader_mb']:.2f} MB)")
    predict = f"p50 {fig('predict_p50_ms', 'ms')}, p95 {fig('predict_p95_ms', 'ms')}"
    print(f"end-to-end predict, 400x400 canvas: {predict}")
    print(f"the same, two visitors at once: p50 {fig('two_visitors_p50_ms', 'ms')} a request")
    print(f"end-to-end predict, 1100x800 canvas with a closer look: p50 {fig('closer_looks_p50_ms', 'ms')}")
    interaction = f"p50 {fig('interaction_p50_ms', 'ms')}"
    print(f"app interaction (predict, drawing, numbers, feedback proposals): {interaction}")
    print(f"cold start (process start -> first prediction, timed to exit): {fig('cold_start_s', 's')}")
    print(
        f"serving process peak RSS: {fig('peak_rss_mb', 'MB', 0)} (torch imported: {last['torch_imported']}, "
        f"matplotlib imported: {last['matplotlib_imported']})"
    )
    print(
        f"full YOLOv3 forward (torch, random init, 192x192): p50 {fig('yolov3_forward_ms', 'ms', 1)}; "
        f"{fig('speedup_vs_yolov3_forward', 'x', 1)} slower than our end-to-end predict (same round)"
    )


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench_family, bench_training_processes, repeated_serving

    out: dict[str, Any] = {"serving": repeated_serving(args.weights, args.runs, args.repeat)}
    if args.family is not None:
        names = args.family or [
            "yolov3-pico",
            "yolov3-pico-deep",
            "yolov3-nano",
            "yolov3-small",
            "yolov3-tiny",
            "yolov3",
        ]
        out["family"] = bench_family(names)
    if args.train_procs:
        out["training_processes"] = bench_training_processes(
            args.train_procs, args.train_steps, data_dir=args.data_dir
        )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    _print_serving(out["serving"])
    if "family" in out:
        print(f"{'config':<14}{'params':>12}{'GFLOPs@192':>12}{'fwd ms':>9}{'train img/s':>13}")
        for row in out["family"]:
            print(
                f"{row['config']:<14}{row['parameters']:>12,}{row['gflops_192']:>12.3f}"
                f"{row['forward_ms_p50']:>9.2f}{row.get('train_images_per_s', float('nan')):>13.1f}"
            )
    for row in out.get("training_processes", []):
        print(
            f"training with {row['processes']} process(es): {row['images_per_s']:.1f} images/s "
            f"({row['images']} images in {row['train_seconds']:.1f} s)"
        )
    return 0


_COMMANDS = {
    "data": _cmd_data,
    "anchors": _cmd_anchors,
    "mine": _cmd_mine,
    "train": _cmd_train,
    "train-reader": _cmd_train_reader,
    "ensemble-readers": _cmd_ensemble_readers,
    "evaluate": _cmd_evaluate,
    "report": _cmd_report,
    "export": _cmd_export,
    "predict": _cmd_predict,
    "bench": _cmd_bench,
}
