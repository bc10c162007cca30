"""Flow as a colour image: the Middlebury colour wheel (Baker et al., IJCV 2011).

Hue is the direction of motion, saturation its magnitude: a pixel that does
not move is white, one moving right is red, down is yellow-green ... at the
normalising magnitude the colour is fully saturated, beyond it darkened.
"""

from __future__ import annotations

import numpy as np

# number of hues between the primary and secondary colours of the wheel (Baker et al.)
WHEEL_SEGMENTS = (("RY", 15), ("YG", 6), ("GC", 4), ("CB", 11), ("BM", 13), ("MR", 6))


def color_wheel() -> np.ndarray:
    """The 55 colours of the wheel, red → yellow → green → cyan → blue → magenta → red.

    Returns
    -------
    wheel : (55, 3) float64 RGB in [0, 255]
    """
    # each segment ramps one channel between 0 and 255 while another stays at 255
    ramps = {  # channel held at 255, channel ramping, ramp direction
        "RY": (0, 1, +1),
        "YG": (1, 0, -1),
        "GC": (1, 2, +1),
        "CB": (2, 1, -1),
        "BM": (2, 0, +1),
        "MR": (0, 2, -1),
    }
    rows = []
    for name, n in WHEEL_SEGMENTS:
        held, ramp, direction = ramps[name]
        seg = np.zeros((n, 3))
        seg[:, held] = 255
        t = np.floor(255 * np.arange(n) / n)
        seg[:, ramp] = t if direction > 0 else 255 - t
        rows.append(seg)
    return np.concatenate(rows)


def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-code a flow field with the Middlebury wheel.

    Parameters
    ----------
    flow : (H, W, 2) float
        (dx, dy) per pixel. NaN or infinite vectors are drawn black.
    max_magnitude : float, optional
        Magnitude drawn fully saturated; by default the largest finite
        magnitude of ``flow`` (so a still frame is all white). Pass one value
        for every frame of a video to make their colours comparable.

    Returns
    -------
    image : (H, W, 3) uint8 RGB
    """
    f = np.asarray(flow, dtype=np.float64)
    if f.ndim != 3 or f.shape[2] != 2:
        raise ValueError(f"expected an (H, W, 2) flow, got shape {f.shape}")
    bad = ~np.isfinite(f).all(axis=2)
    u = np.where(bad, 0.0, f[..., 0])
    v = np.where(bad, 0.0, f[..., 1])
    mag = np.hypot(u, v)
    scale = float(mag.max(initial=0.0)) if max_magnitude is None else float(max_magnitude)
    rad = mag / max(scale, np.finfo(np.float32).eps)

    wheel = color_wheel()
    n = len(wheel)
    # angle of motion mapped onto the wheel: a = -1 .. 1 → position 0 .. n-1 (Baker's computeColor)
    a = np.arctan2(-v, -u) / np.pi
    fk = (a + 1) / 2 * (n - 1)
    k0 = np.floor(fk).astype(np.int64)
    k1 = (k0 + 1) % n
    frac = (fk - k0)[..., None]
    col = ((1 - frac) * wheel[k0] + frac * wheel[k1]) / 255.0
    r = rad[..., None]
    # inside the normalising circle: desaturate towards white; outside: darken
    col = np.where(r <= 1, 1 - r * (1 - col), col * 0.75)
    out = np.floor(255 * col).astype(np.uint8)
    out[bad] = 0
    return out
