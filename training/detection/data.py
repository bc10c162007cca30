"""Training samples of the detector: a frame and its instance masks as a torchvision target.

Targets come from :class:`~training.maskconsist.masks.FrameMasks` (pseudo-labels,
MaskConsist targets or ground truth). A frame without instances gives an
empty target, which torchvision's Mask R-CNN trains on as pure background.
The horizontal flip is drawn from a generator seeded by (seed, epoch, item),
as in :mod:`training.cam.data`, so a resumed run sees the same samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from training.export.labels import LabelVolume
from training.maskconsist.masks import FrameMasks
from training.sampling import seeded_generator


def volume_frame_masks(volume: LabelVolume, t: int) -> FrameMasks:
    """The instances present in frame ``t`` of a label volume (score from the volume).

    Returns
    -------
    FrameMasks
        masks (N, H, W) bool, classes (N,) category ids, scores (N,), in instance-id order.
    """
    frame = volume.labels[t]
    ids = [k for k in np.unique(frame).tolist() if k != 0]
    if not ids:
        return FrameMasks.empty(frame.shape)
    return FrameMasks(
        np.stack([frame == k for k in ids]),
        np.array([volume.categories[k] for k in ids]),
        np.array([volume.scores[k] for k in ids]),
    )


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """Boxes ``(x1, y1, x2, y2)`` around masks, pixel edges (a one-pixel mask is 1×1).

    Parameters
    ----------
    masks : (N, H, W) bool, none empty

    Returns
    -------
    (N, 4) float32
    """
    out = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m.any(1))[0], np.nonzero(m.any(0))[0]
        out[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return out


def frame_target(masks: FrameMasks, category_ids: Sequence[int]) -> dict[str, torch.Tensor]:
    """The torchvision Mask R-CNN target of one frame.

    Empty masks are dropped (they have no box).

    Parameters
    ----------
    masks : FrameMasks, classes are category ids
    category_ids : the K category ids; label ``i + 1`` is ``category_ids[i]``

    Returns
    -------
    target : dict
        ``boxes`` (N, 4) float32 x1y1x2y2, ``labels`` (N,) int64 in 1..K,
        ``masks`` (N, H, W) uint8; N may be 0.

    Raises
    ------
    ValueError
        A class that is not in ``category_ids``.
    """
    index = {int(c): i + 1 for i, c in enumerate(category_ids)}
    unknown = sorted({int(c) for c in masks.classes} - set(index))
    if unknown:
        raise ValueError(f"category id {unknown[0]} is not one of the model's categories {list(category_ids)}")
    keep = masks.masks.reshape(len(masks), -1).any(1) if len(masks) else np.zeros(0, bool)
    kept = masks.take(np.flatnonzero(keep))
    return {
        "boxes": torch.from_numpy(mask_boxes(kept.masks)).reshape(-1, 4),
        "labels": torch.tensor([index[int(c)] for c in kept.classes], dtype=torch.int64),
        "masks": torch.from_numpy(kept.masks.astype(np.uint8)),
    }


def image_tensor(frame: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB → (3, H, W) float32 in [0, 1] (Mask R-CNN normalises internally)."""
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float().div_(255.0)


def hflip_sample(image: torch.Tensor, target: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mirror an image (3, H, W) and its target left-right."""
    w = image.shape[-1]
    boxes = target["boxes"].clone()
    boxes[:, [0, 2]] = w - target["boxes"][:, [2, 0]]
    return image.flip(-1), {**target, "boxes": boxes, "masks": target["masks"].flip(-1)}


def training_sample(
    frame: np.ndarray,
    masks: FrameMasks,
    category_ids: Sequence[int],
    seed: int,
    epoch: int,
    item: int,
    flip: float = 0.5,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One augmented sample: the frame and its target, flipped with probability ``flip``.

    Parameters
    ----------
    frame : (H, W, 3) uint8 RGB
    masks : FrameMasks of the frame
    category_ids : see :func:`frame_target`
    seed, epoch, item : int
        Seed the flip draw, so the sample is a pure function of them.
    flip : float

    Returns
    -------
    image : (3, H, W) float32 in [0, 1]
    target : see :func:`frame_target`
    """
    image, target = image_tensor(frame), frame_target(masks, category_ids)
    if float(torch.rand(1, generator=seeded_generator(seed, epoch, item))) < flip:
        image, target = hflip_sample(image, target)
    return image, target
