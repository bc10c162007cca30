"""Rendering a scripted video: backgrounds, textures, shading, occlusion order; frames and visible masks."""

from __future__ import annotations

import math

import cv2
import numpy as np

from training.synthetic.config import _NAMES, _SHADING, ObjectTrack, Scene, SyntheticConfig
from training.synthetic.shapes import _overlap, patch_mask


def _pool_margin(config: SyntheticConfig) -> int:
    """Canvas margin (px) of a pooled background: room for the fastest pan of any video."""
    return int(math.ceil(config.pan_speed[1] * (config.n_frames - 1) + 0.6)) + 4


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float, channels: int) -> np.ndarray:
    """Value noise with features about ``cell`` px wide: (height, width, channels) float32 in ~[0, 1]."""
    gh, gw = int(height / cell) + 3, int(width / cell) + 3
    grid = rng.random((gh, gw, channels)).astype(np.float32)
    big = cv2.resize(grid, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
    big = big.reshape(big.shape[0], big.shape[1], channels)
    # Skip the first cell: cubic interpolation overshoots less away from the grid's edge.
    c = int(cell)
    return big[c : c + height, c : c + width]


def make_background(rng: np.random.Generator, height: int, width: int, palette: np.ndarray) -> np.ndarray:
    """A textured background canvas: colour patches, mottling, grain and soft blobs.

    Parameters
    ----------
    rng : numpy Generator
    height, width : int
        Canvas size (the frame plus the camera's travel).
    palette : (P, 3) float
        RGB colours mixed in large patches.

    Returns
    -------
    canvas : (height, width, 3) float32 RGB in [0, 255]
    """
    palette = np.asarray(palette, dtype=np.float32)
    # A high power makes most places one palette colour rather than a grey mix.
    weights = _smooth_noise(rng, height, width, 48.0, len(palette)) ** 6 + 1e-4
    weights /= weights.sum(axis=2, keepdims=True)
    canvas = weights @ palette
    # Mid-scale mottling and fine grain give flow something to lock on to.
    canvas *= 0.8 + 0.4 * _smooth_noise(rng, height, width, 12.0, 1)
    grain = cv2.GaussianBlur(rng.normal(0.0, 1.0, (height, width)).astype(np.float32), (0, 0), 1.0)
    canvas += 14.0 * grain[..., None]
    # Soft untextured blobs: round distractors that are not discs.
    blobs = canvas.copy()
    for _ in range(max(1, height * width // 4000)):
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        axes = (int(rng.integers(6, 30)), int(rng.integers(6, 30)))
        colour = tuple(float(c) for c in palette[int(rng.integers(len(palette)))] * rng.uniform(0.7, 1.2))
        cv2.ellipse(blobs, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    blobs = cv2.GaussianBlur(blobs, (0, 0), 2.0)
    canvas = 0.6 * canvas + 0.4 * blobs
    return np.clip(canvas, 0, 255).astype(np.float32)


def _pan(canvas: np.ndarray, margin: int, shift: np.ndarray, height: int, width: int) -> np.ndarray:
    """The frame-sized view of the canvas with its content moved by ``shift`` (x, y) px."""
    m = np.array([[1.0, 0.0, margin - shift[0]], [0.0, 1.0, margin - shift[1]]])
    return cv2.warpAffine(
        canvas,
        m,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )


def _texture(name: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """Per-class pattern in object coordinates: (h, w) float32 in [0, 1] (1 = pattern colour)."""
    if name == "disc":  # dots on a staggered lattice
        row = np.floor(v / period)
        du = np.mod(u + 0.5 * period * np.mod(row, 2), period) - period / 2
        dv = np.mod(v, period) - period / 2
        f = 0.32 * period - np.hypot(du, dv)
    elif name == "box":  # stripes across the long side
        f = 2.0 * np.sin(2.0 * np.pi * u / period)
    elif name == "triangle":  # checkerboard
        f = 3.0 * np.sin(np.pi * u / period) * np.sin(np.pi * v / period)
    else:  # star: concentric rings
        f = 2.0 * np.sin(2.0 * np.pi * np.hypot(u, v) / period)
    return np.clip(0.5 + f, 0.0, 1.0).astype(np.float32)


def render_object(track: ObjectTrack, t: int, light: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Draw one object in frame ``t`` on its own patch (not clipped to the frame).

    Texture lives in object coordinates, so it moves and turns with the
    object; a light gradient and a dark rim fading over ~3 px make it look
    solid and give it an edge against the background.

    Returns
    -------
    mask : (h, w) bool
        The object's whole shape on the patch.
    rgb : (h, w, 3) float32
        Its colours (meaningful inside ``mask``).
    origin : (int, int)
        Frame coordinates (x, y) of the patch's pixel (0, 0).
    """
    mask, (x0, y0) = patch_mask(track, t)
    ys, xs = np.mgrid[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]].astype(np.float64)
    dx, dy = xs - track.centers[t, 0], ys - track.centers[t, 1]
    c, s = math.cos(track.angles[t]), math.sin(track.angles[t])
    u = c * dx + s * dy + track.phase[0]
    v = -s * dx + c * dy + track.phase[1]
    tex = _texture(_NAMES[track.category_id], u, v, track.period)[..., None]
    rgb = (1.0 - tex) * track.colour.astype(np.float32) + tex * track.texture_colour.astype(np.float32)
    radius = track.size / 2.0
    shade = 1.0 + _SHADING * (dx * light[0] + dy * light[1]) / radius
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    rim = 0.55 + 0.45 * np.clip((dist - 0.5) / 2.5, 0.0, 1.0)
    rgb = rgb * (shade * rim)[..., None].astype(np.float32)
    return mask, rgb.astype(np.float32), (x0, y0)


def render_video(config: SyntheticConfig, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Render a scripted video.

    Parameters
    ----------
    config : SyntheticConfig
    scene : Scene
        From :func:`plan_video`.

    Returns
    -------
    frames : (T, H, W, 3) uint8 RGB
    labels : (T, H, W) int32
        Visible instance ids (0 = background); nearer objects hide farther ones.
    """
    n, h, w = config.n_frames, config.height, config.width
    rng = np.random.default_rng([config.seed, scene.index, 1])
    if scene.background >= 0:  # shared by every video that drew it: its own stream, the widest pan's size
        margin = _pool_margin(config)
        canvas_rng = np.random.default_rng([config.seed, scene.background, 3])
        canvas = make_background(canvas_rng, h + 2 * margin, w + 2 * margin, scene.palette)
    else:
        margin = int(math.ceil(np.abs(scene.camera).max())) + 4
        canvas = make_background(rng, h + 2 * margin, w + 2 * margin, scene.palette)
    frames = np.zeros((n, h, w, 3), dtype=np.uint8)
    labels = np.zeros((n, h, w), dtype=np.int32)
    order = sorted(scene.tracks, key=lambda tr: tr.depth)
    for t in range(n):
        img = _pan(canvas, margin, scene.camera[t], h, w)
        for tr in order:
            mask, rgb, origin = render_object(tr, t, scene.light)
            window = _overlap(origin, mask.shape, h, w)
            if window is None:
                continue
            m = mask[window[1]]
            img[window[0]][m] = rgb[window[1]][m]
            labels[t][window[0]][m] = tr.instance_id
        if config.noise_sigma > 0:
            img = img + rng.normal(0.0, config.noise_sigma, img.shape).astype(np.float32)
        frames[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return frames, labels
