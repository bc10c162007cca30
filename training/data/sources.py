"""Where videos come from: a dataset JSON, a folder of frames or a video file.

Every per-video stage (flow, CAMs, pseudo-labels, prediction) accepts any of
the three as INPUT and iterates over :func:`iter_videos`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.data.json_io import read_json
from training.data.video import FrameReader, open_frames
from training.errors import InputError


@dataclass
class VideoSource:
    """One video of an INPUT.

    Attributes
    ----------
    key : str
        File-system-safe name used for per-video outputs (``<out>/<key>...``).
    video : dict
        Its YouTube-VIS ``videos`` entry (for a plain video or folder, a
        synthesised one with id 1 and the frame file names).
    reader : FrameReader
        Lazy frames.
    """

    key: str
    video: dict[str, Any]
    reader: FrameReader


def video_key(video: dict[str, Any]) -> str:
    """Output name of a dataset video: its frames' folder (YouTube-VIS), else its ``name``, else ``video<id>``."""
    name = ""
    if video.get("file_names"):
        name = Path(str(video["file_names"][0])).parent.name
    name = str(name or video.get("name") or f"video{video['id']}")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return safe or f"video{video['id']}"


def load_dataset_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YouTube-VIS ground truth, frame tags or videos-only JSON, validated."""
    from training.data.tags import validate_tags
    from training.data.ytvis import validate_annotations, validate_categories, validate_videos

    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(path, "expected a JSON object with 'videos' (a YouTube-VIS dataset or frame tags)")
    if "frame_tags" in data:
        validate_tags(data, path)
    elif "annotations" in data:
        validate_annotations(data, path)
    else:
        validate_videos(data, path)
        validate_categories(data, path)
    return data


def iter_videos(
    path: str | os.PathLike, frames: str | os.PathLike | None = None, video_ids: list[int] | None = None
) -> Iterator[VideoSource]:
    """Videos of INPUT: each video of a dataset JSON, or the one video of a file/folder.

    Parameters
    ----------
    path : path
        Dataset JSON (frames in ``JPEGImages/`` beside it or ``frames``), a
        folder of frames, a video file or a TIFF stack.
    frames : path, optional
        ``--frames DIR`` for a dataset JSON.
    video_ids : list of int, optional
        Only these videos of a dataset (all when None).
    """
    from training.data.ytvis import dataset_video_frames

    p = Path(path)
    if p.suffix.lower() == ".json":
        data = load_dataset_json(p)
        keys = [video_key(v) for v in data["videos"]]
        for v, key in zip(data["videos"], keys, strict=True):
            if keys.count(key) > 1:
                key = f"{key}-{v['id']}"  # two videos in one folder: keep outputs apart
            if video_ids is None or v["id"] in video_ids:
                yield VideoSource(key, v, dataset_video_frames(p, data, v["id"], frames))
        return
    reader = open_frames(p)
    names = [f"{p.stem}/{i:05d}.jpg" for i in range(len(reader))]
    if p.is_dir():
        names = [f.name for f in reader.files]  # type: ignore[attr-defined]
    t, h, w, _ = reader.shape
    video = {"id": 1, "name": p.stem or p.name, "file_names": names, "height": h, "width": w, "length": t}
    yield VideoSource(video_key(video), video, reader)
