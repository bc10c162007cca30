"""Occlusion from the forward-backward consistency check (METHOD.md §1, UnFlow).

A pixel x of frame t is visible in frame t+1 when following the forward flow
and coming back with the backward flow returns to x:
``F(x) + B̃(x) ≈ 0`` with ``B̃(x) = B(x + F(x))``. It is occluded where

    |F + B̃|² > α₁ (|F|² + |B̃|²) + α₂,   α₁ = 0.01, α₂ = 0.5

and also where ``x + F(x)`` leaves the frame (no pixel of t+1 to match).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from training.flow.warp import sample_coordinates, warp, warp_tensor

if TYPE_CHECKING:
    import torch

ALPHA1 = 0.01
ALPHA2 = 0.5


def occlusion_mask(
    forward: np.ndarray, backward: np.ndarray, alpha1: float = ALPHA1, alpha2: float = ALPHA2
) -> np.ndarray:
    """Pixels of frame t with no consistent match in frame t+1.

    Parameters
    ----------
    forward : (H, W, 2) float
        Flow t → t+1 at the pixels of frame t.
    backward : (H, W, 2) float
        Flow t+1 → t at the pixels of frame t+1.
    alpha1, alpha2 : float
        Relative and absolute (px²) tolerance of the check.

    Returns
    -------
    occluded : (H, W) bool
    """
    f = np.asarray(forward, dtype=np.float32)
    b = np.asarray(backward, dtype=np.float32)
    if f.shape != b.shape:
        raise ValueError(f"forward {f.shape} and backward {b.shape} flows must have the same shape")
    b_warped = warp(b, f)
    diff = np.sum((f + b_warped) ** 2, axis=2)
    bound = alpha1 * (np.sum(f**2, axis=2) + np.sum(b_warped**2, axis=2)) + alpha2
    map_x, map_y = sample_coordinates(f)
    h, w = f.shape[:2]
    outside = (map_x < 0) | (map_x > w - 1) | (map_y < 0) | (map_y > h - 1)
    return (diff > bound) | outside


def occlusion_mask_tensor(
    forward: torch.Tensor, backward: torch.Tensor, alpha1: float = ALPHA1, alpha2: float = ALPHA2
) -> torch.Tensor:
    """Torch version of :func:`occlusion_mask` (same check, batched, no gradient).

    Parameters
    ----------
    forward, backward : (N, 2, H, W) float tensors

    Returns
    -------
    occluded : (N, 1, H, W) bool tensor
    """
    import torch  # torch only for the tensor version: the numpy API stays light

    with torch.no_grad():
        b_warped = warp_tensor(backward, forward)
        diff = ((forward + b_warped) ** 2).sum(1, keepdim=True)
        bound = alpha1 * ((forward**2).sum(1, keepdim=True) + (b_warped**2).sum(1, keepdim=True)) + alpha2
        _, _, h, w = forward.shape
        xs = torch.arange(w, dtype=forward.dtype, device=forward.device).view(1, 1, 1, w) + forward[:, :1]
        ys = torch.arange(h, dtype=forward.dtype, device=forward.device).view(1, 1, h, 1) + forward[:, 1:]
        outside = (xs < 0) | (xs > w - 1) | (ys < 0) | (ys > h - 1)
        return (diff > bound) | outside
