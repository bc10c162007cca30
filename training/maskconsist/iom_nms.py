"""IoM-NMS (METHOD.md §7): de-duplicate masks by intersection over the smaller mask.

:func:`iom_nms` keeps masks in score order, for masks whose scores are
comparable (one detector's predictions). :func:`iom_nms_fuller` is the order
for MaskConsist's targets, whose masks come from different sources (flowIRN
pseudo-labels scored 1.0 for a frame's best, detector scores for transferred
masks): of two masks that mostly overlap it keeps the larger, and uses scores
only to order masks of one source.
"""

from __future__ import annotations

import numpy as np

from training.maskconsist.masks import intersections


def _check(masks: np.ndarray, threshold: float, n: int, what: str) -> np.ndarray:
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3 or len(masks) != n:
        raise ValueError(f"iom_nms: need (N, H, W) masks and (N,) {what}, got {masks.shape} and {n} {what}")
    if not 0.0 <= threshold <= 1.0 or not np.isfinite(threshold):
        raise ValueError(f"iom_nms: threshold must be in [0, 1], got {threshold}")
    return masks


def iom_suppress(masks: np.ndarray, order: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Visit masks in ``order``, dropping each that mostly overlaps an already kept one.

    A mask m is dropped when ``|m ∩ k| / min(|m|, |k|) > threshold`` for a
    kept mask k. IoM is symmetric, so ``order`` only decides which mask of an
    overlapping group survives: the first visited.

    Parameters
    ----------
    masks : (N, H, W) bool
    order : (N,) int
        A permutation of ``range(N)``, the mask kept first leading.
    threshold : float
        In [0, 1]; the paper's starting value is 0.5.

    Returns
    -------
    keep : (K,) int64
        Indices of the kept masks, in ``order``. An empty mask is kept (it
        has no area to overlap with).
    """
    order = np.asarray(order, dtype=np.int64).reshape(-1)
    masks = _check(masks, threshold, len(order), "order")
    if sorted(order.tolist()) != list(range(len(order))):
        raise ValueError(f"iom_nms: order must be a permutation of 0..{len(order) - 1}")
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


def iom_nms(masks: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Keep masks in score order, dropping those that mostly overlap a kept one.

    A mask m is dropped when ``|m ∩ k| / min(|m|, |k|) > threshold`` for a
    kept mask k. Unlike IoU, intersection over the minimum also removes a
    partial mask lying inside a fuller one (a typical pseudo-label fragment).
    Only meaningful when the scores are comparable (one detector's); see
    :func:`iom_nms_fuller` for masks of different sources.

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
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    _check(masks, threshold, len(scores), "scores")
    if np.isnan(scores).any():
        raise ValueError("iom_nms: scores contain NaN")
    return iom_suppress(masks, np.argsort(-scores, kind="stable"), threshold)


def fuller_first(masks: np.ndarray, sources: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The order in which :func:`iom_nms_fuller` keeps masks: larger area first.

    Masks of equal area are ordered by source id (lower first), then, within
    a source, by score (higher first), then by index. Scores of different
    sources are never compared.

    Parameters
    ----------
    masks : (N, H, W) bool
    sources : (N,) int
        Where each mask comes from (MaskConsist: 0 for a transferred mask, 1
        for a pseudo-label).
    scores : (N,) float
        Comparable only within a source.

    Returns
    -------
    order : (N,) int64, a permutation of ``range(N)``.
    """
    masks = np.asarray(masks, dtype=bool)
    sources = np.asarray(sources, dtype=np.int64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if masks.ndim != 3 or not len(masks) == len(sources) == len(scores):
        raise ValueError(
            f"fuller_first: need (N, H, W) masks, (N,) sources and (N,) scores, got {masks.shape}, "
            f"{sources.shape} and {scores.shape}"
        )
    if np.isnan(scores).any():
        raise ValueError("fuller_first: scores contain NaN")
    area = masks.reshape(len(masks), -1).sum(axis=1)
    return np.lexsort((np.arange(len(masks)), -scores, sources, -area)).astype(np.int64)


def duplicates_of(masks: np.ndarray, sources: np.ndarray, prefer: int, threshold: float = 0.5) -> np.ndarray:
    """Masks of other sources that duplicate a mask of source ``prefer``: each mostly inside the other.

    Two masks a, b are duplicates when ``|a ∩ b| / max(|a|, |b|) > threshold``
    (then IoM > threshold as well): they cover the same extent, up to the
    flow's misalignment, rather than one being a fragment of the other.

    Parameters
    ----------
    masks : (N, H, W) bool
    sources : (N,) int
    prefer : int
        The source whose masks are kept over their duplicates.
    threshold : float
        In [0, 1].

    Returns
    -------
    (N,) bool
        True for a mask not of source ``prefer`` that duplicates one of it.
    """
    sources = np.asarray(sources, dtype=np.int64).reshape(-1)
    masks = _check(masks, threshold, len(sources), "sources")
    inter = intersections(masks, masks)
    area = np.diag(inter)
    larger = np.maximum(area[:, None], area[None, :])
    same_extent = np.where(larger > 0, inter / np.maximum(larger, 1), 0.0) > threshold
    mine = sources == prefer
    return ~mine & (same_extent & mine[None, :]).any(axis=1)


def iom_nms_fuller(masks: np.ndarray, sources: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """IoM-NMS for masks of different sources: of two that mostly overlap, keep the fuller one.

    When ``|a ∩ b| / min(|a|, |b|) > threshold`` the smaller mask lies mostly
    inside the larger, so the larger is the one that covers the object (a
    transferred repair over a partial pseudo-label, or a pseudo-label over a
    smaller transferred fragment). Two near-identical masks (true
    duplicates) still leave one. Order: :func:`fuller_first`.

    Parameters
    ----------
    masks : (N, H, W) bool
    sources : (N,) int
        Source id of each mask; scores are compared only within one source.
    scores : (N,) float
    threshold : float
        In [0, 1].

    Returns
    -------
    keep : (K,) int64
        Indices of the kept masks, largest first.
    """
    return iom_suppress(masks, fuller_first(masks, sources, scores), threshold)
