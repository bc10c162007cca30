"""Linking per-frame detections into tubes (METHOD.md §8).

Frame t's masks are warped to t+1 with the backward flow, compared by mask
IoU with frame t+1's masks of the same class and matched one-to-one with the
Hungarian algorithm; an unmatched detection starts a new tube. A tube's
score is the mean of its frames' scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from training.export.rle import encode_mask
from training.maskconsist.masks import FrameMasks
from training.maskconsist.matching import class_iou, hungarian_matches, warp_masks

LINK_IOU = 0.3


def link_tubes(
    frames: Sequence[FrameMasks],
    backward: Callable[[int], np.ndarray] | None = None,
    iou_threshold: float = LINK_IOU,
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
