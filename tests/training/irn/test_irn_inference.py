"""IRN inference: random-walk propagation, centroids, instance map and pseudo-labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from training.errors import InputError
from training.irn.inference import (
    cluster_centroids,
    find_centroids,
    instance_pseudo_labels,
    propagate,
    semantic_pseudo_labels,
)
from training.irn.random_walk import dense_propagate, transition_matrix


def brute_force_propagate(x: np.ndarray, boundary: np.ndarray, radius: int = 5, beta: float = 10, steps: int = 256):
    """IRN's formula written from scratch over all pixel pairs, dense, in float64.

    a_ij = 1 − max B over the grid points of the segment's bounding box less
    than one pixel from the line through i and j; A symmetric with a unit
    diagonal; T = A^β normalised per column; result x(1 − B) · T^steps.
    """
    h, w = boundary.shape
    n = h * w
    a = np.eye(n)
    for i in range(n):
        yi, xi = divmod(i, w)
        for j in range(n):
            yj, xj = divmod(j, w)
            dy, dx = yj - yi, xj - xi
            if i == j or dy * dy + dx * dx >= radius * radius:
                continue
            ys = range(min(yi, yj), max(yi, yj) + 1)
            xs = range(min(xi, xj), max(xi, xj) + 1)
            on_path = [
                boundary[y, x] for y in ys for x in xs if (dy * (x - xi) - dx * (y - yi)) ** 2 < dy * dy + dx * dx
            ]
            a[i, j] = 1 - max(on_path)
    t = a**beta
    t /= t.sum(axis=0, keepdims=True)
    flat = (x * (1 - boundary)).reshape(x.shape[0], n)
    return (flat @ np.linalg.matrix_power(t, steps)).reshape(x.shape)


# ---------------------------------------------------------------- propagation


@pytest.mark.parametrize(("h", "w", "c"), [(6, 6, 1), (7, 11, 3), (13, 9, 2), (3, 17, 1)])
def test_propagation_equals_irns_dense_matrix_power(h, w, c):
    rng = np.random.default_rng(h * 100 + w)
    x = rng.random((c, h, w)).astype(np.float32)
    boundary = (rng.random((h, w)) ** 3).astype(np.float32)
    expected = brute_force_propagate(x.astype(np.float64), boundary.astype(np.float64))
    got = propagate(x, boundary)
    assert got.shape == (c, h, w) and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-4
    dense = dense_propagate(torch.from_numpy(x), torch.from_numpy(boundary), dtype=torch.float64).numpy()
    assert np.abs(dense - expected).max() < 1e-9


def test_propagation_matches_the_dense_reference_on_a_larger_grid_with_other_parameters():
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.random((2, 20, 28)))
    boundary = torch.from_numpy(rng.random((20, 28)) ** 4)
    got = propagate(x, boundary, radius=4, beta=6, exp_times=5)
    expected = dense_propagate(x, boundary, radius=4, beta=6, exp_times=5, dtype=torch.float64)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    assert float((got - expected).abs().max()) < 1e-4


def test_the_sparse_transition_averages_each_pixel_over_its_69_in_image_neighbours():
    boundary = torch.from_numpy(np.random.default_rng(5).random((12, 15)))
    m = transition_matrix(boundary)
    checked = torch.sparse_csr_tensor(m.crow_indices(), m.col_indices(), m.values(), m.shape, check_invariants=True)
    dense = checked.to_dense()
    assert torch.allclose(dense.sum(dim=1), torch.ones(12 * 15, dtype=torch.float64))
    per_row = (m.crow_indices()[1:] - m.crow_indices()[:-1]).reshape(12, 15)
    quarter_disc = sum(1 for dy in range(5) for dx in range(5) if dy * dy + dx * dx < 25)
    assert int(per_row[6, 7]) == 69 and int(per_row[0, 0]) == quarter_disc == 22  # a corner sees a quarter
    assert torch.allclose((dense > 0).double(), (dense.T > 0).double())  # symmetric support


def test_propagation_keeps_mass_inside_a_closed_boundary():
    h, w = 24, 30
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (yy - 12) ** 2 + (xx - 14) ** 2 < 6**2
    ring = ndimage.binary_dilation(inside) & ~inside
    boundary = ring.astype(np.float32)
    blob = np.exp(-((yy - 12) ** 2 + (xx - 14) ** 2) / 8.0).astype(np.float32)[None] * inside
    out = propagate(blob, boundary)
    assert out[0][~inside].max() == 0.0  # nothing leaks through the ring
    assert out[0][inside].min() > 0.5 * out[0][inside].max()  # but it spreads over the whole inside
    leaky = boundary.copy()
    leaky[12, 14 + 6] = 0.0  # one gap in the ring
    assert propagate(blob, leaky)[0][~inside & ~ring].max() > 0


def test_propagation_keeps_the_input_kind_and_device():
    x = torch.rand(2, 8, 9, generator=torch.Generator().manual_seed(0))
    out = propagate(x, torch.zeros(8, 9))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (2, 8, 9)
    assert isinstance(propagate(x.numpy(), np.zeros((8, 9))), np.ndarray)


@pytest.mark.parametrize(
    ("x", "boundary", "message"),
    [
        (np.zeros((1, 8, 9)), np.zeros((8, 10)), r"boundary map is \(8, 10\)"),
        (np.zeros((8, 9)), np.zeros((8, 9)), r"x must be \(C, h, w\)"),
        (np.full((1, 8, 9), np.nan), np.zeros((8, 9)), "NaN"),
        (np.zeros((1, 8, 9)), np.full((8, 9), np.inf), "NaN or infinity"),
        (np.zeros((1, 8, 9)), np.full((8, 9), 1.5), r"must lie in \[0, 1\]"),
        (np.zeros((1, 8, 9)), np.full((8, 9), -0.1), r"must lie in \[0, 1\]"),
    ],
)
def test_propagation_refuses_bad_input_with_a_one_line_value_error(x, boundary, message):
    with pytest.raises(InputError, match=message) as err:
        propagate(x, boundary)
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


# ---------------------------------------------------------------- centroids and instance map


def _two_blobs(h: int = 24, w: int = 32):
    yy, xx = np.mgrid[0:h, 0:w]
    left = (yy >= 6) & (yy < 18) & (xx >= 4) & (xx < 16)
    right = (yy >= 6) & (yy < 18) & (xx >= 16) & (xx < 28)  # touches ``left``
    return yy, xx, left, right


def _field_to(centres, masks, shape) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    disp = np.zeros((2, *shape), np.float32)
    for (cy, cx), m in zip(centres, masks, strict=True):
        disp[0][m] = (cy - yy)[m]
        disp[1][m] = (cx - xx)[m]
    return disp


def test_centroids_of_a_field_pointing_to_two_centres_form_two_clusters():
    yy, xx, left, right = _two_blobs()
    disp = _field_to([(11.5, 9.5), (12.0, 22.0)], [left, right], left.shape)
    centroids = find_centroids(disp)
    assert centroids.dtype == np.int64
    assert set(map(tuple, centroids[:, left].T.tolist())) == {(12, 10)}  # 11.5 and 9.5 round half to even
    assert set(map(tuple, centroids[:, right].T.tolist())) == {(12, 22)}
    groups = cluster_centroids(centroids, disp)
    assert groups.dtype == bool and (groups.sum(0) == 1).all()
    owners = {tuple(np.flatnonzero(groups[:, y, x])) for y, x in zip(*np.nonzero(left | right), strict=True)}
    assert len(owners) == 2
    assert len({int(np.argmax(groups[:, y, x])) for y, x in zip(*np.nonzero(left), strict=True)}) == 1
    background = ~(left | right)
    assert not (groups[:, background] & groups[:, left][:, :1]).any()  # background is its own group


def test_centroids_stay_inside_the_grid_when_the_field_points_outside():
    disp = np.full((2, 6, 7), 50.0, np.float32)
    centroids = find_centroids(torch.from_numpy(disp), iterations=10)
    assert isinstance(centroids, torch.Tensor)
    assert int(centroids[0].max()) == 5 and int(centroids[1].max()) == 6


# ---------------------------------------------------------------- pseudo-labels


def _touching_scene():
    yy, xx, left, right = _two_blobs()
    cams = np.zeros((1, *left.shape), np.float32)
    cams[0][left | right] = 1.0
    union = left | right
    boundary = (ndimage.binary_dilation(union) & ~union).astype(np.float32)  # no boundary between the two
    return cams, boundary, left, right


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_instance_labels_separate_two_touching_blobs_when_the_displacement_says_two_instances():
    cams, boundary, left, right = _touching_scene()
    two = _field_to([(11.5, 9.5), (11.5, 21.5)], [left, right], left.shape)
    found = instance_pseudo_labels(cams, [7], boundary, two, (96, 128))
    assert [f.key for f in found] == [7, 7]
    assert all(f.score == pytest.approx(1.0) for f in found)
    big = lambda m: np.kron(m, np.ones((4, 4), bool))  # noqa: E731  (grid → image)
    ious = sorted(max(_iou(f.mask, big(m)) for f in found) for m in (left, right))
    assert ious[0] > 0.9
    one = _field_to([(11.5, 15.5)], [left | right], left.shape)
    merged = instance_pseudo_labels(cams, [7], boundary, one, (96, 128))
    assert len(merged) == 1 and _iou(merged[0].mask, big(left | right)) > 0.9


def test_class_normalisation_keeps_a_tagged_class_that_the_frames_maximum_drops():
    # two separate objects of two tagged classes; the second class's CAM peaks at half the first's
    cams, boundary, left, right = _touching_scene()
    boundary[:, 15] = 1.0  # a wall between them: each class's map stays on its object
    two_classes = np.stack([cams[0] * left, 0.5 * cams[0] * right])
    disp = _field_to([(11.5, 9.5), (11.5, 21.5)], [left, right], left.shape)
    by_frame = instance_pseudo_labels(two_classes, [3, 5], boundary, disp, (96, 128), bg_threshold=0.85)
    by_class = instance_pseudo_labels(
        two_classes, [3, 5], boundary, disp, (96, 128), bg_threshold=0.85, instance_norm="class"
    )
    assert [f.key for f in by_frame] == [3]  # IRN's frame maximum: the weaker class is all background
    assert sorted(f.key for f in by_class) == [3, 5]  # the tags say class 5 is there: it keeps its object
    big = lambda m: np.kron(m, np.ones((4, 4), bool))  # noqa: E731  (grid → image)
    weak = next(f for f in by_class if f.key == 5)
    assert _iou(weak.mask, big(right)) > 0.5 and weak.score == pytest.approx(0.5, abs=0.05)  # frame-normalised
    with pytest.raises(ValueError, match="instance_norm"):
        instance_pseudo_labels(two_classes, [3, 5], boundary, disp, (96, 128), instance_norm="video")


def test_instance_labels_drop_fragments_unless_asked_to_keep_them_with_score_zero():
    cams, boundary, left, right = _touching_scene()
    cams[0, 2, 2] = 1.0  # a lone activated cell walled in by the boundary: under 1% of the image once upsampled
    boundary[1:4, 1:4] = 1.0
    boundary[2, 2] = 0.0
    disp = _field_to([(11.5, 15.5)], [left | right], left.shape)
    big_enough = instance_pseudo_labels(cams, [2], boundary, disp, (96, 128))
    kept = instance_pseudo_labels(cams, [2], boundary, disp, (96, 128), keep_fragments=True)
    fragments = [f for f in kept if f.score == 0.0]
    assert len(fragments) == len(kept) - len(big_enough) >= 1
    assert all(f.mask.sum() < 0.01 * 96 * 128 for f in fragments)


def test_instance_masks_come_back_as_tensors_for_tensor_input():
    cams, boundary, left, right = _touching_scene()
    disp = _field_to([(11.5, 15.5)], [left | right], left.shape)
    found = instance_pseudo_labels(torch.from_numpy(cams), [1], torch.from_numpy(boundary), disp, (93, 126))
    assert isinstance(found[0].mask, torch.Tensor) and found[0].mask.dtype == torch.bool
    assert tuple(found[0].mask.shape) == (93, 126)


def test_semantic_labels_are_key_plus_one_on_objects_and_zero_elsewhere():
    cams, boundary, left, right = _touching_scene()
    cams = np.concatenate([cams * left, cams * right]).astype(np.float32)
    labels = semantic_pseudo_labels(cams, [4, 9], boundary, (96, 128))
    assert labels.shape == (96, 128) and labels.dtype == np.int32
    assert set(np.unique(labels).tolist()) == {0, 5, 10}
    grid = labels[::4, ::4]
    assert (grid[left] == 5).mean() > 0.9 and (grid[right] == 10).mean() > 0.9
    assert (grid[~(left | right)] == 0).mean() > 0.9


def test_a_frame_without_tags_gives_no_instances_and_an_all_background_map():
    boundary = np.zeros((6, 8), np.float32)
    empty = np.zeros((0, 6, 8), np.float32)
    disp = np.zeros((2, 6, 8), np.float32)
    assert instance_pseudo_labels(empty, [], boundary, disp, (24, 32)) == []
    labels = semantic_pseudo_labels(empty, [], boundary, (24, 32))
    assert labels.shape == (24, 32) and not labels.any()


def test_all_zero_cams_give_no_instances_instead_of_dividing_by_zero():
    cams = np.zeros((2, 6, 8), np.float32)
    boundary = np.zeros((6, 8), np.float32)
    assert instance_pseudo_labels(cams, [1, 2], boundary, np.zeros((2, 6, 8), np.float32), (24, 32)) == []
    assert not semantic_pseudo_labels(cams, [1, 2], boundary, (24, 32)).any()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"boundary": np.zeros((6, 9), np.float32)}, r"boundary map is \(6, 9\)"),
        ({"displacement": np.zeros((2, 5, 8), np.float32)}, r"displacement must be \(2, 6, 8\)"),
        ({"cams": np.full((1, 6, 8), np.nan, np.float32)}, "cams contains NaN"),
        ({"displacement": np.full((2, 6, 8), np.nan, np.float32)}, "displacement contains NaN"),
        ({"boundary": np.full((6, 8), 2.0, np.float32)}, r"\[0, 1\]"),
        ({"keys": [1, 2]}, "2 keys for 1 CAM rows"),
        ({"image_size": (40, 32)}, "a 40x32 image has a 10x8 stride-4 grid"),
    ],
)
def test_pseudo_labels_refuse_bad_input_with_a_one_line_value_error(change, message):
    args = {
        "cams": np.ones((1, 6, 8), np.float32),
        "keys": [3],
        "boundary": np.zeros((6, 8), np.float32),
        "displacement": np.zeros((2, 6, 8), np.float32),
        "image_size": (24, 32),
    } | change
    with pytest.raises(ValueError, match=message) as err:
        instance_pseudo_labels(**args)
    assert "\n" not in str(err.value)
    if "displacement" not in change:
        sem_args = {k: v for k, v in args.items() if k != "displacement"}
        with pytest.raises(ValueError, match=message):
            semantic_pseudo_labels(**sem_args)
