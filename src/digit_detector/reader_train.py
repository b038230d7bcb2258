"""Training the digit reader (reader.py): crops of the digits in composed scenes (and, for a
reader of "other", of the real doodles; for a reader of every class, those and the obscene
doodles), a small CNN, ONNX export with a parity check.

Crops come from the scenes the detector trains on (SceneConfig defaults: every kind of scene,
canvas size and stroke width), training-split writers only; each box is jittered a little, as
the detector's fitted boxes are never exact. Validation crops come from the writer-disjoint
split. The run writes `digit-reader.onnx` (served) and `digit-reader.pt` (state dict and
config, to look into a run, or to join runs of other seeds or widths in one served file:
`ensemble_readers`, the `ensemble-readers` command).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn
from tqdm import tqdm

from .classes import CLASS_ID_BY_NAME, DIGIT_IDS, OTHER_ID
from .data.augment import StrokeAugment
from .data.compose import SceneComposer, SceneConfig, draw_strokes
from .data.strokes import Drawing, without_generated_censored
from .errors import UserError
from .export import (
    FLOAT16_SCORE_TOL,
    INT8_PROB_TOL,
    onnx_model,
    quantized_int8,
    save_checked,
    store_weights_float16,
)
from .preprocess import ink_box
from .reader import (
    DIGIT_CLASSES,
    EVERY_CLASS,
    READER_CLASS_SETS,
    READER_FILE,
    READER_INPUT_PX,
    DigitReader,
    check_input_px,
    reader_crop,
    reader_metadata,
)
from .reader import METADATA_KEY as READER_METADATA_KEY

PARITY_TOL = 1e-4
# What `export_reader` stores and computes in, and how far its parity check lets each differ
# from torch.
PARITY_TOLERANCES = {"float32": PARITY_TOL, "float16": FLOAT16_SCORE_TOL, "int8": INT8_PROB_TOL}
# Scenes of training-split drawings whose crops set an int8 file's activation ranges (three
# quarters) and check it against torch (the rest); about 1,000 crops.
CALIBRATION_SCENES = 400
RUN_CHECKPOINT = "digit-reader.pt"  # beside READER_FILE in a run's folder: state dict and summary
# Validation scenes are drawn from their own generator, so that readers trained with other
# scenes, lone scenes or seeds are validated on the same crops.
VALIDATION_SEED = 0
# `lone_scenes`: one drawing alone on training's canvases and pens, "other" and censored equally often.
LONE_NON_DIGIT_SCENES = replace(
    SceneConfig(), kinds=("single",), kind_weights=(1.0,), single_mix=(0.0, 1.0, 1.0)
)


@dataclass
class ReaderTrainConfig:
    scenes: int = 30_000
    val_scenes: int = 2_000
    epochs: int = 8
    batch_size: int = 256
    lr: float = 4e-3
    width: int = 16  # channels of the first block; 16 keeps the file near 360 KB
    input_px: int = READER_INPUT_PX  # the crop's side (`check_input_px`)
    box_jitter: float = 0.05  # std of each box side's shift, x the box's longer side
    # What it reads (`READER_CLASS_SETS`): the digits; those and "other", learnt from real doodles
    # (`real_doodles_as_other`); or every class, censored validated on real obscene doodles only.
    classes: tuple[str, ...] = DIGIT_CLASSES
    # Training scenes drawn with the detector's stroke augmentation (rotation, shear, aspect).
    augment: bool = False
    # Extra training scenes of one doodle or obscene drawing alone, half each (readers of "other"
    # or censored only): 30,000 mixed scenes hold ~4,000 real obscene crops, fewer than the
    # 7,177 real obscene drawings of the training split.
    lone_scenes: int = 0
    # Censored learnt from the generated obscene doodles too (a reader of censored only).
    generated_censored: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if tuple(self.classes) not in READER_CLASS_SETS:
            raise ValueError(f"a reader reads one of {READER_CLASS_SETS}, not {self.classes}")
        self.classes = tuple(self.classes)
        check_input_px(self.input_px)
        # Worded for the CLI too (`train-reader` reports these as usage errors).
        if self.lone_scenes and self.classes == DIGIT_CLASSES:
            raise ValueError(
                "lone scenes (--lone-scenes) draw doodles and obscene drawings: train a reader of "
                "them (--read-other or --read-censored)"
            )
        if not self.generated_censored and not self.reads_censored:
            raise ValueError(
                "leaving out the generated obscene doodles (--no-generated-censored) is about the "
                "censored class: give --read-censored"
            )

    @property
    def reads_censored(self) -> bool:
        return self.classes == EVERY_CLASS


class ReaderNet(nn.Module):
    """Three blocks of two 3x3 convolutions, each halving the side (32 -> 16 -> 8 -> 4 px by
    default), a linear layer to the classes (`ReaderTrainConfig.classes`: the 10 digits, those
    and "other", or every class); softmax at the end, so the exported file returns
    probabilities."""

    def __init__(
        self, width: int = 16, outputs: int = len(DIGIT_IDS), input_px: int = READER_INPUT_PX
    ) -> None:
        super().__init__()
        side = check_input_px(input_px) // 8

        def block(cin: int, cout: int) -> nn.Sequential:
            layers: list[nn.Module] = []
            for c in (cin, cout):
                layers += [nn.Conv2d(c, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
            return nn.Sequential(*layers, nn.MaxPool2d(2))

        self.features = nn.Sequential(block(1, width), block(width, 2 * width), block(2 * width, 4 * width))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(4 * width * side * side, outputs))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)


def reader_crops(
    composer: SceneComposer,
    scenes: int,
    rng: np.random.Generator,
    jitter: float,
    desc: str,
    classes: tuple[str, ...] = DIGIT_CLASSES,
    input_px: int = READER_INPUT_PX,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reader inputs (N, 1, input_px, input_px) and labels (N, indices into `classes`) of every
    object of those classes in `scenes` scenes."""
    label_of = {CLASS_ID_BY_NAME[name]: i for i, name in enumerate(classes)}
    crops, labels = [], []
    for _ in tqdm(range(scenes), desc=desc, unit="scene", leave=False):
        scene = composer.compose(rng)
        for box, class_id in zip(scene.boxes, scene.class_ids, strict=True):
            if int(class_id) not in label_of:
                continue
            shift = rng.normal(0.0, jitter, 4) * max(box[2] - box[0], box[3] - box[1])
            crops.append(reader_crop(scene.image, box + shift, input_px))
            labels.append(label_of[int(class_id)])
    if not labels:
        raise UserError(f"{desc}: the scenes hold nothing the reader reads (an empty split?)")
    return torch.from_numpy(np.stack(crops)[:, None]), torch.tensor(labels)


def training_crops(
    train: list[Drawing], config: ReaderTrainConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The crops of `config.scenes` mixed scenes and, for a reader of more than digits, of
    `config.lone_scenes` scenes of one non-digit drawing alone."""
    augment = StrokeAugment() if config.augment else None
    mixed = SceneComposer.from_drawings(train, SceneConfig(), augment)
    x, y = reader_crops(
        mixed, config.scenes, rng, config.box_jitter, "train crops", config.classes, config.input_px
    )
    if not config.lone_scenes:  # never for a digit reader (`ReaderTrainConfig`)
        return x, y
    non_digits = [d for d in train if d.class_id not in DIGIT_IDS]
    if not non_digits:
        return x, y
    lone = SceneComposer.from_drawings(non_digits, LONE_NON_DIGIT_SCENES, augment)
    lx, ly = reader_crops(
        lone, config.lone_scenes, rng, config.box_jitter, "lone crops", config.classes, config.input_px
    )
    return torch.cat([x, lx]), torch.cat([y, ly])


def validation_crops(val: list[Drawing], config: ReaderTrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The crops of `config.val_scenes` scenes of the validation drawings, unjittered, from
    VALIDATION_SEED whatever the training scenes or seed."""
    composer = SceneComposer.from_drawings(val, SceneConfig())
    rng = np.random.default_rng(VALIDATION_SEED)
    return reader_crops(composer, config.val_scenes, rng, 0.0, "val crops", config.classes, config.input_px)


def reader_drawings(
    drawings: list[Drawing], classes: tuple[str, ...], generated_censored: bool
) -> list[Drawing]:
    """The drawings whose scenes a reader of `classes` is trained, scored or calibrated on:
    "other" only as real doodles (`real_doodles_as_other`) for a reader of more than the
    digits; without the generated obscene doodles unless `generated_censored`."""
    if classes != DIGIT_CLASSES:
        drawings = real_doodles_as_other(drawings)
    return drawings if generated_censored else without_generated_censored(drawings)


def real_doodles_as_other(drawings: list[Drawing]) -> list[Drawing]:
    """The drawings a reader that reads "other" learns from: "other" only as real doodles (a
    category, not generated). Letters and glyphs are the detector's to tell from digits, and
    generated dashes and bars look like a "1"."""
    return [d for d in drawings if d.class_id != OTHER_ID or (d.category is not None and not d.synthetic)]


@torch.no_grad()
def accuracies(
    net: ReaderNet, crops: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...]
) -> dict[str, float | None]:
    """The share of digit crops read as their digit (`val_accuracy`) and, for each class a
    reader reads besides digits, of its crops read as it (`val_other_accuracy`,
    `val_censored_accuracy`; None without any)."""
    net.eval()
    read = torch.cat([net.logits(crops[i : i + 1024]).argmax(1) for i in range(0, len(labels), 1024)])
    right, digits = read == labels, labels < len(DIGIT_IDS)
    shares: dict[str, float | None] = {"val_accuracy": round(float(right[digits].float().mean()), 4)}
    for index in range(len(DIGIT_IDS), len(classes)):
        of_class = right[labels == index]
        share = round(float(of_class.float().mean()), 4) if len(of_class) else None
        shares[f"val_{classes[index]}_accuracy"] = share
    return shares


def train_reader(
    train: list[Drawing], val: list[Drawing], config: ReaderTrainConfig, out: Path, commit: str = ""
) -> dict[str, Any]:
    """Train, export `out/digit-reader.onnx` (checked against torch) and `out/digit-reader.pt`;
    returns the run's summary (crops, accuracy per epoch, seconds)."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train = reader_drawings(train, config.classes, config.generated_censored)
    val = reader_drawings(val, config.classes, generated_censored=not config.reads_censored)
    x, y = training_crops(train, config, rng)
    vx, vy = validation_crops(val, config)
    for split, labels in (("training", y), ("validation", vy)):
        if not bool((labels < len(DIGIT_IDS)).any()):
            raise UserError(f"the {split} scenes hold no digits (no digit drawings in this split?)")
    net = ReaderNet(config.width, len(config.classes), config.input_px)
    batches = max(1, len(y) // config.batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.epochs * batches)
    history = []
    bar = tqdm(total=config.epochs * batches, desc="reader", unit="batch")
    for epoch in range(config.epochs):
        net.train()
        order = torch.randperm(len(y))
        for b in range(batches):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            loss = nn.functional.cross_entropy(net.logits(x[idx]), y[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        history.append({"epoch": epoch + 1, **accuracies(net, vx, vy, config.classes)})
        shares = ", ".join(f"{k} {v}" for k, v in history[-1].items() if k != "epoch")
        bar.write(f"epoch {epoch + 1}, writer-disjoint crops: {shares}")
    bar.close()
    summary = {
        "config": {**asdict(config), "classes": list(config.classes)},
        "commit": commit,
        "train_crops": len(y),
        "train_other_crops": int((y == len(DIGIT_IDS)).sum()),
        "train_censored_crops": int((y > len(DIGIT_IDS)).sum()),
        "val_crops": len(vy),
        "history": history,
        **{k: v for k, v in history[-1].items() if k != "epoch"},
    }
    save_reader_run(net, summary, out)
    summary["parity_max_diff"] = export_reader(
        net.eval(), out / READER_FILE, vx[:64], _provenance(summary), config.classes, config.input_px
    )
    summary["seconds"] = round(time.perf_counter() - start, 1)
    return summary


def export_reader(
    net: nn.Module,
    path: Path,
    sample: torch.Tensor,
    source: dict[str, Any],
    classes: tuple[str, ...],
    input_px: int,
    weights: str = "float32",
    calibration: torch.Tensor | None = None,
) -> float:
    """ONNX file with the reader's metadata (`source`: where it comes from), checked against
    torch on `sample`; returns the largest probability difference. A file that disagrees is not
    kept. `weights` (a key of PARITY_TOLERANCES): float16 stores them as float16 and computes in float32
    (`store_weights_float16`); int8 computes in int8 with activation ranges from `calibration`
    crops (`quantized_int8`), and `sample` should be other real crops."""
    if weights not in PARITY_TOLERANCES:
        raise ValueError(f"weights are stored as one of {tuple(PARITY_TOLERANCES)}, not {weights!r}")
    proto = onnx_model(net, sample[:1], "crops", "probabilities", max_batch=256)
    if weights == "float16":
        store_weights_float16(proto)
    elif weights == "int8":
        if calibration is None or not len(calibration):
            raise ValueError("an int8 reader needs calibration crops")
        proto = quantized_int8(proto, "crops", calibration.numpy())
    meta = reader_metadata({**source, "weights_dtype": weights}, classes, input_px)
    proto.metadata_props.append(onnx.StringStringEntryProto(key=READER_METADATA_KEY, value=json.dumps(meta)))
    tolerance = PARITY_TOLERANCES[weights]

    def parity(saved: Path) -> float:
        served = DigitReader(saved).session.run(None, {"crops": sample.numpy()})[0]
        with torch.no_grad():
            diff = float(np.abs(served - net(sample).numpy()).max())
        if diff > tolerance:
            raise UserError(
                f"exported {weights} reader disagrees with torch (max diff {diff:.2e}, allowed "
                f"{tolerance:g}); nothing written"
            )
        return diff

    return save_checked(proto, path, parity)


class ReaderEnsemble(nn.Module):
    """Readers of the same classes and crop (other seeds, other widths), read as one: the mean
    of their probabilities. A seed moves a reader of this size about as much as a recipe does;
    the mean of two moved every held-out figure but one the right way, a wider third seven of
    ten, and a second seed of the wider one eight of ten (docs/MODEL_CARD.md, "Readers of two
    seeds", "A wider third reader", "A fourth reader")."""

    def __init__(self, members: list[ReaderNet]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(dim=0)


def save_reader_run(net: ReaderNet, summary: dict[str, Any], run: Path) -> None:
    """The run's network and summary in `run/digit-reader.pt`, what `load_reader_run` reads."""
    run.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "summary": summary}, run / RUN_CHECKPOINT)


def load_reader_run(run: Path) -> tuple[ReaderNet, dict[str, Any]]:
    """A `train-reader` output folder's network (from its digit-reader.pt, in eval mode) and
    the run's summary."""
    path = run / RUN_CHECKPOINT
    if not path.is_file():
        raise UserError(f"{run}: no digit-reader.pt here; give folders written by `train-reader --out`")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        config = saved["summary"]["config"]
        net = ReaderNet(config["width"], len(config["classes"]), config["input_px"])
        net.load_state_dict(saved["state_dict"])
    except Exception as exc:  # torch's own types for a damaged file; Key/Type errors for foreign ones
        raise UserError(f"cannot read the reader of {path} ({type(exc).__name__}: {exc})") from exc
    return net.eval(), saved["summary"]


def ensemble_readers(
    runs: list[Path],
    out: Path,
    weights: str = "float32",
    calibration_drawings: list[Drawing] | None = None,
) -> dict[str, Any]:
    """One served reader file (`ReaderEnsemble`) from several `train-reader` runs that read the
    same classes from the same crop, its weights stored as `weights` (`export_reader`; int8
    calibrates on crops of `calibration_drawings`, training-split drawings); returns what it
    wrote (members, parity, size)."""
    if len(runs) < 2:
        raise UserError("an ensemble needs two or more reader runs")
    loaded = [load_reader_run(run) for run in runs]
    first = loaded[0][1]["config"]
    members = []
    for run, (_, summary) in zip(runs, loaded, strict=True):
        config = summary["config"]
        if (config["classes"], config["input_px"]) != (first["classes"], first["input_px"]):
            raise UserError(
                f"{run} reads {config['classes']} from {config['input_px']} px crops, {runs[0]} "
                f"{first['classes']} from {first['input_px']} px: an ensemble's readers read alike"
            )
        members.append(
            {"run": str(run), "seed": config["seed"], "width": config["width"], **_provenance(summary)}
        )
    net = ReaderEnsemble([n for n, _ in loaded]).eval()
    classes, input_px = tuple(first["classes"]), first["input_px"]
    source: dict[str, Any] = {"members": members}
    sample, calibration = parity_crops(64, input_px), None
    if weights == "int8":
        if not calibration_drawings:
            raise UserError("an int8 reader calibrates on training drawings: none were given")
        crops = calibration_crops(calibration_drawings, classes, input_px)
        calibration, sample = crops[: len(crops) * 3 // 4], crops[len(crops) * 3 // 4 :]
        source["calibration_crops"] = len(calibration)
    diff = export_reader(net, out, sample, source, classes, input_px, weights, calibration)
    return {"members": members, "parity_max_diff": diff, "bytes": out.stat().st_size}


def calibration_crops(
    train: list[Drawing], classes: tuple[str, ...], input_px: int, scenes: int = CALIBRATION_SCENES
) -> torch.Tensor:
    """Crops of `scenes` scenes of training-split drawings, as a reader of `classes` learns from
    them (real doodles as "other", real obscene doodles as censored), boxes jittered as in
    training; the same crops on every call."""
    drawings = reader_drawings(train, classes, generated_censored=False)
    composer = SceneComposer.from_drawings(drawings, SceneConfig())
    rng = np.random.default_rng(VALIDATION_SEED)
    jitter = ReaderTrainConfig().box_jitter
    crops, _ = reader_crops(composer, scenes, rng, jitter, "calibration crops", classes, input_px)
    return crops


def _provenance(summary: dict[str, Any]) -> dict[str, Any]:
    """What a served reader records of its training run."""
    return {k: summary[k] for k in ("commit", "val_accuracy", "train_crops")}


def parity_crops(count: int, input_px: int, seed: int = 0) -> torch.Tensor:
    """Reader inputs without stroke data, for parity checks: random strokes on white, each
    cropped as served (`reader_crop` of its ink's box)."""
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(count):
        canvas = np.full((96, 96), 255, np.uint8)
        walks = [np.cumsum(rng.normal(0, 5, (16, 2)), axis=0) + 48 for _ in range(int(rng.integers(1, 4)))]
        draw_strokes(canvas, [walk.astype(np.float32) for walk in walks], float(rng.uniform(2, 8)))
        box = ink_box(canvas)
        crops.append(reader_crop(canvas, (0, 0, 96, 96) if box is None else box, input_px))
    return torch.from_numpy(np.stack(crops)[:, None])
