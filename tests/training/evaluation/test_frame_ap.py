"""Frame-level COCO mask AP of tubes (pseudo-label quality)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from training.errors import InputError
from training.evaluation import STAT_NAMES, evaluate_frames
from training.export.rle import encode_mask

H, W = 20, 30


def box(y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def tube(masks: list[np.ndarray | None]) -> list[dict[str, Any] | None]:
    return [None if m is None else encode_mask(m) for m in masks]


def make_gt(tubes: list[tuple[int, int, list[np.ndarray | None]]]) -> dict[str, Any]:
    """Ground truth of two 2-frame videos from ``(video id, category, masks)`` tubes."""
    anns = []
    for i, (vid, cat, masks) in enumerate(tubes):
        anns.append(
            {
                "id": i + 1,
                "video_id": vid,
                "category_id": cat,
                "iscrowd": 0,
                "segmentations": tube(masks),
                "areas": [None if m is None else float(m.sum()) for m in masks],
                "bboxes": [None] * len(masks),
            }
        )
    return {
        "videos": [{"id": v, "height": H, "width": W, "length": 2, "file_names": ["a.jpg", "b.jpg"]} for v in (1, 2)],
        "categories": [{"id": 3, "name": "cat"}, {"id": 8, "name": "dog"}],
        "annotations": anns,
    }


def gt_two_videos() -> dict[str, Any]:
    """Four tubes, three frame instances per category (3 and 8)."""
    return make_gt(
        [
            (1, 3, [box(0, 0, 8, 8), box(1, 1, 9, 9)]),
            (1, 8, [box(10, 10, 18, 25), None]),
            (2, 3, [None, box(5, 5, 15, 15)]),
            (2, 8, [box(0, 20, 10, 30), box(0, 18, 10, 28)]),
        ]
    )


def as_results(gt: dict[str, Any], keep: list[int]) -> list[dict[str, Any]]:
    anns = gt["annotations"]
    return [
        {
            "video_id": anns[i]["video_id"],
            "category_id": anns[i]["category_id"],
            "score": 0.9 - 0.1 * i,
            "segmentations": anns[i]["segmentations"],
        }
        for i in keep
    ]


def test_perfect_result_gives_frame_ap_one() -> None:
    gt = gt_two_videos()
    stats = evaluate_frames(gt, as_results(gt, [0, 1, 2, 3]))
    assert set(stats) == set(STAT_NAMES)
    assert stats["AP"] == pytest.approx(1.0)
    assert stats["AP50"] == pytest.approx(1.0)
    assert stats["AR100"] == pytest.approx(1.0)


def test_result_missing_half_the_instances_recalls_half() -> None:
    gt = make_gt([(1, 3, [box(0, 0, 8, 8), box(1, 1, 9, 9)]), (2, 3, [box(5, 5, 15, 15), box(4, 4, 14, 14)])])
    stats = evaluate_frames(gt, as_results(gt, [0]))
    assert stats["AR100"] == pytest.approx(0.5)
    assert stats["AP"] == pytest.approx(51 / 101)


def test_null_result_frames_are_skipped() -> None:
    gt = gt_two_videos()
    results = as_results(gt, [0, 1, 2, 3])
    results[0]["segmentations"] = [results[0]["segmentations"][0], None]
    stats = evaluate_frames(gt, results)
    # Category 3 now finds 2 of its 3 frame instances, category 8 all 3.
    assert stats["AR100"] == pytest.approx((2 / 3 + 1.0) / 2)


def test_empty_results_give_zero() -> None:
    stats = evaluate_frames(gt_two_videos(), [])
    assert stats["AP"] == 0.0
    assert stats["AR100"] == 0.0


def test_unknown_video_id_raises_input_error() -> None:
    gt = gt_two_videos()
    results = as_results(gt, [0])
    results[0]["video_id"] = 5
    with pytest.raises(InputError, match=r"^r\.json: result 0 names video id 5 that is not in g"):
        evaluate_frames(gt, results, gt_path="g.json", results_path="r.json")
