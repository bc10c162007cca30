"""YouTube-VIS video AP: hand-checked values and agreement with a COCOeval reference.

The reference runs pycocotools' ``COCOeval`` (whose evaluateImg / accumulate /
summarize the official ``ytvoseval.py`` copies) with one video per image and
one tube per annotation, the official tube IoU written as a plain per-frame
loop, and the YouTube-VIS area ranges on the mean non-zero per-frame area.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from training.errors import InputError
from training.evaluation import STAT_NAMES, evaluate_ytvis, format_table
from training.export.rle import encode_mask, segmentation_to_rle

H, W = 20, 30
YTVIS_AREA_RANGES = [[0, 1e10], [0, 128**2], [128**2, 256**2], [256**2, 1e10]]


# ----------------------------------------------------------------------------- builders


def box(y0: int, x0: int, y1: int, x1: int, h: int = H, w: int = W) -> np.ndarray:
    """(h, w) bool mask, True on rows y0:y1 and columns x0:x1."""
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def uncompressed(mask: np.ndarray) -> dict[str, Any]:
    """Uncompressed COCO RLE (counts a list, column-major, starting with zeros)."""
    flat = np.asarray(mask, dtype=np.uint8).flatten(order="F")
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": counts}


def box_polygon(y0: int, x0: int, y1: int, x1: int) -> list[list[float]]:
    return [[float(x0), float(y0), float(x1), float(y0), float(x1), float(y1), float(x0), float(y1)]]


def seg_mask(seg: Any, h: int, w: int) -> np.ndarray | None:
    """Decode any gt segmentation format (None when absent)."""
    rle = segmentation_to_rle(seg, h, w)
    return None if rle is None else mask_utils.decode(rle).astype(bool)


def video(vid: int, n_frames: int, h: int = H, w: int = W) -> dict[str, Any]:
    names = [f"v{vid}/{t:05d}.jpg" for t in range(n_frames)]
    return {"id": vid, "file_names": names, "height": h, "width": w, "length": n_frames}


def gt_ann(
    ann_id: int,
    vid: int,
    cat: int,
    segs: list[Any],
    iscrowd: int = 0,
    areas: list[float | None] | None = None,
    size: tuple[int, int] = (H, W),
) -> dict[str, Any]:
    """A gt annotation; ``segs`` holds masks (encoded as RLE) or ready segmentations."""
    segs = [encode_mask(s) if isinstance(s, np.ndarray) else s for s in segs]
    if areas is None:
        masks = [seg_mask(s, *size) for s in segs]
        areas = [None if m is None else float(m.sum()) for m in masks]
    return {
        "id": ann_id,
        "video_id": vid,
        "category_id": cat,
        "iscrowd": iscrowd,
        "segmentations": segs,
        "areas": areas,
        "bboxes": [None] * len(segs),
    }


def result(vid: int, cat: int, score: float, masks: list[np.ndarray | None]) -> dict[str, Any]:
    segs = [None if m is None else encode_mask(m) for m in masks]
    return {"video_id": vid, "category_id": cat, "score": score, "segmentations": segs}


def dataset(videos: list[dict], anns: list[dict], cats: Sequence[int] = (1,)) -> dict[str, Any]:
    categories = [{"id": c, "name": f"c{c}"} for c in cats]
    return {"videos": videos, "categories": categories, "annotations": anns}


def perfect_results(gt: dict[str, Any], score: float = 0.9) -> list[dict[str, Any]]:
    sizes = {v["id"]: (v["height"], v["width"]) for v in gt["videos"]}
    out = []
    for a in gt["annotations"]:
        if not a["iscrowd"]:
            masks = [seg_mask(s, *sizes[a["video_id"]]) for s in a["segmentations"]]
            out.append(result(a["video_id"], a["category_id"], score, masks))
    return out


# ----------------------------------------------------------------------------- reference


def _ref_rle(seg: Any, h: int, w: int) -> dict[str, Any]:
    """As YTVOS.annToRLE: polygons merged, uncompressed RLE compressed, RLE kept."""
    if isinstance(seg, list):
        return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    if isinstance(seg["counts"], list):
        return mask_utils.frPyObjects(seg, h, w)
    return seg


def _ref_tube_iou(d_segs: list[Any], g_segs: list[Any]) -> float:
    inter = union = 0.0
    for d, g in zip(d_segs, g_segs, strict=False):
        if d and g:
            inter += mask_utils.area(mask_utils.merge([d, g], True))
            union += mask_utils.area(mask_utils.merge([d, g], False))
        elif d:
            union += mask_utils.area(d)
        elif g:
            union += mask_utils.area(g)
    return inter / union if union > 0 else 0.0


def _mean_truthy(areas: list[Any]) -> float:
    present = [a for a in areas if a]
    return float(np.mean(present)) if present else 0.0


class _TubeEval(COCOeval):
    """COCOeval with a video per image and the official tube IoU."""

    def computeIoU(self, imgId: int, catId: int) -> Any:  # noqa: N802 (COCOeval's name)
        gt = self._gts[imgId, catId]
        dt = self._dts[imgId, catId]
        if not gt and not dt:
            return []
        order = np.argsort([-d["score"] for d in dt], kind="mergesort")
        dt = [dt[i] for i in order][: self.params.maxDets[-1]]
        ious = np.zeros((len(dt), len(gt)))
        for i, d in enumerate(dt):
            for j, g in enumerate(gt):
                ious[i, j] = _ref_tube_iou(d["tube"], g["tube"])
        return ious


def reference_stats(gt: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, float]:
    sizes = {v["id"]: (v["height"], v["width"]) for v in gt["videos"]}
    images = [{"id": v, "height": h, "width": w} for v, (h, w) in sizes.items()]
    gt_anns = [
        {
            "id": a["id"],
            "image_id": a["video_id"],
            "category_id": a["category_id"],
            "iscrowd": a["iscrowd"],
            "area": _mean_truthy(a["areas"]),
            "bbox": [0, 0, 1, 1],
            "tube": [_ref_rle(s, *sizes[a["video_id"]]) if s else None for s in a["segmentations"]],
        }
        for a in gt["annotations"]
    ]
    dt_anns = [
        {
            "id": i + 1,
            "image_id": r["video_id"],
            "category_id": r["category_id"],
            "score": r["score"],
            "iscrowd": 0,
            "area": _mean_truthy([mask_utils.area(s) for s in r["segmentations"] if s]),
            "bbox": [0, 0, 1, 1],
            "tube": r["segmentations"],
        }
        for i, r in enumerate(results)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        cocos = []
        for anns in (gt_anns, dt_anns):
            coco = COCO()
            coco.dataset = {"images": images, "categories": gt["categories"], "annotations": anns}
            coco.createIndex()
            cocos.append(coco)
        # iouType "bbox" only so that _prepare leaves our tubes alone; computeIoU is ours.
        ev = _TubeEval(cocos[0], cocos[1], "bbox")
        ev.params.areaRng = YTVIS_AREA_RANGES
        ev.params.imgIds = sorted(sizes)
        ev.params.catIds = sorted(c["id"] for c in gt["categories"])
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats, strict=True)}


def assert_matches_reference(gt: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, float]:
    ours = evaluate_ytvis(gt, results)
    ref = reference_stats(gt, results)
    for name in STAT_NAMES:
        assert ours[name] == pytest.approx(ref[name], abs=1e-4), (name, ours, ref)
    return ours


# ----------------------------------------------------------------------------- hand-checked


def test_perfect_result_scores_one() -> None:
    gt = dataset(
        [video(1, 3), video(2, 2)],
        [
            gt_ann(1, 1, 1, [box(0, 0, 5, 5), box(1, 1, 6, 6), None]),
            gt_ann(2, 1, 1, [box(10, 10, 15, 20), None, box(10, 12, 16, 22)]),
            gt_ann(3, 2, 1, [None, box(3, 3, 9, 9)]),
        ],
    )
    stats = assert_matches_reference(gt, perfect_results(gt))
    assert stats["AP"] == pytest.approx(1.0)
    assert stats["AR100"] == pytest.approx(1.0)
    assert stats["AP_small"] == pytest.approx(1.0)
    assert stats["AP_medium"] == -1.0


def test_no_results_give_zero_and_minus_one_where_no_gt() -> None:
    gt = dataset([video(1, 2)], [gt_ann(1, 1, 1, [box(0, 0, 4, 4), None])], cats=[1, 2])
    stats = assert_matches_reference(gt, [])
    assert stats["AP"] == 0.0
    assert stats["AR100"] == 0.0
    assert stats["AP_large"] == -1.0


def test_no_gt_at_all_gives_minus_one_everywhere() -> None:
    gt = dataset([video(1, 2)], [gt_ann(1, 1, 1, [box(0, 0, 4, 4), None], iscrowd=1)])
    stats = evaluate_ytvis(gt, [result(1, 1, 0.5, [box(0, 0, 4, 4), None])])
    assert all(v == -1.0 for v in stats.values())


def test_tube_iou_of_exactly_0_6_matches_the_first_three_thresholds() -> None:
    # I = 6, U = 10. The official threshold 0.5 + 2 * 0.05 is exactly 0.6 in
    # floating point and COCO matches on IoU >= threshold: 3 of 10 thresholds.
    gt = dataset([video(1, 2)], [gt_ann(1, 1, 1, [box(0, 0, 2, 5), None])])
    stats = assert_matches_reference(gt, [result(1, 1, 0.8, [box(0, 0, 2, 3), None])])
    assert stats["AP50"] == pytest.approx(1.0)
    assert stats["AP75"] == 0.0
    assert stats["AP"] == pytest.approx(0.3)
    assert stats["AR1"] == pytest.approx(0.3)


def test_tube_iou_0_55_to_0_6_matches_two_thresholds() -> None:
    # I = 16 + 0, U = 16 + 12 = 28: IoU 0.571.
    gt = dataset([video(1, 2)], [gt_ann(1, 1, 1, [box(0, 0, 4, 4), box(5, 5, 7, 11)])])
    stats = assert_matches_reference(gt, [result(1, 1, 0.8, [box(0, 0, 4, 4), None])])
    assert stats["AP"] == pytest.approx(0.2)
    assert stats["AP75"] == 0.0


def test_frame_present_only_in_result_adds_its_area_to_the_union() -> None:
    gt = dataset([video(1, 2)], [gt_ann(1, 1, 1, [box(0, 0, 2, 5), None])])
    res = [result(1, 1, 0.8, [box(0, 0, 2, 5), box(10, 10, 12, 15)])]  # IoU 10 / 20
    stats = assert_matches_reference(gt, res)
    assert stats["AP50"] == pytest.approx(1.0)
    assert stats["AP"] == pytest.approx(0.1)


def test_zero_area_frame_counts_as_present_but_adds_nothing() -> None:
    empty = encode_mask(np.zeros((H, W), dtype=bool))
    gt = dataset([video(1, 3)], [gt_ann(1, 1, 1, [box(0, 0, 4, 4), empty, None])])
    res = [result(1, 1, 0.8, [box(0, 0, 4, 4), np.zeros((H, W), bool), np.zeros((H, W), bool)])]
    stats = assert_matches_reference(gt, res)
    assert stats["AP"] == pytest.approx(1.0)
    # Being present, a zero-area frame is checked: one of the wrong size is refused.
    res[0]["segmentations"][2] = encode_mask(np.zeros((H + 1, W), dtype=bool))
    with pytest.raises(InputError, match="result 0 frame 2"):
        evaluate_ytvis(gt, res)


def test_zero_areas_are_left_out_of_the_mean_area() -> None:
    # JSON areas [20000, 0] average to 20000 (medium), not 10000 (small).
    gt = dataset([video(1, 2)], [gt_ann(1, 1, 1, [box(0, 0, 4, 4), None], areas=[20000, 0])])
    stats = assert_matches_reference(gt, perfect_results(gt))
    assert stats["AP_medium"] == pytest.approx(1.0)
    assert stats["AP_small"] == -1.0


def test_area_on_a_range_boundary_belongs_to_both_ranges() -> None:
    gt = dataset([video(1, 1)], [gt_ann(1, 1, 1, [box(0, 0, 4, 4)], areas=[128**2])])
    stats = assert_matches_reference(gt, perfect_results(gt))
    assert stats["AP_small"] == pytest.approx(1.0)
    assert stats["AP_medium"] == pytest.approx(1.0)
    assert stats["AP_large"] == -1.0


def test_false_positive_ranked_first_halves_precision() -> None:
    gt = dataset([video(1, 1)], [gt_ann(1, 1, 1, [box(0, 0, 4, 4)])])
    res = [result(1, 1, 0.9, [box(10, 10, 14, 14)]), result(1, 1, 0.8, [box(0, 0, 4, 4)])]
    stats = assert_matches_reference(gt, res)
    assert stats["AP"] == pytest.approx(0.5)
    assert stats["AR1"] == 0.0
    assert stats["AR10"] == pytest.approx(1.0)


def test_duplicate_detections_are_false_positives() -> None:
    gt = dataset(
        [video(1, 2)],
        [gt_ann(1, 1, 1, [box(0, 0, 4, 4), None]), gt_ann(2, 1, 1, [None, box(8, 8, 12, 20)])],
    )
    res = [
        result(1, 1, 0.9, [box(0, 0, 4, 4), None]),
        result(1, 1, 0.8, [box(0, 0, 4, 4), None]),
        result(1, 1, 0.7, [None, box(8, 8, 12, 20)]),
    ]
    stats = assert_matches_reference(gt, res)
    # Precision 1, 1/2, 2/3 at recall .5, .5, 1: envelope 1 up to .5, then 2/3.
    assert stats["AP"] == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101)


def test_wrong_class_detection_is_a_false_positive_of_its_class() -> None:
    gt = dataset(
        [video(1, 1)],
        [gt_ann(1, 1, 7, [box(0, 0, 4, 4)]), gt_ann(2, 1, 42, [box(10, 10, 16, 16)])],
        cats=[7, 42],
    )
    res = [
        result(1, 42, 0.9, [box(0, 0, 4, 4)]),
        result(1, 7, 0.8, [box(0, 0, 4, 4)]),
        result(1, 42, 0.7, [box(10, 10, 16, 16)]),
    ]
    stats = assert_matches_reference(gt, res)
    assert stats["AP"] == pytest.approx((1.0 + 0.5) / 2)


def test_results_of_categories_not_in_gt_are_ignored() -> None:
    gt = dataset([video(1, 1)], [gt_ann(1, 1, 7, [box(0, 0, 4, 4)])], cats=[7])
    res = [*perfect_results(gt), result(1, 99, 1.0, [box(5, 5, 9, 9)])]
    assert assert_matches_reference(gt, res)["AP"] == pytest.approx(1.0)


def test_tied_scores_keep_input_order() -> None:
    gt = dataset([video(1, 1)], [gt_ann(1, 1, 1, [box(0, 0, 4, 4)])])
    hit = result(1, 1, 0.5, [box(0, 0, 4, 4)])
    miss = result(1, 1, 0.5, [box(10, 10, 14, 14)])
    assert assert_matches_reference(gt, [miss, hit])["AR1"] == 0.0
    assert assert_matches_reference(gt, [hit, miss])["AR1"] == pytest.approx(1.0)


def test_only_the_100_best_detections_per_video_and_class_count() -> None:
    gt = dataset([video(1, 1)], [gt_ann(1, 1, 1, [box(0, 0, 4, 4)])])
    misses = [result(1, 1, 0.9 - i * 1e-3, [box(10, 10, 14, 14)]) for i in range(100)]
    hit = result(1, 1, 0.1, [box(0, 0, 4, 4)])
    assert assert_matches_reference(gt, [*misses, hit])["AR100"] == 0.0
    stats = assert_matches_reference(gt, [*misses[:99], hit])
    assert stats["AR100"] == pytest.approx(1.0)
    assert stats["AR10"] == 0.0


def test_crowd_gt_absorbs_several_detections() -> None:
    crowd = box(0, 0, 10, 20)
    gt = dataset(
        [video(1, 1)],
        [gt_ann(1, 1, 1, [box(12, 22, 18, 28)]), gt_ann(2, 1, 1, [crowd], iscrowd=1)],
    )
    res = [
        result(1, 1, 0.9, [crowd]),
        result(1, 1, 0.8, [crowd]),
        result(1, 1, 0.7, [box(12, 22, 18, 28)]),
    ]
    assert assert_matches_reference(gt, res)["AP"] == pytest.approx(1.0)


def test_crowd_ground_truth_uses_plain_iou() -> None:
    # A detection covering a quarter of a crowd region has IoU 0.25 with it:
    # a false positive (COCO's crowd IoU would have ignored it).
    gt = dataset(
        [video(1, 1)],
        [gt_ann(1, 1, 1, [box(12, 22, 18, 28)]), gt_ann(2, 1, 1, [box(0, 0, 10, 20)], iscrowd=1)],
    )
    res = [result(1, 1, 0.9, [box(0, 0, 5, 10)]), result(1, 1, 0.8, [box(12, 22, 18, 28)])]
    assert assert_matches_reference(gt, res)["AP"] == pytest.approx(0.5)


def test_category_ids_need_not_be_one_to_k() -> None:
    gt = dataset(
        [video(3, 2)],
        [gt_ann(5, 3, 42, [box(0, 0, 4, 4), None]), gt_ann(9, 3, 7, [None, box(2, 2, 9, 9)])],
        cats=[42, 7, 13],
    )
    res = perfect_results(gt)
    res[1]["score"] = 0.2
    res.append(result(3, 7, 0.5, [box(10, 10, 12, 12), None]))
    stats = assert_matches_reference(gt, res)
    assert stats["AP"] == pytest.approx((1.0 + 0.5) / 2)


def test_gt_formats_polygon_uncompressed_and_compressed_agree() -> None:
    gt = dataset(
        [video(1, 3)],
        [
            gt_ann(1, 1, 1, [box_polygon(1, 1, 8, 9), uncompressed(box(2, 2, 9, 10)), None]),
            gt_ann(2, 1, 1, [encode_mask(box(10, 15, 18, 28)), None, box_polygon(9, 14, 17, 27)]),
        ],
    )
    res = perfect_results(gt)
    res.append(result(1, 1, 0.95, [box(1, 1, 5, 5), box(3, 3, 10, 11), None]))
    stats = assert_matches_reference(gt, res)
    assert stats["AR100"] == pytest.approx(1.0)
    assert 0.0 < stats["AP"] < 1.0


def test_results_are_compared_only_over_the_frames_both_tubes_have() -> None:
    gt = dataset([video(1, 2)], [gt_ann(1, 1, 1, [box(0, 0, 4, 4), box(1, 1, 5, 5)])])
    res = [result(1, 1, 0.9, [box(0, 0, 4, 4), box(1, 1, 5, 5), box(10, 10, 19, 29)])]
    assert assert_matches_reference(gt, res)["AP"] == pytest.approx(1.0)


def test_gt_id_zero_is_read_as_unmatched_as_by_the_official_evaluator() -> None:
    gt = dataset([video(1, 1)], [gt_ann(0, 1, 1, [box(0, 0, 4, 4)])])
    assert assert_matches_reference(gt, perfect_results(gt))["AP"] == 0.0


def test_several_videos_of_different_sizes_agree_with_reference() -> None:
    gt = dataset(
        [video(4, 2, 20, 30), video(2, 3, 12, 16), video(9, 1, 30, 20)],
        [
            gt_ann(1, 4, 1, [box(0, 0, 5, 5), box(0, 0, 6, 6)]),
            gt_ann(2, 2, 1, [box(0, 0, 5, 5, 12, 16)] * 3, size=(12, 16)),
            gt_ann(3, 2, 2, [None, box(6, 6, 12, 16, 12, 16), None], size=(12, 16)),
            gt_ann(4, 9, 2, [box(10, 5, 25, 15, 30, 20)], size=(30, 20)),
        ],
        cats=[1, 2],
    )
    res = [
        result(4, 1, 0.6, [box(0, 0, 5, 4), box(0, 0, 6, 5)]),
        result(2, 1, 0.6, [box(0, 0, 4, 5, 12, 16)] * 3),
        result(2, 2, 0.9, [box(6, 6, 12, 12, 12, 16), None, None]),
        result(9, 2, 0.6, [box(10, 5, 20, 15, 30, 20)]),
        result(9, 1, 0.7, [box(10, 5, 25, 15, 30, 20)]),
    ]
    stats = assert_matches_reference(gt, res)
    assert 0.0 < stats["AP"] < 1.0


def test_medium_and_large_tubes_agree_with_reference() -> None:
    big = (300, 260)  # up to 78000 px: large
    mid = (150, 140)  # up to 21000 px: medium
    gt = dataset(
        [video(1, 2, *big), video(2, 2, *mid)],
        [
            gt_ann(1, 1, 1, [box(0, 0, 290, 250, *big), None], size=big),
            gt_ann(2, 1, 1, [None, box(0, 0, 60, 60, *big)], size=big),
            gt_ann(3, 2, 1, [box(0, 0, 140, 130, *mid), box(0, 0, 145, 135, *mid)], size=mid),
        ],
    )
    res = [
        result(1, 1, 0.9, [box(0, 0, 280, 250, *big), None]),
        result(1, 1, 0.3, [box(0, 0, 290, 250, *big), box(0, 0, 280, 250, *big)]),
        result(2, 1, 0.7, [box(0, 0, 140, 100, *mid), box(0, 0, 145, 135, *mid)]),
        result(2, 1, 0.5, [box(0, 0, 20, 20, *mid), None]),
    ]
    stats = assert_matches_reference(gt, res)
    assert stats["AP_large"] > 0.0
    assert stats["AP_medium"] > 0.0
    assert stats["AP_small"] == 0.0


# ----------------------------------------------------------------------------- randomized


def _random_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A box, an elliptic blob or (rarely) nothing."""
    kind = rng.random()
    if kind < 0.08:
        return np.zeros((h, w), dtype=bool)
    y0, x0 = int(rng.integers(0, h - 2)), int(rng.integers(0, w - 2))
    y1, x1 = int(rng.integers(y0 + 1, h + 1)), int(rng.integers(x0 + 1, w + 1))
    if kind < 0.6:
        return box(y0, x0, y1, x1, h, w)
    yy, xx = np.mgrid[:h, :w]
    cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2 + 0.5, (x1 - x0) / 2 + 0.5
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _random_gt_seg(rng: np.random.Generator, h: int, w: int) -> Any:
    fmt = rng.random()
    if fmt < 0.2:
        y0, x0 = int(rng.integers(0, h - 3)), int(rng.integers(0, w - 3))
        return box_polygon(y0, x0, int(rng.integers(y0 + 2, h)), int(rng.integers(x0 + 2, w)))
    mask = _random_mask(rng, h, w)
    return uncompressed(mask) if fmt < 0.4 else encode_mask(mask)


def _jitter(rng: np.random.Generator, mask: np.ndarray | None) -> np.ndarray | None:
    if mask is None or rng.random() < 0.1:
        return None
    if rng.random() < 0.05:
        return np.zeros_like(mask)
    dy, dx = (int(v) for v in rng.integers(-1, 2, size=2))
    return np.roll(mask, (dy, dx), axis=(0, 1))


def random_case(seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    cats = [int(c) for c in rng.choice([3, 7, 42, 5], size=int(rng.integers(1, 4)), replace=False)]
    videos, anns, results = [], [], []
    for vid in range(1, int(rng.integers(2, 5))):
        h, w = [(20, 30), (16, 24), (24, 18)][int(rng.integers(3))]
        n = int(rng.integers(1, 5))
        videos.append(video(vid, n, h, w))
        for _ in range(int(rng.integers(0, 4))):
            segs = [_random_gt_seg(rng, h, w) if rng.random() < 0.8 else None for _ in range(n)]
            masks = [seg_mask(s, h, w) for s in segs]
            scale = float(rng.choice([1, 1, 1, 200, 1000]))  # push some into medium / large
            areas = [None if m is None or rng.random() < 0.1 else float(m.sum()) * scale for m in masks]
            crowd = int(rng.random() < 0.15)
            cat = int(rng.choice(cats))
            anns.append(gt_ann(len(anns) + 1, vid, cat, segs, crowd, areas, (h, w)))
            for _ in range(int(rng.integers(0, 4))):
                res_cat = cat if rng.random() < 0.85 else int(rng.choice(cats))
                res_masks = [_jitter(rng, m) for m in masks]
                if rng.random() < 0.1:  # a result list longer or shorter than the video
                    res_masks = res_masks[:-1] if rng.random() < 0.5 else [*res_masks, masks[0]]
                results.append(result(vid, res_cat, round(float(rng.random()), 1), res_masks))
        for _ in range(int(rng.integers(0, 4))):
            masks = [_random_mask(rng, h, w) if rng.random() < 0.7 else None for _ in range(n)]
            score = round(float(rng.random()), 1)
            results.append(result(vid, int(rng.choice(cats)), score, masks))
    rng.shuffle(results)
    return dataset(videos, anns, cats), results


@pytest.mark.parametrize("seed", range(20))
def test_random_datasets_agree_with_reference(seed: int) -> None:
    gt, results = random_case(seed)
    assert_matches_reference(gt, results)


# ----------------------------------------------------------------------------- errors and output


def test_unknown_video_id_raises_one_line_error_naming_the_files() -> None:
    gt = dataset([video(1, 1)], [gt_ann(1, 1, 1, [box(0, 0, 4, 4)])])
    res = [*perfect_results(gt), result(99, 1, 0.5, [box(0, 0, 4, 4)])]
    with pytest.raises(InputError) as err:
        evaluate_ytvis(gt, res, gt_path="val.json", results_path="results.json")
    msg = str(err.value)
    assert msg == "results.json: result 1 names video id 99 that is not in val.json"
    assert "\n" not in msg


def test_result_missing_a_key_names_the_entry() -> None:
    gt = dataset([video(1, 1)], [gt_ann(1, 1, 1, [box(0, 0, 4, 4)])])
    res = [*perfect_results(gt), {"video_id": 1, "category_id": 1, "segmentations": [None]}]
    with pytest.raises(InputError, match=r"^r\.json: result 1 lacks score$"):
        evaluate_ytvis(gt, res, results_path="r.json")


def test_result_rle_of_the_wrong_size_names_the_entry_and_frame() -> None:
    gt = dataset([video(1, 2)], [gt_ann(1, 1, 1, [box(0, 0, 4, 4), None])])
    res = [result(1, 1, 0.5, [None, np.ones((W, H), dtype=bool)])]
    with pytest.raises(InputError, match=r"result 0 frame 1: RLE size \[30, 20\]"):
        evaluate_ytvis(gt, res, results_path="r.json")


def test_format_table_prints_the_twelve_coco_lines() -> None:
    stats = dict.fromkeys(STAT_NAMES, 0.5)
    stats["AP"] = 0.123
    lines = format_table(stats).splitlines()
    assert len(lines) == 12
    assert lines[0] == (" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.123")
    assert lines[6] == (" Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.500")
    assert lines[1].startswith(" Average Precision  (AP) @[ IoU=0.50      | area=   all")
