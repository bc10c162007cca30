"""Relation labels from CAMs, the pair sets, and IRN / flowIRN losses."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from training.irn.ir_labels import IGNORE, ir_labels
from training.irn.losses import (
    boundary_loss,
    boundary_loss_terms,
    displacement_loss,
    flow_boundary_loss,
    irn_total_loss,
    motion_split,
)
from training.irn.path_index import pair_affinity, pair_difference, path_index
from training.irn.relations import RelationSets, relation_sets

# ---------------------------------------------------------------- relation labels


def test_ir_labels_mark_confident_class_background_and_the_band_between():
    cams = np.zeros((2, 4, 5), np.float32)
    cams[0, 0, :] = [0.9, 0.31, 0.30, 0.2, 0.049]
    cams[1, 1, :] = [0.5, 0.04, 0.06, 0.0, 0.31]
    cams[0, 1, 0] = 0.6  # both classes confident: the larger wins
    labels = ir_labels(cams, keys=[3, 7])
    assert labels.dtype == np.uint8
    assert labels[0].tolist() == [4, 4, IGNORE, IGNORE, 0]  # > 0.30 → key + 1; 0.30 itself is not above
    assert labels[1].tolist() == [4, 0, IGNORE, 0, 8]
    assert (labels[2:] == 0).all()


def test_ir_labels_without_keys_use_the_cam_row():
    cams = np.zeros((2, 3, 3), np.float32)
    cams[1, 1, 1] = 1.0
    assert ir_labels(cams)[1, 1] == 2


def test_a_frame_without_tags_is_all_background():
    labels = ir_labels(np.zeros((0, 6, 7), np.float32), keys=[])
    assert labels.shape == (6, 7) and (labels == 0).all()


def _square_scene() -> tuple[np.ndarray, np.ndarray]:
    image = np.full((24, 24, 3), 20, np.uint8)
    image[6:18, 6:18] = (230, 40, 40)
    cams = np.zeros((1, 24, 24), np.float32)
    cams[0, 6:18, 6:18] = 0.9
    cams[0, 9:11, 9:11] = 0.1  # a weak spot inside the object
    cams[0, 2, 2] = 0.6  # a spurious activation on the background
    return cams, image


def test_crf_refinement_follows_the_image_and_cleans_spurious_labels():
    pytest.importorskip("pydensecrf.densecrf")
    cams, image = _square_scene()
    plain = ir_labels(cams, keys=[0], crf=False)
    refined = ir_labels(cams, keys=[0], image=image, crf=True)
    assert plain[9, 9] == IGNORE and plain[2, 2] == 1
    assert refined[9, 9] == 1 and refined[2, 2] == 0
    assert (refined[6:18, 6:18] == 1).all() and (refined[:5] == 0).all()


def test_crf_accepts_a_full_resolution_frame_for_grid_cams():
    pytest.importorskip("pydensecrf.densecrf")
    cams, image = _square_scene()
    big = np.repeat(np.repeat(image, 4, axis=0), 4, axis=1)
    assert ir_labels(cams, [0], big, crf=True)[12, 12] == 1


def test_crf_accepts_a_read_only_frame():
    # np.asarray(PIL.Image) and memory-mapped frames are read-only; pydensecrf refused them
    pytest.importorskip("pydensecrf.densecrf")
    cams, image = _square_scene()
    image.flags.writeable = False
    assert ir_labels(cams, [0], image, crf=True)[12, 12] == 1


def test_crf_without_pydensecrf_names_the_package_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    cams, image = _square_scene()
    with pytest.raises(ImportError, match="pydensecrf2"):
        ir_labels(cams, [0], image, crf=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cams": np.full((1, 4, 4), np.nan, np.float32)}, "NaN"),
        ({"cams": np.zeros((4, 4), np.float32)}, r"\(K, h, w\)"),
        ({"keys": [1, 2]}, "2 keys for 1 CAM rows"),
        ({"keys": [254]}, "keys must be integers"),
        ({"crf": True}, "needs the frame"),
        ({"crf": True, "image": np.zeros((4, 4), np.uint8)}, "uint8 RGB"),
    ],
)
def test_ir_labels_refuse_bad_input_in_one_line(kwargs, message):
    args = {"cams": np.zeros((1, 4, 4), np.float32), "keys": [0]} | kwargs
    with pytest.raises(ValueError, match=message) as err:
        ir_labels(**args)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- pair sets


def test_relation_sets_split_pairs_by_label_and_skip_ignored_pixels():
    labels = np.zeros((6, 9), np.uint8)
    labels[:, 5:] = 2
    labels[2, 4] = IGNORE
    sets = relation_sets(labels, radius=3)
    index = sets.index
    src, dst = index.pair_indices(labels.shape)
    flat = labels.ravel()
    li, lj = flat[src][None, :], flat[dst]
    valid = (li != IGNORE) & (lj != IGNORE)
    assert torch.equal(sets.fg_pos, torch.from_numpy((li == lj) & valid & (li > 0)))
    assert torch.equal(sets.bg_pos, torch.from_numpy((li == lj) & valid & (li == 0)))
    assert torch.equal(sets.neg, torch.from_numpy((li != lj) & valid))
    touching_ignored = ~valid
    assert touching_ignored.any()
    assert not (sets.fg_pos | sets.bg_pos | sets.neg).numpy()[touching_ignored].any()
    assert sets.counts()["neg"] > 0 and sets.counts()["fg_pos"] > 0


def test_relation_sets_of_a_batch_have_a_batch_dimension():
    labels = torch.zeros(3, 12, 20, dtype=torch.uint8)
    sets = relation_sets(labels)
    assert sets.fg_pos.shape == (3, 152, (12 - 9) * (20 - 18))
    assert sets.counts() == {"fg_pos": 0, "bg_pos": 3 * 152 * 6, "neg": 0}


def test_relation_sets_refuse_float_labels():
    with pytest.raises(ValueError, match="integer"):
        relation_sets(np.zeros((12, 20), np.float32))


# ---------------------------------------------------------------- boundary loss


def _sets(fg, bg, neg) -> RelationSets:
    t = lambda v: torch.tensor([v], dtype=torch.bool)  # noqa: E731  (one direction, len(v) sources)
    return RelationSets(fg_pos=t(fg), bg_pos=t(bg), neg=t(neg), index=path_index(2))


def test_boundary_loss_matches_a_hand_computation():
    aff = torch.tensor([[0.5, 0.25, 0.75, 0.9]], dtype=torch.float64)
    sets = _sets(fg=[0, 1, 0, 0], bg=[1, 0, 0, 0], neg=[0, 0, 1, 1])
    bg = -math.log(0.5 + 1e-5)
    fg = -math.log(0.25 + 1e-5)
    neg = (-math.log(1 + 1e-5 - 0.75) - math.log(1 + 1e-5 - 0.9)) / 2
    pos_t, neg_t = boundary_loss_terms(aff, sets)
    assert float(pos_t) == pytest.approx(bg / 2 + fg / 2, rel=1e-5)
    assert float(neg_t) == pytest.approx(neg, rel=1e-5)
    assert float(boundary_loss(aff, sets)) == pytest.approx(bg / 2 + fg / 2 + neg, rel=1e-5)


def test_an_empty_set_contributes_nothing_instead_of_nan():
    aff = torch.tensor([[0.5, 0.5]])
    loss = boundary_loss(aff, _sets(fg=[0, 0], bg=[1, 1], neg=[0, 0]))
    assert float(loss) == pytest.approx(-math.log(0.5 + 1e-5) / 2, rel=1e-4)


def test_negative_pairs_across_a_label_change_raise_the_boundary_there():
    labels = np.ones((14, 24), np.uint8)
    labels[:, 12:] = 2
    sets = relation_sets(labels, radius=5)
    logit = torch.zeros(14, 24, requires_grad=True)
    opt = torch.optim.SGD([logit], lr=50.0)
    crossing_before = None
    for _ in range(40):
        aff = pair_affinity(torch.sigmoid(logit), sets.index)
        if crossing_before is None:
            crossing_before = float(aff.detach()[sets.neg].mean())
        loss = boundary_loss(aff, sets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        b = torch.sigmoid(logit)
        aff = pair_affinity(b, sets.index)
    assert float(aff[sets.neg].mean()) < crossing_before - 0.3
    seam = b[:, 11:13].mean()
    inside = torch.cat([b[:, :9], b[:, 15:]], dim=1).mean()
    assert seam > 0.6 and inside < seam - 0.3


# ---------------------------------------------------------------- displacement loss


def test_displacement_loss_is_zero_for_a_field_pointing_at_each_instance_centroid():
    h, w = 12, 20
    labels = np.zeros((h, w), np.uint8)
    labels[2:10, 3:17] = 5
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    disp = np.zeros((2, h, w), np.float32)
    inside = labels == 5
    disp[0][inside] = (6.0 - yy)[inside]
    disp[1][inside] = (10.0 - xx)[inside]
    sets = relation_sets(labels, radius=5)
    fg, bg = displacement_loss(torch.from_numpy(disp), sets)
    assert float(fg) == pytest.approx(0.0, abs=1e-6)
    assert float(bg) == pytest.approx(0.0, abs=1e-6)


def test_displacement_loss_of_a_zero_field_is_the_mean_half_l1_length_of_the_pairs():
    labels = np.full((10, 16), 3, np.uint8)
    sets = relation_sets(labels, radius=5)
    disp = torch.zeros(1, 2, 10, 16, requires_grad=True)
    fg, bg = displacement_loss(disp, sets)
    expected = np.abs(sets.index.directions).sum(axis=1).mean() / 2  # every direction has the same sources
    assert float(fg.detach()) == pytest.approx(expected, rel=1e-4)
    assert float(bg.detach()) == 0.0
    fg.backward()
    assert disp.grad is not None and disp.grad.abs().sum() > 0


def test_background_pairs_pull_displacements_together():
    labels = np.zeros((10, 16), np.uint8)
    sets = relation_sets(labels, radius=5)
    disp = torch.zeros(2, 10, 16)
    disp[0, :, 8:] = 1.0  # half the background points one pixel down
    _, bg = displacement_loss(disp, sets)
    assert float(bg) > 0


# ---------------------------------------------------------------- flow-boundary loss


def _motion_edge_scene():
    h, w = 12, 24
    flow = torch.zeros(2, h, w)
    flow[0, :, 12:] = 4.0  # the right half moves 4 px
    index = path_index(5)
    no_boundary = pair_affinity(torch.zeros(h, w), index)
    b = torch.zeros(h, w)
    b[:, 11:13] = 1.0
    with_boundary = pair_affinity(b, index)
    return flow, index, no_boundary, with_boundary


def test_flow_boundary_loss_is_larger_when_affinity_is_high_across_a_motion_discontinuity():
    flow, index, no_boundary, with_boundary = _motion_edge_scene()
    high = flow_boundary_loss(no_boundary, flow, index)
    low = flow_boundary_loss(with_boundary, flow, index)
    assert float(high) > float(low)


def test_flow_boundary_loss_of_uniform_flow_is_lambda_times_the_missing_affinity():
    _, index, _, with_boundary = _motion_edge_scene()
    flow = torch.full((2, 12, 24), 3.0)
    loss = flow_boundary_loss(with_boundary, flow, index, lam=0.1)
    assert float(loss) == pytest.approx(0.1 * float((1 - with_boundary).mean()), rel=1e-5)


def test_flow_boundary_loss_does_not_depend_on_the_flow_units():
    flow, index, no_boundary, _ = _motion_edge_scene()
    flow = flow + 0.1 * torch.randn(flow.shape, generator=torch.Generator().manual_seed(0))
    a = flow_boundary_loss(no_boundary, flow, index)
    b = flow_boundary_loss(no_boundary, 10 * flow, index)
    assert float(a) == pytest.approx(float(b), rel=1e-4)


def test_flow_boundary_loss_pushes_affinity_down_only_across_the_motion_edge():
    flow, index, _, _ = _motion_edge_scene()
    logit = torch.full((12, 24), -3.0, requires_grad=True)
    loss = flow_boundary_loss(pair_affinity(torch.sigmoid(logit), index), flow, index)
    loss.backward()
    assert logit.grad is not None
    # Gradient descent raises B (negative gradient) most at the edge columns.
    edge = logit.grad[:, 10:14].mean()
    far = torch.cat([logit.grad[:, :6], logit.grad[:, 18:]], dim=1).mean()
    assert edge < far < 0.0 or edge < 0.0 <= far


def test_irn_total_loss_combines_the_terms_as_irn_does():
    labels = np.zeros((2, 12, 20), np.uint8)
    labels[:, 3:9, 4:12] = 2
    sets = relation_sets(labels)
    gen = torch.Generator().manual_seed(0)
    boundary = torch.rand(2, 12, 20, generator=gen, requires_grad=True)
    disp = torch.randn(2, 2, 12, 20, generator=gen, requires_grad=True)
    flow = torch.randn(2, 2, 12, 20, generator=gen)
    aff = pair_affinity(boundary, sets.index)
    plain = irn_total_loss(aff, disp, sets)
    assert plain.flow_boundary.item() == 0.0
    expected = (plain.boundary_pos + plain.boundary_neg) / 2 + (plain.displacement_fg + plain.displacement_bg) / 2
    assert plain.total.item() == pytest.approx(expected.item())
    with_flow = irn_total_loss(aff, disp, sets, flow=flow, flow_weight=0.5)
    assert with_flow.total.item() == pytest.approx(plain.total.item() + 0.5 * with_flow.flow_boundary.item())
    with_flow.total.backward()
    assert boundary.grad is not None and disp.grad is not None
    assert boundary.grad.abs().sum() > 0 and disp.grad.abs().sum() > 0


def test_losses_refuse_pairs_from_another_grid():
    sets = relation_sets(np.zeros((12, 20), np.uint8))
    aff = pair_affinity(torch.zeros(14, 20), sets.index)
    with pytest.raises(ValueError, match="same grid"):
        boundary_loss(aff, sets)


def test_flow_boundary_loss_ignores_pairs_whose_flow_is_unknown():
    # a moving frame next to padding (or an occluded region) whose flow reads 0: no boundary is asked there
    index = path_index(5)
    flow = torch.zeros(2, 12, 24)
    flow[0, :, :12] = 3.0
    known = torch.zeros(12, 24, dtype=torch.bool)
    known[:, :12] = True
    no_boundary = pair_affinity(torch.zeros(12, 24), index)
    assert float(flow_boundary_loss(no_boundary, flow, index)) > 0.1  # the frame edge taken for a motion edge
    assert float(flow_boundary_loss(no_boundary, flow, index, valid=known)) == pytest.approx(0.0, abs=1e-6)


def test_flow_scale_is_measured_on_known_pixels_with_a_floor_in_image_pixels():
    from training.irn.losses import normalised_flow

    flow = torch.zeros(2, 8, 8)
    flow[0, 0, :2] = 4.0  # 4 grid pixels on the 2 known pixels, the rest unknown (read as 0)
    known = torch.zeros(8, 8, dtype=torch.bool)
    known[0, :2] = True
    assert torch.allclose(normalised_flow(flow, valid=known)[0, 0, :2], torch.tensor(1.0))
    assert float(normalised_flow(flow)[0, 0, 0]) == pytest.approx(4.0)  # p95 over all: the floor (1 grid px)
    still = torch.zeros(2, 8, 8)
    still[0] = 0.5  # 0.5 grid pixel = 2 image pixels: under the 4-pixel floor, kept as is
    assert torch.allclose(normalised_flow(still), still)
    assert torch.allclose(normalised_flow(still, min_scale=1.0), still / 0.5)  # a 1-pixel floor: amplified


def _touching_objects(radius: int = 3) -> tuple[RelationSets, torch.Tensor, np.ndarray]:
    """One class, two touching squares (columns 4-11 and 12-19) moving in opposite directions."""
    labels = np.zeros((1, 12, 24), np.uint8)
    labels[:, 2:10, 4:20] = 1
    flow = torch.zeros(1, 2, 12, 24)
    flow[:, 1, 2:10, 4:12] = 3.0
    flow[:, 1, 2:10, 12:20] = -3.0
    return relation_sets(labels, radius), flow, labels


def test_motion_split_moves_same_class_pairs_across_a_motion_edge_to_the_negatives():
    sets, flow, _ = _touching_objects()
    split = motion_split(sets, flow, 0.5)
    moved = sets.fg_pos & ~split.fg_pos
    assert int(moved.sum()) > 0
    assert torch.equal(split.neg, sets.neg | moved)  # each moved pair becomes a negative, nothing else changes
    assert torch.equal(split.bg_pos, sets.bg_pos)
    # the moved pairs are exactly those whose two pixels move differently: their displacement target is dropped
    jump = pair_difference(flow, sets.index).abs().sum(-3) > 0
    assert torch.equal(moved, sets.fg_pos & jump)


def test_motion_split_is_off_at_zero_and_ignores_pairs_whose_flow_is_unknown():
    sets, flow, _ = _touching_objects()
    same = motion_split(sets, flow, 0.0)
    assert torch.equal(same.fg_pos, sets.fg_pos) and torch.equal(same.neg, sets.neg)
    valid = torch.ones(1, 12, 24, dtype=torch.bool)
    valid[:, :, 11:13] = False  # the contact is occluded
    everywhere = sets.fg_pos & ~motion_split(sets, flow, 0.5).fg_pos
    known = sets.fg_pos & ~motion_split(sets, flow, 0.5, valid).fg_pos
    assert int(known.sum()) == 0 < int(everywhere.sum())  # every crossing path goes through the occluded contact


def test_with_a_motion_split_the_displacement_field_of_two_touching_objects_is_no_longer_one_field():
    sets, flow, _ = _touching_objects()
    # a field pointing each square at its own centre costs nothing once the squares are split, not before
    yy, xx = torch.meshgrid(torch.arange(12.0), torch.arange(24.0), indexing="ij")
    disp = torch.zeros(1, 2, 12, 24)
    for c0, c1 in ((4, 12), (12, 20)):
        cy, cx = 5.5, (c0 + c1 - 1) / 2
        disp[0, 0, 2:10, c0:c1] = cy - yy[2:10, c0:c1]
        disp[0, 1, 2:10, c0:c1] = cx - xx[2:10, c0:c1]
    joined, _ = displacement_loss(disp, sets)
    apart, _ = displacement_loss(disp, motion_split(sets, flow, 0.5))
    assert float(apart) < 1e-6 < float(joined)
