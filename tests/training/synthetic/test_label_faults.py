"""Faulty pseudo-labels from a ground truth: the faults MaskConsist repairs, at the rates asked for."""

from __future__ import annotations

import numpy as np
import pytest

from training.synthetic.label_faults import cut_mask, degrade_labels


def _disc_video(n_frames: int = 40, n_objects: int = 5) -> np.ndarray:
    """(T, 64, 128) labels: ``n_objects`` discs of radius 9 in a row, ids 1..n, in every frame."""
    yy, xx = np.mgrid[:64, :128]
    labels = np.zeros((n_frames, 64, 128), np.int32)
    for i in range(n_objects):
        labels[:, (yy - 32) ** 2 + (xx - 12 - 25 * i) ** 2 <= 81] = i + 1
    return labels


def test_a_cut_keeps_the_asked_share_on_one_side_of_a_straight_line():
    mask = np.zeros((40, 40), bool)
    mask[10:30, 5:35] = True
    kept = cut_mask(mask, 0.25, 0.0)  # normal along x: the left quarter stays
    assert kept.sum() == 150 and not (kept & ~mask).any()
    assert kept[10:30, 5:12].all() and not kept[:, 13:].any()
    assert cut_mask(mask, 1.0, 1.3).sum() == mask.sum()
    with pytest.raises(ValueError, match="keep"):
        cut_mask(mask, 0.0, 0.0)


def test_faults_come_at_the_asked_rates_and_only_remove_pixels():
    labels = _disc_video()
    out = degrade_labels(labels, 0.3, 0.3, np.random.default_rng(0))
    assert out.dtype == np.int32 and out.shape == labels.shape
    assert ((out == 0) | (out == labels)).all()  # never moves or relabels a pixel
    share = np.array([[(out[t] == i).sum() / (labels[t] == i).sum() for i in range(1, 6)] for t in range(40)])
    missing, cut, intact = (share == 0).mean(), ((share > 0) & (share < 1)).mean(), (share == 1).mean()
    assert abs(missing - 0.3) < 0.08 and abs(cut - 0.3) < 0.08 and abs(intact - 0.4) < 0.08
    cut_shares = share[(share > 0) & (share < 1)]
    assert cut_shares.min() >= 0.29 and cut_shares.max() <= 0.71


def test_the_same_generator_state_gives_the_same_faults_and_zero_rates_change_nothing():
    labels = _disc_video(8)
    a = degrade_labels(labels, 0.2, 0.5, np.random.default_rng([3, 7]))
    b = degrade_labels(labels, 0.2, 0.5, np.random.default_rng([3, 7]))
    assert np.array_equal(a, b) and not np.array_equal(a, labels)
    assert np.array_equal(degrade_labels(labels, 0.0, 0.0, np.random.default_rng(1)), labels)
    assert not degrade_labels(labels, 1.0, 0.0, np.random.default_rng(1)).any()


def test_impossible_rates_are_refused():
    with pytest.raises(ValueError, match="missing \\+ partial"):
        degrade_labels(_disc_video(2), 0.6, 0.6, np.random.default_rng(0))
    with pytest.raises(ValueError, match="keep"):
        degrade_labels(_disc_video(2), 0.1, 0.1, np.random.default_rng(0), keep=(0.8, 0.2))
