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

from training.data.video import FrameReader, open_frames
from training.errors import InputError
from training.json_io import read_json


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
    return safe_name(str(name or video.get("name") or "")) or f"video{video['id']}"


def safe_name(name: str) -> str:
    """``name`` as a file name: characters other than letters, digits, ``-_.`` as ``_``, no leading or
    trailing dots ("" when nothing is left)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")


def _not_a_dataset(data: Any) -> str | None:
    """Why a parsed JSON is not a dataset, naming what it holds; None when it may be one (validated later)."""
    expected = "expected a YouTube-VIS dataset JSON: an object with a 'videos' list (ground truth or frame tags)"
    if isinstance(data, dict):
        if "videos" in data or "images" in data:  # COCO's 'images': validate_videos names it
            return None
        keys = ", ".join(repr(str(k)[:30]) for k in list(data)[:4]) + (", ..." if len(data) > 4 else "")
        if not data:
            return f"an empty JSON object, not a dataset: {expected}"
        return f"a JSON object with keys {keys} but no 'videos' list: {expected}"
    if isinstance(data, list):
        if data and all(isinstance(r, dict) and "score" in r for r in data):
            return f"a results list (instances with a 'score'), not a dataset: {expected}"
        return f"a JSON list of {len(data)} items, not a dataset: {expected}"
    kind = {bool: "true/false", int: "number", float: "number", str: "string"}.get(type(data), "null")
    return f"a single JSON {kind}, not a dataset: {expected}"


def load_dataset_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YouTube-VIS ground truth, frame tags or videos-only JSON, validated."""
    from training.data.tags import validate_tags
    from training.data.ytvis import validate_annotations, validate_categories, validate_videos

    data = read_json(path)
    problem = _not_a_dataset(data)
    if problem is not None:
        raise InputError(path, problem)
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
