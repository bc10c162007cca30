"""A deterministic synthetic video instance segmentation set: our benchmark.

Every video is scripted so that each cue of the method matters:

- a textured background that pans (camera motion, sub-pixel), so raw flow
  magnitude alone does not mark objects (f-CAMs subtract the camera motion);
- objects that move with their own motion relative to the background;
- an object that enters and one that leaves the frame (absent in some frames);
- two objects that cross, one in front of the other (visible masks only, so
  the occluded one's mask shrinks);
- a same-class pair that touches (no background gap), so separating instances
  needs boundaries, not connected components;
- per video only 2-3 of the classes, so frame tags differ between frames and
  videos (a classifier learns nothing from tags that are always on).

Classes differ in shape and texture (disc with dots, box with stripes,
triangle with a checkerboard, star with rings) while object and background
colours come from one distribution, so no colour threshold separates them.

Rendering is pure numpy/OpenCV. Masks are rasterised with integer (fixed-point)
arithmetic so ``gt.json`` is byte-identical for the same configuration; all
randomness comes from ``np.random.default_rng([seed, index, stream])``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from training.atomic import write_bytes, write_json
from training.config import config_from_dict, config_to_dict
from training.data.tags import tags_from_ytvis
from training.errors import InputError
from training.export.labels import LabelVolume, write_ytvis

CATEGORIES: list[dict[str, Any]] = [
    {"id": 1, "name": "disc"},
    {"id": 2, "name": "box"},
    {"id": 3, "name": "triangle"},
    {"id": 4, "name": "star"},
]
"""The synthetic classes: each has its own outline and its own texture."""

_NAMES = {c["id"]: c["name"] for c in CATEGORIES}
# Texture spacing in pixels (dot pitch, stripe period, checker cell, ring period).
_PERIODS = {"disc": (7.0, 10.0), "box": (6.0, 9.0), "triangle": (5.0, 8.0), "star": (5.0, 7.0)}
_SHIFT = 4  # fixed-point bits for cv2.fillPoly: vertices on a 1/16 px grid
_TOUCH_OVERLAP = 2.0  # px the touching pair interpenetrates, so their visible masks share an edge
_SHADING = 0.18  # relative brightness change across an object from the light direction
_MIN_RELATIVE = 1.5  # px/frame every object moves against the background (a cue for f-CAMs)


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that defines a synthetic dataset; ``config.json`` holds it.

    Attributes
    ----------
    n_videos : int
        Number of videos.
    n_frames : int
        Frames per video (at least 2).
    height, width : int
        Frame size in pixels.
    seed : int
        Base seed; video ``i`` draws from ``default_rng([seed, i, stream])``.
    min_objects, max_objects : int
        Objects per video, drawn uniformly in this range. The script needs 6
        for all its events: a touching same-class pair (2), a crossing pair
        (2), one object entering, one leaving; with fewer, events are dropped
        in reverse order, with more the rest wander.
    min_classes, max_classes : int
        Classes per video, drawn uniformly in this range (at most 4).
    size_range : (float, float)
        Object size (diameter of the circumscribed circle) in pixels.
    object_speed : (float, float)
        Speed of wandering and crossing objects in pixels per frame.
    pan_speed : (float, float)
        Camera pan speed in pixels per frame (the background's image motion).
    noise_sigma : float
        Standard deviation of the per-frame pixel noise (grey levels).
    jpeg_quality : int
        JPEG quality of the written frames (1-100).
    background_pool : int
        Distinct backgrounds the videos share (0: every video has its own).
        A pool smaller than the number of videos makes backgrounds recur
        with other objects, as scenes recur in real footage, so a classifier
        cannot read a video's tags off its background.
    """

    n_videos: int = 4
    n_frames: int = 16
    height: int = 240
    width: int = 320
    seed: int = 0
    min_objects: int = 6
    max_objects: int = 8
    min_classes: int = 2
    max_classes: int = 3
    size_range: tuple[float, float] = (20.0, 80.0)
    object_speed: tuple[float, float] = (2.0, 6.0)
    pan_speed: tuple[float, float] = (1.0, 3.0)
    noise_sigma: float = 2.0
    jpeg_quality: int = 95
    background_pool: int = 0

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise InputError(None, f"synthetic config: {what}")

        ints = ("n_videos", "n_frames", "height", "width", "seed", "min_objects", "max_objects",
                "min_classes", "max_classes", "jpeg_quality", "background_pool")
        for name in ints:
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool), f"{name} must be an integer, got {v!r}")
        need(self.n_videos >= 1, f"n_videos must be at least 1, got {self.n_videos}")
        need(self.n_frames >= 2, f"n_frames must be at least 2, got {self.n_frames}")
        need(self.seed >= 0, f"seed must be non-negative, got {self.seed}")
        need(1 <= self.min_objects <= self.max_objects, "need 1 <= min_objects <= max_objects")
        need(1 <= self.min_classes <= self.max_classes <= len(CATEGORIES),
             f"need 1 <= min_classes <= max_classes <= {len(CATEGORIES)}")
        need(1 <= self.jpeg_quality <= 100, f"jpeg_quality must be 1-100, got {self.jpeg_quality}")
        need(self.background_pool >= 0, f"background_pool must be >= 0, got {self.background_pool}")
        need(self.noise_sigma >= 0, f"noise_sigma must be >= 0, got {self.noise_sigma}")
        for name in ("size_range", "object_speed", "pan_speed"):
            v = getattr(self, name)
            ok = isinstance(v, tuple | list) and len(v) == 2
            ok = ok and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
            need(ok and 0 <= v[0] <= v[1], f"{name} must be (low, high) with 0 <= low <= high, got {v!r}")
            object.__setattr__(self, name, (float(v[0]), float(v[1])))
        need(self.size_range[0] >= 4, "size_range must start at 4 px or more")
        need(self.size_range[1] + 8 <= min(self.height, self.width),
             f"objects up to {self.size_range[1]} px do not fit a {self.height}x{self.width} frame")

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-ready values (ranges as 2-lists)."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyntheticConfig:
        """Rebuild a config from :meth:`to_dict` output (e.g. a ``config.json``).

        Raises
        ------
        InputError
            Unknown keys or invalid values.
        """
        return config_from_dict(cls, data, None, "synthetic")


@dataclass(frozen=True)
class ObjectTrack:
    """One object's script: shape, appearance and its path through the video.

    Attributes
    ----------
    instance_id, category_id : int
    role : str
        ``"pair"``, ``"cross"``, ``"enter"``, ``"leave"`` or ``"wander"``.
    size : float
        Diameter of the circumscribed circle, px.
    aspect : float
        Shape proportion (ellipse axes, box sides, star inner radius).
    centers : (T, 2) float64
        Centre (x, y) per frame in pixel coordinates (pixel centres at integers).
    angles : (T,) float64
        Rotation per frame, radians.
    depth : int
        Drawing order: a larger depth is nearer the camera and hides smaller.
    colour, texture_colour : (3,) float64
        RGB of the shape and of its texture pattern.
    period : float
        Texture spacing, px.
    phase : (2,) float64
        Texture offset, px.
    """

    instance_id: int
    category_id: int
    role: str
    size: float
    aspect: float
    centers: np.ndarray
    angles: np.ndarray
    depth: int
    colour: np.ndarray
    texture_colour: np.ndarray
    period: float
    phase: np.ndarray


@dataclass(frozen=True)
class Scene:
    """The script of one video.

    Attributes
    ----------
    index : int
        Video index in the dataset (video id is ``index + 1``).
    name : str
        Folder name of its frames.
    camera : (T, 2) float64
        Image displacement (x, y) of the background in frame t relative to
        frame 0, px.
    tracks : list of ObjectTrack
    light : (2,) float64
        Unit vector pointing towards the light (image x, y).
    palette : (3, 3) float64
        The background's three RGB colours (objects often borrow one).
    background : int
        Index into the config's background pool; -1 for a background of the
        video's own.
    """

    index: int
    name: str
    camera: np.ndarray
    tracks: list[ObjectTrack]
    light: np.ndarray
    palette: np.ndarray
    background: int = -1


def video_name(index: int) -> str:
    """Folder name of video ``index``: ``synth_0000``, ``synth_0001``, ..."""
    return f"synth_{index:04d}"


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


def _fold(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect positions into ``[lo, hi]`` like a ball bouncing off walls."""
    if hi <= lo:
        return np.full_like(x, (lo + hi) / 2.0)
    span = hi - lo
    y = np.mod(x - lo, 2.0 * span)
    return lo + np.where(y > span, 2.0 * span - y, y)


def _fold_path(path: np.ndarray, radius: float, height: int, width: int) -> np.ndarray:
    """Keep a path of centres so an object of ``radius`` stays inside the frame."""
    return np.stack(
        [_fold(path[:, 0], radius + 1.0, width - 2.0 - radius),
         _fold(path[:, 1], radius + 1.0, height - 2.0 - radius)],
        axis=1,
    )


def _unit(angle: float) -> np.ndarray:
    return np.array([math.cos(angle), math.sin(angle)])


def _wobble(rng: np.random.Generator, n_frames: int, direction: np.ndarray) -> np.ndarray:
    """A small sideways sway, so paths are not perfectly straight: (T, 2)."""
    amp = rng.uniform(0.0, 4.0)
    period = rng.uniform(8.0, 24.0)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    t = np.arange(n_frames, dtype=np.float64)
    side = np.array([-direction[1], direction[0]])
    return (amp * (np.sin(2.0 * np.pi * t / period + phase) - math.sin(phase)))[:, None] * side


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A colour from the distribution shared by objects and background: (3,) float64 RGB."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(60, 200), rng.uniform(100, 230)]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64)


def _camera_path(rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
    speed = rng.uniform(*config.pan_speed)
    v = speed * _unit(rng.uniform(0.0, 2.0 * np.pi))
    t = np.arange(config.n_frames, dtype=np.float64)
    # A hand-held jitter of a few tenths of a pixel on top of the steady pan.
    jitter = 0.3 * np.sin(t[:, None] * rng.uniform(0.5, 1.5, 2) + rng.uniform(0, 2 * np.pi, 2))
    return t[:, None] * v + jitter - jitter[0]


def _touch_distance(outline_a: np.ndarray, outline_b: np.ndarray, direction: np.ndarray) -> float:
    """Centre distance along ``direction`` at which two outlines start to overlap.

    Found on a 4x finer raster, stepping inwards from the sum of the radii.
    """
    scale = 4.0
    ra = float(np.max(np.hypot(*outline_a.T)))
    rb = float(np.max(np.hypot(*outline_b.T)))
    n = int(math.ceil(2.0 * (ra + rb) * scale)) + 8
    center = np.array([n / 2.0, n / 2.0])
    mask_a = rasterize(outline_a * scale + center, n, n)
    d = ra + rb
    while d > 0:
        mask_b = rasterize(outline_b * scale + center + direction * d * scale, n, n)
        if np.any(mask_a & mask_b):
            return d
        d -= 0.25
    return 0.0


@dataclass
class _Look:
    """Shape and appearance drawn for one object (mutable while scripting)."""

    category_id: int
    size: float
    aspect: float
    angle: float
    spin: float
    colour: np.ndarray
    texture_colour: np.ndarray
    period: float
    phase: np.ndarray

    @property
    def radius(self) -> float:
        return self.size / 2.0


def _draw_look(
    rng: np.random.Generator, category_id: int, config: SyntheticConfig, palette: np.ndarray
) -> _Look:
    name = _NAMES[category_id]
    aspect = {
        "disc": rng.uniform(0.8, 1.0),
        "box": rng.uniform(0.5, 0.9),
        "triangle": rng.uniform(0.85, 1.0),
        "star": rng.uniform(0.4, 0.5),
    }[name]
    if rng.random() < 0.5:
        # Camouflage: a background colour, so colour alone cannot find the object.
        colour = np.clip(palette[int(rng.integers(len(palette)))] + rng.uniform(-20, 20, 3), 0, 255)
    else:
        colour = _random_colour(rng)
    if rng.random() < 0.5:
        texture_colour = colour * rng.uniform(0.45, 0.7)
    else:
        texture_colour = colour + (255.0 - colour) * rng.uniform(0.35, 0.6)
    return _Look(
        category_id=category_id,
        size=rng.uniform(*config.size_range),
        aspect=aspect,
        angle=rng.uniform(0.0, 2.0 * np.pi),
        spin=rng.uniform(-0.06, 0.06),
        colour=colour,
        texture_colour=texture_colour,
        period=rng.uniform(*_PERIODS[name]),
        phase=rng.uniform(0.0, 20.0, 2),
    )


def _own_velocity(
    rng: np.random.Generator, config: SyntheticConfig, camera_step: np.ndarray, away_from: float | None = None
) -> np.ndarray:
    """A velocity (x, y) px/frame that differs from the camera's by at least ``_MIN_RELATIVE``.

    ``away_from``: a heading (radians) the new direction must differ from by
    60 degrees or more.
    """
    v = np.zeros(2)
    for _ in range(50):
        low = 0.0 if away_from is None else away_from + np.pi / 3
        high = 2.0 * np.pi if away_from is None else away_from + 5 * np.pi / 3
        v = rng.uniform(*config.object_speed) * _unit(rng.uniform(low, high))
        if np.linalg.norm(v - camera_step) >= _MIN_RELATIVE:
            break
    return v


def _edge_path(
    rng: np.random.Generator, config: SyntheticConfig, radius: float, camera_step: np.ndarray, entering: bool
) -> np.ndarray:
    """A straight path that enters through (or leaves by) a frame edge.

    The object is wholly outside at one frame (its last absent frame in the
    first quarter of the video when entering, its first absent frame in the
    last quarter when leaving), and at the other end of the video its centre
    is ``2 r + 10..60`` px inside along the edge's normal.
    """
    n, h, w = config.n_frames, config.height, config.width
    quarter = max(1, n // 4)
    t = np.arange(n, dtype=np.float64)
    path = np.zeros((n, 2))
    for _ in range(50):
        edge = int(rng.integers(4))  # 0 left, 1 right, 2 top, 3 bottom
        inward = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]][edge])
        normal_axis = 0 if edge < 2 else 1
        extent, span = (w, h) if edge < 2 else (h, w)
        out = -radius - 2.0  # centre coordinate along the normal: wholly outside
        outside = np.zeros(2)
        outside[normal_axis] = out if edge in (0, 2) else extent - 1 - out
        outside[1 - normal_axis] = rng.uniform(0.25, 0.75) * span
        travel = 2.0 * radius + rng.uniform(10.0, 60.0)
        slant = math.tan(rng.uniform(-0.4, 0.4))
        direction = inward + slant * inward[::-1]
        if entering:
            t_out = int(rng.integers(1, quarter + 1)) - 1  # last frame wholly outside
            motion = travel / max(1, n - 1 - t_out) * direction
        else:
            t_out = int(rng.integers(n - quarter, n))  # first frame wholly outside
            motion = -travel / max(1, t_out) * direction
        path = outside + (t - t_out)[:, None] * motion
        if np.linalg.norm(motion - camera_step) >= _MIN_RELATIVE:
            break
    return path


def _wander_path(
    rng: np.random.Generator, config: SyntheticConfig, radius: float, camera_step: np.ndarray
) -> np.ndarray:
    """A swaying path that bounces inside the frame, moving against the background."""
    h, w = config.height, config.width
    radius = min(radius, (min(h, w) - 4) / 2)  # a wide touching pair in a small frame: start anywhere that fits
    velocity = _own_velocity(rng, config, camera_step)
    start = np.array([rng.uniform(radius + 1, w - 2 - radius), rng.uniform(radius + 1, h - 2 - radius)])
    t = np.arange(config.n_frames, dtype=np.float64)
    direction = velocity / max(float(np.linalg.norm(velocity)), 1e-9)
    path = start + t[:, None] * velocity + _wobble(rng, config.n_frames, direction)
    return _fold_path(path, radius, h, w)


def _cross_paths(
    rng: np.random.Generator, config: SyntheticConfig, ra: float, rb: float, camera_step: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Two paths whose objects overlap around a middle frame, coming from different directions."""
    n, h, w = config.n_frames, config.height, config.width
    t_c = int(rng.integers(n // 3, max(n // 3 + 1, (2 * n) // 3 + 1)))
    meet = np.array([rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h])
    va = _own_velocity(rng, config, camera_step)
    vb = _own_velocity(rng, config, camera_step, away_from=math.atan2(va[1], va[0]))
    # Centres half the summed radii apart at the meeting frame: a partial occlusion.
    pb = meet + 0.5 * (ra + rb) * _unit(rng.uniform(0.0, 2.0 * np.pi))
    pb = np.clip(pb, [rb + 1, rb + 1], [w - 2 - rb, h - 2 - rb])
    t = np.arange(n, dtype=np.float64)[:, None] - t_c
    # Folding leaves points inside the frame unchanged, so the meeting survives it.
    return _fold_path(meet + t * va, ra, h, w), _fold_path(pb + t * vb, rb, h, w)


def plan_video(config: SyntheticConfig, index: int) -> Scene:
    """Script video ``index``: camera pan, objects, their paths and depth order.

    Parameters
    ----------
    config : SyntheticConfig
    index : int
        Video index, 0-based.

    Returns
    -------
    Scene
        Deterministic in ``(config, index)``; drawn from
        ``default_rng([config.seed, index, 0])``.
    """
    rng = np.random.default_rng([config.seed, index, 0])
    n = config.n_frames
    camera = _camera_path(rng, config)
    camera_step = (camera[-1] - camera[0]) / (n - 1)
    n_objects = int(rng.integers(config.min_objects, config.max_objects + 1))
    n_classes = int(rng.integers(config.min_classes, config.max_classes + 1))
    ids = [c["id"] for c in CATEGORIES]
    if n_classes < len(ids):
        # Each video leaves out the class a dataset-wide rotation names, so in any
        # len(CATEGORIES) consecutive videos every class is missing somewhere:
        # a classifier trained on tags needs frames without each class.
        skipped = int(np.random.default_rng([config.seed]).permutation(ids)[index % len(ids)])
        ids = [c for c in ids if c != skipped]
    classes = [int(c) for c in rng.permutation(ids)[:n_classes]]
    # The pair takes the first class; every other class appears at least once.
    cats = [classes[0]] * min(2, n_objects)
    rest = classes[1:] + [int(c) for c in rng.choice(classes, size=max(0, n_objects - 1 - n_classes))]
    cats += [int(c) for c in rng.permutation(rest)][: n_objects - len(cats)]
    background = int(rng.integers(config.background_pool)) if config.background_pool else -1
    palette = np.stack([_random_colour(rng) for _ in range(3)])
    if background >= 0:
        palette = _pool_palette(config, background)
    looks = [_draw_look(rng, c, config, palette) for c in cats]
    roles = ["pair", "pair", "cross", "cross", "enter", "leave"][:n_objects]
    roles += ["wander"] * (n_objects - len(roles))
    if n_objects == 1:
        roles = ["wander"]
    t = np.arange(n, dtype=np.float64)
    paths: list[np.ndarray] = []
    i = 0
    while i < n_objects:
        role, look = roles[i], looks[i]
        if role == "pair" and i + 1 < n_objects and roles[i + 1] == "pair":
            a, b = looks[i], looks[i + 1]
            a.spin = b.spin = 0.0  # a rigid pair, so it keeps touching
            direction = _unit(rng.uniform(0.0, 2.0 * np.pi))
            oa = _place(shape_outline(a.category_id, a.size, a.aspect), np.zeros(2), a.angle)
            ob = _place(shape_outline(b.category_id, b.size, b.aspect), np.zeros(2), b.angle)
            d = max(0.0, _touch_distance(oa, ob, direction) - _TOUCH_OVERLAP)
            off_a, off_b = -direction * d / 2.0, direction * d / 2.0
            radius = float(max(np.linalg.norm(off_a) + a.radius, np.linalg.norm(off_b) + b.radius))
            centre = _wander_path(rng, config, radius, camera_step)
            paths += [centre + off_a, centre + off_b]
            i += 2
            continue
        if role == "cross" and i + 1 < n_objects and roles[i + 1] == "cross":
            pa, pb = _cross_paths(rng, config, looks[i].radius, looks[i + 1].radius, camera_step)
            paths += [pa, pb]
            i += 2
            continue
        if role in ("enter", "leave"):
            paths.append(_edge_path(rng, config, look.radius, camera_step, entering=role == "enter"))
        else:
            roles[i] = "wander"
            paths.append(_wander_path(rng, config, look.radius, camera_step))
        i += 1
    depths = rng.permutation(n_objects)
    light = _unit(rng.uniform(0.0, 2.0 * np.pi))
    tracks = [
        ObjectTrack(
            instance_id=k + 1,
            category_id=look.category_id,
            role=roles[k],
            size=look.size,
            aspect=look.aspect,
            centers=paths[k],
            angles=look.angle + look.spin * t,
            depth=int(depths[k]),
            colour=look.colour,
            texture_colour=look.texture_colour,
            period=look.period,
            phase=look.phase,
        )
        for k, look in enumerate(looks)
    ]
    return Scene(
        index=index,
        name=video_name(index),
        camera=camera,
        tracks=tracks,
        light=light,
        palette=palette,
        background=background,
    )


def _pool_palette(config: SyntheticConfig, background: int) -> np.ndarray:
    """The three RGB colours of pooled background ``background``: (3, 3) float64."""
    rng = np.random.default_rng([config.seed, background, 2])
    return np.stack([_random_colour(rng) for _ in range(3)])


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
    return big[c:c + height, c:c + width]


def make_background(
    rng: np.random.Generator, height: int, width: int, palette: np.ndarray
) -> np.ndarray:
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
    canvas *= (0.8 + 0.4 * _smooth_noise(rng, height, width, 12.0, 1))
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
        canvas, m, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
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
    ys, xs = np.mgrid[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]].astype(np.float64)
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


def generate_video(config: SyntheticConfig, index: int) -> tuple[np.ndarray, LabelVolume]:
    """Frames and ground truth of synthetic video ``index``.

    Parameters
    ----------
    config : SyntheticConfig
    index : int
        0-based; the video's id is ``index + 1``.

    Returns
    -------
    frames : (T, H, W, 3) uint8 RGB
    volume : LabelVolume
        Visible masks with instance ids stable across frames; ``video`` has
        id, name and ``file_names`` ``"<name>/00000.jpg"``, ...
    """
    scene = plan_video(config, index)
    frames, labels = render_video(config, scene)
    video = {
        "id": index + 1,
        "name": scene.name,
        "file_names": [f"{scene.name}/{t:05d}.jpg" for t in range(config.n_frames)],
    }
    categories = {tr.instance_id: tr.category_id for tr in scene.tracks}
    return frames, LabelVolume(labels, categories, video=video)


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 RGB frame."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV only fails on invalid arrays
        raise RuntimeError("OpenCV could not encode a JPEG frame")
    return buf.tobytes()


def generate_dataset(
    root: str | os.PathLike,
    config: SyntheticConfig,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Path]:
    """Write a synthetic YouTube-VIS dataset.

    Layout::

        root/JPEGImages/<video name>/00000.jpg ...
        root/gt.json      YouTube-VIS 2019 ground truth (visible masks, RLE)
        root/tags.json    frame tags derived from gt.json (the weak labels)
        root/config.json  the SyntheticConfig that regenerates all of it

    Every file is written atomically; existing files are replaced.

    Parameters
    ----------
    root : path
        Output folder, created if missing.
    config : SyntheticConfig
    progress : callable, optional
        Called as ``progress(done, total)`` after each video.

    Returns
    -------
    paths : dict
        ``{"frames", "gt", "tags", "config"}`` → paths written.

    Raises
    ------
    InputError
        ``root`` exists and is not a folder.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InputError(root, "exists and is not a folder; choose a folder for the synthetic dataset")
    frames_dir = root / "JPEGImages"
    volumes = []
    for i in range(config.n_videos):
        frames, volume = generate_video(config, i)
        for name, frame in zip(volume.video["file_names"], frames, strict=True):
            write_bytes(frames_dir / name, encode_jpeg(frame, config.jpeg_quality))
        volumes.append(volume)
        if progress is not None:
            progress(i + 1, config.n_videos)
    gt = write_ytvis(root / "gt.json", volumes, CATEGORIES, form="gt")
    assert isinstance(gt, dict)  # gt form always returns the dataset dict
    write_json(root / "tags.json", tags_from_ytvis(gt))
    write_json(root / "config.json", config.to_dict(), indent=2)
    return {
        "frames": frames_dir,
        "gt": root / "gt.json",
        "tags": root / "tags.json",
        "config": root / "config.json",
    }
