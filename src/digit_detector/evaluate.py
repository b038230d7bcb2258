"""`digit-detector evaluate`: score any YOLO-format directory with COCO metrics, per-class AP,
recall at the app's threshold, PR curves, a confusion matrix and a JSON report."""

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


def best_f1_threshold(truths: list[ImageTruth], preds: list[ImagePrediction]) -> tuple[float, float]:
    """Score threshold maximising micro-F1 over all classes (correct class, IoU >= 0.5)."""
    best = (0.25, -1.0)
    for t in np.round(np.arange(0.05, 0.951, 0.05), 2):
        m = match_at_threshold(truths, preds, float(t))
        n = m.shape[0] - 1
        tp = float(np.trace(m[:n, :n]))
        fp = float(m[:, :n].sum() - tp)
        fn = float(m[:n].sum() - tp)
        f1 = 2 * tp / max(1.0, 2 * tp + fp + fn)
        if f1 > best[1]:
            best = (float(t), f1)
    return best


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
    truths, preds = [], []
    for item in tqdm(items, desc="evaluate", unit="img", disable=not progress):
        image = load_image(item.image_path, formats=None)
        dets = detector.predict(image, conf=0.001, iou=0.6)
        truths.append(ImageTruth(item.boxes, item.class_ids))
        preds.append(
            ImagePrediction(
                np.array([d.box for d in dets], dtype=np.float64).reshape(-1, 4),
                np.array([d.score for d in dets], dtype=np.float64),
                np.array([d.class_id for d in dets], dtype=np.int64),
            )
        )
    coco = coco_evaluate(truths, preds)
    f1_threshold, f1 = best_f1_threshold(truths, preds)
    used = f1_threshold if threshold is None else threshold
    matrix = match_at_threshold(truths, preds, used)
    recall = recall_per_class(matrix)
    report = {
        "data": str(data_dir),
        "images": len(items),
        "objects": int(sum(len(t.boxes) for t in truths)),
        "weights": str(detector.weights),
        "backend": detector.backend_name,
        "map50": coco.map50,
        "map50_95": coco.map50_95,
        "ap50": coco.ap50_per_class,
        "ap50_95": coco.ap_per_class,
        "best_f1_threshold": f1_threshold,
        "best_f1": f1,
        "threshold": used,
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
        report["plots"] = [str(out / "pr_curves.png"), str(out / "confusion_matrix.png")]
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2))
    return EvalOutput(report, path)
