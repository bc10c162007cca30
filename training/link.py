"""Linking per-frame instances into tubes across a video (METHOD.md §8).

Pseudo-labels and per-frame predictions give every detection its own id. A
video instance is a tube: one object through the frames it is in.
:func:`link_tubes` builds the tubes frame by frame: the last detection of
every open tube, carried to frame t by the optical flow (backward flows,
nearest sampling, chained over the frames since that detection), is matched
one to one with the detections of frame t of the same class (Hungarian
algorithm on mask IoU). Tubes seen at t-1 are matched first, then those that
missed 1, 2, ... frames (up to ``max_gap``), so one missed detection does not
split a tube. A matched detection continues its tube, any other starts a new
one. A tube's score is the mean of its detections' scores.
:func:`link_instances` applies it to a label volume and
:func:`tubes_to_results` writes tubes as YouTube-VIS results.

Predicted tubes (``vis-ws predict``) are linked differently from METHOD.md
§8, as chosen on the validation sets (benchmarks/RESULTS.md): at IoU
:data:`PREDICTION_IOU` and across classes (``same_class=False``: a
detection whose class flips for a frame stays in its tube, which takes the
class of the larger summed score, :func:`tube_category`). ``vis-ws predict
--link-classes same --link-iou 0.3`` is §8 as written. ``--tube-score
video`` (:data:`TUBE_SCORES`) scores a tube by its detections' scores summed
over the video's length, so a tube seen in one frame of twelve ranks below
one seen throughout: it scored higher on the validation sets, but it is not
the default, because a score is then no longer a detection's confidence (the
plugin's score threshold hides what it reads as unsure).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from training.export import LabelVolume
from training.export.rle import encode_mask
from training.flow.storage import VideoFlow
from training.maskconsist.masks import FrameMasks
from training.maskconsist.matching import class_iou, hungarian_matches, warp_masks

IOU_THRESHOLD = 0.3
"""Least flow-warped mask IoU of a link between pseudo-labels (:func:`link_instances`)."""
PREDICTION_IOU = 0.2
"""Least flow-warped mask IoU that continues a predicted tube (``vis-ws predict --link-iou``).

Lower than :data:`IOU_THRESHOLD`: a predicted tube of a small, fast object
breaks where the flow is off by a third of its size, and a broken tube
counts as two partial ones in video AP. Chosen on the validation sets
(generator seeds 7 and 8, not the benchmark's), the same detections linked
at 0.1-0.4 (benchmarks/RESULTS.md)."""
PREDICTION_SAME_CLASS = False
"""Whether ``vis-ws predict`` links only detections of one class (``--link-classes same``); see the module
docstring."""
PREDICTION_TUBE_SCORE = "mean"
"""How ``vis-ws predict`` scores a tube (``--tube-score``, :data:`TUBE_SCORES`); see the module docstring."""
TUBE_SCORES = ("mean", "video")
"""A tube's score: ``mean``, the mean of its detections' scores (METHOD.md §8); ``video``, their sum over the
video's length (the mean times the fraction of frames the tube is in)."""
MAX_GAP = 2  # frames a tube may miss and still continue (a missed detection or a short occlusion)


def link_tubes(
    frames: Sequence[FrameMasks],
    backward: Callable[[int], np.ndarray] | None = None,
    iou_threshold: float = IOU_THRESHOLD,
    max_gap: int = MAX_GAP,
    same_class: bool = True,
) -> list[dict[int, int]]:
    """Tubes through a video's per-frame detections, bridging short gaps.

    Parameters
    ----------
    frames : T FrameMasks
        Detections of each frame (classes are category ids).
    backward : callable, optional
        ``backward(t)`` → (H, W, 2) float32 flow at frame t+1 pointing back to
        frame t (:meth:`training.flow.storage.VideoFlow.backward`). Without
        it masks are compared where they are (no warping).
    iou_threshold : float
        Least same-class IoU of a link.
    max_gap : int
        A tube whose last detection is at frame s can continue at frame t
        when ``t - s - 1 <= max_gap`` (0: consecutive frames only). Its mask
        reaches frame t through the chained flows ``backward(s) …
        backward(t-1)``. Shorter gaps are matched first, and a tube seen at
        t-1 always has the first claim on frame t's detections.
    same_class : bool
        Link only detections of one class (METHOD.md §8); False links across
        classes (a tube's class is then :func:`tube_category`).

    Returns
    -------
    tubes : list of {frame: detection index}
        Every detection is in exactly one tube; a tube skips at most
        ``max_gap`` frames at a time.
    """
    if max_gap < 0:
        raise ValueError(f"link_tubes: max_gap must be >= 0, got {max_gap}")
    if not same_class:
        frames = [FrameMasks(f.masks, np.zeros(len(f), np.int64), f.scores) for f in frames]
    tubes: list[dict[int, int]] = []
    # the open tubes: id, last detection's mask carried to the previous frame, its class, its frame
    keys = np.zeros(0, np.int64)
    carried = np.zeros((0, 0, 0), bool)
    classes = np.zeros(0, np.int64)
    last = np.zeros(0, np.int64)
    for t, dets in enumerate(frames):
        if len(keys) and backward is not None:
            carried = warp_masks(carried, [backward(t - 1)])
        tube_of = np.full(len(dets), -1, np.int64)  # detection -> tube
        continued = np.zeros(len(keys), bool)
        for gap in range(max_gap + 1):  # tubes seen at t-1 first, then those that missed 1, 2, ... frames
            rows = np.flatnonzero(last == t - 1 - gap)
            free = np.flatnonzero(tube_of < 0)
            if len(rows) and len(free):
                prev = FrameMasks(carried[rows], classes[rows], np.ones(len(rows)))
                for i, f, _ in hungarian_matches(class_iou(prev, dets.take(free)), iou_threshold):
                    tube_of[free[f]] = keys[rows[i]]
                    continued[rows[i]] = True
        for j in range(len(dets)):
            if tube_of[j] < 0:
                tube_of[j] = len(tubes)
                tubes.append({})
            tubes[int(tube_of[j])][t] = j
        # open at t+1: this frame's detections, and older tubes that may still bridge the gap
        wait = ~continued & (t - last <= max_gap)
        keys = np.concatenate([keys[wait], tube_of])
        carried = np.concatenate([carried[wait], dets.masks]) if wait.any() else dets.masks
        classes = np.concatenate([classes[wait], dets.classes])
        last = np.concatenate([last[wait], np.full(len(dets), t, np.int64)])
    return tubes


def tube_category(frames: Sequence[FrameMasks], tube: dict[int, int]) -> int:
    """The class of a tube: the category whose detections in it have the largest summed score (ties: the
    first seen)."""
    votes: dict[int, float] = {}
    for t, j in tube.items():
        c = int(frames[t].classes[j])
        votes[c] = votes.get(c, 0.0) + float(frames[t].scores[j])
    return max(votes, key=lambda c: votes[c])


def tube_score(frames: Sequence[FrameMasks], tube: dict[int, int], how: str = "mean") -> float:
    """A tube's score (:data:`TUBE_SCORES`): the mean of its detections' scores, or their sum over the video's
    ``len(frames)`` frames (``video``)."""
    scores = [float(frames[t].scores[j]) for t, j in tube.items()]
    if how == "mean":
        return float(np.mean(scores))
    if how == "video":
        return float(np.sum(scores) / len(frames))
    raise ValueError(f"tube score must be one of {TUBE_SCORES}, got {how!r}")


def tubes_to_results(
    frames: Sequence[FrameMasks], tubes: Sequence[dict[int, int]], video_id: int, score: str = "mean"
) -> list[dict[str, Any]]:
    """YouTube-VIS results of one video's tubes.

    Parameters
    ----------
    frames : T FrameMasks
    tubes : list of {frame: detection index}, from :func:`link_tubes`
    video_id : int
    score : {"mean", "video"}
        How a tube is scored (:func:`tube_score`).

    Returns
    -------
    results : list of {video_id, category_id, score, segmentations}
        ``segmentations`` has one compressed RLE (or None) per frame; the
        category is :func:`tube_category` (the detections' own when they
        share one).
    """
    out = []
    for tube in tubes:
        segs: list[Any] = [None] * len(frames)
        for t, j in tube.items():
            segs[t] = encode_mask(frames[t].masks[j])
        out.append(
            {
                "video_id": video_id,
                "category_id": tube_category(frames, tube),
                "score": tube_score(frames, tube, score),
                "segmentations": segs,
            }
        )
    return out


def link_instances(
    volume: LabelVolume, flow: VideoFlow | None = None, iou_threshold: float = IOU_THRESHOLD, max_gap: int = MAX_GAP
) -> LabelVolume:
    """Relabel a video's per-frame detections so that one object keeps one id across frames.

    Each (frame, id) with pixels is a detection. Detections are linked by
    :func:`link_tubes`: the last detection of each tube is carried to the
    next frame (warped with the backward flows when ``flow`` is given,
    nearest-neighbour, leaving the frame where the flow points outside it)
    and matched to that frame's detections; a tube may miss up to
    ``max_gap`` frames and continue. An object that leaves and one that
    enters elsewhere later get different ids.

    Parameters
    ----------
    volume : LabelVolume
        (T, H, W) labels with a category and score per id.
    flow : VideoFlow, optional
        The video's flow (T frames of H×W); without it masks are compared in place.
    iou_threshold : float
        Least IoU for two detections to be the same object.
    max_gap : int
        Frames a tube may miss and still continue (0: consecutive frames only).

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
    ids = [np.unique(frame[frame > 0]) for frame in labels]
    frames = [
        FrameMasks(
            labels[t][None] == i[:, None, None],
            np.array([volume.categories[int(k)] for k in i]),
            np.array([volume.scores[int(k)] for k in i]),
        )
        for t, i in enumerate(ids)
    ]
    tubes = link_tubes(frames, flow.backward if flow is not None else None, iou_threshold, max_gap)
    # number tubes in order of first appearance (frame, then id within the frame)
    tubes.sort(key=lambda tube: (min(tube), int(ids[min(tube)][tube[min(tube)]])))
    out = np.zeros_like(labels, dtype=np.int32)
    categories, scores = {}, {}
    for n, tube in enumerate(tubes, start=1):
        for t, j in tube.items():
            out[t][labels[t] == ids[t][j]] = n
        categories[n] = tube_category(frames, tube)
        scores[n] = tube_score(frames, tube)
    return LabelVolume(out, categories, scores, dict(volume.video))
