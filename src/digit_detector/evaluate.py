"""`digit-detector evaluate`: score any YOLO-format directory with COCO metrics, per-class AP,
recall at the app's threshold, PR curves, a confusion matrix and a JSON report.

mAP and the PR curves are computed on the COCO candidates (`predict(all_candidates=True)`);
the figures at a threshold (micro-F1 by threshold, recall, the confusion matrix, the failure
sheet) on what the app shows with the slider at that threshold (`predict(conf=t)`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .classes import CENSORED_ID, CLASS_NAMES
from .data.yolo_format import read_dataset
from .image_io import load_image
from .inference import Detector
from .metrics import (
    ImagePrediction,
    ImageTruth,
    coco_evaluate,
    match_at_threshold,
    recall_per_class,
)
from .preprocess import to_gray_on_white

F1_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.05, 0.951, 0.05), 2))


@dataclass
class EvalOutput:
    report: dict[str, Any]
    report_path: Path

    def table(self) -> str:
        r = self.report
        recall_head = f"recall@{r['threshold']:.2f}"
        lines = [f"{'class':>9} {'AP50':>7} {'AP50-95':>8} {recall_head:>12}"]
        for name in CLASS_NAMES:
            if name in r["ap50"]:
                lines.append(
                    f"{name:>9} {r['ap50'][name]:7.4f} {r['ap50_95'][name]:8.4f} "
                    f"{r['recall_at_threshold'].get(name, float('nan')):12.4f}"
                )
        lines.append(f"{'all':>9} {r['map50']:7.4f} {r['map50_95']:8.4f}")
        return "\n".join(lines)


def f1_by_threshold(
    truths: list[ImageTruth], shown_at: dict[float, list[ImagePrediction]]
) -> dict[float, float]:
    """Micro-F1 over all classes (correct class, IoU >= 0.5) of what is shown at each threshold
    (`shown_at`: each image's decisions at it)."""
    curve: dict[float, float] = {}
    for t, shown in shown_at.items():
        m = match_at_threshold(truths, shown, 0.0)
        n = m.shape[0] - 1
        tp = float(np.trace(m[:n, :n]))
        fp = float(m[:, :n].sum() - tp)
        fn = float(m[:n].sum() - tp)
        curve[t] = 2 * tp / max(1.0, 2 * tp + fp + fn)
    return curve


def image_errors(truth: ImageTruth, shown: ImagePrediction) -> int:
    """Misses + false positives + wrong classes in one image's decisions."""
    m = match_at_threshold([truth], [shown], 0.0)
    n = m.shape[0] - 1
    return int(m.sum() - np.trace(m[:n, :n]))


def failure_montage(
    paths: list[Path],
    truths: list[ImageTruth],
    preds: list[ImagePrediction],
    out: Path,
    count: int = 8,
    tile: int = 300,
) -> list[dict[str, Any]]:
    """The images with the most errors, predictions drawn, true labels written underneath."""
    from PIL import Image, ImageDraw

    from .classes import Detection
    from .render import annotate

    errors = [image_errors(t, p) for t, p in zip(truths, preds, strict=True)]
    worst = [i for i in np.argsort(errors, kind="stable")[::-1][:count] if errors[i] > 0]
    cols = 4
    rows = max(1, (len(worst) + cols - 1) // cols)
    sheet = Image.new("RGB", (cols * tile, rows * (tile + 24)), (235, 235, 235))
    listed = []
    for k, i in enumerate(worst):
        p = preds[i]
        dets = [
            Detection(
                CLASS_NAMES[int(c)], int(c), float(s), (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
            )
            for b, s, c in zip(p.boxes, p.scores, p.class_ids, strict=True)
        ]
        img = annotate(to_gray_on_white(load_image(paths[i], formats=None)), dets)
        img.thumbnail((tile - 8, tile - 8))
        x, y = (k % cols) * tile, (k // cols) * (tile + 24)
        sheet.paste(img, (x + (tile - img.width) // 2, y + 4))
        truth = " ".join(CLASS_NAMES[int(c)] for c in truths[i].class_ids[np.argsort(truths[i].boxes[:, 0])])
        ImageDraw.Draw(sheet).text(
            (x + 6, y + tile + 4), f"truth: {truth or '(nothing)'}"[:48], fill=(0, 0, 0)
        )
        listed.append({"image": str(paths[i]), "errors": errors[i], "truth": truth})
    sheet.save(out)
    return listed


def evaluate_dataset(
    detector: Detector,
    data_dir: str | Path,
    out_dir: str | Path,
    threshold: float | None = None,
    progress: bool = True,
    plots: bool = True,
) -> EvalOutput:
    items = read_dataset(data_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truths: list[ImageTruth] = []
    candidates: list[ImagePrediction] = []
    thresholds = sorted({*F1_THRESHOLDS, *(() if threshold is None else (threshold,))})
    shown_at: dict[float, list[ImagePrediction]] = {t: [] for t in thresholds}
    for item in tqdm(items, desc="evaluate", unit="img", disable=not progress):
        inference = detector.infer(to_gray_on_white(load_image(item.image_path, formats=None)))
        truths.append(ImageTruth(item.boxes, item.class_ids))
        # COCO convention at EVAL_CONF, NMS at the detector's IoU (0.45; training validation: EVAL_IOU)
        candidates.append(ImagePrediction.from_detections(detector.decide(inference, all_candidates=True)))
        for t in thresholds:  # the model ran once; each decision is cheap
            shown_at[t].append(ImagePrediction.from_detections(detector.decide(inference, conf=t)))
    coco = coco_evaluate(truths, candidates)
    f1_curve = f1_by_threshold(truths, {t: shown_at[t] for t in F1_THRESHOLDS})
    f1_threshold = max(f1_curve, key=lambda t: f1_curve[t])
    used = f1_threshold if threshold is None else threshold
    matrix = match_at_threshold(truths, shown_at[used], 0.0)
    recall = recall_per_class(matrix)
    report = {
        "data": str(data_dir),
        "images": len(items),
        "objects": int(sum(len(t.boxes) for t in truths)),
        "weights": str(detector.weights),
        "reader": str(detector.reader.path) if detector.reader is not None else None,
        "backend": detector.backend_name,
        "map50": coco.map50,
        "map50_95": coco.map50_95,
        "ap50": coco.ap50_per_class,
        "ap50_95": coco.ap_per_class,
        "best_f1_threshold": f1_threshold,
        "best_f1": f1_curve[f1_threshold],
        "f1_by_threshold": f1_curve,
        "threshold": used,
        "at_threshold": "what the app shows with the slider at the threshold",
        "recall_at_threshold": recall,
        "censored_recall_at_threshold": recall.get(CLASS_NAMES[CENSORED_ID]),
        "confusion_matrix": {
            "labels": [*CLASS_NAMES, "none"],
            "rows_true_cols_pred": matrix.tolist(),
        },
    }
    if plots:
        from .plots import plot_confusion, plot_pr_curves

        plot_pr_curves(coco.recall_points, coco.pr_precision, out / "pr_curves.png", coco.ap50_per_class)
        plot_confusion(matrix, out / "confusion_matrix.png", used)
        failures = failure_montage(
            [i.image_path for i in items], truths, shown_at[used], out / "failure_cases.png"
        )
        report["plots"] = [str(out / "pr_curves.png"), str(out / "confusion_matrix.png")]
        report["failure_cases"] = failures
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2))
    return EvalOutput(report, path)
