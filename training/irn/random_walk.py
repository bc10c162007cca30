"""Random-walk propagation over the boundary-aware affinities (METHOD.md §6; IRN Eq. 7-8).

IRN builds the dense (hw)² affinity matrix A of the radius-5 pairs (a_ij =
1 − max of B along the path, symmetric, ones on the diagonal), the transition
``T = A^{∘β}`` normalised column-wise (T_ij = a_ij^β / S_j, S_j = Σ_i a_ij^β),
squares T ``exp_times`` = 8 times and propagates ``x · T^{256}``. One step
``y = x · T`` is ``y_j = Σ_i x_i a_ij^β / S_j``: a weighted average over the
(at most 69) neighbours of j. So ``x · T^{256}`` is computed here as 256
products with the sparse CSR matrix ``M = Tᵀ`` (:func:`transition_matrix`,
built from per-offset weight maps, :func:`neighbour_weights`): memory linear
in the pixels, and the same result to float precision.

The dense formulation is kept in :func:`dense_transition` /
:func:`dense_propagate` as the reference for tests and the benchmark; it is
built independently, from IRN's pair list (:func:`image_pairs`), and costs
O((hw)²) memory and O((hw)³) time.

IRN pads the boundary map with 1.0 (left, right and bottom, by the radius)
before enumerating pairs, then crops the matrix back to the image. A path
between two in-image pixels stays inside their bounding box, hence inside the
image, so the padding never changes an in-image affinity: its effect is that
every in-image pair is enumerated (pairs touching the padding have a = 0 and
are cropped away). Both formulations here do exactly that.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from training.irn.path_index import pair_affinity, path_index

INFER_RADIUS = 5
"""IRN's radius for the transition matrix (grid pixels)."""
BETA = 10.0
"""IRN's β: affinities are raised to this power before normalisation."""
EXP_TIMES = 8
"""IRN squares T this many times: the walk takes 2^8 = 256 steps."""


def image_pairs(
    boundary: torch.Tensor, radius: int = INFER_RADIUS, pad: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every unordered pair of pixels of an image within the radius, with its affinity.

    Parameters
    ----------
    boundary : (h, w) float tensor
        B in [0, 1].
    radius : int
        γ in grid pixels.
    pad : int or None
        Width of IRN's 1.0 padding (left, right, bottom) before enumeration;
        ``None`` uses radius − 1, the least that enumerates every in-image pair.

    Returns
    -------
    src, dst : (E,) int64 tensors
        Raster indices of i and j in the (h, w) image (i before j).
    affinity : (E,) float tensor
        a_ij = 1 − max_{k ∈ path(i, j)} B(x_k).
    """
    h, w = boundary.shape
    index = path_index(radius)
    pad = index.margin if pad is None else int(pad)
    padded = F.pad(boundary[None, None], (pad, pad, 0, pad), mode="constant", value=1.0)[0, 0]
    aff = pair_affinity(padded, index)  # (D, P)
    src, dst = index.pair_indices((int(padded.shape[0]), int(padded.shape[1])))
    wp = w + 2 * pad
    src = np.broadcast_to(src, dst.shape)
    sy, sx = src // wp, src % wp - pad
    dy, dx = dst // wp, dst % wp - pad
    inside = (sy < h) & (sx >= 0) & (sx < w) & (dy < h) & (dx >= 0) & (dx < w)
    keep = torch.from_numpy(np.flatnonzero(inside)).to(boundary.device)
    src_img = torch.from_numpy((sy * w + sx)[inside]).to(boundary.device)
    dst_img = torch.from_numpy((dy * w + dx)[inside]).to(boundary.device)
    return src_img, dst_img, aff.reshape(-1)[keep]


def neighbour_weights(
    boundary: torch.Tensor, radius: int = INFER_RADIUS, beta: float = BETA
) -> tuple[np.ndarray, torch.Tensor]:
    """Unnormalised transition weights a_ij^β of every pixel towards each neighbour offset.

    Parameters
    ----------
    boundary : (h, w) float tensor
        B in [0, 1].
    radius, beta
        IRN: 5 and 10.

    Returns
    -------
    offsets : (M, 2) int64
        (dy, dx) of the neighbours, (0, 0) included, in raster (lexicographic)
        order; M = 69 for radius 5.
    weights : (M, h, w) tensor, boundary's dtype and device
        ``weights[o, y, x] = a((y, x), (y, x) + o)^β``; 1 for (0, 0) (A's unit
        diagonal); 0 where the neighbour is outside the image.
    """
    h, w = boundary.shape
    index = path_index(radius)
    m = index.margin
    # Sources are exactly the image pixels once the map is padded by r' (left,
    # right, bottom); IRN's pad value 1.0 also zeroes pairs leaving the image.
    padded = F.pad(boundary[None, None], (m, m, 0, m), mode="constant", value=1.0)[0, 0]
    dirs = index.directions
    forward = pair_affinity(padded, index).reshape(len(dirs), h, w).clamp_min(0.0) ** beta
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    inside = [(yy + dy < h) & (xx + dx >= 0) & (xx + dx < w) for dy, dx in dirs.tolist()]
    forward = forward * torch.from_numpy(np.stack(inside)).to(forward.device)
    # The weight of p towards p − d is that of the pair (p − d, p), enumerated from p − d.
    shifted = F.pad(forward, (m, m, m, m))
    backward = torch.stack([shifted[k, m - dy : m - dy + h, m - dx : m - dx + w] for k, (dy, dx) in enumerate(dirs)])
    offsets = np.concatenate([np.zeros((1, 2), np.int64), dirs, -dirs])
    weights = torch.cat([torch.ones_like(forward[:1]), forward, backward])
    order = np.lexsort((offsets[:, 1], offsets[:, 0]))
    return offsets[order], weights[torch.from_numpy(order).to(weights.device)]


def transition_matrix(boundary: torch.Tensor, radius: int = INFER_RADIUS, beta: float = BETA) -> torch.Tensor:
    """The sparse one-step operator ``M = Tᵀ`` of IRN's random walk.

    Parameters
    ----------
    boundary : (h, w) float tensor
        B in [0, 1].
    radius, beta
        IRN: 5 and 10.

    Returns
    -------
    M : (hw, hw) sparse CSR tensor, boundary's dtype and device
        ``M[j, i] = a_ij^β / S_j`` (rows sum to 1), so that one step of the
        walk on column vectors is ``y = M @ x`` (= ``x · T`` on row vectors).
        Only in-image neighbours are stored (at most 69 per row).
    """
    h, w = boundary.shape
    n = h * w
    offsets, weights = neighbour_weights(boundary, radius, beta)
    kernel = weights / weights.sum(dim=0, keepdim=True)  # S_j ≥ 1 thanks to the unit diagonal
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ny, nx = yy.reshape(-1, 1) + offsets[:, 0], xx.reshape(-1, 1) + offsets[:, 1]  # (n, M)
    valid = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
    # Offsets in raster order make each row's valid columns ascending, as CSR wants: no sort needed.
    cols = torch.from_numpy((ny * w + nx)[valid]).to(boundary.device)
    crow = torch.from_numpy(np.concatenate([[0], np.cumsum(valid.sum(axis=1))])).to(boundary.device)
    vals = kernel.reshape(len(offsets), n).T[torch.from_numpy(valid).to(boundary.device)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        return torch.sparse_csr_tensor(crow, cols, vals, (n, n), check_invariants=False)


def random_walk(x: torch.Tensor, transition: torch.Tensor, steps: int = 2**EXP_TIMES) -> torch.Tensor:
    """Apply the walk ``steps`` times: ``x · T^steps`` (IRN Eq. 8 with t = steps).

    Parameters
    ----------
    x : (C, h, w) float tensor
        What to propagate (IRN multiplies it by 1 − B first; see
        :func:`training.irn.inference.propagate`).
    transition : (hw, hw) sparse tensor
        From :func:`transition_matrix`, same dtype and device as ``x``.
    steps : int
        256 in IRN (2^exp_times).

    Returns
    -------
    (C, h, w) tensor
    """
    c, h, w = x.shape
    v = x.reshape(c, h * w).T.contiguous()  # (hw, C): one sparse-dense product per step for all channels
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        for _ in range(int(steps)):
            v = transition @ v
    return v.T.reshape(c, h, w).contiguous()


def dense_transition(
    boundary: torch.Tensor,
    radius: int = INFER_RADIUS,
    beta: float = BETA,
    exp_times: int = EXP_TIMES,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """IRN's dense ``T^{2^exp_times}`` (``to_transition_matrix``): reference only.

    O((hw)²) memory and O((hw)³) time per squaring: a 64×80 grid needs a
    5120² matrix squared 8 times; 128×160 needs 1.6 GB per matrix.

    Parameters
    ----------
    boundary : (h, w) float tensor
    radius, beta, exp_times
        IRN: 5, 10, 8.
    dtype : torch.dtype
        float32 as IRN, float64 for a tighter reference.

    Returns
    -------
    T : (hw, hw) dense tensor
        Propagate a row vector with ``x @ T``.
    """
    h, w = boundary.shape
    n = h * w
    # IRN pads by the radius itself; the pairs kept are the same (see module docstring).
    src, dst, aff = image_pairs(boundary.to(dtype), radius, pad=radius)
    a = torch.eye(n, dtype=dtype, device=boundary.device)
    a[src, dst] = aff
    a[dst, src] = aff
    a.pow_(beta)
    a.div_(a.sum(dim=0, keepdim=True))  # column-normalised: T = A^β S⁻¹
    for _ in range(int(exp_times)):
        a = a @ a
    return a


def dense_propagate(
    x: torch.Tensor,
    boundary: torch.Tensor,
    radius: int = INFER_RADIUS,
    beta: float = BETA,
    exp_times: int = EXP_TIMES,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """IRN's ``propagate_to_edge`` with the dense matrix power: reference only (O((hw)²) memory).

    Parameters
    ----------
    x : (C, h, w) float tensor
    boundary : (h, w) float tensor in [0, 1]

    Returns
    -------
    (C, h, w) tensor of ``dtype``
    """
    c, h, w = x.shape
    t = dense_transition(boundary, radius, beta, exp_times, dtype)
    v = (x.to(dtype) * (1 - boundary.to(dtype))).reshape(c, h * w)
    return (v @ t).reshape(c, h, w)
