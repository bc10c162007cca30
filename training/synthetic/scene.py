"""One video's script: camera pan, object roles (touching pair, crossing pair, entering, leaving) and paths."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from training.synthetic.config import (
    _MIN_RELATIVE,
    _NAMES,
    _PERIODS,
    _TOUCH_OVERLAP,
    CATEGORIES,
    ObjectTrack,
    Scene,
    SyntheticConfig,
    video_name,
)
from training.synthetic.shapes import _place, rasterize, shape_outline


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
        [_fold(path[:, 0], radius + 1.0, width - 2.0 - radius), _fold(path[:, 1], radius + 1.0, height - 2.0 - radius)],
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


def _pool_palette(config: SyntheticConfig, background: int) -> np.ndarray:
    """The three RGB colours of pooled background ``background``: (3, 3) float64."""
    rng = np.random.default_rng([config.seed, background, 2])
    return np.stack([_random_colour(rng) for _ in range(3)])


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


def _draw_look(rng: np.random.Generator, category_id: int, config: SyntheticConfig, palette: np.ndarray) -> _Look:
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


def _pair_paths(
    rng: np.random.Generator, config: SyntheticConfig, a: _Look, b: _Look, camera_step: np.ndarray
) -> list[np.ndarray]:
    """Centre paths of a rigid touching pair: one wander path, the two offset along a random direction."""
    a.spin = b.spin = 0.0  # a rigid pair, so it keeps touching
    direction = _unit(rng.uniform(0.0, 2.0 * np.pi))
    oa = _place(shape_outline(a.category_id, a.size, a.aspect), np.zeros(2), a.angle)
    ob = _place(shape_outline(b.category_id, b.size, b.aspect), np.zeros(2), b.angle)
    d = max(0.0, _touch_distance(oa, ob, direction) - _TOUCH_OVERLAP)
    off_a, off_b = -direction * d / 2.0, direction * d / 2.0
    radius = float(max(np.linalg.norm(off_a) + a.radius, np.linalg.norm(off_b) + b.radius))
    centre = _wander_path(rng, config, radius, camera_step)
    return [centre + off_a, centre + off_b]


def _object_paths(
    rng: np.random.Generator, config: SyntheticConfig, roles: list[str], looks: list[_Look], camera_step: np.ndarray
) -> list[np.ndarray]:
    """Each object's (n, 2) centre path, in object order; a pair or cross role without its partner becomes wander.

    ``roles`` is updated in place for those; the random draws are made in object order (the set's bytes depend on it).
    """
    paths: list[np.ndarray] = []
    i, n_objects = 0, len(looks)
    while i < n_objects:
        role, look = roles[i], looks[i]
        if role == "pair" and i + 1 < n_objects and roles[i + 1] == "pair":
            paths += _pair_paths(rng, config, looks[i], looks[i + 1], camera_step)
            i += 2
            continue
        if role == "cross" and i + 1 < n_objects and roles[i + 1] == "cross":
            paths += list(_cross_paths(rng, config, looks[i].radius, looks[i + 1].radius, camera_step))
            i += 2
            continue
        if role in ("enter", "leave"):
            paths.append(_edge_path(rng, config, look.radius, camera_step, entering=role == "enter"))
        else:
            roles[i] = "wander"
            paths.append(_wander_path(rng, config, look.radius, camera_step))
        i += 1
    return paths


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
    paths = _object_paths(rng, config, roles, looks, camera_step)
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
