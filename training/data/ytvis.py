"""YouTube-VIS 2019 datasets: validation, frame paths, ground-truth volumes.

Layout: ``ROOT/JPEGImages/<video>/<frame>.jpg`` beside a JSON with ``videos``
(id, file_names, height, width, length), ``categories`` (id, name) and, for
ground truth, ``annotations`` (id, video_id, category_id, iscrowd, per-frame
``segmentations`` as RLE / polygon / null, ``areas``, ``bboxes``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from training.data.video import FrameReader, ImageSequenceReader
from training.errors import InputError
from training.export.labels import LabelVolume, ytvis_to_labels
from training.json_io import is_json_int, read_json

MAX_SIDE = 1 << 15
"""Largest frame height or width a dataset may declare (px): beyond it, the number is not a video's."""


def safe_relative_path(name: Any) -> bool:
    """True when ``name`` is a relative path that stays inside its root.

    Refuses absolute paths (POSIX or Windows, drive letters included), empty
    names and any ``..`` component, so a dataset cannot point at files
    outside its frames folder.
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        return False
    for pure in (PurePosixPath(name), PureWindowsPath(name)):
        if pure.is_absolute() or pure.drive or pure.root or ".." in pure.parts:
            return False
    return True


def validate_videos(data: dict[str, Any], path: str | os.PathLike) -> dict[int, dict[str, Any]]:
    """Check the ``videos`` list; return it keyed by video id.

    Raises
    ------
    InputError
        Naming the entry (``videos[i]``) and the problem.
    """
    if "images" in data:  # COCO's layout (what `vis-ws export --format coco` writes): written, never read
        raise InputError(path, "a COCO JSON ('images' list): give the YouTube-VIS JSON (per-video 'file_names')")
    videos = data.get("videos")
    if not isinstance(videos, list):
        raise InputError(path, "missing 'videos' list")
    out: dict[int, dict[str, Any]] = {}
    for where, v in _entries(videos, "videos", path):
        vid: int = v["id"]
        if vid in out:
            raise InputError(path, f"{where}: duplicate video id")
        names = v.get("file_names")
        if not isinstance(names, list) or not names:
            raise InputError(path, f"{where}: 'file_names' must be a non-empty list")
        for j, n in enumerate(names):
            if not safe_relative_path(n):
                raise InputError(
                    path, f"{where}: file_names[{j}] {n!r} is not a relative path inside the frames folder"
                )
        for key in ("height", "width"):
            if not is_json_int(v.get(key)) or v[key] <= 0:
                raise InputError(path, f"{where}: '{key}' must be a positive integer")
            if v[key] > MAX_SIDE:
                raise InputError(path, f"{where}: '{key}' {v[key]} is larger than {MAX_SIDE} px; not a video frame")
        length = v.get("length", len(names))
        if not is_json_int(length) or length != len(names):
            raise InputError(path, f"{where}: 'length' {length!r} does not match {len(names)} file_names")
        out[vid] = v
    return out


def _entries(items: list[Any], name: str, path: str | os.PathLike) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each entry of the JSON list ``name``, an object with an integer ``id``, and where it is (``videos[3] (id 7)``).

    Raises
    ------
    InputError
        Naming the entry: not an object, or no integer id.
    """
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(path, f"{name}[{i}] is not an object")
        if not is_json_int(item.get("id")):
            raise InputError(path, f"{name}[{i}]: 'id' must be an integer")
        yield f"{name}[{i}] (id {item['id']})", item


def is_color(value: Any) -> bool:
    """Whether ``value`` is a colour as a category's optional ``color`` holds it: ``"#rrggbb"``."""
    return isinstance(value, str) and len(value) == 7 and value[0] == "#" and all(
        ch in "0123456789abcdefABCDEF" for ch in value[1:]
    )


def validate_categories(data: dict[str, Any], path: str | os.PathLike) -> dict[int, dict[str, Any]]:
    """Check the ``categories`` list (an ``id``, a ``name``, optionally a ``color`` ``"#rrggbb"``); return it keyed
    by category id."""
    cats = data.get("categories")
    if not isinstance(cats, list):
        raise InputError(path, "missing 'categories' list")
    out: dict[int, dict[str, Any]] = {}
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or not is_json_int(c.get("id")):
            raise InputError(path, f"categories[{i}]: needs an integer 'id'")
        if c["id"] in out:
            raise InputError(path, f"categories[{i}]: duplicate category id {c['id']}")
        if not isinstance(c.get("name"), str):
            raise InputError(path, f"categories[{i}] (id {c['id']}): 'name' must be a string")
        if "color" in c and not is_color(c["color"]):
            raise InputError(path, f"categories[{i}] (id {c['id']}): 'color' must be '#rrggbb', not {c['color']!r}")
        out[c["id"]] = c
    return out


def validate_annotations(data: dict[str, Any], path: str | os.PathLike) -> None:
    """Check ``annotations`` against videos and categories (structure only).

    Segmentation contents (RLE sizes, polygons) are checked when decoded,
    where the error can name the frame.
    """
    videos = validate_videos(data, path)
    cats = validate_categories(data, path)
    anns = data.get("annotations")
    if not isinstance(anns, list):
        raise InputError(path, "missing 'annotations' list")
    seen: set[int] = set()
    for where, a in _entries(anns, "annotations", path):
        if a["id"] in seen:
            raise InputError(path, f"{where}: duplicate annotation id")
        seen.add(a["id"])
        if not is_json_int(a.get("video_id")) or a["video_id"] not in videos:
            raise InputError(path, f"{where}: unknown video_id {a.get('video_id')!r}")
        if not is_json_int(a.get("category_id")) or a["category_id"] not in cats:
            raise InputError(path, f"{where}: unknown category_id {a.get('category_id')!r}")
        segs = a.get("segmentations")
        n = len(videos[a["video_id"]]["file_names"])
        if not isinstance(segs, list) or len(segs) != n:
            raise InputError(path, f"{where}: 'segmentations' must list one entry per frame ({n})")
        areas = a.get("areas")
        if areas is not None and (not isinstance(areas, list) or len(areas) != n):
            raise InputError(path, f"{where}: 'areas' must list one entry per frame ({n})")


def load_ytvis(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a YouTube-VIS ground-truth JSON.

    Returns
    -------
    dataset : dict
        The parsed JSON, with ``videos``, ``categories`` and ``annotations``.

    Raises
    ------
    InputError
        Missing file, malformed JSON, or an entry that does not fit.
    """
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(path, "expected a JSON object with videos, categories and annotations")
    validate_annotations(data, path)
    return data


def frames_root(json_path: str | os.PathLike, frames: str | os.PathLike | None = None) -> Path:
    """Folder holding ``<video>/<frame>.jpg`` for a dataset JSON.

    ``frames`` (``--frames DIR``) when given, else ``JPEGImages/`` beside the
    JSON file.
    """
    return Path(frames) if frames is not None else Path(json_path).parent / "JPEGImages"


def frame_paths(root: str | os.PathLike, video: dict[str, Any], check: bool = True) -> list[Path]:
    """Paths of a video's frames under ``root``, refusing any that escape it.

    Parameters
    ----------
    root : path
        The frames folder (see :func:`frames_root`).
    video : dict
        A validated ``videos`` entry.
    check : bool
        Also require every file to exist.

    Raises
    ------
    InputError
        A frame path that resolves outside ``root`` (``..``, absolute path or a
        symlink out), or a missing frame.
    """
    root = Path(root)
    real_root = root.resolve()
    out = []
    for j, name in enumerate(video["file_names"]):
        if not safe_relative_path(name):
            raise InputError(root, f"video {video['id']} frame {j}: {name!r} points outside the frames folder")
        p = root / name
        if check:
            if not p.is_file():
                raise InputError(p, f"video {video['id']} frame {j}: missing frame file")
            if not p.resolve().is_relative_to(real_root):
                raise InputError(p, f"video {video['id']} frame {j}: symlink points outside the frames folder")
        out.append(p)
    return out


def video_by_id(data: dict[str, Any], video_id: int, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The ``videos`` entry with ``video_id``; InputError when there is none."""
    for v in data["videos"]:
        if v["id"] == video_id:
            return v
    raise InputError(path, f"no video with id {video_id}")


def gt_volume(data: dict[str, Any], video_id: int, path: str | os.PathLike | None = None) -> LabelVolume:
    """Ground-truth instances of one video as a label volume (crowd regions skipped)."""
    video = video_by_id(data, video_id, path)
    anns = [a for a in data.get("annotations", []) if a["video_id"] == video_id]
    try:
        return ytvis_to_labels(anns, video)
    except ValueError as exc:
        raise InputError(path, f"video {video_id}: {exc}") from None


def dataset_video_frames(
    json_path: str | os.PathLike,
    data: dict[str, Any],
    video_id: int,
    frames: str | os.PathLike | None = None,
) -> FrameReader:
    """Lazy reader of one dataset video's frames: its ``source`` (a project's video file or frames folder,
    :mod:`training.data.new_project`), else ``--frames DIR`` or ``JPEGImages/``.

    Raises
    ------
    InputError
        A ``source`` that no longer holds the frames the JSON lists (moved, replaced: naming both).
    """
    video = video_by_id(data, video_id, json_path)
    if video.get("source"):
        from training.data.video import FrameRangeReader, open_frames

        source = Path(json_path).parent / str(video["source"])  # relative: beside the JSON
        reader = open_frames(source)
        cut = video.get("source_frames")  # a cut of the source (training.data.new_project.SOURCE_FRAMES)
        if cut is not None:
            ok = isinstance(cut, list) and len(cut) == 2 and all(isinstance(i, int) for i in cut)
            if not ok or not 0 <= cut[0] < cut[1] <= len(reader):
                raise InputError(
                    json_path,
                    f"video {video.get('name', video_id)}: source_frames {cut!r} is not a range [start, stop] of "
                    f"the {len(reader)} frames of its source {source}",
                )
            reader = FrameRangeReader(reader, cut[0], cut[1])
        t, h, w, _ = reader.shape
        if (t, h, w) != (len(video["file_names"]), video["height"], video["width"]):
            raise InputError(
                json_path,
                f"video {video.get('name', video_id)}: its source {source} has {t} frames of {w}x{h}, the project "
                f"lists {len(video['file_names'])} of {video['width']}x{video['height']} (was the file replaced?)",
            )
        return reader
    return ImageSequenceReader(frame_paths(frames_root(json_path, frames), video), path=json_path)
