"""A project from a user's own videos: a frame-tags JSON whose videos are read from their source files.

``vis-ws project new VIDEO... --classes person bicycle --out PROJECT`` writes
``PROJECT/tags.json`` (:attr:`training.run_folder.Project.tags`): a frame-tags
file like any other (:mod:`training.data.tags`), valid for every ``vis-ws``
command, whose ``videos`` entries carry a ``source``: the absolute path of the
video file or frames folder, and for a cut of a long video
(``--frame-range START:STOP``) a ``source_frames`` ``[start, stop]``. Frames
are read from there lazily (:func:`training.data.ytvis.dataset_video_frames`);
nothing is extracted. Each
entry's ``file_names`` are names only (``<name>/00000.jpg``), as YouTube-VIS
needs one per frame; ``name`` (the file's stem, made unique) keys every
per-video output of the project, so adding or removing videos later keeps what
was done for the others. ``frame_tags`` starts empty: an untagged frame is
unknown, not "no object" (the classifier trains only on tagged frames).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from training.errors import InputError
from training.progress import Progress

SOURCE = "source"
"""Key of a ``videos`` entry naming the file or folder its frames are read from."""
SOURCE_FRAMES = "source_frames"
"""Key of a ``videos`` entry that is a cut of its source: ``[start, stop]``, the source's frames start..stop-1."""


def frame_range(text: str | None) -> tuple[int, int | None] | None:
    """``--frame-range START:STOP`` as (start, stop): 0-based, STOP excluded, either side may be left out
    (``:250``, ``100:``); None or "" or ``all`` is every frame (None).

    Raises
    ------
    InputError
        Not two integers around a colon, negative, or empty (STOP <= START).
    """
    if text is None or not text.strip() or text.strip().lower() == "all":
        return None
    parts = text.strip().split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start = int(parts[0]) if parts[0].strip() else 0
        stop = int(parts[1]) if parts[1].strip() else None
    except ValueError:
        raise InputError(None, f"frame range {text!r}: expected START:STOP, e.g. 0:250 (STOP excluded)") from None
    if start < 0 or (stop is not None and stop <= start):
        raise InputError(None, f"frame range {text!r}: expected 0 <= START < STOP")
    return start, stop


def check_classes(classes: Sequence[str]) -> list[str]:
    """The class names, stripped; refused in one line when empty, blank or given twice."""
    names = [str(c).strip() for c in classes]
    if not names:
        raise InputError(None, "project: give at least one class (--classes person bicycle ...)")
    if any(not n for n in names):
        raise InputError(None, "project: a class name is empty")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(None, f"project: class {twice[0]!r} is given twice")
    return names


def _check_frame_sizes(reader: Any, path: Path) -> None:
    """Every frame of a folder has the first frame's size (headers only, no decoding)."""
    from PIL import Image

    h, w = reader.frame_shape
    for i, f in enumerate(getattr(reader, "files", [])):
        try:
            with Image.open(f) as im:
                size = im.size
        except Exception as exc:
            raise InputError(f, f"frame {i}: cannot read the image ({type(exc).__name__})") from None
        if size != (w, h):
            raise InputError(
                path, f"frame {i} ({f.name}) is {size[0]}x{size[1]}, frame 0 is {w}x{h}: a video has one frame size"
            )


def video_entry(
    source: str | os.PathLike, video_id: int, name: str, frames: tuple[int, int | None] | None = None
) -> dict[str, Any]:
    """The ``videos`` entry of a video file or frames folder, after checking that its frames can be read.

    Parameters
    ----------
    source : path
        A video file (mp4, avi, mov, ...), a folder of frames or a TIFF stack.
    video_id : int
    name : str
        The video's name in the project (unique; keys its outputs).
    frames : (start, stop), optional
        Only these frames of the source (:func:`frame_range`; stop None: to
        the end), recorded as ``source_frames``. None: every frame.

    Raises
    ------
    InputError
        Naming ``source``: missing, not a video, undecodable, frames of
        different sizes, a frame range past its end.
    """
    from training.data.video import FrameRangeReader, open_frames

    path = Path(source).resolve()
    reader = open_frames(path)
    cut: dict[str, Any] = {}
    if frames is not None:
        start, stop = frames[0], len(reader) if frames[1] is None else frames[1]
        reader = FrameRangeReader(reader, start, stop)  # refuses a range past the source's end
        cut = {SOURCE_FRAMES: [start, stop]}
    reader.read(0)  # decodable, not only demuxable
    if path.is_dir():
        _check_frame_sizes(reader, path)
    t, h, w, _ = reader.shape
    names = [f"{name}/{i:05d}.jpg" for i in range(t)]
    entry = {"id": video_id, "name": name, "file_names": names, "height": h, "width": w, "length": t}
    return {**entry, SOURCE: str(path), **cut}


def _unique_name(stem: str, taken: set[str]) -> str:
    from training.data.sources import safe_name

    safe = safe_name(stem) or "video"
    name, n = safe, 2
    while name in taken:
        name, n = f"{safe}-{n}", n + 1
    return name


def _held(video: dict[str, Any]) -> tuple[str, tuple[int, ...]]:
    """What a ``videos`` entry reads: its source and frame range."""
    return str(video.get(SOURCE)), tuple(video.get(SOURCE_FRAMES) or ())


def add_videos(
    tags: dict[str, Any], sources: Sequence[str | os.PathLike], frames: tuple[int, int | None] | None = None
) -> dict[str, Any]:
    """``tags`` with the videos of ``sources`` appended (new ids after the largest; tags of the others kept).

    ``frames`` (:func:`frame_range`) takes only that range of every source.

    Raises
    ------
    InputError
        A source that cannot be read (:func:`video_entry`), or one the project already holds (with the same
        frames).
    """
    videos = list(tags["videos"])
    held = {_held(v) for v in videos}
    taken = {str(v.get("name", "")) for v in videos}
    next_id = max((int(v["id"]) for v in videos), default=0) + 1
    for source in sources:
        path = Path(source).resolve()
        name = _unique_name(path.stem if path.is_file() else path.name, taken)
        entry = video_entry(path, next_id, name, frames)
        if _held(entry) in held:
            cut = entry.get(SOURCE_FRAMES)
            raise InputError(path, "is already in the project" + (f" (frames {cut[0]}:{cut[1]})" if cut else ""))
        videos.append(entry)
        held.add(_held(entry))
        taken.add(name)
        next_id += 1
    return {**tags, "videos": videos}


def new_project_tags(
    sources: Sequence[str | os.PathLike], classes: Sequence[str], frames: tuple[int, int | None] | None = None
) -> dict[str, Any]:
    """A frame-tags object of ``sources`` (at least one; only ``frames`` of each when given) and ``classes``
    (ids 1..K), nothing tagged yet."""
    if not sources:
        raise InputError(None, "project: give at least one video file or frames folder")
    categories = [{"id": i, "name": n} for i, n in enumerate(check_classes(classes), start=1)]
    return add_videos({"videos": [], "categories": categories, "frame_tags": []}, sources, frames)


def remove_videos(tags: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """``tags`` without the videos called ``names`` and their frame tags (the others keep ids and tags).

    Raises
    ------
    InputError
        A name the project does not hold (the message lists those it does).
    """
    held = [str(v.get("name", "")) for v in tags["videos"]]
    unknown = [n for n in names if n not in held]
    if unknown:
        raise InputError(None, f"project: no video called {unknown[0]!r} (it has {', '.join(held) or 'none'})")
    gone = {int(v["id"]) for v in tags["videos"] if v.get("name") in names}
    return {
        **tags,
        "videos": [v for v in tags["videos"] if int(v["id"]) not in gone],
        "frame_tags": [t for t in tags["frame_tags"] if int(t["video_id"]) not in gone],
    }


def import_tags(project: dict[str, Any], incoming: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """``project`` with the frame tags of ``incoming`` (``vis-ws tags FILE --out PROJECT``).

    Videos are matched by their output name
    (:func:`training.data.sources.video_key`), classes by name. Every video
    ``incoming`` lists has its tags replaced by the file's (a video it lists
    with no tag ends untagged); the project's other videos, its sources and
    its ids stay. Classes the project lacks are added (new ids after the
    largest, their colour kept).

    Parameters
    ----------
    project, incoming : dict
        Validated frame-tags objects (:func:`training.data.tags.validate_tags`).
    path : path
        Where ``incoming`` was read from, for the messages.

    Raises
    ------
    InputError
        Naming ``path``: a video the project does not hold (the message lists
        those it does), or one whose frame count differs (tags for frames that
        do not exist). Nothing is half imported.
    """
    from training.data.sources import video_key

    mine = {video_key(v): v for v in project["videos"]}
    videos: dict[int, int] = {}  # incoming video id -> project video id
    for v in incoming["videos"]:
        key = video_key(v)
        if key not in mine:
            held = ", ".join(sorted(mine)) or "none"
            raise InputError(path, f"video {key!r} is not in the project (it has {held}): add it first")
        if int(mine[key]["id"]) in videos.values():
            raise InputError(path, f"video {key!r} is listed twice")
        have, give = len(mine[key]["file_names"]), len(v["file_names"])
        if have != give:
            raise InputError(path, f"video {key!r} has {give} frames here and {have} in the project")
        videos[int(v["id"])] = int(mine[key]["id"])
    categories = [dict(c) for c in project["categories"]]
    by_name = {c["name"]: int(c["id"]) for c in categories}
    ids: dict[int, int] = {}  # incoming category id -> project category id
    for c in incoming["categories"]:
        if c["name"] not in by_name:
            by_name[c["name"]] = max((int(k["id"]) for k in categories), default=0) + 1
            categories.append({**c, "id": by_name[c["name"]]})
        ids[int(c["id"])] = by_name[c["name"]]
    replaced = set(videos.values())
    kept = [t for t in project["frame_tags"] if int(t["video_id"]) not in replaced]
    brought = [
        {"video_id": videos[int(t["video_id"])], "frame": int(t["frame"]),
         "category_ids": sorted(ids[int(c)] for c in t["category_ids"])}
        for t in incoming["frame_tags"]
    ]  # fmt: skip
    return {**project, "categories": categories, "frame_tags": kept + brought}


def extract_frames(tags: dict[str, Any], tags_path: str | os.PathLike, names: Sequence[str]) -> Iterator[Progress]:
    """Copy the frames of the videos called ``names`` from their sources into the project: ``--extract``.

    Each frame becomes ``JPEGImages/<file_name>`` beside ``tags_path`` (the
    entry's own ``file_names``; JPEG at quality 95, as YouTube-VIS ships
    frames), so a video no longer depends on its source file (moved, on a
    slow disk) and training reads single frames without seeking in a video.
    A video's folder appears whole: it is written under a temporary name and
    renamed when complete; when stopped or failed, every folder this call
    wrote is removed. Call
    :func:`without_sources` on ``tags`` after the generator is exhausted.

    Yields
    ------
    Progress
        Stage ``extract``, one per frame of all the videos.

    Raises
    ------
    InputError
        A video whose frame folder exists already (nothing is overwritten),
        or one that has no ``source``.
    """
    import shutil
    import tempfile

    from PIL import Image

    from training.data.ytvis import dataset_video_frames, frames_root

    root = frames_root(tags_path)
    videos = [v for v in tags["videos"] if v.get("name") in names]
    for v in videos:
        if not v.get(SOURCE):
            raise InputError(tags_path, f"video {v['name']!r} has no source to extract frames from")
        target = root / Path(v["file_names"][0]).parent
        if target.exists():
            raise InputError(target, "exists: remove it or give the video another name; nothing was overwritten")
    total, done, made = sum(len(v["file_names"]) for v in videos), 0, []
    try:
        for v in videos:
            reader = dataset_video_frames(tags_path, tags, int(v["id"]))
            target = root / Path(v["file_names"][0]).parent
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=root))
            made.append(tmp)
            for i, name in enumerate(v["file_names"]):
                Image.fromarray(reader.read(i)).save(tmp / Path(name).name, quality=95)
                done += 1
                yield Progress("extract", done, total, "frame", message=v["name"] if i == 0 else "")
            os.replace(tmp, target)
            made[-1] = target
    except BaseException:  # stopped or failed: all of this call's folders go, the project is as it was
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def without_sources(tags: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """``tags`` with the videos called ``names`` read from ``JPEGImages/`` (their ``source`` and
    ``source_frames`` dropped), after :func:`extract_frames`."""
    drop = {SOURCE, SOURCE_FRAMES}
    videos = [{k: x for k, x in v.items() if k not in drop} if v.get("name") in names else v for v in tags["videos"]]
    return {**tags, "videos": videos}
