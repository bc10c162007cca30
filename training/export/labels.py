"""Instance label volumes ⇄ YouTube-VIS JSON, COCO JSON and ``.npz`` files.

A label volume is how every stage hands instance masks around: a (T, H, W)
integer array of instance ids (0 = background) with, per id, a category and a
score. A volume cannot hold overlapping masks, so ``labels → JSON → labels``
is exact; JSON with overlaps is painted lowest score first, so where two masks
overlap the higher-scored one wins.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from training.atomic import write_json, write_npz
from training.errors import InputError
from training.export.rle import decode_segmentation, encode_mask, mask_bbox
from training.json_io import is_json_int

Form = Literal["gt", "results"]


@dataclass
class LabelVolume:
    """Instance masks of one video.

    Attributes
    ----------
    labels : (T, H, W) int32
        Instance id per pixel, 0 for background.
    categories : dict[int, int]
        Instance id → category id.
    scores : dict[int, float]
        Instance id → confidence (1.0 for ground truth or manual labels).
    video : dict
        The YouTube-VIS ``videos`` entry (id, file_names, height, width,
        length; any other keys are kept).
    """

    labels: np.ndarray
    categories: dict[int, int]
    scores: dict[int, float] = field(default_factory=dict)
    video: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels)
        if self.labels.ndim != 3 or not np.issubdtype(self.labels.dtype, np.integer):
            raise ValueError(f"labels must be a (T, H, W) integer array, got {self.labels.shape} {self.labels.dtype}")
        self.labels = self.labels.astype(np.int32, copy=False)
        self.categories = {int(k): int(v) for k, v in self.categories.items()}
        self.scores = {int(k): float(self.scores.get(k, 1.0)) for k in self.categories}
        present = set(np.unique(self.labels).tolist()) - {0}
        missing = sorted(present - set(self.categories))
        if missing:
            raise ValueError(f"instance ids {missing[:5]} in labels have no category")
        t, h, w = self.labels.shape
        video = {"id": 1, "file_names": [f"{i:05d}.jpg" for i in range(t)]}
        video.update(self.video)
        video.update(height=h, width=w, length=t)
        self.video = video

    @property
    def instance_ids(self) -> list[int]:
        """Sorted instance ids (those with a category, present or not)."""
        return sorted(self.categories)


def _instance_masks(labels: np.ndarray, k: int) -> tuple[list[Any], list[int | None], list[Any]]:
    segs: list[Any] = []
    areas: list[int | None] = []
    boxes: list[Any] = []
    for frame in labels:
        m = frame == k
        if m.any():
            segs.append(encode_mask(m))
            areas.append(int(m.sum()))
            boxes.append(mask_bbox(m))
        else:
            segs.append(None)
            areas.append(None)
            boxes.append(None)
    return segs, areas, boxes


def labels_to_ytvis(volume: LabelVolume, form: Form = "gt", first_id: int = 1) -> list[dict[str, Any]]:
    """YouTube-VIS annotations (``form="gt"``) or results (``"results"``) of one video.

    Parameters
    ----------
    volume : LabelVolume
    form : {"gt", "results"}
        Ground-truth form has id, iscrowd, areas, bboxes; results form has
        score. Both keep ``instance_id`` so the volume can be rebuilt exactly.
    first_id : int
        Annotation id of the first instance (gt form; ids must be unique in a
        dataset).

    Returns
    -------
    annotations : list of dict, one per instance present in at least one frame.
    """
    out: list[dict[str, Any]] = []
    vid = volume.video["id"]
    for k in volume.instance_ids:
        segs, areas, boxes = _instance_masks(volume.labels, k)
        if all(s is None for s in segs):
            continue
        ann: dict[str, Any] = {"video_id": vid, "category_id": volume.categories[k], "instance_id": k}
        if form == "gt":
            t, h, w = volume.labels.shape
            ann.update(id=first_id + len(out), iscrowd=0, height=h, width=w, length=t)
            ann.update(segmentations=segs, areas=areas, bboxes=boxes)
        elif form == "results":
            ann.update(score=volume.scores[k], segmentations=segs)
        else:
            raise ValueError(f"form must be 'gt' or 'results', got {form!r}")
        out.append(ann)
    return out


def _paint(
    shape: tuple[int, int, int],
    entries: list[tuple[int, int, float, int, Any]],
) -> tuple[np.ndarray, dict[int, int], dict[int, float]]:
    """Paint ``(instance_id, category, score, frame, segmentation)`` lowest score first."""
    t, h, w = shape
    for _, _, _, f, seg in entries:  # before allocating the volume: its size may be what is wrong
        size = seg.get("size") if isinstance(seg, dict) else None
        if size is not None and list(size) != [h, w]:
            raise ValueError(f"frame {f}: RLE size {size} does not match the video's {h}x{w} frames")
    labels = np.zeros(shape, dtype=np.int32)
    cats: dict[int, int] = {}
    scores: dict[int, float] = {}
    order = sorted(range(len(entries)), key=lambda i: entries[i][2])  # stable: file order on ties
    for i in order:
        k, c, s, f, seg = entries[i]
        cats[k], scores[k] = c, s
        if not 0 <= f < t:
            raise ValueError(f"frame {f} is outside the video's {t} frames")
        m = decode_segmentation(seg, h, w)
        if m is not None:
            labels[f][m] = k
    return labels, cats, scores


def _instance_ids(anns: list[dict[str, Any]]) -> list[int]:
    ids: list[Any] = [a.get("instance_id") for a in anns]
    valid = all(is_json_int(i) and 0 < i < 2**31 for i in ids)  # ids live in int32 arrays
    if valid and len(set(ids)) == len(ids):
        return ids
    return list(range(1, len(anns) + 1))


def ytvis_to_labels(annotations: list[dict[str, Any]], video: dict[str, Any]) -> LabelVolume:
    """Rebuild a label volume from one video's YouTube-VIS annotations or results.

    Parameters
    ----------
    annotations : list of dict
        Entries of this video (gt or results form).
    video : dict
        Its ``videos`` entry (height, width, length or file_names).

    Returns
    -------
    LabelVolume
        Instance ids from ``instance_id`` when present and unique, else 1..N in
        file order. Crowd annotations are skipped.

    Raises
    ------
    ValueError
        An entry that does not fit the video, naming its index in ``annotations``.
    """
    h, w = int(video["height"]), int(video["width"])
    t = int(video.get("length") or len(video["file_names"]))
    anns = [a for a in annotations if not a.get("iscrowd")]
    entries = []
    for n, (k, a) in enumerate(zip(_instance_ids(anns), anns, strict=True)):
        try:
            segs = a.get("segmentations") or []
            if not isinstance(segs, list) or len(segs) > t:
                raise ValueError(f"'segmentations' must be a list of at most {t} frames")
            cat, score = a["category_id"], a.get("score", 1.0)
            finite = isinstance(score, int | float) and bool(np.isfinite(score))
            if not (is_json_int(cat) and abs(cat) < 2**31) or not finite:
                raise ValueError("needs an integer 'category_id' and a finite 'score'")
            frames = enumerate(segs) if segs else [(0, None)]
            entries += [(k, cat, float(score), f, seg) for f, seg in frames]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"annotation {n}: malformed ({type(exc).__name__}: {exc})") from None
        except ValueError as exc:
            raise ValueError(f"annotation {n}: {exc}") from None
    try:
        labels, cats, scores = _paint((t, h, w), entries)
    except (TypeError, OverflowError) as exc:
        raise ValueError(f"malformed segmentation ({type(exc).__name__}: {exc})") from None
    return LabelVolume(labels, cats, scores, dict(video))


def labels_to_coco(
    volume: LabelVolume, form: Form = "gt", first_image_id: int = 1, first_ann_id: int = 1
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """COCO images (one per frame) and annotations (one per instance per frame).

    Returns
    -------
    images, annotations : lists of dict
        Images carry ``video_id`` and ``frame_index``; annotations carry
        ``instance_id`` (and ``score`` in results form).
    """
    t, h, w = volume.labels.shape
    names = volume.video.get("file_names") or [f"{i:05d}.jpg" for i in range(t)]
    images = [
        {
            "id": first_image_id + f,
            "file_name": names[f],
            "height": h,
            "width": w,
            "video_id": volume.video["id"],
            "frame_index": f,
        }
        for f in range(t)
    ]
    anns: list[dict[str, Any]] = []
    for f in range(t):
        for k in volume.instance_ids:
            m = volume.labels[f] == k
            if not m.any():
                continue
            ann: dict[str, Any] = {
                "image_id": first_image_id + f,
                "category_id": volume.categories[k],
                "segmentation": encode_mask(m),
                "instance_id": k,
            }
            if form == "gt":
                ann.update(id=first_ann_id + len(anns), area=int(m.sum()), bbox=mask_bbox(m), iscrowd=0)
            else:
                ann.update(score=volume.scores[k], bbox=mask_bbox(m))
            anns.append(ann)
    return images, anns


def coco_to_labels(
    images: list[dict[str, Any]], annotations: list[dict[str, Any]], video: dict[str, Any] | None = None
) -> LabelVolume:
    """Rebuild a label volume from COCO images of one video and their annotations.

    Frames are the images in ``frame_index`` order (file order when absent).
    Annotations without ``instance_id`` each become their own instance.
    """
    order = sorted(range(len(images)), key=lambda i: images[i].get("frame_index", i))
    frame_of = {images[i]["id"]: f for f, i in enumerate(order)}
    h, w = int(images[order[0]]["height"]), int(images[order[0]]["width"])
    anns = [a for a in annotations if a["image_id"] in frame_of and not a.get("iscrowd")]
    have_ids = all(isinstance(a.get("instance_id"), int) and a["instance_id"] > 0 for a in anns)
    entries = []
    for n, a in enumerate(anns):
        k = a["instance_id"] if have_ids else n + 1
        entries.append(
            (k, int(a["category_id"]), float(a.get("score", 1.0)), frame_of[a["image_id"]], a["segmentation"])
        )
    labels, cats, scores = _paint((len(images), h, w), entries)
    if video is None:
        video = {"id": images[order[0]].get("video_id", 1), "file_names": [images[i]["file_name"] for i in order]}
    return LabelVolume(labels, cats, scores, dict(video))


def write_ytvis(
    path: str | os.PathLike,
    volumes: list[LabelVolume],
    categories: list[dict[str, Any]],
    form: Form = "gt",
) -> dict[str, Any] | list[dict[str, Any]]:
    """Write a YouTube-VIS file atomically: a dataset (gt) or a results list.

    Returns
    -------
    obj : the JSON object written (a dict for gt, a list for results).
    """
    anns: list[dict[str, Any]] = []
    for v in volumes:
        anns.extend(labels_to_ytvis(v, form, first_id=len(anns) + 1))
    obj: dict[str, Any] | list[dict[str, Any]]
    if form == "results":
        obj = anns
    else:
        obj = {"videos": [v.video for v in volumes], "categories": categories, "annotations": anns}
    write_json(path, obj)
    return obj


def write_coco(
    path: str | os.PathLike,
    volumes: list[LabelVolume],
    categories: list[dict[str, Any]],
    form: Form = "gt",
) -> dict[str, Any] | list[dict[str, Any]]:
    """Write a COCO file atomically: one image per frame of every video.

    In results form the file is the COCO results list (image_id, category_id,
    segmentation, score), as pycocotools' ``loadRes`` reads it.
    """
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for v in volumes:
        im, an = labels_to_coco(v, form, first_image_id=len(images) + 1, first_ann_id=len(anns) + 1)
        images.extend(im)
        anns.extend(an)
    obj: dict[str, Any] | list[dict[str, Any]]
    if form == "results":
        obj = anns
    else:
        videos = [v.video for v in volumes]
        obj = {"images": images, "annotations": anns, "categories": categories, "videos": videos}
    write_json(path, obj)
    return obj


def save_labels(path: str | os.PathLike, volume: LabelVolume) -> None:
    """Save a label volume as ``.npz`` atomically (plain arrays, no pickle)."""
    ids = np.array(volume.instance_ids, dtype=np.int32)
    write_npz(
        path,
        labels=volume.labels,
        instance_ids=ids,
        category_ids=np.array([volume.categories[k] for k in ids], dtype=np.int32),
        scores=np.array([volume.scores[k] for k in ids], dtype=np.float64),
        video=np.array(json.dumps(volume.video)),
    )


def load_labels(path: str | os.PathLike) -> LabelVolume:
    """Load a label volume saved by :func:`save_labels`.

    Raises
    ------
    InputError
        The file is missing, not an ``.npz`` of ours, or inconsistent.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            labels = z["labels"]
            ids, cats, scores = z["instance_ids"], z["category_ids"], z["scores"]
            video = json.loads(str(z["video"]))
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except KeyError as exc:
        raise InputError(path, f"not a label volume: missing array {exc}") from None
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(path, f"not a readable .npz label volume ({exc})") from None
    if not (len(ids) == len(cats) == len(scores)):
        raise InputError(path, "instance_ids, category_ids and scores differ in length")
    try:
        return LabelVolume(
            labels,
            dict(zip(ids.tolist(), cats.tolist(), strict=True)),
            dict(zip(ids.tolist(), scores.tolist(), strict=True)),
            video if isinstance(video, dict) else {},
        )
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
