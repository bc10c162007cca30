"""MaskConsist's step-2 targets of one frame pair, and the summary of its matching the viewer draws (METHOD.md §7).

:func:`pair_matches` is what the detector's step-2 training
(:func:`training.detection.train.train_detector`) calls for each ordered
frame pair (t, t2): the model's predictions of both frames, their
pseudo-labels and the flow between them give frame t2's targets
(:func:`~training.maskconsist.matching.maskconsist_pair`).
:func:`summarize_pair` is what ``RUN/matches/<video>.json`` holds per pair.
Pure arrays in and out: no model here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from training.export.rle import mask_bbox
from training.maskconsist.masks import FrameMasks
from training.maskconsist.matching import PairResult, maskconsist_pair


def _boxes(frame: FrameMasks) -> dict[str, list[Any]]:
    return {
        "boxes": [mask_bbox(m) for m in frame.masks],
        "classes": [int(c) for c in frame.classes],
        "scores": [round(float(s), 4) for s in frame.scores],
    }


def summarize_pair(result: PairResult, t: int, t2: int, n_pred_t: int, n_pred_t2: int) -> dict[str, Any]:
    """JSON-ready summary of one frame pair's MaskConsist matching (for the viewer).

    Parameters
    ----------
    result : PairResult
    t, t2 : int
        The frames of the pair.
    n_pred_t, n_pred_t2 : int
        Number of plain predictions; entries of ``expanded_*`` after them are
        intra-frame unions.

    Returns
    -------
    dict
        ``t``, ``t2``, ``matches`` [[i, j, iou]] (indices into ``warped_t`` and
        ``expanded_t2``), ``transferred`` (indices into ``matches``), and for
        ``expanded_t``, ``expanded_t2``, ``warped_t``, ``maskcon_t2``,
        ``targets_t2``: ``{"boxes": [[x, y, w, h]], "classes", "scores"}``
        (``n_pred_t`` / ``n_pred_t2`` mark where the expanded unions start).
    """
    empty = FrameMasks.empty(result.warped_t.shape)
    return {
        "t": int(t),
        "t2": int(t2),
        "n_pred_t": int(n_pred_t),
        "n_pred_t2": int(n_pred_t2),
        "matches": [[int(i), int(j), round(float(iou), 4)] for i, j, iou in result.matches],
        "transferred": [int(n) for n in result.transferred],
        "expanded_t": _boxes(result.expanded_t),
        "expanded_t2": _boxes(result.expanded_t2),
        "warped_t": _boxes(result.warped_t),
        "maskcon_t2": _boxes(result.maskcon_t2 if result.maskcon_t2 is not None else empty),
        "targets_t2": _boxes(result.targets_t2 if result.targets_t2 is not None else empty),
    }


def pair_matches(
    pred_t: FrameMasks,
    pred_t2: FrameMasks,
    pseudo_t: FrameMasks,
    pseudo_t2: FrameMasks,
    flows: list[np.ndarray],
    t: int,
    t2: int,
    intra: bool = True,
    inter: bool = True,
    iom: bool = True,
    maskcon_first: bool = False,
    iom_rank: str = "repair",
) -> tuple[FrameMasks, dict[str, Any]]:
    """MaskConsist on frames (t, t2): targets of t2 and the viewer's summary.

    Parameters
    ----------
    pred_t, pred_t2 : FrameMasks, the model's predictions
    pseudo_t, pseudo_t2 : FrameMasks, the pseudo-labels
    flows : |t2 - t| arrays (H, W, 2), ``VideoFlow.carry(t, t2)``
    t, t2 : int, the frames (t2 before or after t)
    intra, inter, iom, maskcon_first : bool, the MaskConsist switches (see ``maskconsist_pair``)
    iom_rank : {"repair", "fuller", "score"}, the order of the targets' IoM-NMS (see ``maskconsist_pair``)

    Returns
    -------
    targets : FrameMasks of frame t2
    summary : dict, see :func:`summarize_pair`
    """
    if len(flows) != abs(t2 - t):
        raise ValueError(f"pair_matches: frames {t} -> {t2} need {abs(t2 - t)} flows, got {len(flows)}")
    result = maskconsist_pair(pred_t, pred_t2, pseudo_t, pseudo_t2, flows, intra, inter, iom, maskcon_first, iom_rank)
    assert result.targets_t2 is not None  # maskconsist_pair always fills it
    summary = summarize_pair(result, t, t2, len(pred_t), len(pred_t2))
    return result.targets_t2, summary
