"""Backend results → napari layer-data tuples, with the plugin's fixed layer names.

Layer names are a contract (README, tests): ``frames`` for the video,
``ground truth`` for reference instances, ``pseudo-labels`` and
``predictions`` for instance label volumes produced by the pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from training.data.video import FrameReader
from training.export import LabelVolume

FRAMES = "frames"
GROUND_TRUTH = "ground truth"
META_KEY = "vis_ws"  # layer.metadata[META_KEY]: where the layer came from


def frames_layer(reader: FrameReader, source: dict[str, Any] | None = None) -> tuple:
    """The ``frames`` image layer: a lazy (T, H, W, 3) dask array, axes (t, y, x)."""
    meta = {META_KEY: {"path": str(reader.path), **(source or {})}}
    kwargs = {"name": FRAMES, "rgb": True, "axis_labels": ("t", "y", "x"), "metadata": meta}
    return (reader.to_dask(), kwargs, "image")


def labels_features(volume: LabelVolume, categories: list[dict[str, Any]]) -> dict[str, list]:
    """Per-instance table for a Labels layer: index, class name, category id, score, frames present."""
    names = {c["id"]: c["name"] for c in categories}
    ids = volume.instance_ids
    frames = [int((volume.labels == k).any(axis=(1, 2)).sum()) for k in ids]
    return {
        "index": [0, *ids],
        "class": ["background", *[names.get(volume.categories[k], str(volume.categories[k])) for k in ids]],
        "category_id": [0, *[volume.categories[k] for k in ids]],
        "score": [1.0, *[volume.scores[k] for k in ids]],
        "frames": [0, *frames],
    }


def labels_layer(
    volume: LabelVolume, categories: list[dict[str, Any]], name: str, source: dict[str, Any] | None = None
) -> tuple:
    """A Labels layer of an instance volume, with its class and score per id in ``features``."""
    meta = {META_KEY: {"video": volume.video, "categories": categories, **(source or {})}}
    kwargs = {
        "name": name,
        "features": labels_features(volume, categories),
        "axis_labels": ("t", "y", "x"),
        "metadata": meta,
        "opacity": 0.6,
    }
    return (volume.labels, kwargs, "labels")


def volume_from_layer(data: Any, meta: dict[str, Any]) -> tuple[LabelVolume, list[dict[str, Any]]]:
    """A Labels layer's data + attributes → (LabelVolume, categories) for export.

    Class and score per id come from the layer's ``features`` (columns
    ``index``, ``category_id``, ``score``); ids without a row get category 1.
    """
    labels = np.asarray(data)
    if labels.ndim == 2:
        labels = labels[None]
    if labels.ndim != 3:
        raise ValueError(f"expected (T, H, W) or (H, W) labels, got shape {labels.shape}")
    src = (meta.get("metadata") or {}).get(META_KEY, {})
    feats = meta.get("features")
    table: dict[str, list] = {}
    if feats is not None and len(feats):
        table = {k: list(feats[k]) for k in feats}
    ids = [int(i) for i in _label_ids(labels)]
    index = table.get("index", list(range(len(next(iter(table.values()), [])))))
    row = {int(v): r for r, v in enumerate(index)}
    cats = {k: int(table["category_id"][row[k]]) if k in row and "category_id" in table else 1 for k in ids}
    scores = {k: float(table["score"][row[k]]) if k in row and "score" in table else 1.0 for k in ids}
    categories = src.get("categories") or [{"id": c, "name": f"class {c}"} for c in sorted(set(cats.values()) or {1})]
    video = dict(src.get("video") or {})
    if video.get("length") not in (None, labels.shape[0]) or video.get("height") not in (None, labels.shape[1]):
        video = {"id": video.get("id", 1)}  # the layer no longer matches its source video
    return LabelVolume(labels.astype(np.int32, copy=False), cats, scores, video), categories


def _label_ids(labels: np.ndarray) -> np.ndarray:
    """The non-zero ids of a label array, ascending: a bincount for small non-negative ids (5x faster than unique)."""
    if labels.size and labels.dtype.kind in "iu" and labels.min() >= 0 and labels.max() < 1 << 24:
        ids = np.flatnonzero(np.bincount(labels.ravel()))
    else:
        ids = np.unique(labels)
    return ids[ids != 0]


def sample_root() -> Path:
    """The committed ``sample_data/`` folder of the repository."""
    return Path(__file__).resolve().parent.parent / "sample_data"


def find_dataset_json(folder: Path) -> Path | None:
    """The dataset JSON of a YouTube-VIS folder (``gt.json`` first, then ``tags.json``)."""
    if not (folder / "JPEGImages").is_dir():
        return None
    for name in ("gt.json", "tags.json", "annotations.json", "instances.json"):
        if (folder / name).is_file():
            return folder / name
    jsons = sorted(folder.glob("*.json"))
    return jsons[0] if jsons else None


def dataset_layers(json_path: str | Path, video_id: int | None = None, frames: str | Path | None = None) -> list[tuple]:
    """Layers of one video of a dataset JSON (ground truth, frame tags or videos only).

    Returns ``frames`` and, for a ground-truth file, ``ground truth`` labels.
    ``video_id`` defaults to the dataset's first video.
    """
    from training.data.sources import load_dataset_json
    from training.data.ytvis import dataset_video_frames, gt_volume
    from training.errors import InputError

    json_path = Path(json_path)
    data = load_dataset_json(json_path)
    if not data["videos"]:
        raise InputError(json_path, "the dataset has no videos")
    vid = data["videos"][0]["id"] if video_id is None else video_id
    reader = dataset_video_frames(json_path, data, vid, frames)
    video = next(v for v in data["videos"] if v["id"] == vid)
    source = {"json": str(json_path), "video_id": vid, "video": video, "categories": data["categories"]}
    layers = [frames_layer(reader, source)]
    if "annotations" in data:
        volume = gt_volume(data, vid, json_path)
        layers.append(labels_layer(volume, data["categories"], GROUND_TRUTH, {"json": str(json_path)}))
    return layers


def stage_meta(stage: str, key: str, **extra: Any) -> dict[str, Any]:
    """A stage layer's ``metadata``: ``{"vis_ws": {"stage": stage, "video_key": key, ...}}``."""
    return {META_KEY: {"stage": stage, "video_key": key, **extra}}
