"""The synthetic benchmark's settings and scripts: SyntheticConfig, the classes, ObjectTrack and Scene."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from training.config import config_from_dict, config_to_dict
from training.errors import InputError

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

        ints = (
            "n_videos",
            "n_frames",
            "height",
            "width",
            "seed",
            "min_objects",
            "max_objects",
            "min_classes",
            "max_classes",
            "jpeg_quality",
            "background_pool",
        )
        for name in ints:
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool), f"{name} must be an integer, got {v!r}")
        need(self.n_videos >= 1, f"n_videos must be at least 1, got {self.n_videos}")
        need(self.n_frames >= 2, f"n_frames must be at least 2, got {self.n_frames}")
        need(self.seed >= 0, f"seed must be non-negative, got {self.seed}")
        need(1 <= self.min_objects <= self.max_objects, "need 1 <= min_objects <= max_objects")
        need(
            1 <= self.min_classes <= self.max_classes <= len(CATEGORIES),
            f"need 1 <= min_classes <= max_classes <= {len(CATEGORIES)}",
        )
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
        need(
            self.size_range[1] + 8 <= min(self.height, self.width),
            f"objects up to {self.size_range[1]} px do not fit a {self.height}x{self.width} frame",
        )

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
