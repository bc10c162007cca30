"""Warping by a flow: sample an image at ``x + flow(x)``.

Coordinate convention shared by the numpy and the torch version: pixel (y, x)
has its centre at integer coordinates (x, y); flow channel 0 is dx (columns),
channel 1 is dy (rows). With ``flow = estimate_flow(frame0, frame1)``,
``warp(frame1, flow)`` reconstructs ``frame0``; warping a label mask of frame
t+1 the same way carries it back to frame t.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

# dtypes cv2.remap interpolates natively; others go through float32
_REMAP_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


def sample_coordinates(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel samples: ``(x + dx, y + dy)``.

    Parameters
    ----------
    flow : (H, W, 2) float
        (dx, dy) per pixel.

    Returns
    -------
    map_x, map_y : (H, W) float32
    """
    f = np.asarray(flow, dtype=np.float32)
    if f.ndim != 3 or f.shape[2] != 2:
        raise ValueError(f"expected an (H, W, 2) flow, got shape {f.shape}")
    h, w = f.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs + f[..., 0], ys + f[..., 1]


def warp(image: np.ndarray, flow: np.ndarray, mode: str = "bilinear", fill: float | None = None) -> np.ndarray:
    """Sample ``image`` at ``x + flow(x)``.

    Parameters
    ----------
    image : (H, W) or (H, W, C) array, any numeric or bool dtype
        A frame, a feature map or (``mode="nearest"``) a label mask.
    flow : (H, W, 2) float
        (dx, dy) per pixel of the output.
    mode : {"bilinear", "nearest"}
        Bilinear for images; nearest for label masks, which keeps the exact
        label values.
    fill : float, optional
        Value where ``x + flow(x)`` falls outside the image. By default the
        border is replicated (an image keeps its edge colour); pass ``0`` to
        let a mask's labels leave the frame instead of smearing along it.

    Returns
    -------
    warped : same shape and dtype as ``image``
        Integer images are rounded after bilinear interpolation.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.shape[:2] != np.shape(flow)[:2]:
        raise ValueError(f"image {img.shape} and flow {np.shape(flow)} must share (H, W)")
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}")
    map_x, map_y = sample_coordinates(flow)
    if mode == "nearest":
        return _warp_nearest(img, map_x, map_y, fill)
    work = np.ascontiguousarray(img if img.dtype.type in _REMAP_DTYPES else img.astype(np.float32))
    if fill is None:
        out = cv2.remap(work, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    else:
        # cv2's border value has 4 components: warp wider images 4 channels at a time
        chunks = [work] if work.ndim == 2 else np.array_split(work, -(-work.shape[2] // 4), axis=2)
        value = (float(fill),) * 4
        parts = [
            cv2.remap(np.ascontiguousarray(c), map_x, map_y, cv2.INTER_LINEAR, None, cv2.BORDER_CONSTANT, value)
            for c in chunks
        ]
        out = parts[0] if work.ndim == 2 else np.concatenate([p.reshape(*p.shape[:2], -1) for p in parts], axis=2)
    out = out.reshape(img.shape)  # cv2 drops a trailing channel axis of 1
    if out.dtype != img.dtype:
        if np.issubdtype(img.dtype, np.integer) or img.dtype == np.bool_:
            out = np.rint(out)
        out = out.astype(img.dtype)
    return out


def _warp_nearest(img: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, fill: float | None) -> np.ndarray:
    h, w = img.shape[:2]
    # floor(v + 0.5): round half up, so the choice at .5 does not depend on the parity of the coordinate
    xi = np.floor(map_x + 0.5).astype(np.int64)
    yi = np.floor(map_y + 0.5).astype(np.int64)
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    out = img[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
    if fill is not None:
        out[~inside] = fill
    return out


def warp_tensor(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Torch version of :func:`warp` (same convention, border replicated), differentiable.

    Parameters
    ----------
    image : (N, C, H, W) float tensor
    flow : (N, 2, H, W) float tensor
        (dx, dy) in pixels.
    mode : {"bilinear", "nearest"}

    Returns
    -------
    warped : (N, C, H, W) tensor, ``image`` sampled at ``x + flow(x)``.
    """
    if image.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2 or image.shape[-2:] != flow.shape[-2:]:
        shapes = f"{tuple(image.shape)} and {tuple(flow.shape)}"
        raise ValueError(f"expected image (N, C, H, W) and flow (N, 2, H, W), got {shapes}")
    import torch.nn.functional as F  # torch only for the tensor version: the numpy API stays light

    return F.grid_sample(image, flow_to_grid(flow), mode=mode, padding_mode="border", align_corners=True)


def flow_to_grid(flow: torch.Tensor) -> torch.Tensor:
    """``x + flow(x)`` in grid_sample's normalised coordinates.

    Parameters
    ----------
    flow : (N, 2, H, W) float tensor

    Returns
    -------
    grid : (N, H, W, 2) tensor in [-1, 1] for in-frame points; with
        ``align_corners=True`` -1 and 1 are the centres of the corner pixels,
        the same pixel-centre convention as ``cv2.remap``.
    """
    import torch

    _, _, h, w = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=flow.dtype, device=flow.device),
        torch.arange(w, dtype=flow.dtype, device=flow.device),
        indexing="ij",
    )
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    # a 1-pixel axis has no extent: any coordinate maps to its only pixel
    gx = 2.0 * x / max(w - 1, 1) - 1.0
    gy = 2.0 * y / max(h - 1, 1) - 1.0
    return torch.stack([gx, gy], dim=-1)
