"""MaskConsist disagreement: per frame, how much the pseudo-labels and the trained detector disagree.

MaskConsist (METHOD.md §7) trusts a pseudo-label where the detector, trained
on every frame, predicts the same object and where predictions stay
consistent from frame to frame along the flow. A frame where they part ways
is likely to hold a wrong pseudo-label, so the review queue of the
Corrections dock visits it early. Two signals, each a (T,) float in [0, 1]:

:func:`frame_disagreement`
    Pseudo-labels against the detector's predictions (``vis-ws predict``
    results as a label volume): the mean over the instances of both sides of
    one minus the best same-class IoU with the other side (1 for an instance
    the other side misses entirely).
:func:`match_disagreement`
    The inter-frame matches MaskConsist recorded while training
    (``RUN/matches/<video>.json``, see :func:`training.maskconsist.targets.summarize_pair`):
    per frame pair (t, t+δ), one minus the summed IoU of the matches over the
    larger of the two sets of masks, averaged over the pairs that end in t+δ.

:func:`video_disagreement` takes the larger of the two in every frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _frame_ious(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every instance of one (H, W) label frame with every instance of another.

    Returns
    -------
    ids_a : (N,) int64, non-zero ids of ``a``
    ids_b : (M,) int64, non-zero ids of ``b``
    iou : (N, M) float64
    """
    a = np.asarray(a, np.int64).ravel()
    b = np.asarray(b, np.int64).ravel()
    ids_a = np.unique(a[a != 0])
    ids_b = np.unique(b[b != 0])
    if not ids_a.size or not ids_b.size:
        return ids_a, ids_b, np.zeros((ids_a.size, ids_b.size))
    ra = np.searchsorted(ids_a, a)  # row of each pixel's id in ``a`` (garbage where a == 0, masked below)
    rb = np.searchsorted(ids_b, b)
    both = (a != 0) & (b != 0)
    inter = np.zeros((ids_a.size, ids_b.size), np.int64)
    np.add.at(inter, (ra[both], rb[both]), 1)
    area_a = np.bincount(ra[a != 0], minlength=ids_a.size)
    area_b = np.bincount(rb[b != 0], minlength=ids_b.size)
    union = area_a[:, None] + area_b[None, :] - inter
    return ids_a, ids_b, inter / np.maximum(union, 1)


def frame_disagreement(
    pseudo: np.ndarray,
    predictions: np.ndarray,
    pseudo_classes: Mapping[int, int] | None = None,
    prediction_classes: Mapping[int, int] | None = None,
    prediction_scores: Mapping[int, float] | None = None,
    score_threshold: float = 0.5,
) -> np.ndarray:
    """How much each frame's pseudo-labels disagree with the detector's predictions.

    In frame t, every pseudo-label instance counts ``1 - max IoU`` with the
    predictions of its class in t, and every prediction ``1 - max IoU`` with the
    pseudo-labels of its class (1 when the other side has none); the frame's
    value is the mean over both sides' instances, 0 for a frame where neither
    has any. A missed object, a spurious one, a merge or a split all raise it.

    Parameters
    ----------
    pseudo : (T, H, W) int
        Pseudo-label instance ids (0: background).
    predictions : (T, H, W) int
        Predicted instance ids, e.g. tubes painted into a volume
        (:func:`training.export.ytvis_to_labels`).
    pseudo_classes, prediction_classes : dict id → category id, optional
        With both, only same-class overlaps count (as MaskConsist's matching);
        ids missing from a dict are compatible with every class.
    prediction_scores : dict id → score, optional
        Predictions below ``score_threshold`` are left out (as in
        MaskConsist's matching); ids without a score are kept.
    score_threshold : float

    Returns
    -------
    (T,) float64 in [0, 1]
    """
    pseudo = np.asarray(pseudo)
    predictions = np.asarray(predictions)
    if pseudo.ndim != 3 or pseudo.shape != predictions.shape:
        raise ValueError(f"pseudo-labels {pseudo.shape} and predictions {predictions.shape} must be equal (T, H, W)")
    dropped = [int(k) for k, s in (prediction_scores or {}).items() if float(s) < score_threshold]
    out = np.zeros(pseudo.shape[0], np.float64)
    for t in range(pseudo.shape[0]):
        pred = np.where(np.isin(predictions[t], dropped), 0, predictions[t]) if dropped else predictions[t]
        ids_p, ids_q, iou = _frame_ious(pseudo[t], pred)
        if pseudo_classes is not None and prediction_classes is not None and iou.size:
            cp = np.array([pseudo_classes.get(int(k), -1) for k in ids_p])
            cq = np.array([prediction_classes.get(int(k), -1) for k in ids_q])
            iou = iou * ((cp[:, None] == cq[None, :]) | (cp[:, None] == -1) | (cq[None, :] == -1))
        n = ids_p.size + ids_q.size
        if n == 0:
            continue
        best_p = iou.max(axis=1) if ids_q.size else np.zeros(ids_p.size)
        best_q = iou.max(axis=0) if ids_p.size else np.zeros(ids_q.size)
        out[t] = float((1.0 - best_p).sum() + (1.0 - best_q).sum()) / n
    return out


def match_disagreement(pairs: Sequence[Mapping[str, Any]], n_frames: int) -> np.ndarray:
    """How inconsistent MaskConsist's inter-frame matches ending in each frame are.

    For a pair (t, t+δ) with ``a`` predictions of frame t (warped), ``b``
    predictions of frame t+δ and matches of IoU ``iou_k``:
    ``1 - Σ iou_k / max(a, b)``, 0 when both are empty; so an unmatched
    prediction on either side counts 1 and a match counts what its IoU misses.
    ``a`` and ``b`` count the plain predictions only (``n_pred_t``,
    ``n_pred_t2``): the intra-frame unions MaskConsist adds to both sides are
    candidates, not objects, and counting them made every frame of a video
    read as disagreeing (0.8-1.0 with two or three objects). A frame's value is
    the mean over the pairs that end in it, 0 where none does.

    Parameters
    ----------
    pairs : list of dict
        The ``pairs`` of a matches JSON: ``t2``, ``matches`` [[i, j, iou]],
        ``warped_t`` and ``expanded_t2`` with their ``boxes``.
    n_frames : int
        T, the video's frame count; pairs outside it are ignored.

    Returns
    -------
    (T,) float64 in [0, 1]

    Raises
    ------
    ValueError
        A pair without those fields.
    """
    total = np.zeros(n_frames, np.float64)
    count = np.zeros(n_frames, np.int64)
    for p in pairs:
        try:
            t2 = int(p["t2"])
            a = int(p.get("n_pred_t", len(p["warped_t"]["boxes"])))
            b = int(p.get("n_pred_t2", len(p["expanded_t2"]["boxes"])))
            matched = sum(float(m[2]) for m in p["matches"])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed MaskConsist pair ({type(exc).__name__}: {exc})") from None
        if not 0 <= t2 < n_frames:
            continue
        total[t2] += 1.0 - min(matched / max(a, b), 1.0) if max(a, b) else 0.0
        count[t2] += 1
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def video_disagreement(*terms: np.ndarray | None) -> np.ndarray | None:
    """The frame-wise maximum of the given (T,) disagreements (None ones skipped); None when none is given."""
    given = [np.asarray(t, np.float64).reshape(-1) for t in terms if t is not None]
    if not given:
        return None
    sizes = {t.size for t in given}
    if len(sizes) > 1:
        raise ValueError(f"disagreements of different lengths {sorted(sizes)}")
    return np.clip(np.maximum.reduce(given), 0.0, 1.0)
