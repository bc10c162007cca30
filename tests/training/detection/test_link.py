"""Linking per-frame detections into tubes: synthetic moving squares with their exact flow."""

from __future__ import annotations

import numpy as np
import pytest

from training.export import LabelVolume
from training.flow.storage import VideoFlow
from training.link import link_instances, link_tubes
from training.maskconsist.masks import FrameMasks

H, W, SIDE = 40, 64, 10


def _scene(tracks: list[tuple[int, int, int, int, float]], t_len: int) -> tuple[LabelVolume, VideoFlow, list]:
    """Squares ``(category, y, x0, vx, score)`` moving ``vx`` px per frame; one detection id per (frame, square).

    Squares listed first are painted on top. Returns the per-frame volume, its exact
    flow and, per frame, the detection id of each square (None where it is out of frame).
    """
    labels = np.zeros((t_len, H, W), np.int32)
    motion = np.zeros((t_len, H, W, 2), np.float32)  # (dx, dy) each pixel moves with, frame by frame
    cats, scores, dets = {}, {}, []
    next_id = 1
    for t in range(t_len):
        row = []
        for cat, y, x0, vx, score in reversed(tracks):
            x = x0 + vx * t
            region = (slice(y, y + SIDE), slice(max(x, 0), min(x + SIDE, W)))
            if x + SIDE <= 0 or x >= W:
                row.append(None)
                continue
            labels[t][region] = next_id
            motion[t][region] = (vx, 0)
            cats[next_id], scores[next_id] = cat, score
            row.append(next_id)
            next_id += 1
        dets.append(row[::-1])
    data = np.zeros((t_len - 1, H, W, 5), np.float16)
    data[..., 0:2] = motion[:-1]  # forward at t: where t's pixels go
    data[..., 2:4] = -motion[1:]  # backward at t+1: where t+1's pixels came from
    return LabelVolume(labels, cats, scores, {"id": 1}), VideoFlow(data, {}), dets


def _ids_of(linked: LabelVolume, volume: LabelVolume, dets: list, square: int) -> set[int]:
    """The linked ids the detections of one square got."""
    out = set()
    for t, row in enumerate(dets):
        if row[square] is not None:
            out |= set(np.unique(linked.labels[t][volume.labels[t] == row[square]]).tolist())
    return out


def test_two_crossing_squares_of_one_class_keep_their_own_ids():
    # same class, rows overlapping, crossing in frames 2-3; square 0 is painted over square 1
    volume, flow, dets = _scene([(1, 10, 4, 7, 0.9), (1, 16, 50, -7, 0.5)], t_len=7)
    linked = link_instances(volume, flow)
    a, b = _ids_of(linked, volume, dets, 0), _ids_of(linked, volume, dets, 1)
    assert len(a) == 1 and len(b) == 1 and a != b
    assert sorted(linked.categories) == [1, 2] and set(linked.categories.values()) == {1}
    assert linked.scores[a.pop()] == pytest.approx(0.9) and linked.scores[b.pop()] == pytest.approx(0.5)


def test_an_object_that_leaves_and_one_that_enters_get_different_ids():
    # square 0 leaves on the right after frame 2, square 1 enters on the left at frame 3: same class
    volume, flow, dets = _scene([(2, 10, 34, 10, 0.8), (2, 10, -30, 10, 0.6)], t_len=6)
    assert [r[0] is None for r in dets] == [False, False, False, True, True, True]
    assert [r[1] is None for r in dets] == [True, True, True, False, False, False]
    linked = link_instances(volume, flow)
    assert _ids_of(linked, volume, dets, 0) == {1} and _ids_of(linked, volume, dets, 1) == {2}


def test_an_object_that_reappears_in_the_same_place_after_a_gap_is_a_new_instance_without_gap_bridging():
    labels = np.zeros((5, H, W), np.int32)
    for t, det in ((0, 1), (1, 2), (3, 3), (4, 4)):  # frame 2 is empty
        labels[t, 10:20, 20:30] = det
    volume = LabelVolume(labels, {1: 1, 2: 1, 3: 1, 4: 1}, {}, {"id": 1})
    assert [int(link_instances(volume, max_gap=0).labels[t].max()) for t in range(5)] == [1, 1, 0, 2, 2]
    assert [int(link_instances(volume).labels[t].max()) for t in range(5)] == [1, 1, 0, 1, 1]


def test_one_and_two_missed_frames_keep_a_moving_tube_and_three_split_it():
    # 3 px per frame (IoU 0.25 in place after one missed frame): only the chained flow bridges the gaps
    volume, flow, dets = _scene([(1, 10, 0, 3, 0.9)], t_len=11)
    for t in (2, 4, 5, 7, 8, 9):  # gaps of 1, 2 and 3 frames
        volume.labels[t][volume.labels[t] == dets[t][0]] = 0
    linked = link_instances(volume, flow)
    assert [int(linked.labels[t].max()) for t in range(11)] == [1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 2]
    assert link_instances(volume).labels.max() == 4  # in place no gap is bridged
    with pytest.raises(ValueError, match="max_gap must be >= 0"):
        link_instances(volume, flow, max_gap=-1)


def test_a_tube_bridged_through_the_chained_flow_takes_the_moved_object_not_a_decoy_at_its_old_place():
    side, v = 10, 8

    def square(y: int, x: int) -> np.ndarray:
        m = np.zeros((H, W), bool)
        m[y : y + side, x : x + side] = True
        return m

    xs = [2, 2 + v, 2 + 2 * v, 2 + 3 * v]  # A moves v px right per frame; not detected at frame 2
    decoy = square(10, xs[1])  # same class, appears at frame 3 where A was last detected
    frames = [FrameMasks(square(10, xs[t])[None], [1], [0.9]) for t in (0, 1)]
    frames += [
        FrameMasks(np.zeros((0, H, W), bool), [], []),
        FrameMasks(np.stack([decoy, square(10, xs[3])]), [1, 1], [0.9, 0.8]),
    ]
    flows = {}  # backward flow at frame t+1: where its pixels came from in frame t
    for t in range(3):
        f = np.zeros((H, W, 2), np.float32)
        f[square(10, xs[t + 1]), 0] = -v
        if t == 2:
            f[decoy, 1] = -side  # the decoy came down from above, where A never was
        flows[t] = f
    tubes = link_tubes(frames, backward=flows.__getitem__)
    assert tubes == [{0: 0, 1: 0, 3: 1}, {3: 0}]
    assert link_tubes(frames)[1:] == [{1: 0, 3: 0}, {3: 1}]  # without the flow the decoy is taken


def test_different_classes_are_never_linked_even_in_the_same_place():
    volume, flow, _ = _scene([(1, 10, 20, 0, 0.9)], t_len=3)
    volume.categories[2] = 5  # the second frame's detection is another class
    linked = link_instances(volume, flow, max_gap=0)
    assert [int(linked.labels[t].max()) for t in range(3)] == [1, 2, 3]
    assert linked.categories == {1: 1, 2: 5, 3: 1}
    # bridging the frame where class 1 was missed joins frames 0 and 2, never the class-5 detection
    linked = link_instances(volume, flow)
    assert [int(linked.labels[t].max()) for t in range(3)] == [1, 2, 1]
    assert linked.categories == {1: 1, 2: 5}


def test_slow_objects_are_linked_without_flow_and_scores_are_averaged():
    volume, _, dets = _scene([(3, 5, 10, 2, 0.9)], t_len=4)
    volume.scores.update({dets[1][0]: 0.5, dets[2][0]: 0.7, dets[3][0]: 0.3})
    linked = link_instances(volume)
    assert np.array_equal(linked.labels > 0, volume.labels > 0) and linked.labels.max() == 1
    assert linked.scores[1] == pytest.approx((0.9 + 0.5 + 0.7 + 0.3) / 4)


def test_fast_objects_need_the_flow_to_be_linked():
    volume, flow, _ = _scene([(1, 5, 0, 12, 0.9)], t_len=3)  # moves more than its own width
    assert link_instances(volume).labels.max() == 3
    assert link_instances(volume, flow).labels.max() == 1


def test_predicted_tubes_hold_where_the_flow_is_off_by_half_a_small_object():
    from training.detection.data import volume_frame_masks
    from training.link import IOU_THRESHOLD, PREDICTION_IOU

    volume, _, _ = _scene([(1, 5, 0, 6, 0.9)], t_len=4)  # 10 px moving 6 px a frame, linked with no flow:
    frames = [volume_frame_masks(volume, t) for t in range(4)]  # IoU 0.25 with the previous frame's mask
    assert len(link_tubes(frames, None, IOU_THRESHOLD)) == 4  # the pseudo-labels' threshold splits it
    assert len(link_tubes(frames, None, PREDICTION_IOU)) == 1  # vis-ws predict keeps one tube


def test_predicted_tubes_keep_an_object_whose_class_flips_and_take_its_stronger_class():
    from training.detection.data import volume_frame_masks
    from training.link import tube_category, tubes_to_results

    volume, flow, dets = _scene([(1, 5, 0, 3, 0.9)], t_len=4)
    volume.categories[dets[2][0]] = 2  # one frame's detection took another class
    frames = [volume_frame_masks(volume, t) for t in range(4)]
    same = link_tubes(frames, flow.backward)  # METHOD.md §8: same class only, the flipped frame is a tube of its own
    assert sorted(map(sorted, same)) == [[0, 1, 3], [2]]
    (tube,) = link_tubes(frames, flow.backward, same_class=False)
    assert sorted(tube) == [0, 1, 2, 3] and tube_category(frames, tube) == 1  # 3 x 0.9 against 0.9
    (result,) = tubes_to_results(frames, [tube], video_id=1)
    assert result["category_id"] == 1 and all(seg is not None for seg in result["segmentations"])


def test_a_tube_seen_in_one_frame_ranks_below_one_seen_throughout_by_video_score():
    from training.detection.data import volume_frame_masks
    from training.link import tubes_to_results

    volume, flow, dets = _scene([(1, 5, 0, 3, 0.5), (2, 25, 40, 0, 0.9)], t_len=4)
    for t in (1, 2, 3):  # the second object is detected in frame 0 only
        volume.labels[t][volume.labels[t] == dets[t][1]] = 0
    frames = [volume_frame_masks(volume, t) for t in range(4)]
    tubes = link_tubes(frames, flow.backward)
    mean = {r["category_id"]: r["score"] for r in tubes_to_results(frames, tubes, 1)}
    video = {r["category_id"]: r["score"] for r in tubes_to_results(frames, tubes, 1, score="video")}
    assert mean == pytest.approx({1: 0.5, 2: 0.9})  # the one-frame tube first
    assert video == pytest.approx({1: 0.5, 2: 0.9 / 4})  # the whole-video tube first
    with pytest.raises(ValueError, match="tube score must be one of"):
        tubes_to_results(frames, tubes, 1, score="max")


def test_a_flow_of_another_size_is_refused():
    volume, _, _ = _scene([(1, 5, 0, 1, 0.9)], t_len=3)
    with pytest.raises(ValueError, match="does not fit labels of 3 frames of 64x40"):
        link_instances(volume, VideoFlow(np.zeros((3, H, W, 5), np.float16), {}))
