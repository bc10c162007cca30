"""napari reader: video files, frame folders, TIFF stacks, YouTube-VIS datasets, label volumes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_vis_ws._layers import dataset_layers, find_dataset_json, frames_layer, labels_layer
from training.data.video import IMAGE_SUFFIXES, TIFF_SUFFIXES, VIDEO_SUFFIXES
from training.errors import InputError


def _has_frames(folder: Path) -> bool:
    """Whether ``folder`` holds an image file that :func:`training.data.video.list_frames` would list."""
    return any(
        p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file() for p in folder.iterdir()
    )


def _no_frames_problem(folder: Path) -> str:
    """Why a folder opens as nothing: what it lacks and what to open instead (one line for InputError)."""
    kinds = "/".join(IMAGE_SUFFIXES[:3])
    if (folder / "JPEGImages").is_dir():
        return "a JPEGImages/ folder but no dataset JSON beside it: add the YouTube-VIS JSON (gt.json or tags.json)"
    with_frames = sorted(p.name for p in folder.iterdir() if p.is_dir() and _has_frames(p))
    if with_frames:
        return f"no image frames ({kinds}/...) in this folder; its subfolder {with_frames[0]!r} has some: open that one"
    return (
        f"no image frames ({kinds}/...) in this folder: expected a folder of video frames"
        " or a YouTube-VIS dataset folder (JPEGImages/ and its JSON)"
    )


def _kind(path: Path) -> str | None:
    if path.is_dir():
        if find_dataset_json(path) is not None:
            return "dataset-folder"
        # a folder without frames gets a reader that says why, not None: napari would only say "refused the file"
        return "frames" if _has_frames(path) else "no-frames"
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "frames"
    if suffix in TIFF_SUFFIXES:
        return "frames"
    if suffix == ".json":
        return "dataset"
    if suffix == ".npz":
        return "labels"
    return None


def napari_get_reader(path: str | list[str]) -> Callable[[Any], list[tuple]] | None:
    """Return a reader for ``path`` when this plugin can open it, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    try:
        kind = _kind(Path(path))
    except OSError as exc:  # e.g. a path too long for the file system: say so in one line when napari reads it
        if Path(path).suffix.lower() not in (*VIDEO_SUFFIXES, *TIFF_SUFFIXES, ".json", ".npz"):
            return None
        error = InputError.from_os_error(exc, path)

        def refuse(_: Any) -> list[tuple]:
            raise error

        return refuse
    if kind is None:
        return None
    return lambda p: read(p, kind)


def read(path: str | list[str], kind: str) -> list[tuple]:
    """Open ``path`` as layer-data tuples (errors are one-line ``InputError``)."""
    from training.data.video import open_frames
    from training.export import load_labels

    p = Path(path[0] if isinstance(path, list) else path)
    if kind == "no-frames":
        raise InputError(p, _no_frames_problem(p))
    if kind == "dataset-folder":
        return dataset_layers(find_dataset_json(p))  # type: ignore[arg-type]
    if kind == "dataset":
        return dataset_layers(p)
    if kind == "labels":
        volume = load_labels(p)
        cats = sorted(set(volume.categories.values()))
        return [labels_layer(volume, [{"id": c, "name": f"class {c}"} for c in cats], p.stem, {"path": str(p)})]
    return [frames_layer(open_frames(p))]
