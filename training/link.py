"""Linking per-frame instances into tubes across a video (METHOD.md §8).

Pseudo-labels and per-frame predictions give every detection its own id. A
video instance is a tube: the same id on the same object in every frame it is
in. :func:`link_instances` builds the tubes frame pair by frame pair: the
detections of frame t, carried to frame t+1 by the optical flow, are matched
one to one with those of frame t+1 of the same class (Hungarian algorithm on
mask IoU); a matched detection continues its tube, any other starts a new one.
A tube's score is the mean of its detections' scores.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from scipy.optimize import linear_sum_assignment

from training.export import LabelVolume
from training.flow.storage import VideoFlow
from training.flow.warp import warp

IOU_THRESHOLD = 0.3


def mask_ious(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every instance of one label map with every instance of another.

    Parameters
    ----------
    a, b : (H, W) int
        Label maps (0 is background).

    Returns
    -------
    ids_a : (Na,) int, the ids present in ``a``
    ids_b : (Nb,) int, the ids present in ``b``
    iou : (Na, Nb) float64
    """
    ids_a, area_a = np.unique(a[a > 0], return_counts=True)
    ids_b, area_b = np.unique(b[b > 0], return_counts=True)
    iou = np.zeros((len(ids_a), len(ids_b)))
    both = (a > 0) & (b > 0)
    if both.any():
        pairs, inter = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
        rows, cols = np.searchsorted(ids_a, pairs[0]), np.searchsorted(ids_b, pairs[1])
        iou[rows, cols] = inter / (area_a[rows] + area_b[cols] - inter)
    return ids_a, ids_b, iou


def match_instances(
    ids_a: np.ndarray,
    ids_b: np.ndarray,
    iou: np.ndarray,
    categories: dict[int, int],
    iou_threshold: float = IOU_THRESHOLD,
) -> dict[int, int]:
    """One-to-one matches of same-class instances with the largest total IoU (Hungarian algorithm).

    Parameters
    ----------
    ids_a, ids_b, iou
        From :func:`mask_ious`.
    categories : dict
        Instance id → category id, for the ids of both maps.
    iou_threshold : float
        Pairs below it are not matched.

    Returns
    -------
    matches : dict, id in ``b`` → id in ``a``.
    """
    matches: dict[int, int] = {}
    cat_a = np.array([categories[int(i)] for i in ids_a])
    cat_b = np.array([categories[int(i)] for i in ids_b])
    for c in np.intersect1d(cat_a, cat_b):
        rows, cols = np.flatnonzero(cat_a == c), np.flatnonzero(cat_b == c)
        sub = iou[np.ix_(rows, cols)]
        for r, k in zip(*linear_sum_assignment(sub, maximize=True), strict=True):
            if sub[r, k] >= iou_threshold:
                matches[int(ids_b[cols[k]])] = int(ids_a[rows[r]])
    return matches


def link_instances(
    volume: LabelVolume, flow: VideoFlow | None = None, iou_threshold: float = IOU_THRESHOLD
) -> LabelVolume:
    """Relabel a video's per-frame detections so that one object keeps one id across frames.

    Each (frame, id) with pixels is a detection. For every consecutive pair
    (t, t+1), the detections of frame t are carried to frame t+1 (warped with
    the backward flow of t+1 when ``flow`` is given, nearest-neighbour, leaving
    the frame where the flow points outside it) and matched to those of t+1
    by :func:`match_instances`. Detections are linked only between consecutive
    frames: an object that leaves and one that enters later get different ids.

    Parameters
    ----------
    volume : LabelVolume
        (T, H, W) labels with a category and score per id.
    flow : VideoFlow, optional
        The video's flow (T frames of H×W); without it masks are compared in place.
    iou_threshold : float
        Least IoU for two detections to be the same object.

    Returns
    -------
    LabelVolume
        (T, H, W) int32 tube ids 1..N numbered in order of first appearance;
        each tube's category is its detections' and its score their mean score.
        Ids without pixels are dropped.

    Raises
    ------
    ValueError
        A flow whose frame count or size differs from the labels.
    """
    labels = volume.labels
    t_len, h, w = labels.shape
    if flow is not None and (flow.n_frames != t_len or tuple(flow.data.shape[1:3]) != (h, w)):
        raise ValueError(
            f"flow of {flow.n_frames} frames of {flow.data.shape[2]}x{flow.data.shape[1]} "
            f"does not fit labels of {t_len} frames of {w}x{h}"
        )
    out = np.zeros_like(labels, dtype=np.int32)
    tube_category: dict[int, int] = {}
    tube_scores: dict[int, list[float]] = defaultdict(list)
    previous_tubes: dict[int, int] = {}  # detection id in frame t-1 → its tube
    for t in range(t_len):
        current = labels[t]
        if t > 0 and previous_tubes:
            carried = labels[t - 1] if flow is None else warp(labels[t - 1], flow.backward(t - 1), "nearest", fill=0)
            ids_a, ids_b, iou = mask_ious(carried, current)
            matches = match_instances(ids_a, ids_b, iou, volume.categories, iou_threshold)
        else:
            ids_b, matches = np.unique(current[current > 0]), {}
        tubes: dict[int, int] = {}
        for det in (int(i) for i in ids_b):
            if det in matches and matches[det] in previous_tubes:
                tube = previous_tubes[matches[det]]
            else:
                tube = len(tube_category) + 1
                tube_category[tube] = volume.categories[det]
            tubes[det] = tube
            tube_scores[tube].append(volume.scores[det])
        if tubes:
            lookup = np.zeros(int(current.max()) + 1, np.int32)
            lookup[list(tubes)] = list(tubes.values())
            out[t] = lookup[current]
        previous_tubes = tubes
    scores = {k: float(np.mean(v)) for k, v in tube_scores.items()}
    return LabelVolume(out, tube_category, scores, dict(volume.video))
