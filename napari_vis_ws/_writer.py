"""napari writers: a Labels layer → YouTube-VIS JSON or COCO JSON (RLE), atomically."""

from __future__ import annotations

from typing import Any

from napari_vis_ws._layers import volume_from_layer
from training.export import write_coco, write_ytvis


def write_ytvis_json(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save instance labels as a YouTube-VIS ground-truth JSON (one video)."""
    volume, categories = volume_from_layer(data, meta)
    write_ytvis(path, [volume], categories, form="gt")
    return [path]


def write_coco_json(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Save instance labels as a COCO JSON with one image per frame."""
    volume, categories = volume_from_layer(data, meta)
    write_coco(path, [volume], categories, form="gt")
    return [path]
