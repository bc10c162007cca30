"""A synthetic YouTube-VIS dataset on disk: frames as JPEG, gt.json, tags.json and config.json."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from training.atomic import write_bytes, write_json
from training.data.tags import tags_from_ytvis
from training.errors import InputError
from training.export.labels import LabelVolume, write_ytvis
from training.synthetic.config import CATEGORIES, SyntheticConfig
from training.synthetic.render import render_video
from training.synthetic.scene import plan_video


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
