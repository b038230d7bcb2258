"""Pictures for people: training curves, PR curves, confusion matrices (training side only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from .classes import CLASS_NAMES


def plot_training_curves(metrics_path: Path, out: Path) -> None:
    train: list[dict[str, float]] = []
    val: list[dict[str, float]] = []
    for line in Path(metrics_path).read_text().splitlines():
        rec = json.loads(line)
        (train if rec["kind"] == "train" else val).append(rec)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        x = [r["images_seen"] / 1000 for r in train]
        for key in ("loss", "box", "obj", "cls"):
            ax1.plot(x, [r[key] for r in train], label=key)
        ax1.set_yscale("log")
        ax1.set_xlabel("training images (thousands)")
        ax1.set_title("training loss")
        ax1.legend()
    if val:
        x = [r["images_seen"] / 1000 for r in val]
        ax2.plot(x, [r["map50"] for r in val], marker="o", label="mAP50")
        ax2.plot(x, [r["map50_95"] for r in val], marker="o", label="mAP50-95")
        ax2.set_ylim(0, 1)
        ax2.set_xlabel("training images (thousands)")
        ax2.set_title("validation (held-out writers)")
        ax2.grid(alpha=0.3)
        ax2.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_pr_curves(recall: np.ndarray, precision: np.ndarray, out: Path, ap50: dict[str, float]) -> None:
    """precision: (R, K) from COCOeval at IoU 0.5 (-1 where undefined)."""
    fig, ax = plt.subplots(figsize=(7, 6))
    cmap = plt.get_cmap("tab20")
    for k, name in enumerate(CLASS_NAMES):
        if name not in ap50:
            continue
        p = precision[:, k]
        valid = p > -1
        ax.plot(recall[valid], p[valid], color=cmap(k), label=f"{name} (AP50 {ap50[name]:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    _save(fig, ax, out, "Precision-recall at IoU 0.5", legend="lower left")


def plot_confusion(matrix: np.ndarray, out: Path, conf: float) -> None:
    labels = [*CLASS_NAMES, "none"]
    fig, ax = plt.subplots(figsize=(8, 7))
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    ax.set_xticks(range(len(labels)), labels, rotation=45)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted ('none' = missed)")
    ax.set_ylabel("true ('none' = false positive)")
    ax.set_title(f"Confusion matrix at score >= {conf:.2f}, IoU >= 0.5")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_censored_sweep(sweep: list[dict[str, float]], chosen: float, out: Path) -> None:
    """Share of real obscene doodles and of unseen ordinary doodles pixelated per threshold."""
    t = [row["threshold"] for row in sweep]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(
        t, [row["obscene_pixelated"] for row in sweep], marker="o", label="real obscene doodles (want high)"
    )
    ax.plot(
        t,
        [row["ordinary_pixelated"] for row in sweep],
        marker="o",
        label="unseen ordinary doodles (want low)",
    )
    ax.axvline(chosen, color="grey", linestyle="--", label=f"app threshold {chosen:.2f}")
    ax.axhline(0.02, color="tab:orange", linestyle=":", linewidth=1)
    ax.axhline(0.95, color="tab:blue", linestyle=":", linewidth=1)
    ax.set_xlabel("censored score threshold")
    ax.set_ylabel("share of canvases pixelated")
    _save(fig, ax, out, "Censored threshold: held-out real vs ordinary doodles", legend="center right")


def _save(fig: Any, ax: Any, out: Path, title: str, legend: str) -> None:
    """A shared-scale (0-1) line chart's finish: grid, legend, title, file."""
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc=legend)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
