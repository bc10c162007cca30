"""The classes' outlines, placed and rasterised with fixed-point arithmetic (byte-identical masks)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from training.synthetic.config import _NAMES, _SHIFT, ObjectTrack


def shape_outline(category_id: int, size: float, aspect: float) -> np.ndarray:
    """The class outline centred at the origin, before rotation.

    Parameters
    ----------
    category_id : int
        One of :data:`CATEGORIES`.
    size : float
        Diameter of the circumscribed circle, px.
    aspect : float
        disc: minor/major axis; box: short/long side; triangle: height
        squeeze; star: inner/outer radius.

    Returns
    -------
    vertices : (N, 2) float64
        Polygon (x, y); the farthest vertex is at distance ``size / 2``.
    """
    name = _NAMES[category_id]
    r = size / 2.0
    if name == "disc":
        a = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(a), aspect * np.sin(a)], axis=1)
    elif name == "box":
        half = np.array([1.0, aspect]) / math.hypot(1.0, aspect)
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * half
    elif name == "triangle":
        a = np.pi / 2 + np.array([0.0, 2.0, 4.0]) * np.pi / 3
        pts = np.stack([np.cos(a), aspect * np.sin(a)], axis=1)
    elif name == "star":
        a = np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 1.0, aspect)
        pts = np.stack([rad * np.cos(a), rad * np.sin(a)], axis=1)
    else:  # pragma: no cover - _NAMES only holds the four above
        raise ValueError(f"unknown category {category_id}")
    pts = pts / np.max(np.hypot(pts[:, 0], pts[:, 1]))
    return pts * r


def _place(outline: np.ndarray, center: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return outline @ rot.T + center


def track_polygon(track: ObjectTrack, t: int) -> np.ndarray:
    """The object's outline in frame ``t``: (N, 2) float64 (x, y) pixel coordinates."""
    outline = shape_outline(track.category_id, track.size, track.aspect)
    return _place(outline, track.centers[t], float(track.angles[t]))


def rasterize(polygon: np.ndarray, height: int, width: int, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Fill a polygon on a pixel grid with integer arithmetic (reproducible bytes).

    Parameters
    ----------
    polygon : (N, 2) float
        Vertices (x, y); pixel ``(i, j)`` has its centre at ``x = j, y = i``.
    height, width : int
        Size of the grid.
    origin : (int, int)
        Frame coordinates (x, y) of the grid's pixel (0, 0).

    Returns
    -------
    mask : (height, width) bool
    """
    pts = np.rint((polygon - np.asarray(origin, dtype=np.float64)) * (1 << _SHIFT)).astype(np.int32)
    canvas = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(canvas, [pts.reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return canvas.astype(bool)


def patch_mask(track: ObjectTrack, t: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The object's whole shape in frame ``t`` on a patch around it, not clipped to the frame.

    The patch, not the frame, is the one raster of an object: OpenCV fills a
    polygon cut by the image border slightly differently, so rendering and
    :func:`object_mask` both start from this.

    Returns
    -------
    mask : (h, w) bool
    origin : (int, int)
        Frame coordinates (x, y) of the patch's pixel (0, 0).
    """
    poly = track_polygon(track, t)
    x0, y0 = int(math.floor(poly[:, 0].min())) - 3, int(math.floor(poly[:, 1].min())) - 3
    x1, y1 = int(math.ceil(poly[:, 0].max())) + 4, int(math.ceil(poly[:, 1].max())) + 4
    return rasterize(poly, y1 - y0, x1 - x0, (x0, y0)), (x0, y0)


def _overlap(
    origin: tuple[int, int], shape: tuple[int, int], height: int, width: int
) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Slices (frame, patch) of the part of a patch inside the frame; None when outside."""
    x0, y0 = origin
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + shape[1], width), min(y0 + shape[0], height)
    if fx0 >= fx1 or fy0 >= fy1:
        return None
    return (
        (slice(fy0, fy1), slice(fx0, fx1)),
        (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0)),
    )


def object_mask(track: ObjectTrack, t: int, height: int, width: int) -> np.ndarray:
    """The whole (amodal) mask of an object in frame ``t``, occluders ignored.

    Returns
    -------
    mask : (height, width) bool
        Equal to the object's visible mask wherever no nearer object covers it.
    """
    out = np.zeros((height, width), dtype=bool)
    mask, origin = patch_mask(track, t)
    window = _overlap(origin, mask.shape, height, width)
    if window is not None:
        out[window[0]] = mask[window[1]]
    return out
