"""MaskConsist's matching (METHOD.md §7): intra-frame expansion, inter-frame Hungarian matching,
temporally consistent labels, and the targets of one frame pair.

Frame pair (t, t+δ). Inputs per frame: the model's predictions and the flowIRN
pseudo-labels (:class:`~training.maskconsist.masks.FrameMasks`), plus the
flows that carry frame t's masks to t+δ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from training.maskconsist.iom_nms import duplicates_of, iom_nms, iom_nms_fuller
from training.maskconsist.masks import FrameMasks, intersections, mask_iou

INSIDE = 0.5  # a prediction is "mostly inside" a pseudo-label when this share of it is
MATCH_IOU = 0.5  # inter-frame matches need at least this warped IoU (not published)
QUALITY_IOU = 0.5  # a matched prediction is high quality above this IoU with a pseudo-label (paper: 0.5)
IOM_THRESHOLD = 0.5
IOM_RANKS = ("repair", "fuller", "score")  # how the targets' IoM-NMS orders masks, see maskconsist_pair


def expand_predictions(predictions: FrameMasks, pseudo: FrameMasks, inside: float = INSIDE) -> FrameMasks:
    """Intra-frame matching: add, per pseudo-label, the union of same-class predictions mostly inside it.

    A pseudo-label often covers an object that the model splits into parts;
    the union of those parts is the expanded prediction that repairs them
    (paper Fig. 3a). Unions of a single prediction add nothing and are skipped.

    Parameters
    ----------
    predictions, pseudo : FrameMasks of one frame
    inside : float
        Minimum |prediction ∩ pseudo-label| / |prediction|.

    Returns
    -------
    expanded : FrameMasks
        The predictions followed by the unions (score: the highest of its parts).
    """
    if len(predictions) == 0 or len(pseudo) == 0:
        return predictions
    inter = intersections(predictions.masks, pseudo.masks)
    area = predictions.masks.sum(axis=(1, 2))
    share = np.where(area[:, None] > 0, inter / np.maximum(area[:, None], 1), 0.0)
    same = predictions.classes[:, None] == pseudo.classes[None, :]
    unions = []
    for j in range(len(pseudo)):
        parts = np.flatnonzero(same[:, j] & (share[:, j] >= inside))
        if len(parts) >= 2:
            unions.append((predictions.masks[parts].any(0), pseudo.classes[j], predictions.scores[parts].max()))
    if not unions:
        return predictions
    masks, classes, scores = zip(*unions, strict=True)
    return predictions.concat(FrameMasks(np.stack(masks), np.array(classes), np.array(scores)))


def warp_masks(masks: np.ndarray, flows: list[np.ndarray]) -> np.ndarray:
    """Carry masks of frame t to frame t2 through the |t2 - t| flows of the frames in between.

    Parameters
    ----------
    masks : (N, H, W) bool, at frame t
    flows : list of |t2 - t| arrays (H, W, 2)
        :meth:`~training.flow.storage.VideoFlow.carry` ``(t, t2)``: for a
        later frame ``VideoFlow.backward(t + i)`` (at frame t+i+1, where each
        pixel came from in frame t+i); for an earlier one the forward flows
        back down to t2.

    Returns
    -------
    (N, H, W) bool at frame t2 (nearest sampling, step by step).
    """
    from training.flow import warp

    out = np.asarray(masks, dtype=bool)
    for flow in flows:
        out = np.stack([warp(m.astype(np.uint8), flow, mode="nearest", fill=0) > 0 for m in out]) if len(out) else out
    return out


def class_iou(a: FrameMasks, b: FrameMasks) -> np.ndarray:
    """(N, M) mask IoU, 0 between different classes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return mask_iou(a.masks, b.masks) * (a.classes[:, None] == b.classes[None, :])


def hungarian_matches(iou: np.ndarray, threshold: float = MATCH_IOU) -> list[tuple[int, int, float]]:
    """One-to-one matching maximising total IoU, keeping pairs with IoU >= threshold.

    Returns
    -------
    list of (i, j, iou), sorted by i.
    """
    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(-iou)
    return [(int(i), int(j), float(iou[i, j])) for i, j in zip(rows, cols, strict=True) if iou[i, j] >= threshold]


@dataclass
class PairResult:
    """What MaskConsist did for one frame pair (t, t+δ); the viewer draws it.

    Attributes
    ----------
    expanded_t, expanded_t2 : FrameMasks
        P_exp of both frames.
    warped_t : FrameMasks
        P_exp^t carried to t+δ.
    matches : list of (i, j, iou)
        Inter-frame matches between ``warped_t`` and ``expanded_t2``.
    transferred : list of int
        Indices into ``matches`` whose prediction was high quality and transferred.
    maskcon_t2 : FrameMasks
        P_maskCon^{t+δ}: the merged transferred masks.
    targets_t2 : FrameMasks
        Training targets of t+δ: P_maskCon ∪ P_fIRN, IoM-NMS de-duplicated.
    """

    expanded_t: FrameMasks
    expanded_t2: FrameMasks
    warped_t: FrameMasks
    matches: list[tuple[int, int, float]] = field(default_factory=list)
    transferred: list[int] = field(default_factory=list)
    maskcon_t2: FrameMasks | None = None
    targets_t2: FrameMasks | None = None


def maskconsist_pair(
    pred_t: FrameMasks,
    pred_t2: FrameMasks,
    pseudo_t: FrameMasks,
    pseudo_t2: FrameMasks,
    flows: list[np.ndarray],
    intra: bool = True,
    inter: bool = True,
    iom: bool = True,
    maskcon_first: bool = False,
    iom_rank: str = "repair",
    match_iou: float = MATCH_IOU,
    quality_iou: float = QUALITY_IOU,
    iom_threshold: float = IOM_THRESHOLD,
) -> PairResult:
    """MaskConsist on one frame pair: the training targets of frame t+δ.

    1. Intra-frame matching (``intra``): P_exp = predictions ∪ unions inside pseudo-labels.
    2. Inter-frame matching (``inter``): warp P_exp^t to t+δ, same-class IoU
       with P_exp^{t+δ}, Hungarian, pairs above ``match_iou``.
    3. Temporally consistent labels: a match whose prediction at t has IoU >
       ``quality_iou`` with a same-class pseudo-label of t is transferred: its
       warped mask merged (union) with its match forms P_maskCon^{t+δ}.
    4. Targets: P_maskCon^{t+δ} ∪ P_fIRN^{t+δ}, de-duplicated by IoM-NMS
       (``iom``). The two sources' scores are not comparable (flowIRN scores
       a frame's best pseudo-label 1.0, the detector its own confidence).
       ``iom_rank="fuller"`` (:func:`~training.maskconsist.iom_nms.iom_nms_fuller`)
       keeps the larger of two masks that mostly overlap, and uses scores only
       to order masks of one source: a transferred repair replaces the partial
       pseudo-label inside it, a pseudo-label keeps out a smaller transferred
       fragment. ``iom_rank="repair"`` (the default) does the same except
       that a transferred mask of the same extent as a pseudo-label (each
       mostly inside the other, :func:`~training.maskconsist.iom_nms.duplicates_of`)
       leaves the label: a transfer adds a missed object or extends a partial
       label, and never swaps a complete label for the looser union of a
       warped and a predicted mask ("fuller" did, and lost 12 points of
       AP75, benchmarks/RESULTS.md 2026-12-06). ``iom_rank="score"`` is the
       earlier rule, one score order over both sources: on the CRF
       pseudo-labels of benchmarks/RESULTS.md it kept 6 masks out of 903
       transfers, because IRN's 1.0 outranks the detector.
       ``maskcon_first`` (overrides ``iom_rank``) ranks every P_maskCon mask
       above every pseudo-label (the paper does not say which wins; measured
       in benchmarks/RESULTS.md, 2026-12-01 and 2026-12-03).

    Each switch off gives a row of the paper's Table 5 ablation.

    Parameters
    ----------
    pred_t, pred_t2 : FrameMasks, the model's predictions at t and t+δ
    pseudo_t, pseudo_t2 : FrameMasks, flowIRN pseudo-labels at t and t+δ
    flows : list of (H, W, 2)
        What carries frame t's masks to t+δ, see :func:`warp_masks`; δ may be
        negative (t+δ before t: the same matching with time reversed).
    intra, inter, iom, maskcon_first : bool
        The switches of steps 1-4.
    iom_rank : {"repair", "fuller", "score"}
        Which of two overlapping targets IoM-NMS keeps (step 4).

    Returns
    -------
    PairResult
    """
    exp_t = expand_predictions(pred_t, pseudo_t) if intra else pred_t
    exp_t2 = expand_predictions(pred_t2, pseudo_t2) if intra else pred_t2
    warped = FrameMasks(warp_masks(exp_t.masks, flows), exp_t.classes, exp_t.scores)
    result = PairResult(exp_t, exp_t2, warped)
    maskcon = FrameMasks.empty(pseudo_t2.shape)
    if inter:
        result.matches = hungarian_matches(class_iou(warped, exp_t2), match_iou)
        quality = class_iou(exp_t, pseudo_t).max(axis=1) if len(pseudo_t) else np.zeros(len(exp_t))
        merged = []
        for n, (i, j, _) in enumerate(result.matches):
            if quality[i] > quality_iou:
                result.transferred.append(n)
                score = max(exp_t.scores[i], exp_t2.scores[j])
                merged.append((warped.masks[i] | exp_t2.masks[j], exp_t2.classes[j], score))
        if merged:
            masks, classes, scores = zip(*merged, strict=True)
            maskcon = FrameMasks(np.stack(masks), np.array(classes), np.array(scores))
    result.maskcon_t2 = maskcon
    targets = maskcon.concat(pseudo_t2)
    if iom_rank not in IOM_RANKS:
        raise ValueError(f"maskconsist_pair: iom_rank must be one of {', '.join(IOM_RANKS)}, got {iom_rank!r}")
    if iom and len(targets):
        transferred = np.arange(len(targets)) < len(maskcon)  # P_maskCon leads ``targets``
        if maskcon_first:  # lift P_maskCon's scores above every pseudo-label's
            rank = targets.scores + transferred * (np.ptp(targets.scores) + 1.0)
            keep = iom_nms(targets.masks, rank, iom_threshold)
        elif iom_rank == "score":
            keep = iom_nms(targets.masks, targets.scores, iom_threshold)
        else:
            source = (~transferred).astype(np.int64)  # 0: P_maskCon, 1: P_fIRN
            rest = np.arange(len(targets))
            if iom_rank == "repair":  # a transfer of a label's own extent leaves the label
                rest = np.flatnonzero(~duplicates_of(targets.masks, source, 1, iom_threshold))
            keep = rest[iom_nms_fuller(targets.masks[rest], source[rest], targets.scores[rest], iom_threshold)]
        targets = targets.take(keep)
    result.targets_t2 = targets
    return result
