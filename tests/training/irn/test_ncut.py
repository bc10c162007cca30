"""The normalized-cut split: two touching objects of one class become two pseudo-labels, one object stays one."""

import numpy as np
import pytest

from training.irn.inference import instance_pseudo_labels
from training.irn.ncut import SPLIT_NCUT, affinity_pairs, grid_cells, normalized_cut, split_mask

H, W = 40, 64


def _disc(cy: float, cx: float, r: float, shape=(H, W)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def _outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return mask & ~inner


def _boundary(*objects: np.ndarray, contact: float = 0.3, inside: float = 0.05) -> np.ndarray:
    """B as IRN's is on touching objects of one class: strong against the background, weak at their contact."""
    b = np.full((H, W), inside, np.float32)
    for m in objects:
        b[_outline(m)] = contact
    b[_outline(np.logical_or.reduce(objects))] = 0.95
    return b


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_two_touching_discs_are_cut_at_their_contact_and_one_disc_is_not():
    left, right = _disc(20, 20, 9), _disc(20, 35, 9)  # they overlap a little: a contact about 10 cells long
    pair = affinity_pairs(_boundary(left, right))
    cut = normalized_cut(left | right, pair)
    assert cut is not None and cut.ncut < SPLIT_NCUT
    side = cut.side if cut.side[20, 20] else (left | right) & ~cut.side
    assert _iou(side, left) > 0.9  # the cut runs along the contact

    one = _disc(20, 30, 12)  # about as many cells as the pair, no contact inside
    whole = normalized_cut(one, affinity_pairs(_boundary(one)))
    assert whole is not None and whole.ncut > SPLIT_NCUT and whole.ncut > 3 * cut.ncut


def test_split_mask_partitions_the_pixels_and_orders_the_parts_in_raster_order():
    left, right = _disc(20, 20, 9), _disc(20, 35, 9)
    pairs = affinity_pairs(_boundary(left, right))
    stride = 4
    pixels = np.kron(left | right, np.ones((stride, stride), bool))  # the mask at image size
    parts = split_mask(pixels, pairs, stride)
    assert parts is not None
    first, second = parts
    assert not (first & second).any() and ((first | second) == pixels).all()
    assert _iou(first, np.kron(left, np.ones((stride, stride), bool))) > 0.9  # the left disc starts first
    assert split_mask(pixels, pairs, stride, threshold=0.0) is None  # 0: never split
    assert grid_cells(pixels, (H, W), stride).sum() == (left | right).sum()


def test_regions_too_small_or_without_pairs_are_left_whole():
    b = np.full((H, W), 0.05, np.float32)
    pairs = affinity_pairs(b)
    tiny = np.zeros((H, W), bool)
    tiny[5:7, 5:8] = True
    assert normalized_cut(tiny, pairs) is None
    walled = affinity_pairs(np.ones((H, W), np.float32))  # B = 1 everywhere: no affinity at all
    assert normalized_cut(_disc(20, 30, 8), walled) is None
    with pytest.raises(ValueError, match="same grid"):
        normalized_cut(np.ones((H + 1, W), bool), pairs)


def test_instance_pseudo_labels_split_a_merged_pair_only_when_asked():
    # The displacement field gives the pair one centroid (all zero: one group), as IRN's does for touching
    # objects of one class; the CAM covers both.
    left, right = _disc(20, 20, 9), _disc(20, 35, 9)
    cams = ((left | right).astype(np.float32))[None]
    boundary, disp = _boundary(left, right), np.zeros((2, H, W), np.float32)
    merged = instance_pseudo_labels(cams, [3], boundary, disp, (4 * H, 4 * W))
    assert len(merged) == 1
    split = instance_pseudo_labels(cams, [3], boundary, disp, (4 * H, 4 * W), split_ncut=SPLIT_NCUT)
    assert len(split) == 2 and {i.key for i in split} == {3}
    up = np.ones((4, 4), bool)
    assert _iou(split[0].mask, np.kron(left, up)) > 0.8 and _iou(split[1].mask, np.kron(right, up)) > 0.8
    assert not (split[0].mask & split[1].mask).any()
    assert all(0.0 < i.score <= 1.0 for i in split)
