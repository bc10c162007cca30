"""CAM inference (METHOD.md §2, IRN's ``make_cam``): multi-scale, flipped, tagged classes only."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from training.cam.data import normalize, rescale
from training.cam.network import CAMNet

SCALES = (1.0, 0.5, 1.5, 2.0)
"""IRN's CAM inference scales."""


def strided_size(height: int, width: int, stride: int = 4) -> tuple[int, int]:
    """The stride grid of a frame: ``((H - 1) // stride + 1, (W - 1) // stride + 1)``."""
    return (height - 1) // stride + 1, (width - 1) // stride + 1


@torch.inference_mode()
def make_cams(
    model: CAMNet,
    image: np.ndarray,
    class_indices: Sequence[int],
    scales: Sequence[float] = SCALES,
    flip: bool = True,
    working_scale: float = 1.0,
) -> dict[str, np.ndarray]:
    """Class activation maps of one frame for the given classes.

    For each scale the frame and its horizontal flip go through the network
    as one batch of two; their ReLU CAMs (the flip flipped back) are summed,
    resized to the stride-4 grid and to full size, and summed over scales.
    Each class map is then divided by its own maximum + 1e-5 (IRN).

    Parameters
    ----------
    model : CAMNet
        Used in eval mode on its own device.
    image : (H, W, 3) uint8 RGB
    class_indices : sequence of int
        Classifier outputs to keep (the frame's tagged classes), in order.
    scales : sequence of float
        Rescale factors of the frame (IRN: 1.0, 0.5, 1.5, 2.0).
    flip : bool
        Also run the mirrored frame.
    working_scale : float
        The frame is first upsampled by this factor (:mod:`training.working_scale`);
        the maps are made there and brought back to the frame's grid and size
        (area average).

    Returns
    -------
    cams : dict
        ``"cams"``: (K', (H-1)//4+1, (W-1)//4+1) float32 in [0, 1);
        ``"high_res"``: (K', H, W) float32 in [0, 1).
        K' = ``len(class_indices)``; with no class both are empty.
    """
    h, w = image.shape[:2]
    grid = strided_size(h, w)
    k = len(class_indices)
    idx = [int(i) for i in class_indices]
    if any(not 0 <= i < model.n_classes for i in idx):
        raise ValueError(f"class indices {idx} out of range for a classifier with {model.n_classes} classes")
    if k == 0:
        return {"cams": np.zeros((0, *grid), np.float32), "high_res": np.zeros((0, h, w), np.float32)}
    model.eval()
    device = next(model.parameters()).device
    x = rescale(normalize(image).to(device), float(working_scale))
    wh, ww = x.shape[-2:]
    work_grid = strided_size(wh, ww)
    weight = model.classifier.weight[idx]
    # IRN upsamples to the next multiple of 16 and crops, so a CAM pixel maps to the same image area at every scale.
    up = (-(-wh // 16) * 16, -(-ww // 16) * 16)
    strided = torch.zeros(k, *work_grid, device=device)
    high = torch.zeros(k, *up, device=device)
    for s in scales:
        xs = rescale(x, float(s))
        batch = torch.stack([xs, xs.flip(-1)]) if flip else xs[None]
        cam = F.relu(F.conv2d(model.features(batch), weight))
        cam = cam[0] + cam[1].flip(-1) if flip else cam[0]
        strided += F.interpolate(cam[None], work_grid, mode="bilinear", align_corners=False)[0]
        high += F.interpolate(cam[None], up, mode="bilinear", align_corners=False)[0]
    high = high[:, :wh, :ww]
    if (wh, ww) != (h, w):  # back from the working scale
        strided = F.interpolate(strided[None], grid, mode="area")[0]
        high = F.interpolate(high[None], (h, w), mode="area")[0]
    strided /= strided.flatten(1).amax(1).view(k, 1, 1) + 1e-5
    high /= high.flatten(1).amax(1).view(k, 1, 1) + 1e-5
    return {"cams": strided.float().cpu().numpy(), "high_res": high.float().cpu().numpy()}
