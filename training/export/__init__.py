"""Export: instance label volumes ⇄ YouTube-VIS / COCO JSON (RLE), written atomically."""

from training.export.labels import (
    LabelVolume,
    coco_to_labels,
    labels_to_coco,
    labels_to_ytvis,
    load_labels,
    save_labels,
    write_coco,
    write_ytvis,
    ytvis_to_labels,
)
from training.export.rle import decode_segmentation, encode_mask, mask_bbox, segmentation_to_rle

__all__ = [
    "LabelVolume",
    "coco_to_labels",
    "decode_segmentation",
    "encode_mask",
    "labels_to_coco",
    "labels_to_ytvis",
    "load_labels",
    "mask_bbox",
    "save_labels",
    "segmentation_to_rle",
    "write_coco",
    "write_ytvis",
    "ytvis_to_labels",
]
