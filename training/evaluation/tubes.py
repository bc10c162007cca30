"""YouTube-VIS ground truth and results as tubes: parsed, checked and decoded to RLE per frame.

:func:`load_gt_tubes` and :func:`load_result_tubes` turn the JSON into
:class:`Tube` lists for :mod:`training.evaluation.ytvis_eval` (video AP) and
:mod:`training.evaluation.frame_ap` (frame AP); bad input is an
:class:`~training.errors.InputError` naming the file and the entry.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from training.errors import InputError
from training.export.rle import segmentation_to_rle

RLE = dict[str, Any]
"""A compressed pycocotools RLE: ``{"size": [H, W], "counts": bytes}``."""


@dataclass(frozen=True)
class Tube:
    """One ground-truth annotation or result, ready for evaluation.

    Attributes
    ----------
    id : int
        Annotation id (ground truth) or 1-based index in the results list.
    video_id, category_id : int
    frames : tuple of RLE or None
        Compressed RLE per frame, ``None`` where the instance is absent.
    areas : tuple of float or None
        Per-frame area: the JSON ``areas`` for ground truth, the RLE area for
        results; ``None`` where absent.
    score : float
        Detection confidence; 1.0 for ground truth.
    iscrowd : bool
        Crowd region (ground truth only).
    """

    id: int
    video_id: int
    category_id: int
    frames: tuple[RLE | None, ...]
    areas: tuple[float | None, ...]
    score: float = 1.0
    iscrowd: bool = False

    @property
    def avg_area(self) -> float:
        """Mean of the truthy (non-null, non-zero) per-frame areas; 0 when none."""
        present = [a for a in self.areas if a]
        return float(np.mean(present)) if present else 0.0


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _where(path: str | os.PathLike | None, fallback: str) -> str:
    return os.fspath(path) if path is not None else fallback


def video_sizes(gt: Mapping[str, Any], gt_path: str | os.PathLike | None = None) -> dict[int, tuple[int, int]]:
    """Frame size of every ground-truth video.

    Returns
    -------
    sizes : dict
        ``video id -> (height, width)``.

    Raises
    ------
    InputError
        ``videos`` missing, or an entry without an id, height or width.
    """
    if not isinstance(gt, Mapping):
        raise InputError(gt_path, "expected a JSON object with videos, categories and annotations")
    videos = gt.get("videos")
    if not isinstance(videos, list):
        raise InputError(gt_path, "missing 'videos' list")
    sizes: dict[int, tuple[int, int]] = {}
    for i, v in enumerate(videos):
        if not isinstance(v, dict) or not all(k in v for k in ("id", "height", "width")):
            raise InputError(gt_path, f"videos[{i}] needs 'id', 'height' and 'width'")
        sizes[v["id"]] = (int(v["height"]), int(v["width"]))
    return sizes


def category_ids(gt: Mapping[str, Any], gt_path: str | os.PathLike | None = None) -> list[int]:
    """Sorted category ids of the ground truth (the evaluated categories)."""
    cats = gt.get("categories")
    if not isinstance(cats, list) or not all(isinstance(c, dict) and "id" in c for c in cats):
        raise InputError(gt_path, "missing 'categories' list of objects with an 'id'")
    return sorted({c["id"] for c in cats})


def _frames(segs: Any, size: tuple[int, int], path: str | os.PathLike | None, where: str) -> tuple[RLE | None, ...]:
    """Normalise a per-frame segmentation list to compressed RLEs (None where absent)."""
    if not isinstance(segs, list):
        raise InputError(path, f"{where}: 'segmentations' must be a list with one entry per frame")
    out = []
    for t, seg in enumerate(segs):
        try:
            out.append(segmentation_to_rle(seg, *size))
        except ValueError as exc:
            raise InputError(path, f"{where} frame {t}: {exc}") from None
    return tuple(out)


def rle_areas(frames: Sequence[RLE | None]) -> tuple[float | None, ...]:
    """Pixel count of each present frame, None where absent."""
    present = [f for f in frames if f is not None]
    counts = iter(mask_utils.area(present).tolist() if present else [])
    return tuple(None if f is None else float(next(counts)) for f in frames)


def load_gt_tubes(gt: Mapping[str, Any], gt_path: str | os.PathLike | None = None) -> list[Tube]:
    """Ground-truth tubes of a parsed YouTube-VIS JSON.

    Annotations of categories missing from ``categories`` are dropped, as the
    official evaluator only loads the listed categories.

    Parameters
    ----------
    gt : dict
        ``videos``, ``categories`` and ``annotations`` (``segmentations`` as
        compressed / uncompressed RLE, polygons or null; ``areas``).
    gt_path : str or None
        Named in error messages.

    Returns
    -------
    tubes : list of Tube
        In annotation order. ``areas`` come from the JSON; when an annotation
        has no ``areas`` they are computed from the masks.

    Raises
    ------
    InputError
        A malformed annotation or segmentation, naming the annotation and frame.
    """
    sizes = video_sizes(gt, gt_path)
    cats = set(category_ids(gt, gt_path))
    anns = gt.get("annotations", [])
    if not isinstance(anns, list):
        raise InputError(gt_path, "'annotations' must be a list")
    tubes = []
    for i, a in enumerate(anns):
        if not isinstance(a, dict) or not all(k in a for k in ("id", "video_id", "category_id", "segmentations")):
            raise InputError(
                gt_path,
                f"annotations[{i}] needs 'id', 'video_id', 'category_id' and 'segmentations'",
            )
        where = f"annotations[{i}] (id {a['id']})"
        if a["video_id"] not in sizes:
            raise InputError(gt_path, f"{where}: unknown video_id {a['video_id']!r}")
        if a["category_id"] not in cats:
            continue
        frames = _frames(a["segmentations"], sizes[a["video_id"]], gt_path, where)
        areas = a.get("areas")
        if areas is None:
            areas = rle_areas(frames)
        elif not isinstance(areas, list) or not all(x is None or _is_number(x) for x in areas):
            raise InputError(gt_path, f"{where}: 'areas' must be a list of numbers or nulls")
        tubes.append(
            Tube(
                id=a["id"],
                video_id=a["video_id"],
                category_id=a["category_id"],
                frames=frames,
                areas=tuple(None if x is None else float(x) for x in areas),
                iscrowd=bool(a.get("iscrowd", 0)),
            )
        )
    return tubes


def load_result_tubes(
    results: Any,
    sizes: Mapping[int, tuple[int, int]],
    results_path: str | os.PathLike | None = None,
    gt_path: str | os.PathLike | None = None,
) -> list[Tube]:
    """Result tubes, checked against the ground-truth videos.

    Parameters
    ----------
    results : list of dict
        ``{video_id, category_id, score, segmentations}`` with one RLE dict
        (or null) per frame.
    sizes : dict
        ``video id -> (height, width)`` from :func:`video_sizes`.
    results_path, gt_path : str or None
        Named in error messages.

    Returns
    -------
    tubes : list of Tube
        In input order, ``id`` = index + 1 (as ``YTVOS.loadRes``), ``areas``
        computed from the RLEs.

    Raises
    ------
    InputError
        Not a list, an entry missing keys, a video id not in the ground truth,
        a non-numeric score or an RLE whose size is not its video's.
    """
    if not isinstance(results, list):
        raise InputError(results_path, "results must be a JSON list of per-tube objects")
    gt_name = _where(gt_path, "the ground truth")
    tubes = []
    for i, r in enumerate(results):
        where = f"result {i}"
        if not isinstance(r, dict):
            raise InputError(results_path, f"{where} is not an object")
        missing = [k for k in ("video_id", "category_id", "score", "segmentations") if k not in r]
        if missing:
            raise InputError(results_path, f"{where} lacks {', '.join(missing)}")
        vid = r["video_id"]
        if not isinstance(vid, int) or vid not in sizes:
            raise InputError(results_path, f"{where} names video id {vid!r} that is not in {gt_name}")
        if isinstance(r["category_id"], bool) or not isinstance(r["category_id"], int):
            raise InputError(results_path, f"{where}: 'category_id' must be an integer")
        score = r["score"]
        if not _is_number(score):
            raise InputError(results_path, f"{where}: 'score' must be a finite number")
        frames = _frames(r["segmentations"], sizes[vid], results_path, where)
        tubes.append(
            Tube(
                id=i + 1,
                video_id=vid,
                category_id=r["category_id"],
                frames=frames,
                areas=rle_areas(frames),
                score=float(score),
            )
        )
    return tubes
