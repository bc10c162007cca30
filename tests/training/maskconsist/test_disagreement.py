"""MaskConsist disagreement per frame, on hand-made masks and matches."""

from __future__ import annotations

import numpy as np
import pytest

from training.maskconsist.disagreement import frame_disagreement, match_disagreement, video_disagreement


def _square(labels: np.ndarray, t: int, k: int, y: int, x: int, side: int = 4) -> None:
    labels[t, y : y + side, x : x + side] = k


def test_frames_where_pseudo_labels_and_predictions_agree_score_zero_and_misses_score_one():
    pseudo = np.zeros((4, 12, 12), np.int32)
    pred = np.zeros_like(pseudo)
    _square(pseudo, 0, 1, 0, 0)
    _square(pred, 0, 7, 0, 0)  # frame 0: the same square under another id
    _square(pseudo, 1, 1, 0, 0)  # frame 1: the detector misses it
    _square(pred, 2, 7, 6, 6)  # frame 2: a detection with no pseudo-label
    dis = frame_disagreement(pseudo, pred)  # frame 3: nothing on either side
    np.testing.assert_allclose(dis, [0.0, 1.0, 1.0, 0.0])


def test_a_half_overlap_and_an_extra_instance_are_averaged_over_both_sides():
    pseudo = np.zeros((1, 12, 12), np.int32)
    pred = np.zeros_like(pseudo)
    _square(pseudo, 0, 1, 0, 0)  # 16 px
    pred[0, 0:4, 2:6] = 3  # shifted by 2: 8 px shared, union 24 → IoU 1/3
    _square(pseudo, 0, 2, 8, 8)  # a second pseudo-label the detector misses
    # pseudo 1: 1 - 1/3; pseudo 2: 1; prediction 3: 1 - 1/3 → mean over 3 instances
    np.testing.assert_allclose(frame_disagreement(pseudo, pred), [(2 / 3 + 1 + 2 / 3) / 3])


def test_a_merge_of_two_pseudo_labels_into_one_prediction_disagrees():
    pseudo = np.zeros((1, 8, 16), np.int32)
    pseudo[0, 2:6, 0:8] = 1
    pseudo[0, 2:6, 8:16] = 2
    pred = (pseudo > 0).astype(np.int32) * 5  # one detection over both halves: IoU 0.5 with each
    np.testing.assert_allclose(frame_disagreement(pseudo, pred), [0.5])


def test_classes_and_low_scores_are_taken_into_account():
    pseudo = np.zeros((1, 8, 8), np.int32)
    pred = np.zeros_like(pseudo)
    _square(pseudo, 0, 1, 0, 0)
    _square(pred, 0, 4, 0, 0)
    _square(pred, 0, 5, 4, 4)
    assert frame_disagreement(pseudo, pred, prediction_scores={4: 0.9, 5: 0.1})[0] == 0.0  # 5 is below 0.5
    assert frame_disagreement(pseudo, pred, prediction_scores={5: 0.1}, score_threshold=0.0)[0] == pytest.approx(1 / 3)
    other_class = frame_disagreement(pseudo, pred, {1: 3}, {4: 7, 5: 7}, {5: 0.1})
    assert other_class[0] == 1.0  # the same square, but a box where the pseudo-label says disc
    with pytest.raises(ValueError, match="must be equal"):
        frame_disagreement(pseudo, pred[:, :4])


def _pair(t: int, t2: int, n_warped: int, n_t2: int, matches: list[list[float]]) -> dict:
    box = [0.0, 0.0, 4.0, 4.0]
    return {"t": t, "t2": t2, "matches": matches, "warped_t": {"boxes": [box] * n_warped},
            "expanded_t2": {"boxes": [box] * n_t2}}  # fmt: skip


def test_match_disagreement_counts_unmatched_masks_and_missing_iou_in_the_later_frame():
    pairs = [
        _pair(0, 1, 2, 2, [[0, 0, 1.0], [1, 1, 1.0]]),  # frame 1: both matched perfectly
        _pair(1, 2, 2, 2, [[0, 0, 0.6]]),  # frame 2: one match at 0.6, one mask unmatched on each side
        _pair(0, 2, 1, 2, [[0, 1, 1.0]]),  # frame 2 again: 1 of 2 masks matched
        _pair(2, 3, 0, 0, []),  # frame 3: nothing to match
        _pair(3, 9, 1, 1, []),  # outside the video: ignored
    ]
    dis = match_disagreement(pairs, 5)
    np.testing.assert_allclose(dis, [0.0, 0.0, ((1 - 0.6 / 2) + (1 - 1 / 2)) / 2, 0.0, 0.0])
    with pytest.raises(ValueError, match="malformed MaskConsist pair"):
        match_disagreement([{"t2": 1}], 5)


def test_match_disagreement_counts_predictions_not_the_intra_frame_unions_added_to_them():
    # 2 predictions on each side, both matched perfectly; 4 unions of them added on each side by intra-frame expansion
    pair = {**_pair(0, 1, 6, 6, [[0, 0, 1.0], [1, 1, 1.0]]), "n_pred_t": 2, "n_pred_t2": 2}
    assert match_disagreement([pair], 2).tolist() == [0.0, 0.0]  # not 1 - 2/6 = 0.67
    half = {**_pair(0, 1, 6, 6, [[0, 0, 1.0]]), "n_pred_t": 2, "n_pred_t2": 2}
    assert match_disagreement([half], 2).tolist() == [0.0, 0.5]


def test_the_video_disagreement_is_the_larger_signal_per_frame():
    a, b = np.array([0.1, 0.9, 0.0]), np.array([0.5, 0.2, 0.0])
    np.testing.assert_allclose(video_disagreement(a, None, b), [0.5, 0.9, 0.0])
    assert video_disagreement(None) is None
    with pytest.raises(ValueError, match="different lengths"):
        video_disagreement(a, np.zeros(2))
