"""Camera motion: the dominant motion of a frame, and flow relative to it."""

from __future__ import annotations

import numpy as np


def camera_motion(flow: np.ndarray) -> np.ndarray:
    """Dominant (camera) motion of a frame: the per-component median of its flow.

    Parameters
    ----------
    flow : (H, W, 2) float
        (dx, dy) per pixel.

    Returns
    -------
    motion : (2,) float32
        Median dx and dy. Objects cover less than half of most frames, so the
        median is the background's motion (a panning camera).
    """
    f = np.asarray(flow, dtype=np.float32).reshape(-1, 2)
    return np.median(f, axis=0).astype(np.float32)


def remove_camera_motion(flow: np.ndarray) -> np.ndarray:
    """Flow relative to the camera: ``flow - camera_motion(flow)``.

    Parameters
    ----------
    flow : (H, W, 2) float

    Returns
    -------
    relative : (H, W, 2) float32
    """
    f = np.asarray(flow, dtype=np.float32)
    return f - camera_motion(f)[None, None, :]
