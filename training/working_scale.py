"""The working scale of CAMs and IRN (METHOD.md §9): small frames are upsampled, labels brought back.

IRN's constants are in pixels (a pair radius of 10 cells at stride 4, a
centroid cluster threshold of 2.5 cells, CRF kernels of 50 / 3 px, CAMs at
stride 16) and the ImageNet backbones see objects of 100-300 px best. On
120x160 frames with 20-50 px objects both fail: the same synthetic videos
rendered at 360x480 gave 36.9 % pseudo-label frame AP50 against 7.6 %
(benchmarks/RESULTS.md). So the classifier, the CAMs and IRN see each frame
upsampled until its short side is ``working_size`` px, and what they produce
comes back at frame size: CAMs are stored on the frame's stride-4 grid and at
frame size, pseudo-labels at frame size, IRN's maps on the frame's grid.
Frames already that large are used as they are (never downsampled).

A run records its ``working_size`` in ``config.json``; a run written before
the setting existed worked at frame size (0).
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from training import run_folder
from training.errors import InputError
from training.json_io import read_json

WORKING_SIZE = 360
"""Default short side, in pixels, that frames are upsampled to (0: frame size)."""

MAX_WORKING_SIZE = 2048


def check_working_size(value: int, command: str) -> int:
    """``value`` as an int in ``[0, MAX_WORKING_SIZE]``, or a one-line :class:`InputError` naming ``command``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= MAX_WORKING_SIZE:
        limit = f"[0, {MAX_WORKING_SIZE}]"
        raise InputError(None, f"{command}: --working-size must be a whole number of pixels in {limit}, got {value!r}")
    return int(value)


def working_scale(frame_shape: tuple[int, ...], working_size: int) -> float:
    """The factor a frame is upsampled by: ``working_size / short side``, at least 1.

    Parameters
    ----------
    frame_shape : (H, W, ...)
    working_size : int
        Short side to reach, in pixels; 0 keeps every frame at its size.

    Returns
    -------
    float >= 1
    """
    short = min(int(frame_shape[0]), int(frame_shape[1]))
    if working_size <= 0 or short <= 0 or short >= working_size:
        return 1.0
    return working_size / short


def working_shape(frame_shape: tuple[int, ...], scale: float) -> tuple[int, int]:
    """(round(H·scale), round(W·scale)), at least 1 each: the size of a frame at the working scale."""
    return max(1, round(int(frame_shape[0]) * scale)), max(1, round(int(frame_shape[1]) * scale))


def upsample_frame(image: np.ndarray, scale: float) -> np.ndarray:
    """A frame at the working scale.

    Parameters
    ----------
    image : (H, W, 3) uint8
    scale : float >= 1

    Returns
    -------
    (round(H·scale), round(W·scale), 3) uint8, bilinear; ``image`` itself when ``scale`` is 1.
    """
    if scale == 1.0:
        return image
    h, w = working_shape(image.shape, scale)
    return cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=cv2.INTER_LINEAR)


def mask_to_frame(mask: np.ndarray, frame_shape: tuple[int, ...]) -> np.ndarray:
    """A mask made at the working scale, back at frame size.

    Parameters
    ----------
    mask : (h, w) bool
    frame_shape : (H, W, ...)

    Returns
    -------
    (H, W) bool: a frame pixel is set when at least half of the area it covers is.
    """
    h, w = int(frame_shape[0]), int(frame_shape[1])
    if mask.shape == (h, w):
        return np.asarray(mask, bool)
    covered = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    return covered >= 0.5


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Maps between the working scale and the frame (either way).

    Parameters
    ----------
    maps : (K, h, w) float
    size : (h', w')

    Returns
    -------
    (K, h', w') float32: bilinear when enlarging, area average when shrinking.
    """
    a = np.asarray(maps, np.float32)
    h, w = size
    if len(a) == 0:
        return np.zeros((0, h, w), np.float32)
    if a.shape[1:] == (h, w):
        return a
    interp = cv2.INTER_AREA if h <= a.shape[1] and w <= a.shape[2] else cv2.INTER_LINEAR
    return np.stack([cv2.resize(np.ascontiguousarray(m), (w, h), interpolation=interp) for m in a])


def recorded_working_size(run: str | os.PathLike) -> int:
    """The ``working_size`` a ``train-cam`` or ``train-irn`` run was trained at (0 for runs made before it existed).

    Raises
    ------
    InputError
        A ``config.json`` that is not readable JSON, or a bad recorded value.
    """
    path = run_folder.config(run)
    if not path.is_file():
        return 0
    config = read_json(path)
    value = config.get("working_size", 0) if isinstance(config, dict) else 0
    try:
        return check_working_size(value, "run config")
    except InputError as exc:
        raise InputError(path, exc.problem) from None
