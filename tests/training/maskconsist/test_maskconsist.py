"""MaskConsist's pure functions: IoM-NMS, intra-frame expansion, inter-frame matching, targets."""

from __future__ import annotations

import numpy as np
import pytest

from training.maskconsist import (
    FrameMasks,
    duplicates_of,
    expand_predictions,
    fuller_first,
    hungarian_matches,
    iom_nms,
    iom_nms_fuller,
    maskconsist_pair,
    warp_masks,
)

H, W = 20, 30


def box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def fm(*items: tuple[np.ndarray, int, float]) -> FrameMasks:
    if not items:
        return FrameMasks.empty((H, W))
    masks, classes, scores = zip(*items, strict=True)
    return FrameMasks(np.stack(masks), np.array(classes), np.array(scores))


def shift_flow(dx: float) -> np.ndarray:
    """Backward flow of a scene moving dx px right: each pixel of t+1 came from x - dx."""
    f = np.zeros((H, W, 2), np.float32)
    f[..., 0] = -dx
    return f


def test_iom_nms_drops_a_fragment_inside_a_fuller_mask_that_iou_would_keep():
    full = box(2, 12, 2, 22)
    fragment = box(3, 7, 3, 9)  # IoU with full is 0.12, IoM is 1.0
    other = box(14, 19, 0, 5)
    keep = iom_nms(np.stack([fragment, full, other]), np.array([0.9, 0.8, 0.1]))
    assert keep.tolist() == [0, 2]  # highest first; the full mask overlaps the kept fragment entirely
    keep = iom_nms(np.stack([fragment, full, other]), np.array([0.5, 0.8, 0.1]))
    assert keep.tolist() == [1, 2]


def test_iom_nms_threshold_is_strict_and_validated():
    a, b = box(0, 10, 0, 10), box(0, 10, 5, 15)  # IoM exactly 0.5
    assert iom_nms(np.stack([a, b]), np.array([1.0, 0.5]), 0.5).tolist() == [0, 1]
    assert iom_nms(np.stack([a, b]), np.array([1.0, 0.5]), 0.49).tolist() == [0]
    with pytest.raises(ValueError, match="threshold"):
        iom_nms(np.stack([a]), np.array([1.0]), 1.5)
    assert iom_nms(np.zeros((0, H, W), bool), np.zeros(0)).tolist() == []


def test_partial_predictions_inside_a_pseudo_label_are_joined():
    pseudo = fm((box(2, 12, 2, 22), 1, 1.0))
    left, right = box(3, 11, 3, 11), box(3, 11, 12, 21)
    wrong_class = box(3, 11, 11, 13)
    pred = fm((left, 1, 0.7), (right, 1, 0.6), (wrong_class, 2, 0.9))
    exp = expand_predictions(pred, pseudo)
    assert len(exp) == 4
    np.testing.assert_array_equal(exp.masks[3], left | right)
    assert exp.classes[3] == 1 and exp.scores[3] == 0.7


def test_masks_are_carried_along_the_flow():
    m = box(5, 10, 5, 10)[None]
    moved = warp_masks(m, [shift_flow(3), shift_flow(2)])
    np.testing.assert_array_equal(moved[0], box(5, 10, 10, 15))


def test_video_flow_carries_masks_to_later_and_to_earlier_frames():
    from training.flow.storage import VideoFlow

    data = np.zeros((3, H, W, 5), np.float16)  # 4 frames; the scene moves 2 px right per frame
    data[..., 0] = 2  # forward: each pixel of t goes to x + 2 in t+1
    data[..., 2] = -2  # backward: each pixel of t+1 came from x - 2 in t
    flow = VideoFlow(data, {})
    m = box(5, 10, 8, 13)[None]
    assert flow.carry(1, 1) == []
    np.testing.assert_array_equal(warp_masks(m, flow.carry(0, 2))[0], box(5, 10, 12, 17))
    np.testing.assert_array_equal(warp_masks(m, flow.carry(3, 1))[0], box(5, 10, 4, 9))
    assert len(flow.carry(3, 0)) == 3


def test_a_later_frame_repairs_an_earlier_one_with_time_reversed():
    from training.flow.storage import VideoFlow

    data = np.zeros((1, H, W, 5), np.float16)
    data[..., 0], data[..., 2] = 3, -3  # the object moves 3 px right from frame 0 to 1
    flow = VideoFlow(data, {})
    obj_0, obj_1 = box(4, 14, 2, 14), box(4, 14, 5, 17)
    pseudo_1 = fm((obj_1, 1, 1.0))
    pseudo_0 = fm((box(4, 14, 2, 7), 1, 0.6))  # flowIRN found only part of it at frame 0
    res = maskconsist_pair(fm((obj_1, 1, 0.9)), fm((box(4, 14, 3, 14), 1, 0.5)), pseudo_1, pseudo_0, flow.carry(1, 0))
    assert res.transferred == [0]
    np.testing.assert_array_equal(res.maskcon_t2.masks[0], obj_0)
    assert len(res.targets_t2) == 1 and res.targets_t2.masks[0].sum() == obj_0.sum()


def test_hungarian_matching_is_one_to_one_above_the_threshold():
    iou = np.array([[0.9, 0.8], [0.85, 0.1], [0.2, 0.3]])
    assert hungarian_matches(iou, 0.5) == [(0, 1, 0.8), (1, 0, 0.85)]
    assert hungarian_matches(np.zeros((0, 3))) == []


def test_a_good_prediction_at_t_repairs_a_partial_one_at_t_plus_1():
    obj_t, obj_t2 = box(4, 14, 2, 14), box(4, 14, 5, 17)  # the object moves 3 px right
    pseudo_t = fm((obj_t, 1, 1.0))
    pseudo_t2 = fm((box(4, 14, 5, 10), 1, 0.6))  # flowIRN found only part of it at t+1
    pred_t = fm((obj_t, 1, 0.9))
    pred_t2 = fm((box(4, 14, 6, 17), 1, 0.5))
    res = maskconsist_pair(pred_t, pred_t2, pseudo_t, pseudo_t2, [shift_flow(3)])
    assert res.matches and res.transferred == [0]
    np.testing.assert_array_equal(res.maskcon_t2.masks[0], obj_t2)
    # the partial pseudo-label lies inside the transferred mask: IoM-NMS keeps only the full one
    assert len(res.targets_t2) == 1 and res.targets_t2.masks[0].sum() == obj_t2.sum()


def test_score_order_lets_a_pseudo_label_scored_above_the_transferred_mask_win():
    obj_t = box(4, 14, 2, 14)
    partial = box(4, 14, 5, 10)
    pred_t, pred_t2 = fm((obj_t, 1, 0.6)), fm((box(4, 14, 6, 17), 1, 0.55))
    args = (pred_t, pred_t2, fm((obj_t, 1, 1.0)), fm((partial, 1, 1.0)), [shift_flow(3)])
    res = maskconsist_pair(*args, iom_rank="score")
    assert res.transferred == [0]  # transferred, but IRN's 1.0 outranks the detector's 0.6
    assert len(res.targets_t2) == 1
    np.testing.assert_array_equal(res.targets_t2.masks[0], partial)
    with pytest.raises(ValueError, match="iom_rank must be one of repair, fuller, score"):
        maskconsist_pair(*args, iom_rank="area")


def test_by_default_a_transferred_repair_replaces_a_higher_scored_partial_label_inside_it():
    obj_t, obj_t2, partial = box(4, 14, 2, 14), box(4, 14, 5, 17), box(4, 14, 5, 10)
    other = box(15, 19, 20, 29)  # a pseudo-label nothing overlaps is kept
    pred_t, pred_t2 = fm((obj_t, 1, 0.6)), fm((box(4, 14, 6, 17), 1, 0.55))
    pseudo_t2 = fm((partial, 1, 1.0), (other, 2, 0.3))
    res = maskconsist_pair(pred_t, pred_t2, fm((obj_t, 1, 1.0)), pseudo_t2, [shift_flow(3)])
    assert res.transferred == [0] and len(res.targets_t2) == 2
    np.testing.assert_array_equal(res.targets_t2.masks[0], obj_t2)  # the repair, at the detector's score
    assert res.targets_t2.scores[0] == pytest.approx(0.6)
    np.testing.assert_array_equal(res.targets_t2.masks[1], other)


def test_by_default_a_fuller_pseudo_label_keeps_out_a_transferred_fragment_inside_it():
    obj_t, frag_t2 = box(4, 9, 2, 8), box(4, 9, 5, 11)  # the detector found only the top of the object
    whole = box(4, 14, 3, 14)
    pred_t, pred_t2 = fm((obj_t, 1, 0.9)), fm((frag_t2, 1, 0.9))
    res = maskconsist_pair(pred_t, pred_t2, fm((obj_t, 1, 1.0)), fm((whole, 1, 0.2)), [shift_flow(3)], intra=False)
    assert res.transferred == [0]
    assert len(res.targets_t2) == 1
    np.testing.assert_array_equal(res.targets_t2.masks[0], whole)  # score 0.2 < 0.9 does not matter


def test_by_default_a_complete_label_stays_over_its_looser_transfer_and_a_partial_one_is_repaired():
    obj_t, obj_t2 = box(4, 14, 2, 14), box(4, 14, 5, 17)  # moves 3 px right
    pred_t, pred_t2 = fm((obj_t, 1, 0.9)), fm((box(4, 14, 6, 18), 1, 0.8))  # the transfer's union is 1 px wider
    pseudo_t = fm((obj_t, 1, 1.0))
    complete = maskconsist_pair(pred_t, pred_t2, pseudo_t, fm((obj_t2, 1, 0.4)), [shift_flow(3)])
    assert complete.transferred == [0] and len(complete.targets_t2) == 1
    np.testing.assert_array_equal(complete.targets_t2.masks[0], obj_t2)  # the label, not the 13-px-wide union
    fuller = maskconsist_pair(pred_t, pred_t2, pseudo_t, fm((obj_t2, 1, 0.4)), [shift_flow(3)], iom_rank="fuller")
    assert fuller.targets_t2.masks[0].sum() == 10 * 13  # "fuller" swaps the label for the union
    partial = maskconsist_pair(pred_t, pred_t2, pseudo_t, fm((box(4, 14, 5, 9), 1, 1.0)), [shift_flow(3)])
    assert len(partial.targets_t2) == 1 and partial.targets_t2.masks[0].sum() == 10 * 13  # a third of it: repaired


def test_duplicates_are_masks_mostly_inside_each_other_not_fragments():
    label, same, fragment, other = box(2, 12, 2, 12), box(2, 12, 3, 13), box(2, 6, 2, 12), box(14, 19, 20, 29)
    dup = duplicates_of(np.stack([label, same, fragment, other]), np.array([1, 0, 0, 0]), prefer=1)
    assert dup.tolist() == [False, True, False, False]


def test_iom_nms_fuller_keeps_the_larger_mask_and_removes_true_duplicates():
    full, part, twin, other = box(2, 12, 2, 22), box(3, 7, 3, 9), box(2, 12, 2, 21), box(14, 19, 0, 5)
    masks = np.stack([part, full, twin, other])
    sources = np.array([1, 0, 1, 1])  # full is the only mask of source 0
    # the part scores highest, the full mask lowest: scores of different sources are never compared
    keep = iom_nms_fuller(masks, sources, np.array([1.0, 0.1, 0.9, 0.5]))
    assert keep.tolist() == [1, 3]  # twin (IoM 1.0 with full) is a duplicate; part lies inside full
    # equal areas: within a source the higher score wins, across sources the lower source id
    a, b = box(0, 10, 0, 10), box(1, 11, 0, 10)
    assert iom_nms_fuller(np.stack([a, b]), np.array([1, 1]), np.array([0.2, 0.7])).tolist() == [1]
    assert iom_nms_fuller(np.stack([a, b]), np.array([1, 0]), np.array([0.9, 0.1])).tolist() == [1]
    assert fuller_first(np.stack([a, b, full]), np.zeros(3), np.zeros(3)).tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="threshold"):
        iom_nms_fuller(masks, sources, np.ones(4), 1.5)


def test_maskcon_first_lets_the_transferred_repair_replace_a_higher_scored_partial_label():
    obj_t, obj_t2, partial = box(4, 14, 2, 14), box(4, 14, 5, 17), box(4, 14, 5, 10)
    other = box(15, 19, 20, 29)  # a pseudo-label nothing overlaps stays whatever the order
    pred_t, pred_t2 = fm((obj_t, 1, 0.6)), fm((box(4, 14, 6, 17), 1, 0.55))
    pseudo_t2 = fm((partial, 1, 1.0), (other, 2, 1.0))
    res = maskconsist_pair(pred_t, pred_t2, fm((obj_t, 1, 1.0)), pseudo_t2, [shift_flow(3)], maskcon_first=True)
    assert res.transferred == [0] and len(res.targets_t2) == 2
    np.testing.assert_array_equal(res.targets_t2.masks[0], obj_t2)  # the repair, at the detector's score
    assert res.targets_t2.scores[0] == pytest.approx(0.6)
    np.testing.assert_array_equal(res.targets_t2.masks[1], other)


def test_switching_components_off_gives_the_ablation_rows():
    obj_t = box(4, 14, 2, 14)
    pseudo_t, pseudo_t2 = fm((obj_t, 1, 1.0)), fm((box(4, 14, 5, 10), 1, 0.6))
    pred_t, pred_t2 = fm((obj_t, 1, 0.9)), fm((box(4, 14, 6, 17), 1, 0.5))
    none = maskconsist_pair(pred_t, pred_t2, pseudo_t, pseudo_t2, [shift_flow(3)], intra=False, inter=False, iom=False)
    assert len(none.targets_t2) == 1 and none.targets_t2.masks[0].sum() == pseudo_t2.masks[0].sum()
    no_iom = maskconsist_pair(pred_t, pred_t2, pseudo_t, pseudo_t2, [shift_flow(3)], iom=False)
    assert len(no_iom.targets_t2) == 2  # transferred + the partial pseudo-label, both kept


def test_low_quality_matches_are_not_transferred():
    obj = box(4, 14, 2, 14)
    pseudo_t = fm((box(15, 19, 20, 29), 1, 1.0))  # nothing near the prediction at t
    pred = fm((obj, 1, 0.9))
    res = maskconsist_pair(pred, pred, pseudo_t, fm(), [np.zeros((H, W, 2), np.float32)])
    assert res.matches and res.transferred == [] and len(res.targets_t2) == 0


def test_frames_without_masks_give_empty_targets():
    res = maskconsist_pair(fm(), fm(), fm(), fm(), [np.zeros((H, W, 2), np.float32)])
    assert len(res.targets_t2) == 0 and res.matches == []
