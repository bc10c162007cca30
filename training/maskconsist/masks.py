"""A frame's set of instance masks (predictions, pseudo-labels, targets) and their overlaps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FrameMasks:
    """Instance masks of one frame.

    Attributes
    ----------
    masks : (N, H, W) bool
    classes : (N,) int64 category ids
    scores : (N,) float64 confidences (1.0 for pseudo-labels)
    """

    masks: np.ndarray
    classes: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        self.masks = np.asarray(self.masks, dtype=bool)
        if self.masks.ndim != 3:
            raise ValueError(f"masks must be (N, H, W), got shape {self.masks.shape}")
        n = self.masks.shape[0]
        self.classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if len(self.classes) != n or len(self.scores) != n:
            raise ValueError(f"{n} masks need {n} classes and scores, got {len(self.classes)} and {len(self.scores)}")

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.masks.shape[1]), int(self.masks.shape[2])

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> FrameMasks:
        """No instances in a frame of ``shape``."""
        return cls(np.zeros((0, *shape), bool), np.zeros(0, np.int64), np.zeros(0))

    def take(self, index: np.ndarray | list[int]) -> FrameMasks:
        """The subset ``index`` (in that order)."""
        idx = np.asarray(index, dtype=np.int64)
        return FrameMasks(self.masks[idx], self.classes[idx], self.scores[idx])

    def concat(self, other: FrameMasks) -> FrameMasks:
        """This set followed by ``other``."""
        return FrameMasks(
            np.concatenate([self.masks, other.masks]),
            np.concatenate([self.classes, other.classes]),
            np.concatenate([self.scores, other.scores]),
        )


def intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection areas of two mask stacks.

    Parameters
    ----------
    a : (N, H, W) bool
    b : (M, H, W) bool

    Returns
    -------
    (N, M) int64
    """
    fa = a.reshape(len(a), a.shape[1] * a.shape[2]).astype(np.float32)
    fb = b.reshape(len(b), b.shape[1] * b.shape[2]).astype(np.float32)
    # float32 matmul counts exactly up to 2^24 pixels per mask, far beyond any frame
    return np.rint(fa @ fb.T).astype(np.int64)


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of two mask stacks: (N, H, W), (M, H, W) → (N, M) float64 (0 where both are empty)."""
    inter = intersections(a, b)
    area_a = a.sum(axis=(1, 2))
    area_b = b.sum(axis=(1, 2))
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)
