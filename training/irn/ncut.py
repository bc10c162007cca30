"""Normalized-cut split of an instance over IRN's inter-pixel affinities (an extension, METHOD.md §6).

IRN's displacement field is trained on class-level relation labels: every
pair of pixels inside one class region counts as "same instance", so two
touching objects of one class get one centroid and become one pseudo-label
(benchmarks/RESULTS.md: 47 of 48 touching same-class pairs of the validation
set shared a centroid group). The boundary map B still dips a little at the
contact, and two objects touch over a short stretch of their outlines, so the
affinity graph of the merged region has a narrow, weak waist there. The
normalized cut (Shi & Malik, 2000) measures exactly that: a bisection S | S̄
of the region's grid cells costs

    Ncut = cut(S, S̄) / vol(S) + cut(S, S̄) / vol(S̄),

with cut the summed affinity of the pairs it separates and vol the summed
affinity of a side's pairs. It is found, as Shi & Malik do, by sweeping the
second eigenvector of the normalised affinity matrix. One object cut in two
costs far more than two touching objects cut apart at their contact (on the
validation set, median 0.33 against 0.11), so a region whose best cut is
below a threshold is two instances.

The affinities are IRN's own: ``a_ij = (1 − max B on the path)^β`` over the
radius pairs of the random walk (:func:`training.irn.random_walk.image_pairs`).

- :func:`affinity_pairs` — the frame's weighted pairs, computed once per frame;
- :func:`normalized_cut` — the best balanced bisection of one region;
- :func:`split_mask` — a pixel mask split in two, or None.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
from scipy import ndimage
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, eigsh

from training.irn.random_walk import BETA, INFER_RADIUS, image_pairs

SPLIT_NCUT = 0.2
"""Default split threshold: a region whose best normalized cut is below this is two instances.

Chosen on the validation set (the generator's seed 7, never the benchmark
reported on): flowIRN frame AP50 32.1 % without the split, 45.6 / 62.6 /
76.5 / 58.0 % at 0.05 / 0.1 / 0.2 / 0.3 (a sweep over one ``vis-ws
pseudo-labels`` run; benchmarks/RESULTS.md)."""
MIN_SHARE = 0.2
"""Each side of a split holds at least this share of the region's cells (no slivers)."""
MIN_CELLS = 8
"""Regions of fewer grid cells are never split."""


class AffinityPairs(NamedTuple):
    """The radius pairs of one frame's grid with their weights.

    Attributes
    ----------
    src, dst : (E,) int64
        Raster indices of the two cells in the (h, w) grid.
    weight : (E,) float64
        ``a_ij^β``, in [0, 1].
    shape : (int, int)
        The grid (h, w).
    """

    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    shape: tuple[int, int]


class Bisection(NamedTuple):
    """The best normalized cut of a region: its value and one side.

    Attributes
    ----------
    ncut : float
        Ncut of the bisection, in [0, 2].
    side : (h, w) bool
        The cells of one side (the region minus them is the other).
    """

    ncut: float
    side: np.ndarray


def affinity_pairs(
    boundary: np.ndarray | torch.Tensor, radius: int = INFER_RADIUS, beta: float = BETA
) -> AffinityPairs:
    """IRN's weighted pairs of a frame: every cell pair within ``radius`` and ``(1 − max B)^β``.

    Parameters
    ----------
    boundary : (h, w) float array or tensor
        B in [0, 1], at the IRN grid.
    radius, beta
        The random walk's: 5 and 10.

    Returns
    -------
    AffinityPairs
    """
    b = boundary.detach().cpu() if isinstance(boundary, torch.Tensor) else torch.from_numpy(np.asarray(boundary))
    src, dst, aff = image_pairs(b.to(torch.float64), radius)
    weight = aff.clamp(0.0, 1.0).cpu().numpy() ** float(beta)
    return AffinityPairs(src.cpu().numpy(), dst.cpu().numpy(), weight, (int(b.shape[0]), int(b.shape[1])))


def normalized_cut(cells: np.ndarray, pairs: AffinityPairs, min_share: float = MIN_SHARE) -> Bisection | None:
    """The best balanced bisection of a region of grid cells (Shi & Malik's spectral sweep).

    The cells are ordered by the second-largest eigenvector of
    ``D^{-1/2} W D^{-1/2}`` (W the affinities of the pairs inside the region,
    D their row sums), scaled by ``D^{-1/2}``; every split of that order
    leaving each side at least ``min_share`` of the cells is tried and the
    one of lowest Ncut kept.

    Parameters
    ----------
    cells : (h, w) bool
        The region, on the grid of ``pairs``.
    pairs : AffinityPairs
    min_share : float
        Least share of the cells on each side, in (0, 0.5].

    Returns
    -------
    Bisection or None
        None when the region has fewer than :data:`MIN_CELLS` cells, no
        pair inside, or the eigensolver does not converge.
    """
    if cells.shape != pairs.shape:
        raise ValueError(f"normalized_cut: cells {cells.shape} and pairs {pairs.shape} must be the same grid")
    idx = np.flatnonzero(cells.ravel())
    n = idx.size
    if n < MIN_CELLS:
        return None
    pos = np.full(cells.size, -1, np.int64)
    pos[idx] = np.arange(n)
    a, b = pos[pairs.src], pos[pairs.dst]
    inside = (a >= 0) & (b >= 0)
    a, b, w = a[inside], b[inside], pairs.weight[inside]
    if not w.any():
        return None
    affinity = sp.coo_matrix((np.r_[w, w], (np.r_[a, b], np.r_[b, a])), shape=(n, n)).tocsr()
    degree = np.asarray(affinity.sum(axis=1)).ravel() + 1e-12
    scale = sp.diags(1.0 / np.sqrt(degree))
    try:
        values, vectors = eigsh(scale @ affinity @ scale, k=2, which="LA", tol=1e-6, maxiter=5000, v0=np.sqrt(degree))
    except (ArpackNoConvergence, ArpackError):
        return None
    fiedler = vectors[:, int(np.argmin(values))] / np.sqrt(degree)
    order = np.argsort(fiedler, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    lo, hi = np.minimum(rank[a], rank[b]), np.maximum(rank[a], rank[b])
    # cut(m) for the first m cells of the order: a pair is cut exactly when lo < m <= hi
    cut = np.zeros(n + 1)
    np.add.at(cut, lo + 1, w)
    np.add.at(cut, hi + 1, -w)
    cut = np.cumsum(cut)[1:n]  # m = 1 … n−1
    vol = np.cumsum(degree[order])[:-1]
    total = degree.sum()
    ncut = cut / vol + cut / (total - vol)
    m = np.arange(1, n)
    allowed = (m >= min_share * n) & (n - m >= min_share * n)
    if not allowed.any():
        return None
    best = int(np.flatnonzero(allowed)[np.argmin(ncut[allowed])])
    side = np.zeros(cells.size, bool)
    side[idx[order[: best + 1]]] = True
    return Bisection(float(ncut[best]), side.reshape(cells.shape))


def grid_cells(mask: np.ndarray, shape: tuple[int, int], stride: int) -> np.ndarray:
    """The grid cells a pixel mask covers at least half of.

    Parameters
    ----------
    mask : (H, W) bool
        At the resolution the grid has ``stride`` to.
    shape : (h, w)
        The grid.
    stride : int

    Returns
    -------
    (h, w) bool
    """
    h, w = shape
    padded = np.zeros((h * stride, w * stride), np.float32)
    hh, ww = min(mask.shape[0], h * stride), min(mask.shape[1], w * stride)
    padded[:hh, :ww] = mask[:hh, :ww]
    return padded.reshape(h, stride, w, stride).mean(axis=(1, 3)) >= 0.5


def split_mask(
    mask: np.ndarray, pairs: AffinityPairs, stride: int, threshold: float = SPLIT_NCUT, min_share: float = MIN_SHARE
) -> tuple[np.ndarray, np.ndarray] | None:
    """A pixel mask cut in two where its best normalized cut is below ``threshold``.

    Parameters
    ----------
    mask : (H, W) bool
        One instance at the image size the IRN grid of ``pairs`` has ``stride`` to.
    pairs : AffinityPairs
    stride : int
    threshold : float
        Ncut below which the mask is two instances (:data:`SPLIT_NCUT`).
    min_share : float
        Least share of the mask's cells on each side.

    Returns
    -------
    (first, second) : two (H, W) bool masks partitioning ``mask``, ordered by
        the raster position of their first pixel; or None (not split).
        Each pixel goes to the side of its nearest covered cell.
    """
    cells = grid_cells(mask, pairs.shape, stride)
    cut = normalized_cut(cells, pairs, min_share)
    if cut is None or not cut.ncut < threshold:
        return None
    h, w = mask.shape
    covered = _upsampled(cells, stride, (h, w)) & mask
    side = _upsampled(cut.side, stride, (h, w))
    if not covered.any():
        return None
    _, (iy, ix) = ndimage.distance_transform_edt(~covered, return_indices=True)
    one = side[iy, ix] & mask
    other = mask & ~one
    if not one.any() or not other.any():
        return None
    if np.flatnonzero(other.ravel())[0] < np.flatnonzero(one.ravel())[0]:
        one, other = other, one
    return one, other


def _upsampled(cells: np.ndarray, stride: int, size: tuple[int, int]) -> np.ndarray:
    """(h, w) cells → (H, W) pixels, each cell a stride × stride block, cropped to ``size``."""
    return np.repeat(np.repeat(cells, stride, axis=0), stride, axis=1)[: size[0], : size[1]]
