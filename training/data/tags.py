"""Frame tags: the only supervision the weak pipeline reads.

Format::

    {"videos": [...as in YouTube-VIS...], "categories": [...],
     "frame_tags": [{"video_id": 1, "frame": 0, "category_ids": [1, 3]}, ...]}
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from training.data.ytvis import validate_categories, validate_videos
from training.errors import InputError
from training.json_io import is_json_int, read_json


def tags_from_ytvis(gt: dict[str, Any]) -> dict[str, Any]:
    """Derive frame tags from a YouTube-VIS ground truth.

    A category is tagged in a frame where one of its instances is present (a
    truthy segmentation; crowd regions count too, they are objects). Every
    frame of every video gets an entry, an empty list when nothing is there.

    Parameters
    ----------
    gt : dict
        A validated YouTube-VIS dataset.

    Returns
    -------
    tags : dict
        ``videos`` and ``categories`` copied from ``gt`` and ``frame_tags``
        ordered by video then frame, category ids sorted.
    """
    present: dict[tuple[int, int], set[int]] = {}
    for a in gt.get("annotations", []):
        for f, seg in enumerate(a.get("segmentations") or []):
            if seg:
                present.setdefault((a["video_id"], f), set()).add(a["category_id"])
    frame_tags = [
        {"video_id": v["id"], "frame": f, "category_ids": sorted(present.get((v["id"], f), ()))}
        for v in gt["videos"]
        for f in range(len(v["file_names"]))
    ]
    return {"videos": gt["videos"], "categories": gt["categories"], "frame_tags": frame_tags}


def validate_tags(data: Any, path: str | os.PathLike) -> dict[str, Any]:
    """Check a frame-tags object; return it unchanged.

    Raises
    ------
    InputError
        Naming the ``frame_tags`` entry and what is wrong: unknown video or
        category, frame out of range, duplicate (video, frame).
    """
    if not isinstance(data, dict):
        raise InputError(path, "expected a JSON object with videos, categories and frame_tags")
    videos = validate_videos(data, path)
    cats = validate_categories(data, path)
    tags = data.get("frame_tags")
    if not isinstance(tags, list):
        raise InputError(path, "missing 'frame_tags' list (is this a frame-tags file? see 'vis-ws tags')")
    seen: set[tuple[int, int]] = set()
    for i, t in enumerate(tags):
        where = f"frame_tags[{i}]"
        if not isinstance(t, dict):
            raise InputError(path, f"{where} is not an object")
        vid, f, ids = t.get("video_id"), t.get("frame"), t.get("category_ids")
        if not is_json_int(vid) or vid not in videos:
            raise InputError(path, f"{where}: unknown video_id {vid!r}")
        n = len(videos[vid]["file_names"])
        if not isinstance(f, int) or isinstance(f, bool) or not 0 <= f < n:
            raise InputError(path, f"{where}: frame {f!r} is not in 0..{n - 1} of video {vid}")
        if (vid, f) in seen:
            raise InputError(path, f"{where}: video {vid} frame {f} is tagged twice")
        seen.add((vid, f))
        if not isinstance(ids, list):
            raise InputError(path, f"{where}: 'category_ids' must be a list")
        unknown = [c for c in ids if not is_json_int(c) or c not in cats]
        if unknown:
            raise InputError(path, f"{where}: unknown category id {unknown[0]!r} in video {vid} frame {f}")
    return data


def load_tags(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a frame-tags JSON file."""
    return validate_tags(read_json(path), path)


def load_tags_or_derive(path: str | os.PathLike) -> dict[str, Any]:
    """A frame-tags file read as it is, or the tags of a YouTube-VIS ground truth (:func:`tags_from_ytvis`).

    Raises
    ------
    InputError
        Naming ``path``: missing, malformed, or neither kind of file.
    """
    from training.data.ytvis import validate_annotations

    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(path, "expected a JSON object: frame tags, or a ground truth with annotations")
    if "frame_tags" in data:
        return validate_tags(data, path)
    validate_annotations(data, path)
    return tags_from_ytvis(data)


def tag_matrix(tags: dict[str, Any], video_id: int) -> tuple[np.ndarray, list[int]]:
    """Per-frame class tags of one video as a boolean matrix.

    Returns
    -------
    matrix : (T, K) bool
        ``matrix[t, k]`` is True when category ``category_ids[k]`` is tagged in
        frame t. Frames without an entry have no tags.
    category_ids : list of int
        The K category ids, in the file's order.
    """
    cat_ids = [c["id"] for c in tags["categories"]]
    col = {c: k for k, c in enumerate(cat_ids)}
    video = next((v for v in tags["videos"] if v["id"] == video_id), None)
    if video is None:
        raise InputError(None, f"no video with id {video_id} in the tags")
    m = np.zeros((len(video["file_names"]), len(cat_ids)), dtype=bool)
    for t in tags["frame_tags"]:
        if t["video_id"] == video_id:
            for c in t["category_ids"]:
                m[t["frame"], col[c]] = True
    return m, cat_ids
