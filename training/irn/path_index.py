"""IRN's pair enumeration: half-plane directions, their paths, and pair affinities (METHOD.md §4-§5).

A pair (i, j) is two grid pixels with ‖x_j − x_i‖ < γ (the radius). Each
unordered pair is enumerated once, from the pixel that comes first in raster
order: the direction ``d = x_j − x_i`` lies in the half-plane ``dy > 0`` or
``dy = 0, dx > 0`` (34 directions for radius 5, 152 for radius 10). The
*path* of a direction is every grid point of the bounding box of the segment
0 → d whose distance to the segment's line is below one pixel; it links i to
j through grid points, and the affinity of the pair is
``a_ij = 1 − max_{k ∈ path(i, j)} B(x_k)`` (IRN, Eq. 5).

Layout of enumerated pairs (IRN's): for a grid (h, w) the sources i are the
pixels of rows ``[0, h − r')`` and columns ``[r', w − r')`` with
``r' = radius − 1`` — exactly the pixels whose every destination lies inside
the grid — flattened in raster order (P of them). A per-pair quantity is an
array ``(..., D, P)``: direction-major, then source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def half_plane_directions(radius: int) -> np.ndarray:
    """Offsets ``d = x_j − x_i`` of one half-plane of the disc ``0 < ‖d‖ < radius``.

    Parameters
    ----------
    radius : int
        γ, in grid pixels (IRN: 10 to train, 5 for inference).

    Returns
    -------
    directions : (D, 2) int64
        (dy, dx) in IRN's search order: first ``(0, 1) … (0, radius − 1)``, then
        rows ``dy = 1 … radius − 1`` from left to right. The opposite offset
        ``−d`` of each is never listed, so every unordered pair appears once.
    """
    radius = _check_radius(radius)
    dirs = [(0, dx) for dx in range(1, radius)]
    dirs += [
        (dy, dx) for dy in range(1, radius) for dx in range(-radius + 1, radius) if dy * dy + dx * dx < radius * radius
    ]
    return np.asarray(dirs, dtype=np.int64).reshape(-1, 2)


def segment_path(direction: tuple[int, int] | np.ndarray) -> np.ndarray:
    """Grid points along the segment from 0 to ``direction``, ordered from i to j.

    Parameters
    ----------
    direction : (2,) int
        (dy, dx), not (0, 0).

    Returns
    -------
    path : (L, 2) int64
        (dy, dx) offsets from i: every point of the segment's bounding box
        whose distance to the line through 0 and ``direction`` is below 1
        (IRN's rule), sorted by their projection on the segment, so the first
        is (0, 0) (i itself) and the last is ``direction`` (j).
    """
    dy, dx = (int(v) for v in direction)
    length_sq = dy * dy + dx * dx
    if length_sq == 0:
        raise ValueError("segment_path: direction (0, 0) has no path; give a non-zero (dy, dx)")
    ys = np.arange(min(0, dy), max(0, dy) + 1)
    xs = np.arange(min(0, dx), max(0, dx) + 1)
    yy, xx = (g.ravel() for g in np.meshgrid(ys, xs, indexing="ij"))
    # Squared distance to the line: (d × p)² / |d|² (the cross product is the
    # parallelogram's area, divided by the base's length).
    near = (dy * xx - dx * yy) ** 2 < length_sq
    yy, xx = yy[near], xx[near]
    order = np.lexsort((xx, yy, dy * yy + dx * xx))  # projection first, then raster order for ties
    return np.stack([yy[order], xx[order]], axis=1).astype(np.int64)


@dataclass(frozen=True)
class PathIndex:
    """The directions and paths of one radius, in IRN's order.

    Attributes
    ----------
    radius : int
        γ in grid pixels.
    directions : (D, 2) int64
        (dy, dx) = x_j − x_i of each direction, sorted by path length (stable,
        so ties keep the search order): IRN's order, in which directions of
        equal path length are processed together.
    paths : tuple of D arrays (L_d, 2) int64
        ``segment_path`` of each direction.
    """

    radius: int
    directions: np.ndarray
    paths: tuple[np.ndarray, ...]

    @property
    def margin(self) -> int:
        """r' = radius − 1: how far a destination can be from its source along each axis."""
        return self.radius - 1

    def source_shape(self, size: tuple[int, int]) -> tuple[int, int]:
        """Rows and columns of the source region of a (h, w) grid: ``(h − r', w − 2r')``."""
        h, w = _check_size(size, self.margin)
        return h - self.margin, w - 2 * self.margin

    def num_pairs(self, size: tuple[int, int]) -> int:
        """D · P: the number of enumerated pairs on a (h, w) grid."""
        sh, sw = self.source_shape(size)
        return len(self.directions) * sh * sw

    def pair_indices(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Flat (raster) indices of the pairs of a (h, w) grid.

        Returns
        -------
        src : (P,) int64
            i, the sources (IRN's ``default_src_indices``).
        dst : (D, P) int64
            j = i + directions[d] for each direction (IRN's ``default_dst_indices``).
        """
        h, w = _check_size(size, self.margin)
        sh, sw = self.source_shape(size)
        ys, xs = np.meshgrid(np.arange(sh), np.arange(self.margin, self.margin + sw), indexing="ij")
        src = (ys * w + xs).ravel().astype(np.int64)
        dst = src[None, :] + self.directions[:, 0:1] * w + self.directions[:, 1:2]
        return src, dst


def path_index(radius: int) -> PathIndex:
    """Build the :class:`PathIndex` of a radius (34 directions for 5, 152 for 10).

    Parameters
    ----------
    radius : int
        γ in grid pixels, at least 2.

    Returns
    -------
    PathIndex
    """
    radius = _check_radius(radius)
    dirs = half_plane_directions(radius)
    paths = [segment_path(d) for d in dirs]
    order = sorted(range(len(dirs)), key=lambda k: len(paths[k]))  # sorted() is stable
    return PathIndex(radius=radius, directions=dirs[order], paths=tuple(paths[k] for k in order))


def pair_affinity(boundary: torch.Tensor, index: PathIndex) -> torch.Tensor:
    """Affinity of every enumerated pair: ``a_ij = 1 − max_{k ∈ path(i, j)} B(x_k)`` (IRN Eq. 5).

    Differentiable (the gradient of the max goes to the path's largest B).

    Parameters
    ----------
    boundary : (..., h, w) float tensor
        Class-boundary map B in [0, 1] at the grid (e.g. the network's
        ``(N, 1, h, w)`` sigmoid output); leading dimensions are kept.
    index : PathIndex

    Returns
    -------
    affinity : (..., D, P) tensor, same dtype and device
        P = (h − r') · (w − 2r') sources in raster order (see the module docstring).
    """
    h, w = _check_size(tuple(boundary.shape[-2:]), index.margin)
    sh, sw = index.source_shape((h, w))
    m = index.margin
    lengths = np.array([len(p) for p in index.paths])
    out = []
    # Directions of equal path length are stacked together and reduced by one
    # amax, as IRN does (fewer, larger operations than one per direction).
    for length in np.unique(lengths):
        group = [index.paths[k] for k in np.flatnonzero(lengths == length)]
        crops = [
            torch.stack([boundary[..., oy : oy + sh, m + ox : m + ox + sw] for oy, ox in path.tolist()], dim=-3)
            for path in group
        ]
        out.append(torch.stack(crops, dim=-4).amax(dim=-3))  # (..., n_group, sh, sw)
    path_max = torch.cat(out, dim=-3)
    return (1.0 - path_max).reshape(*boundary.shape[:-2], len(index.directions), sh * sw)


def pair_difference(field: torch.Tensor, index: PathIndex) -> torch.Tensor:
    """``f(x_i) − f(x_j)`` for every enumerated pair (IRN's ``to_displacement``).

    Parameters
    ----------
    field : (..., C, h, w) tensor
        E.g. the displacement field D ``(N, 2, h, w)`` or a flow.
    index : PathIndex

    Returns
    -------
    difference : (..., C, D, P) tensor
        With D the displacement field this is δ̂(i, j) = D(x_i) − D(x_j)
        (METHOD.md §5), whose target on a same-instance pair is
        ``x_j − x_i = index.directions``.
    """
    h, w = _check_size(tuple(field.shape[-2:]), index.margin)
    sh, sw = index.source_shape((h, w))
    m = index.margin
    src = field[..., :sh, m : m + sw]
    dst = torch.stack([field[..., dy : dy + sh, m + dx : m + dx + sw] for dy, dx in index.directions.tolist()], dim=-3)
    diff = src.unsqueeze(-3) - dst
    return diff.reshape(*field.shape[:-2], len(index.directions), sh * sw)


def _check_radius(radius: int) -> int:
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 2:
        raise ValueError(f"radius must be an integer >= 2 (grid pixels), got {radius!r}")
    return int(radius)


def _check_size(size: tuple[int, ...], margin: int) -> tuple[int, int]:
    h, w = (int(v) for v in size)
    if h <= margin or w <= 2 * margin:
        raise ValueError(
            f"grid {h}x{w} is too small for radius {margin + 1}: pairs need at least {margin + 1} rows "
            f"and {2 * margin + 1} columns"
        )
    return h, w
