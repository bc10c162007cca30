"""Masks ⇄ COCO segmentations (RLE via pycocotools, polygons, null)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """Encode one binary mask as a compressed COCO RLE with a JSON-ready ``counts``.

    Parameters
    ----------
    mask : (H, W) bool or integer array
        Non-zero pixels belong to the mask.

    Returns
    -------
    rle : dict
        ``{"size": [H, W], "counts": str}``.
    """
    m = np.asfortranarray(np.asarray(mask, dtype=np.uint8))
    rle = mask_utils.encode(m)
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def segmentation_to_rle(seg: Any, height: int, width: int) -> dict[str, Any] | None:
    """Normalise one frame's segmentation to a compressed RLE (``counts`` bytes).

    Parameters
    ----------
    seg : dict, list or None
        Compressed RLE (``counts`` str/bytes), uncompressed RLE (``counts`` a
        list of ints), a polygon list ``[[x0, y0, x1, y1, ...], ...]``, or
        ``None`` / empty for "not present in this frame".
    height, width : int
        The frame size the segmentation must have.

    Returns
    -------
    rle : dict or None
        pycocotools RLE, or ``None`` when the instance is absent.

    Raises
    ------
    ValueError
        The segmentation is malformed or its size is not ``(height, width)``.
    """
    if not seg:
        return None
    if isinstance(seg, list):
        polys = [p for p in seg if isinstance(p, list | tuple)]
        if len(polys) != len(seg) or any(len(p) < 6 or len(p) % 2 for p in polys):
            raise ValueError("a polygon must be a list of [x, y, ...] lists of at least 3 points")
        if not all(isinstance(v, int | float) and np.isfinite(v) for p in polys for v in p):
            raise ValueError("a polygon has a coordinate that is not a finite number")
        return mask_utils.merge(mask_utils.frPyObjects([list(map(float, p)) for p in polys], height, width))
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        raise ValueError("a segmentation must be an RLE dict with 'size' and 'counts', a polygon list or null")
    size = seg["size"]
    if not (isinstance(size, list | tuple) and list(size) == [height, width]):
        raise ValueError(f"RLE size {size} does not match the frame size [{height}, {width}]")
    counts = seg["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != height * width:
            raise ValueError(f"uncompressed RLE counts must be non-negative ints summing to {height}x{width}")
        return mask_utils.frPyObjects(seg, height, width)
    if isinstance(counts, str):
        try:
            counts = counts.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("compressed RLE counts must be ASCII") from None
    if not isinstance(counts, bytes):
        raise ValueError("RLE counts must be a string or a list of ints")
    return {"size": [height, width], "counts": counts}


def decode_segmentation(seg: Any, height: int, width: int) -> np.ndarray | None:
    """Decode one frame's segmentation to a mask.

    Returns
    -------
    mask : (height, width) bool array, or None when the instance is absent.

    Raises
    ------
    ValueError
        See :func:`segmentation_to_rle`; also for a corrupt compressed RLE.
    """
    rle = segmentation_to_rle(seg, height, width)
    if rle is None:
        return None
    try:
        m = mask_utils.decode(rle)
    except Exception as exc:  # pycocotools raises bare Exceptions on corrupt counts
        raise ValueError(f"corrupt RLE ({exc})") from None
    if m.shape != (height, width):
        raise ValueError(f"RLE decodes to {m.shape[0]}x{m.shape[1]}, expected {height}x{width}")
    return m.astype(bool)


def mask_bbox(mask: np.ndarray) -> list[float]:
    """COCO box ``[x, y, w, h]`` of a (H, W) mask; ``[0, 0, 0, 0]`` when empty."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
