"""Linking per-frame instances into tubes across a video (METHOD.md §8).

Pseudo-labels and per-frame predictions give every detection its own id. A
video instance is a tube: one object through the frames it is in.
:func:`link_tubes` builds the tubes frame pair by frame pair: the detections
of frame t, carried to frame t+1 by the optical flow (backward flow of t+1,
nearest sampling), are matched one to one with those of frame t+1 of the same
class (Hungarian algorithm on mask IoU); a matched detection continues its
tube, any other starts a new one. A tube's score is the mean of its
detections' scores. :func:`link_instances` applies it to a label volume and
:func:`tubes_to_results` writes tubes as YouTube-VIS results.
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


def link_tubes(
    frames: Sequence[FrameMasks],
    backward: Callable[[int], np.ndarray] | None = None,
    iou_threshold: float = IOU_THRESHOLD,
) -> list[dict[int, int]]:
    """Tubes through a video's per-frame detections.

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

    Returns
    -------
    tubes : list of {frame: detection index}
        Frames are consecutive within a tube; every detection is in exactly one tube.
    """
    tubes: list[dict[int, int]] = []
    open_tubes: dict[int, int] = {}  # detection index at the previous frame -> tube
    for t, dets in enumerate(frames):
        now: dict[int, int] = {}
        if t > 0 and open_tubes and len(dets):
            prev = frames[t - 1].take(sorted(open_tubes))
            flows = [backward(t - 1)] if backward is not None else []
            warped = FrameMasks(warp_masks(prev.masks, flows), prev.classes, prev.scores)
            for i, j, _ in hungarian_matches(class_iou(warped, dets), iou_threshold):
                tube = open_tubes[sorted(open_tubes)[i]]
                tubes[tube][t] = j
                now[j] = tube
        for j in range(len(dets)):
            if j not in now:
                now[j] = len(tubes)
                tubes.append({t: j})
        open_tubes = now
    return tubes


def tubes_to_results(
    frames: Sequence[FrameMasks], tubes: Sequence[dict[int, int]], video_id: int
) -> list[dict[str, Any]]:
    """YouTube-VIS results of one video's tubes.

    Returns
    -------
    results : list of {video_id, category_id, score, segmentations}
        ``segmentations`` has one compressed RLE (or None) per frame; the
        score is the mean of the tube's frame scores.
    """
    out = []
    for tube in tubes:
        first = next(iter(tube.items()))
        segs: list[Any] = [None] * len(frames)
        for t, j in tube.items():
            segs[t] = encode_mask(frames[t].masks[j])
        out.append(
            {
                "video_id": video_id,
                "category_id": int(frames[first[0]].classes[first[1]]),
                "score": float(np.mean([frames[t].scores[j] for t, j in tube.items()])),
                "segmentations": segs,
            }
        )
    return out


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
    ids = [np.unique(frame[frame > 0]) for frame in labels]
    frames = [
        FrameMasks(
            labels[t][None] == i[:, None, None],
            np.array([volume.categories[int(k)] for k in i]),
            np.array([volume.scores[int(k)] for k in i]),
        )
        for t, i in enumerate(ids)
    ]
    tubes = link_tubes(frames, flow.backward if flow is not None else None, iou_threshold)
    # number tubes in order of first appearance (frame, then id within the frame)
    tubes.sort(key=lambda tube: (min(tube), int(ids[min(tube)][tube[min(tube)]])))
    out = np.zeros_like(labels, dtype=np.int32)
    categories, scores = {}, {}
    for n, tube in enumerate(tubes, start=1):
        for t, j in tube.items():
            out[t][labels[t] == ids[t][j]] = n
        categories[n] = int(frames[min(tube)].classes[tube[min(tube)]])
        scores[n] = float(np.mean([frames[t].scores[j] for t, j in tube.items()]))
    return LabelVolume(out, categories, scores, dict(volume.video))
