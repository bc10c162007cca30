"""Unsupervised flow losses (UFlow / ARFlow / DDFlow style), pure tensor functions.

A flow is learned without ground truth by asking frame t+1, warped back by
the predicted flow, to look like frame t where the pixel is visible
(photometric loss on non-occluded pixels), and the flow to be smooth except
at image edges (edge-aware smoothness, weight exp(-10 |∇I|)). Occlusion comes
from the forward-backward check on the predicted flows (METHOD.md §1).

Images are (N, 3, H, W) float in [0, 1]; flows are (N, 2, H, W) (dx, dy) in pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.flow.config import PHOTOMETRIC
from training.flow.occlusion import occlusion_mask_tensor
from training.flow.warp import warp_tensor

_EPS = 1e-6


def census_transform(image: torch.Tensor, patch: int = 7) -> torch.Tensor:
    """Soft census transform of the luma (UFlow): how each neighbour compares to the centre.

    Parameters
    ----------
    image : (N, 3, H, W) float in [0, 1]
    patch : int
        Odd side of the neighbourhood.

    Returns
    -------
    census : (N, patch², H, W) float in (-1, 1)
        ``d / sqrt(0.81 + d²)`` with ``d`` the neighbour minus the centre, luma in [0, 255].
    """
    luma = (0.2989 * image[:, 0:1] + 0.5870 * image[:, 1:2] + 0.1140 * image[:, 2:3]) * 255.0
    r = patch // 2
    n, _, h, w = luma.shape
    neighbours = F.unfold(F.pad(luma, (r, r, r, r), mode="replicate"), patch).view(n, patch * patch, h, w)
    d = neighbours - luma
    return d / torch.sqrt(0.81 + d * d)


def census_distance(image0: torch.Tensor, image1: torch.Tensor, patch: int = 7) -> torch.Tensor:
    """Robust soft Hamming distance between the census transforms of two images.

    Parameters
    ----------
    image0, image1 : (N, 3, H, W) float in [0, 1]

    Returns
    -------
    distance : (N, 1, H, W) float, about 0.16 where the images match locally
        (the robust penalty ``(d + 0.01)^0.4`` of UFlow, applied to the Hamming sum).
    """
    d = (census_transform(image0, patch) - census_transform(image1, patch)) ** 2
    hamming = (d / (0.1 + d)).sum(1, keepdim=True)
    return (hamming + 0.01) ** 0.4


def ssim_distance(image0: torch.Tensor, image1: torch.Tensor) -> torch.Tensor:
    """``0.85 · (1 - SSIM)/2 + 0.15 · |I0 - I1|`` per pixel (Monodepth, ARFlow), 3x3 windows.

    Parameters
    ----------
    image0, image1 : (N, C, H, W) float in [0, 1]

    Returns
    -------
    distance : (N, 1, H, W) float in [0, 1]
    """
    c1, c2 = 0.01**2, 0.03**2
    x = F.pad(image0, (1, 1, 1, 1), mode="replicate")
    y = F.pad(image1, (1, 1, 1, 1), mode="replicate")
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sigma_x = F.avg_pool2d(x * x, 3, 1) - mu_x**2
    sigma_y = F.avg_pool2d(y * y, 3, 1) - mu_y**2
    sigma_xy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2))
    dssim = torch.clamp((1 - ssim) / 2, 0, 1)
    return (0.85 * dssim + 0.15 * (image0 - image1).abs()).mean(1, keepdim=True)


def photometric_loss(
    image0: torch.Tensor, image1_warped: torch.Tensor, visible: torch.Tensor, kind: str = "census"
) -> torch.Tensor:
    """Mean photometric distance over visible pixels.

    Parameters
    ----------
    image0 : (N, 3, H, W) float in [0, 1]
        The reference frame.
    image1_warped : (N, 3, H, W) float in [0, 1]
        The other frame warped onto it by the predicted flow.
    visible : (N, 1, H, W) float or bool
        1 where the pixel is not occluded.
    kind : {"census", "ssim"}

    Returns
    -------
    loss : () float tensor (0 when no pixel is visible)
    """
    if kind == "census":
        distance = census_distance(image0, image1_warped)
    elif kind == "ssim":
        distance = ssim_distance(image0, image1_warped)
    else:
        raise ValueError(f"unknown photometric loss {kind!r}: expected one of {', '.join(PHOTOMETRIC)}")
    v = visible.to(distance.dtype)
    return (distance * v).sum() / (v.sum() + _EPS)


def smoothness_loss(flow: torch.Tensor, image: torch.Tensor, edge_weight: float = 10.0) -> torch.Tensor:
    """First-order edge-aware smoothness: ``mean |∇F| · exp(-edge_weight · mean_c |∇I|)``.

    Parameters
    ----------
    flow : (N, 2, H, W) float, pixels
    image : (N, 3, H, W) float in [0, 1]
        The frame the flow belongs to; its edges let the flow change.
    edge_weight : float
        10 as in ARFlow / METHOD.md.

    Returns
    -------
    loss : () float tensor, average of the x and y terms
    """
    wx = torch.exp(-edge_weight * (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True))
    wy = torch.exp(-edge_weight * (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True))
    fx = (flow[..., :, 1:] - flow[..., :, :-1]).abs()
    fy = (flow[..., 1:, :] - flow[..., :-1, :]).abs()
    return 0.5 * ((wx * fx).mean() + (wy * fy).mean())


def visible_pixels(forward: torch.Tensor, backward: torch.Tensor, max_occluded: float = 0.5) -> torch.Tensor:
    """Pixels that pass the forward-backward check, all of them where the check fails too often.

    Parameters
    ----------
    forward, backward : (N, 2, H, W) float
    max_occluded : float
        Fraction of occluded pixels above which a sample's mask is dropped.

    Returns
    -------
    visible : (N, 1, H, W) bool, no gradient
    """
    occluded = occlusion_mask_tensor(forward, backward)
    unreliable = occluded.flatten(1).float().mean(1) > max_occluded
    return ~(occluded & ~unreliable.view(-1, 1, 1, 1))


def unsupervised_flow_loss(
    image0: torch.Tensor,
    image1: torch.Tensor,
    forward: list[torch.Tensor],
    backward: list[torch.Tensor],
    photometric: str = "census",
    smoothness_weight: float = 1.0,
    edge_weight: float = 10.0,
    gamma: float = 0.8,
    use_occlusion: bool = True,
    max_occluded: float = 0.5,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of a flow network on a batch of frame pairs, both directions.

    Every refinement of RAFT is supervised, later ones more (weight
    ``gamma^(n-1-i)``, RAFT's sequence loss). The occlusion masks come from
    the last refinement and carry no gradient.

    Parameters
    ----------
    image0, image1 : (N, 3, H, W) float in [0, 1]
    forward, backward : list of (N, 2, H, W) float
        Flow 0 → 1 and 1 → 0 after each refinement.
    photometric : {"census", "ssim"}
    smoothness_weight, edge_weight, gamma : float
    use_occlusion : bool
        Mask occluded pixels out of the photometric loss. Early in training
        the flows are noise and the check would mask almost everything.
    max_occluded : float
        A sample whose check flags more than this fraction of its pixels
        keeps all of them: its flows are not yet reliable, and masking
        everything would leave it without photometric gradient for good.

    Returns
    -------
    loss : () float tensor
    parts : dict
        ``photometric``, ``smoothness`` (weighted sums over refinements) and
        ``occluded`` (fraction of masked pixels), as floats for logging.
    """
    n_steps = len(forward)
    if use_occlusion:
        visible0 = visible_pixels(forward[-1], backward[-1], max_occluded)
        visible1 = visible_pixels(backward[-1], forward[-1], max_occluded)
    else:
        visible0 = torch.ones_like(image0[:, :1], dtype=torch.bool)
        visible1 = visible0
    photo = image0.new_zeros(())
    smooth = image0.new_zeros(())
    for i, (fw, bw) in enumerate(zip(forward, backward, strict=True)):
        weight = gamma ** (n_steps - 1 - i)
        photo = photo + weight * 0.5 * (
            photometric_loss(image0, warp_tensor(image1, fw), visible0, photometric)
            + photometric_loss(image1, warp_tensor(image0, bw), visible1, photometric)
        )
        smooth = smooth + weight * 0.5 * (
            smoothness_loss(fw, image0, edge_weight) + smoothness_loss(bw, image1, edge_weight)
        )
    loss = photo + smoothness_weight * smooth
    occluded = 1.0 - 0.5 * (visible0.float().mean().item() + visible1.float().mean().item())
    return loss, {"photometric": float(photo.detach()), "smoothness": float(smooth.detach()), "occluded": occluded}
