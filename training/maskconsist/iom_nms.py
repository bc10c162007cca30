"""IoM-NMS (METHOD.md §7): de-duplicate masks by intersection over the smaller mask."""

from __future__ import annotations

import numpy as np

from training.maskconsist.masks import intersections


def iom_nms(masks: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Keep masks in score order, dropping those that mostly overlap a kept one.

    A mask m is dropped when ``|m ∩ k| / min(|m|, |k|) > threshold`` for a
    kept mask k. Unlike IoU, intersection over the minimum also removes a
    partial mask lying inside a fuller one (a typical pseudo-label fragment).

    Parameters
    ----------
    masks : (N, H, W) bool
    scores : (N,) float
    threshold : float
        In [0, 1]; the paper's starting value is 0.5.

    Returns
    -------
    keep : (K,) int64
        Indices of the kept masks, highest score first (ties: lower index
        first). Empty masks are kept only if nothing overlaps them (they have
        no area to overlap with).
    """
    masks = np.asarray(masks, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if masks.ndim != 3 or len(masks) != len(scores):
        raise ValueError(f"iom_nms: need (N, H, W) masks and (N,) scores, got {masks.shape} and {scores.shape}")
    if not 0.0 <= threshold <= 1.0 or not np.isfinite(threshold):
        raise ValueError(f"iom_nms: threshold must be in [0, 1], got {threshold}")
    if np.isnan(scores).any():
        raise ValueError("iom_nms: scores contain NaN")
    order = np.argsort(-scores, kind="stable")
    inter = intersections(masks, masks)
    area = np.diag(inter)
    keep: list[int] = []
    for i in order:
        if keep:
            kept = np.asarray(keep)
            smaller = np.minimum(area[i], area[kept])
            iom = np.where(smaller > 0, inter[i, kept] / np.maximum(smaller, 1), 0.0)
            if (iom > threshold).any():
                continue
        keep.append(int(i))
    return np.asarray(keep, dtype=np.int64)
