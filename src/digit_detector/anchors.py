"""Anchor fitting: k-means on training-box sizes at the model's input resolution, with
1 - IoU (boxes aligned at a corner) as the distance, as in YOLOv2/v3."""

from __future__ import annotations

import numpy as np


def wh_iou(wh: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """IoU of (N, 2) and (K, 2) sizes aligned at the same corner -> (N, K)."""
    inter = np.minimum(wh[:, None, 0], centroids[None, :, 0]) * np.minimum(
        wh[:, None, 1], centroids[None, :, 1]
    )
    union = wh[:, None].prod(axis=2) + centroids[None].prod(axis=2) - inter
    return inter / union


def kmeans_iou(wh: np.ndarray, k: int, seed: int = 0, iterations: int = 300) -> np.ndarray:
    """k anchors (K, 2), sorted by area; each centroid is its cluster's median (robust)."""
    wh = np.asarray(wh, dtype=np.float64)
    if len(wh) < k:
        raise ValueError(f"need at least {k} boxes to fit {k} anchors, got {len(wh)}")
    rng = np.random.default_rng(seed)
    # k-means++ seeding with the 1 - IoU distance: each new centroid is drawn far from the others.
    centroids = wh[[int(rng.integers(len(wh)))]]
    while len(centroids) < k:
        far = (1 - wh_iou(wh, centroids).max(axis=1)) ** 2
        pick = int(rng.choice(len(wh), p=far / far.sum())) if far.sum() > 0 else int(rng.integers(len(wh)))
        centroids = np.vstack([centroids, wh[pick]])
    assign = np.full(len(wh), -1)
    for _ in range(iterations):
        new = wh_iou(wh, centroids).argmax(axis=1)
        if np.array_equal(new, assign):
            break
        assign = new
        for j in range(k):
            members = wh[assign == j]
            if len(members):
                centroids[j] = np.median(members, axis=0)
    return centroids[np.argsort(centroids.prod(axis=1))]


def mean_best_iou(wh: np.ndarray, anchors: np.ndarray) -> float:
    return float(
        wh_iou(np.asarray(wh, dtype=np.float64), np.asarray(anchors, dtype=np.float64)).max(axis=1).mean()
    )
