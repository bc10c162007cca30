"""Corrections of pseudo-labels: merge, split, delete, re-class, flow propagation, review queue, targets."""

from __future__ import annotations

import numpy as np
import pytest

from training.corrections import (
    Propagation,
    PropagationStep,
    complete_table,
    delete_instance,
    frame_ranges,
    instance_areas,
    merge_instances,
    next_id,
    propagate_mask,
    relabel_class,
    split_by_line,
    split_components,
    training_targets,
)
from training.export import LabelVolume
from training.flow import read_video_flow
from training.flow.storage import flow_writer
from training.review import review_queue, suspicion_terms, worst_frames


def _two_blobs() -> np.ndarray:
    labels = np.zeros((3, 20, 30), np.int32)
    labels[:, 2:8, 2:10] = 1  # 48 px
    labels[1, 12:15, 20:23] = 1  # a second, smaller piece of 1 in frame 1
    labels[:, 10:18, 2:8] = 2
    return labels


def _table(ids: list[int]) -> dict[str, list]:
    return {
        "index": [0, *ids],
        "class": ["background", *["disc"] * len(ids)],
        "category_id": [0, *[3] * len(ids)],
        "score": [1.0, *[0.5] * len(ids)],
        "frames": [0, *[3] * len(ids)],
    }


class ShiftFlow:
    """Every pixel moves by (dx, dy) per frame: forward (dx, dy), backward (-dx, -dy)."""

    def __init__(self, n_frames: int, h: int, w: int, dx: float, dy: float = 0.0) -> None:
        self.n_frames, self.shape, self.d = n_frames, (h, w), (dx, dy)

    def forward(self, t: int) -> np.ndarray:
        return np.broadcast_to(np.float32(self.d), (*self.shape, 2)).copy()

    def backward(self, t: int) -> np.ndarray:
        return -self.forward(t)


def _moving_square(t: int = 6, h: int = 20, w: int = 40, dx: int = 2) -> np.ndarray:
    labels = np.zeros((t, h, w), np.int32)
    for f in range(t):
        labels[f, 5:11, 4 + dx * f : 10 + dx * f] = 1
    return labels


def test_merging_moves_every_pixel_of_the_dropped_instance_to_the_kept_one():
    labels = _two_blobs()
    edit = merge_instances(labels, keep=1, drop=2)
    out = edit.apply(labels)
    assert 2 not in out
    np.testing.assert_array_equal(out == 1, (labels == 1) | (labels == 2))
    assert edit.frames == [0, 1, 2] and edit.size == 3 * 48


def test_merging_with_the_background_is_refused():
    with pytest.raises(ValueError, match="background"):
        merge_instances(_two_blobs(), keep=1, drop=0)


def test_splitting_by_components_gives_the_smaller_piece_a_new_id_in_that_frame_only():
    labels = _two_blobs()
    edit, new = split_components(labels, 1, 1, first_id=7)
    out = edit.apply(labels)
    assert new == [7]
    assert (out[1] == 7).sum() == 9 and (out[1] == 1).sum() == 48
    assert edit.frames == [1]
    np.testing.assert_array_equal(out[[0, 2]], labels[[0, 2]])


def test_splitting_an_instance_in_one_piece_changes_nothing():
    edit, new = split_components(_two_blobs(), 2, 0)
    assert new == [] and edit.size == 0


def test_a_line_across_an_instance_cuts_it_into_two_ids_and_keeps_every_pixel():
    labels = np.zeros((2, 20, 30), np.int32)
    labels[:, 4:16, 5:25] = 3
    edit, new = split_by_line(labels, 3, 0, np.array([[0.0, 12.0], [19.0, 12.0]]), first_id=10)
    out = edit.apply(labels)
    assert new == [10]
    assert set(np.unique(out[0])) == {0, 3, 10}
    np.testing.assert_array_equal(out[0] > 0, labels[0] > 0)  # line pixels go to a side
    left, right = out[0][4:16, 5:12], out[0][4:16, 13:25]
    assert (left == 10).all() and (right == 3).all()  # the larger side (right, with the line) keeps 3
    np.testing.assert_array_equal(out[1], labels[1])


def test_a_line_that_does_not_cross_the_instance_leaves_it_whole():
    labels = np.zeros((1, 20, 30), np.int32)
    labels[0, 4:16, 5:25] = 3
    edit, new = split_by_line(labels, 3, 0, np.array([[0.0, 12.0], [8.0, 12.0]]))
    assert new == [] and edit.size == 0


def test_deleting_in_chosen_frames_keeps_the_instance_elsewhere():
    labels = _two_blobs()
    out = delete_instance(labels, 2, frames=[0, 2]).apply(labels)
    assert not (out[[0, 2]] == 2).any() and (out[1] == 2).sum() == 48
    assert 2 not in delete_instance(labels, 2).apply(labels)


def test_reclassing_moves_the_instance_to_a_new_id_whose_row_has_the_new_class():
    labels = _two_blobs()
    table = _table([1, 2])
    edit, new_table = relabel_class(labels, table, 2, 7, "box")
    out = edit.apply(labels)
    assert edit.new_ids == (3,) and 2 not in out and (out == 3).sum() == (labels == 2).sum()
    row = new_table["index"].index(3)
    assert new_table["class"][row] == "box" and new_table["category_id"][row] == 7
    assert new_table["score"][row] == 0.5
    assert new_table["class"][new_table["index"].index(2)] == "disc"  # the old row stays for undo


def test_the_table_gains_rows_for_hand_painted_ids_and_new_ids_skip_them():
    table = complete_table(_table([1]), [1, 4], 3, "disc")
    assert table["index"] == [0, 1, 4] and table["score"][2] == 1.0
    assert next_id(np.array([[[1, 2]]]), table["index"]) == 5


def test_propagation_forward_follows_the_flow_and_reports_each_frame():
    labels = _moving_square()
    labels[1:4, 5:11] = np.where(labels[1:4, 5:11] == 1, 0, labels[1:4, 5:11])
    labels[1:4, 5:11, 4:30] = 2  # frames 1-3 have a wrong instance where the square is
    prop = propagate_mask(labels, 1, 0, ShiftFlow(6, 20, 40, dx=2), n=3)
    out = prop.edit.apply(labels)
    truth = _moving_square()
    for f in (1, 2, 3):
        np.testing.assert_array_equal(out[f] == 1, truth[f] == 1)
    assert prop.frames == [1, 2, 3] and [s.added for s in prop.steps] == [36, 36, 36]
    assert prop.summary() == "frames 1-3: +108/-0 px"
    np.testing.assert_array_equal(out[4:], labels[4:])


def test_propagation_stops_where_the_next_frame_has_no_evidence():
    labels = _moving_square()
    labels[3] = 0  # the object is missing from frame 3's labels
    prop = propagate_mask(labels, 1, 0, ShiftFlow(6, 20, 40, dx=2), n=5)
    assert prop.stopped_at == 3 and prop.stop_overlap == 0.0
    assert [s.frame for s in prop.steps] == [1, 2] and prop.edit.size == 0  # frames 1-2 already right
    assert prop.summary() == "frames 1-2: no change, stopped at 3: overlap 0.00"


def test_propagation_backward_uses_the_forward_flow_and_ends_at_frame_zero():
    truth = _moving_square()
    labels = truth.copy()
    labels[:4] = 0
    ev = truth > 0
    prop = propagate_mask(labels, 1, 4, ShiftFlow(6, 20, 40, dx=2), n=9, direction="backward", evidence=ev)
    np.testing.assert_array_equal(prop.edit.apply(labels), truth)
    assert prop.reached_end and prop.frames == [0, 1, 2, 3]
    assert prop.summary() == "frames 0-3: +144/-0 px, reached the end of the video"


def test_propagation_reads_stored_flow_the_same_way(tmp_path):
    t, h, w = 4, 16, 24
    with flow_writer(tmp_path, "v", t, h, w, {"method": "test"}) as arr:
        arr[:] = 0
        arr[..., 0], arr[..., 2] = 2, -2  # forward dx = 2, backward dx = -2
    labels = _moving_square(t, h, w)
    truth = labels.copy()
    labels[1:] = 0
    prop = propagate_mask(labels, 1, 0, read_video_flow(tmp_path, "v"), n=3, evidence=truth > 0)
    np.testing.assert_array_equal(prop.edit.apply(labels), truth)


def test_propagation_refuses_flow_of_another_video():
    with pytest.raises(ValueError, match="5 frames but the labels have 6"):
        propagate_mask(_moving_square(), 1, 0, ShiftFlow(5, 20, 40, dx=1), n=2)


def test_the_summary_names_the_frames_and_the_stopping_overlap():
    steps = [PropagationStep(f, 60, 2, 0.9) for f in range(5, 10)]
    text = Propagation(merge_instances(_two_blobs(), 1, 2), steps, 10, 0.31).summary()
    assert text == "frames 5-9: +300/-10 px, stopped at 10: overlap 0.31"
    assert frame_ranges([7, 0, 1, 2, 5, 8]) == "0-2, 5, 7-8"


def test_review_queue_puts_low_scores_and_missing_instances_first_and_skips_reviewed_frames():
    labels = np.zeros((6, 10, 10), np.int32)
    labels[:, 1:4, 1:4] = 1
    labels[:, 6:9, 6:9] = 2
    labels[2, 6:9, 6:9] = 0  # frame 2 lost instance 2
    labels[4, 6:9, 6:9] = 3  # frame 4 has a low-scored instance
    scores = {1: 0.9, 2: 0.9, 3: 0.1}
    queue = review_queue(labels, reviewed=[], scores=scores, k=3)
    assert queue[:2] == [2, 4]  # 2: one instance fewer than its neighbours; 4: mean score 0.5
    assert review_queue(labels, reviewed=[2], scores=scores, k=1) == [4]
    dis = np.array([0, 0, 0, 0, 0, 3.0])
    assert review_queue(labels, [], scores, disagreement=dis, k=1) == [5]


def test_each_queued_frame_says_why_biggest_reason_first():
    labels = np.zeros((7, 10, 10), np.int32)
    labels[:, 1:4, 1:4] = 1
    labels[3, 6:9, 6:9] = 2  # appears in frame 3 only, with score 0
    scores, dis = {1: 0.9, 2: 0.0}, np.array([0, 0.8, 0, 0, 0, 0, 0.02])
    terms = suspicion_terms(instance_areas(labels), scores, dis)
    assert terms.reason(1) == "disagreement 0.80"
    assert terms.reason(3) == "instances 2 vs 1 around, low score 0.45"
    assert terms.reason(0) == terms.reason(6) == "score 0.90"  # nothing stands out
    np.testing.assert_allclose(terms.total, [0.1, 0.9, 0.1, 1.55, 0.1, 0.1, 0.12])
    assert worst_frames(terms.total, reviewed=[3], k=2) == [1, 6]
    assert review_queue(labels, [], scores, dis, k=7) == [3, 1, 6, 0, 2, 4, 5]
    assert suspicion_terms(instance_areas(np.zeros((2, 4, 4), np.int32)), {}).reason(0) == ""


def test_instance_areas_list_frames_present():
    a = instance_areas(_two_blobs())
    assert a.ids.tolist() == [1, 2] and a.frames_of(1) == [0, 1, 2] and a.frames_of(9) == []
    assert a.areas[1, 0] == 57 and a.counts.tolist() == [2, 2, 2]


def test_training_targets_take_reviewed_frames_from_corrections_and_keep_ids_distinct():
    pseudo_labels = _two_blobs()
    pseudo = LabelVolume(pseudo_labels, {1: 3, 2: 3}, {1: 0.4, 2: 0.6}, {"id": 9})
    corr_labels = pseudo_labels.copy()
    corr_labels[1][corr_labels[1] == 1] = 0
    corr_labels[1, 0:2, 0:2] = 2  # same id, another class: must not be confused with pseudo's 2
    corr_labels[1, 18:20, 0:2] = 5  # a new instance
    corrected = LabelVolume(corr_labels, {1: 3, 2: 7, 5: 3}, {1: 1.0, 2: 1.0, 5: 1.0})
    out = training_targets(pseudo, corrected, reviewed={1})
    np.testing.assert_array_equal(out.labels[[0, 2]], pseudo_labels[[0, 2]])
    assert (out.labels[1] == 1).sum() == 0 and (out.labels[1] == 5).sum() == 4
    renamed = out.labels[1, 0, 0]
    assert renamed not in (1, 2, 5) and out.categories[renamed] == 7 and out.categories[2] == 3
    np.testing.assert_array_equal(out.labels[1] == renamed, corr_labels[1] == 2)
    assert out.video["id"] == 9 and out.scores[1] == 0.4
