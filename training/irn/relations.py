"""The pair sets P+_fg, P+_bg and P− of a relation label map (METHOD.md §4; IRN Eq. 2-3).

Over the pairs enumerated by :mod:`training.irn.path_index` (radius γ = 10 for
training): a pair whose two pixels carry the same label is positive — P+_bg
when that label is background (0), P+_fg otherwise — and a pair of different
labels is negative (P−). Pairs touching an ignored pixel (255) are in no set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.irn.ir_labels import IGNORE
from training.irn.path_index import PathIndex, pair_difference, path_index

TRAIN_RADIUS = 10
"""γ used by IRN to train (stride-4 grid pixels)."""


@dataclass(frozen=True)
class RelationSets:
    """Membership of every enumerated pair in the three sets.

    Attributes
    ----------
    fg_pos, bg_pos, neg : (..., D, P) bool tensors
        P+_fg, P+_bg and P−, in the layout of :func:`training.irn.path_index.pair_affinity`
        (leading dimensions are those of the labels, e.g. a batch N).
    index : PathIndex
        The directions the pairs were enumerated with (the displacement
        target of direction d is ``index.directions[d]``).
    """

    fg_pos: torch.Tensor
    bg_pos: torch.Tensor
    neg: torch.Tensor
    index: PathIndex

    def to(self, device: torch.device | str) -> RelationSets:
        """The same sets on another device."""
        return RelationSets(self.fg_pos.to(device), self.bg_pos.to(device), self.neg.to(device), self.index)

    def counts(self) -> dict[str, int]:
        """|P+_fg|, |P+_bg| and |P−| (over all leading dimensions)."""
        return {"fg_pos": int(self.fg_pos.sum()), "bg_pos": int(self.bg_pos.sum()), "neg": int(self.neg.sum())}


def relation_sets(labels: np.ndarray | torch.Tensor, radius: int = TRAIN_RADIUS) -> RelationSets:
    """P+_fg, P+_bg and P− of a relation label map (IRN's ``GetAffinityLabelFromIndices``).

    Parameters
    ----------
    labels : (h, w) or (N, h, w) uint8 array or tensor
        From :func:`training.irn.ir_labels.ir_labels`: 0 background, key + 1
        class, 255 ignore; at the grid of the network's outputs.
    radius : int
        γ in grid pixels (IRN trains with 10).

    Returns
    -------
    RelationSets
        Bool masks of shape (D, P) or (N, D, P), on the labels' device (CPU
        for numpy input).
    """
    lab = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    if lab.ndim not in (2, 3):
        raise ValueError(f"relation_sets: labels must be (h, w) or (N, h, w), got shape {tuple(lab.shape)}")
    if lab.is_floating_point() or lab.is_complex() or lab.dtype == torch.bool:
        raise ValueError(f"relation_sets: labels must be integer (uint8 label map), got {lab.dtype}")
    index = path_index(radius)
    lab_i64 = lab.to(torch.int64).unsqueeze(-3)  # (..., 1, h, w)
    src, dst = _source_and_destination(lab_i64, index)
    valid = (src != IGNORE) & (dst != IGNORE)
    same = src == dst
    return RelationSets(
        fg_pos=same & valid & (src > 0),
        bg_pos=same & valid & (src == 0),
        neg=~same & valid,
        index=index,
    )


def _source_and_destination(lab: torch.Tensor, index: PathIndex) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels of i and of j for every pair: (..., D, P) each, from (..., 1, h, w) int64."""
    diff = pair_difference(lab, index)[..., 0, :, :]  # l_i − l_j, exact in int64, in the pair layout
    h, w = lab.shape[-2:]
    sh, sw = index.source_shape((h, w))
    m = index.margin
    src = lab[..., 0, :sh, m : m + sw].reshape(*lab.shape[:-3], 1, sh * sw)
    return src.expand_as(diff), src - diff
