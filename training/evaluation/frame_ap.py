"""Frame-level COCO mask AP (METHOD.md §8): pseudo-label quality, paper Tables 4-5.

Every (video, frame) is a COCO image; every present frame of a ground-truth
tube is an instance of that image, every present frame of a result tube a
detection with the tube's score. pycocotools' ``COCOeval(..., "segm")`` with
its default parameters (COCO area ranges on per-frame areas) does the rest.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from training.evaluation.tubes import Tube, category_ids, load_gt_tubes, load_result_tubes, video_sizes
from training.evaluation.ytvis_eval import STAT_NAMES


def _images(
    gt: dict, sizes: dict[int, tuple[int, int]], tubes: Sequence[Tube]
) -> dict[tuple[int, int], dict[str, Any]]:
    """One COCO image per (video id, frame index), ids from 1 in video order."""
    keys: list[tuple[int, int]] = []
    for v in gt["videos"]:
        n = v.get("length") or len(v.get("file_names", []))
        keys.extend((v["id"], t) for t in range(n))
    # Tubes longer than their video's listed length still get images for their frames.
    keys.extend((tube.video_id, t) for tube in tubes for t in range(len(tube.frames)))
    images: dict[tuple[int, int], dict[str, Any]] = {}
    for vid, t in keys:
        if (vid, t) not in images:
            h, w = sizes[vid]
            images[vid, t] = {"id": len(images) + 1, "height": h, "width": w}
    return images


def _frame_annotations(
    tubes: Sequence[Tube], images: dict[tuple[int, int], dict[str, Any]], is_gt: bool
) -> list[dict[str, Any]]:
    """COCO annotations of every present tube frame (ids from 1: COCO reads id 0 as unmatched).

    Ground truth keeps its JSON per-frame area (mask area where the JSON has
    none); detections use their mask area, as ``COCO.loadRes`` does.
    """
    anns: list[dict[str, Any]] = []
    for tube in tubes:
        for t, rle in enumerate(tube.frames):
            if rle is None:
                continue
            area = tube.areas[t] if is_gt and t < len(tube.areas) else None
            if area is None:
                area = float(mask_utils.area(rle))
            ann = {
                "id": len(anns) + 1,
                "image_id": images[tube.video_id, t]["id"],
                "category_id": tube.category_id,
                "segmentation": rle,
                "area": area,
                "bbox": mask_utils.toBbox(rle).tolist(),
                "iscrowd": int(tube.iscrowd),
            }
            if not is_gt:
                ann["score"] = tube.score
            anns.append(ann)
    return anns


def _coco(images: list[dict[str, Any]], cats: list[int], anns: list[dict[str, Any]]) -> COCO:
    coco = COCO()
    coco.dataset = {
        "images": images,
        "categories": [{"id": c, "name": str(c)} for c in cats],
        "annotations": anns,
    }
    coco.createIndex()
    return coco


def evaluate_frames(
    gt: dict,
    results: list[dict],
    gt_path: str | None = None,
    results_path: str | None = None,
) -> dict[str, float]:
    """Frame-level COCO mask AP of result tubes against ground-truth tubes.

    Parameters
    ----------
    gt : dict
        Parsed YouTube-VIS ground-truth JSON.
    results : list of dict
        ``{video_id, category_id, score, segmentations}`` as for
        :func:`~training.evaluation.ytvis_eval.evaluate_ytvis`; null frames
        are skipped.
    gt_path, results_path : str or None
        Named in error messages.

    Returns
    -------
    stats : dict
        COCOeval's 12 segm stats under :data:`STAT_NAMES` (AP, AP50, ... with
        COCO's per-frame area ranges small < 32², medium 32²-96², large > 96²).

    Raises
    ------
    InputError
        As :func:`evaluate_ytvis`: unknown video ids, malformed results or gt.
    """
    gt_tubes = load_gt_tubes(gt, gt_path)
    sizes = video_sizes(gt, gt_path)
    dt_tubes = load_result_tubes(results, sizes, results_path, gt_path)
    cats = category_ids(gt, gt_path)
    images = _images(gt, sizes, [*gt_tubes, *dt_tubes])
    image_list = list(images.values())
    gt_anns = _frame_annotations(gt_tubes, images, is_gt=True)
    dt_anns = _frame_annotations(dt_tubes, images, is_gt=False)
    # pycocotools reports progress on stdout; the caller prints the table it wants.
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = _coco(image_list, cats, gt_anns)
        coco_dt = _coco(image_list, cats, dt_anns)
        coco_eval = COCOeval(coco_gt, coco_dt, "segm")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, coco_eval.stats, strict=True)}
