"""MaskConsist's step-2 targets of one frame pair, and the summary of its matching the viewer draws (METHOD.md §7).

:func:`pair_matches` is what the detector's step-2 training
(:func:`training.detection.train.train_detector`) calls for each ordered
frame pair (t, t2): the model's predictions of both frames, their
pseudo-labels and the flow between them give frame t2's targets
(:func:`~training.maskconsist.matching.maskconsist_pair`).
:func:`summarize_pair` is what ``RUN/matches/<video>.json`` holds per pair
(:func:`write_matches`); :func:`read_matches`, :func:`match_lines` and
:func:`count_matches` read it back for the viewer. No model here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.atomic import write_json
from training.errors import InputError
from training.export.rle import mask_bbox
from training.json_io import read_json
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


def write_matches(path: str | os.PathLike, key: str, pairs: list[dict[str, Any]]) -> None:
    """Write a video's matches file (``RUN/matches/<key>.json``): :func:`summarize_pair` per frame pair, in order."""
    ordered = sorted(pairs, key=lambda p: (p["t"], p["t2"]))
    write_json(path, {"video": key, "pairs": ordered})


def read_matches(path: str | os.PathLike) -> list[dict[str, Any]] | None:
    """The frame pairs of a matches file written by :func:`write_matches`, or None when there is no such file.

    Raises
    ------
    InputError
        Not a matches file, or a pair without the fields :func:`summarize_pair` writes.
    """
    path = Path(path)
    if not path.is_file():
        return None
    data = read_json(path)
    pairs = data.get("pairs") if isinstance(data, dict) else None
    if not isinstance(pairs, list):
        raise InputError(path, "expected {'video', 'pairs': [...]} from 'vis-ws train --step 2'")
    for p in pairs:
        if not isinstance(p, dict) or not {"t", "t2", "matches", "warped_t", "expanded_t2"} <= set(p):
            raise InputError(path, "malformed matches (a pair without t, t2, matches, warped_t, expanded_t2)")
    return pairs


@dataclass(frozen=True)
class MatchLine:
    """One inter-frame match of a pair, in frame ``t2``: where frame t's prediction lands after warping, and the
    prediction of t2 it matched; boxes are [x, y, w, h] in image pixels."""

    t2: int
    warped_box: list[float]
    matched_box: list[float]
    iou: float
    transferred: bool


def match_lines(pairs: list[dict[str, Any]]) -> list[MatchLine]:
    """Every match of :func:`read_matches`'s pairs, with whether it was transferred as a label of t2.

    Raises
    ------
    ValueError
        A match pointing outside its pair's boxes.
    """
    lines = []
    try:
        for p in pairs:
            t2, warped, target = int(p["t2"]), p["warped_t"]["boxes"], p["expanded_t2"]["boxes"]
            moved = set(p.get("transferred", []))
            for n, (i, j, iou) in enumerate(p["matches"]):
                lines.append(MatchLine(t2, list(warped[i]), list(target[j]), float(iou), n in moved))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed matches ({type(exc).__name__}: {exc})") from None
    return lines


def warped_boxes(pairs: list[dict[str, Any]]) -> list[tuple[int, list[float]]]:
    """(t2, [x, y, w, h]) of every prediction of frame t warped into frame t2, over :func:`read_matches`'s pairs."""
    return [(int(p["t2"]), list(b)) for p in pairs for b in p["warped_t"]["boxes"]]


@dataclass(frozen=True)
class MatchCounts:
    """How much MaskConsist matched in a video: frame pairs, matches, transfers, plain predictions of frames t."""

    pairs: int
    matches: int
    transferred: int
    predictions: int


def count_matches(pairs: list[dict[str, Any]]) -> MatchCounts:
    """:class:`MatchCounts` of :func:`read_matches`'s pairs."""
    return MatchCounts(
        pairs=len(pairs),
        matches=sum(len(p.get("matches") or []) for p in pairs),
        transferred=sum(len(p.get("transferred") or []) for p in pairs),
        predictions=sum(int(p.get("n_pred_t", 0) or 0) for p in pairs),
    )
