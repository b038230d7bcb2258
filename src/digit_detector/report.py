"""`digit-detector report`: how the weights do on things people draw that training never saw.

Every group is composed from held-out drawings only (writers of the validation split, and the
Quick, Draw! categories no training file uses: `Drawing.split == "unseen"`), as full canvases,
and run through `Detector` exactly as the app runs it:
- scene groups (writer-disjoint): mAP50 per group (COCO convention) and numbers read exactly;
- `unseen_doodles`: ordinary doodles of unseen categories: how often the app pixelates one or
  reads a digit in it (`even_unseen_doodles`: the same with every category equally often, as
  one category, crayon, holds 41% of those drawings); `real_obscene`: real held-out obscene
  doodles (never the generated ones): how often the app pixelates them;
- the censored threshold sweep over those two sets, from which CENSORED_CONF is chosen.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from .boxes import box_iou
from .classes import CENSORED_ID, CLASS_NAMES, DIGIT_IDS, Detection
from .data.compose import LONE_DRAWING_SCENES, DrawingPool, Scene, SceneComposer, SceneConfig
from .data.strokes import Drawing
from .inference import Detector
from .metrics import ImagePrediction, ImageTruth, coco_evaluate
from .render import annotate, label_font, read_numbers

CAPTION_PX = 12  # failure sheet caption lines
MAX_FAILURES = 24  # per group, drawn in failures_<group>.png
LISTS = ("max_censored", "failures")  # per-canvas data, not in report.json
SINGLE_DOODLE_GROUPS = ("unseen_doodles", "even_unseen_doodles", "seen_doodles", "real_obscene")  # rates
NUMBER_GROUPS = ("numbers", "small_writing")  # numbers read exactly
THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.05, 0.951, 0.05), 2))


@dataclass(frozen=True)
class Group:
    name: str
    what: str
    config: SceneConfig
    pick: Callable[[Drawing], bool]  # which held-out drawings the group draws from
    even_categories: bool = False  # every Quick, Draw! category equally often (else by source)


def _writers(d: Drawing) -> bool:
    return d.split == "val"


def _writers_digits(d: Drawing) -> bool:
    return d.split == "val" and d.class_id in DIGIT_IDS


def _unseen_doodle(d: Drawing) -> bool:
    return d.split == "unseen"


def _seen_doodle(d: Drawing) -> bool:
    return d.split == "val" and d.category is not None


def _real_obscene(d: Drawing) -> bool:
    return d.split == "val" and d.class_id == CENSORED_ID and not d.synthetic


def _only(config: SceneConfig, kind: str) -> SceneConfig:
    return replace(config, kinds=(kind,), kind_weights=(1.0,))


def groups() -> list[Group]:
    base = SceneConfig()
    large = replace(
        base,
        canvas_sizes=((1050, 800), (1100, 600)),
        canvas_weights=(1.0, 1.0),
        large_canvas=0,
        thin_stroke_share=1.0,
        kinds=("single", "number", "scatter"),
        kind_weights=(0.4, 0.4, 0.2),
    )
    small = replace(
        base,
        canvas_sizes=((700, 300), (800, 300)),
        canvas_weights=(1.0, 1.0),
        stroke_width=(2.0, 5.0),
        kinds=("number",),
        kind_weights=(1.0,),
        number_digit_height=(25.0, 45.0),
        min_object_input_px=6.0,
    )
    lone = LONE_DRAWING_SCENES
    return [
        Group("all", "every kind of scene, as in training", base, _writers),
        Group("single", "one object per canvas", _only(base, "single"), _writers),
        Group("numbers", "multi-digit numbers, 1-2 lines", _only(base, "number"), _writers_digits),
        Group("mixed", "a number beside other drawings", _only(base, "mixed"), _writers),
        Group("large_thin", "1050x800 / 1100x600 canvases, 1-3 px strokes", large, _writers),
        Group("small_writing", "25-45 px digits on 700-800 px wide canvases", small, _writers_digits),
        Group("unseen_doodles", "one doodle of a category training never saw", lone, _unseen_doodle),
        Group(
            "even_unseen_doodles",
            "the same, every unseen category equally often",
            lone,
            _unseen_doodle,
            even_categories=True,
        ),
        Group("seen_doodles", "one doodle of a trained category, held-out drawing", lone, _seen_doodle),
        Group("real_obscene", "one real held-out obscene doodle", lone, _real_obscene),
    ]


@dataclass
class GroupResult:
    name: str
    what: str
    images: int
    map50: float | None = None
    ap50: dict[str, float] = field(default_factory=dict)
    numbers_exact: float | None = None  # share of canvases whose numbers are read exactly
    pixelated: float = 0.0  # share of canvases with a censored box shown
    read_as_digit: float = 0.0  # share of canvases without digits where a digit is shown
    double_labels: int = 0  # non-censored pairs shown on one object (IoU > 0.5)
    max_censored: list[float] = field(default_factory=list, repr=False)
    failures: list[Failure] = field(default_factory=list, repr=False)


@dataclass
class Failure:
    image: np.ndarray  # the canvas
    shown: list[Detection]  # what the app shows on it
    caption: str = ""  # e.g. what was drawn and what was read


def _truth_numbers(scene: Scene) -> list[str]:
    dets = [
        Detection(CLASS_NAMES[int(c)], int(c), 1.0, (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
        for b, c in zip(scene.boxes, scene.class_ids, strict=True)
    ]
    return read_numbers(dets)


def _double_labels(dets: Sequence[Detection]) -> int:
    shown = np.array([d.box for d in dets if d.class_id != CENSORED_ID], dtype=np.float64).reshape(-1, 4)
    if len(shown) < 2:
        return 0
    iou = box_iou(shown, shown)
    return int(np.triu(iou > 0.5, k=1).sum())


def group_composer(group: Group, pool: Sequence[Drawing]) -> SceneComposer:
    """Scenes of the group's drawings: sources weighted as in training, or (even_categories)
    every category equally often."""
    if not group.even_categories:
        return SceneComposer.from_drawings(pool, group.config)
    by_category = [replace(d, source=str(d.category)) for d in pool]
    categories = {d.source for d in by_category}
    even = DrawingPool(by_category, dict.fromkeys(categories, 1 / len(categories)))
    return SceneComposer(even, group.config)


def _failure(group: str, scene: Scene, shown: list[Detection]) -> Failure | None:
    """The canvas as a failure of its group, if it is one: a doodle wrongly pixelated or read
    as a digit, an obscene doodle not pixelated, a number misread (captioned)."""
    if group in NUMBER_GROUPS:
        drawn, read = _truth_numbers(scene), read_numbers(shown)
        return (
            None
            if read == drawn
            else Failure(scene.image, shown, f"drawn {' '.join(drawn)}\nread {' '.join(read) or 'nothing'}")
        )
    if group not in SINGLE_DOODLE_GROUPS:
        return None
    censored_shown = any(d.class_id == CENSORED_ID for d in shown)
    digit_on_doodle = group.endswith("doodles") and any(d.is_digit for d in shown)
    return (
        Failure(scene.image, shown)
        if censored_shown != (group == "real_obscene") or digit_on_doodle
        else None
    )


def run_group(
    detector: Detector, group: Group, drawings: Sequence[Drawing], count: int, seed: int
) -> GroupResult:
    pool = [d for d in drawings if group.pick(d)]
    result = GroupResult(group.name, group.what, 0)
    if not pool:
        return result
    composer = group_composer(group, pool)
    rng = np.random.default_rng(seed)
    truths, preds, exact = [], [], []
    pixelated = digit_shown = no_digit = 0
    for _ in tqdm(range(count), desc=group.name, unit="img", leave=False):
        scene = composer.compose(rng)
        inference = detector.infer(scene.image)
        shown = detector.decide(inference, censored_conf=0.01)
        censored = [d.score for d in shown if d.class_id == CENSORED_ID]
        result.max_censored.append(max(censored, default=0.0))
        shown = [d for d in shown if d.class_id != CENSORED_ID or d.score >= detector.censored_conf]
        truths.append(ImageTruth(scene.boxes, scene.class_ids))
        preds.append(ImagePrediction.from_detections(detector.decide(inference, all_candidates=True)))
        pixelated += any(d.class_id == CENSORED_ID for d in shown)
        if not any(int(c) in DIGIT_IDS for c in scene.class_ids):
            no_digit += 1
            digit_shown += any(d.is_digit for d in shown)
        failure = _failure(group.name, scene, shown)
        if group.name in NUMBER_GROUPS:
            exact.append(failure is None)
        if failure is not None and len(result.failures) < MAX_FAILURES:
            result.failures.append(failure)
        result.double_labels += _double_labels(shown)
    result.images = count
    result.pixelated = pixelated / count
    result.read_as_digit = digit_shown / no_digit if no_digit else 0.0
    if exact:
        result.numbers_exact = float(np.mean(exact))
    if any(len(t.boxes) for t in truths) and group.name not in SINGLE_DOODLE_GROUPS:
        coco = coco_evaluate(truths, preds)
        result.map50, result.ap50 = coco.map50, coco.ap50_per_class
    return result


def censored_sweep(obscene: Sequence[float], ordinary: Sequence[float]) -> list[dict[str, float]]:
    """For each threshold: the share of obscene doodles pixelated and of ordinary ones."""
    ob, od = np.asarray(obscene), np.asarray(ordinary)
    return [
        {
            "threshold": t,
            "obscene_pixelated": float((ob >= t).mean()) if len(ob) else float("nan"),
            "ordinary_pixelated": float((od >= t).mean()) if len(od) else float("nan"),
        }
        for t in THRESHOLDS
    ]


def choose_censored_threshold(sweep: Sequence[dict[str, float]]) -> dict[str, float]:
    """The threshold that separates the two sets best: the share of obscene doodles pixelated
    minus the share of ordinary ones (Youden's J); a tie goes to the higher threshold (fewer
    doodles pixelated). Where one threshold meets both goals (ordinary <= 2%, obscene >= 95%)
    it has the highest J of all, so this rule picks it when it exists."""
    return max(
        sweep, key=lambda r: (round(r["obscene_pixelated"] - r["ordinary_pixelated"], 6), r["threshold"])
    )


def generalisation_report(
    detector: Detector, drawings: Sequence[Drawing], count: int = 300, seed: int = 0, out: Path | None = None
) -> dict[str, Any]:
    start = time.perf_counter()
    results = {g.name: run_group(detector, g, drawings, count, seed + i) for i, g in enumerate(groups())}
    ordinary = results["unseen_doodles"].max_censored
    sweep = censored_sweep(results["real_obscene"].max_censored, ordinary)
    report: dict[str, Any] = {
        "weights": str(detector.weights),
        "reader": str(detector.reader.path) if detector.reader is not None else None,
        "conf": detector.conf,
        "censored_conf": detector.censored_conf,
        "images_per_group": count,
        "seed": seed,
        "groups": {k: {f: v for f, v in vars(r).items() if f not in LISTS} for k, r in results.items()},
        "censored_sweep": sweep,
        "suggested_censored_conf": choose_censored_threshold(sweep),
        "seconds": round(time.perf_counter() - start, 1),
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2))
        (out / "report.md").write_text(report_markdown(report))
        try:
            from .plots import plot_censored_sweep

            plot_censored_sweep(sweep, detector.censored_conf, out / "censored_threshold.png")
            for name in SINGLE_DOODLE_GROUPS + NUMBER_GROUPS:
                failure_sheet(results[name].failures).save(out / f"failures_{name}.png")
        except Exception as exc:  # a plot must never lose the numbers
            print(f"could not draw the censored sweep or the failure sheets: {exc}")
    return report


def failure_sheet(failures: Sequence[Failure], cols: int = 8, tile: int = 150) -> Image.Image:
    """Each failing canvas as the app shows it (boxes, labels, pixelation), in a grid, with its
    caption (if any) in lines under it, each cut to the tile's width."""
    font = label_font(CAPTION_PX)
    lines = max((len(f.caption.splitlines()) for f in failures), default=0)
    cell = (tile, tile + lines * (CAPTION_PX + 2) + (4 if lines else 0))
    rows = max(1, -(-len(failures) // cols))
    sheet = Image.new("RGB", (cols * cell[0], rows * cell[1]), (235, 235, 235))
    draw = ImageDraw.Draw(sheet)
    for k, failure in enumerate(failures):
        x, y = (k % cols) * cell[0], (k // cols) * cell[1]
        picture = annotate(failure.image, failure.shown, display_width=tile * 2)
        picture.thumbnail((tile - 6, tile - 6))
        sheet.paste(picture, (x + 3, y + 3))
        for n, line in enumerate(failure.caption.splitlines()):
            while len(line) > 1 and draw.textlength(line, font=font) > tile - 6:
                line = line[:-2] + "…"
            draw.text((x + 3, y + tile + n * (CAPTION_PX + 2)), line, fill=(0, 0, 0), font=font)
    return sheet


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def report_markdown(report: dict[str, Any]) -> str:
    reader = f"reader `{report['reader']}`" if report["reader"] else "no reader"
    lines = [
        f"Weights `{report['weights']}`, {reader}, {report['images_per_group']} canvases per group, "
        f"seed {report['seed']}; app defaults: conf {report['conf']}, censored {report['censored_conf']}.",
        "mAP50: the COCO candidates"
        + (", ranked by the detector and the reader." if report["reader"] else " of the detector alone."),
        "",
        "| group | what | mAP50 | numbers read exactly | pixelated | digit shown (no digit drawn) "
        "| double labels |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, g in report["groups"].items():
        m = "-" if g["map50"] is None else f"{g['map50']:.3f}"
        lines.append(
            f"| {name} | {g['what']} | {m} | {_pct(g['numbers_exact'])} | {_pct(g['pixelated'])} | "
            f"{_pct(g['read_as_digit']) if name.endswith('doodles') else '-'} | {g['double_labels']} |"
        )
    ap = report["groups"]["all"]["ap50"]
    lines += ["", "AP50 per class (group all): " + ", ".join(f"{k} {v:.3f}" for k, v in ap.items())]
    thin = report["groups"]["large_thin"]["ap50"]
    lines += ["AP50 per class (large_thin): " + ", ".join(f"{k} {v:.3f}" for k, v in thin.items())]
    s = report["suggested_censored_conf"]
    lines += [
        "",
        f"Censored threshold from the sweep (best separation, Youden J): {s['threshold']:.2f} "
        f"(real obscene pixelated {_pct(s['obscene_pixelated'])}, unseen ordinary doodles "
        f"{_pct(s['ordinary_pixelated'])}).",
    ]
    return "\n".join(lines) + "\n"
