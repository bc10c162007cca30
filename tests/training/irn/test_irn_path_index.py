"""IRN's pair enumeration: directions, paths, pair layout and path affinities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.irn.path_index import (
    half_plane_directions,
    pair_affinity,
    pair_difference,
    path_index,
    segment_path,
)


def test_radius_5_has_34_directions_and_radius_10_has_152():
    assert len(path_index(5).directions) == 34
    assert len(path_index(10).directions) == 152


@pytest.mark.parametrize("radius", [2, 5, 10])
def test_directions_and_their_opposites_are_every_offset_inside_the_radius_once(radius):
    dirs = [tuple(d) for d in half_plane_directions(radius).tolist()]
    both = dirs + [(-dy, -dx) for dy, dx in dirs]
    disc = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    disc = [(dy, dx) for dy, dx in disc if 0 < dy * dy + dx * dx < radius * radius]
    assert sorted(both) == sorted(disc)


@pytest.mark.parametrize("radius", [5, 10])
def test_every_path_goes_from_i_to_j_through_adjacent_grid_points_near_the_segment(radius):
    index = path_index(radius)
    for (dy, dx), path in zip(index.directions.tolist(), index.paths, strict=True):
        assert path[0].tolist() == [0, 0] and path[-1].tolist() == [dy, dx]
        steps = np.abs(np.diff(path, axis=0)).max(axis=1)
        assert steps.max() == 1  # consecutive points touch (8-neighbourhood)
        assert len({tuple(p) for p in path.tolist()}) == len(path)
        dist = np.abs(dy * path[:, 1] - dx * path[:, 0]) / np.hypot(dy, dx)
        assert dist.max() < 1
        assert (path.min(0) >= np.minimum(0, [dy, dx])).all() and (path.max(0) <= np.maximum(0, [dy, dx])).all()


def test_a_horizontal_path_is_the_pixels_between_i_and_j():
    assert segment_path((0, 3)).tolist() == [[0, 0], [0, 1], [0, 2], [0, 3]]
    # A diagonal path is thicker: the side neighbours are 1/√2 from the line.
    assert segment_path((2, 2)).tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [1, 2], [2, 1], [2, 2]]


def test_directions_are_ordered_by_path_length_as_irn_groups_them():
    lengths = [len(p) for p in path_index(10).paths]
    assert lengths == sorted(lengths)


def test_pair_indices_cover_the_sources_whose_destinations_all_lie_inside_the_grid():
    index = path_index(5)
    h, w = 12, 15
    src, dst = index.pair_indices((h, w))
    assert src.shape == ((h - 4) * (w - 8),)
    assert dst.shape == (34, src.size)
    assert dst.min() >= 0 and dst.max() < h * w
    sy, sx = np.divmod(src, w)
    for d, (dy, dx) in enumerate(index.directions.tolist()):
        assert (dst[d] == (sy + dy) * w + sx + dx).all()
    assert index.num_pairs((h, w)) == dst.size


def test_pair_affinity_is_one_minus_the_largest_boundary_on_the_path():
    rng = np.random.default_rng(1)
    index = path_index(5)
    h, w = 9, 13
    b = rng.random((h, w))
    aff = pair_affinity(torch.from_numpy(b), index).numpy()
    src, dst = index.pair_indices((h, w))
    for d, path in enumerate(index.paths):
        for p in (0, 7, src.size - 1):
            y, x = divmod(int(src[p]), w)
            expected = 1 - max(b[y + oy, x + ox] for oy, ox in path.tolist())
            assert aff[d, p] == pytest.approx(expected)


def test_pair_affinity_keeps_batch_dimensions_and_is_differentiable():
    index = path_index(5)
    b = torch.zeros(2, 1, 10, 12, requires_grad=True)
    with torch.no_grad():
        b[1, 0, 5, 6] = 0.9
    aff = pair_affinity(b, index)
    assert aff.shape == (2, 1, 34, 6 * 4)
    aff.sum().backward()
    assert b.grad is not None and b.grad[1, 0, 5, 6] < 0  # raising B there lowers the affinities through it
    assert float(aff[0].detach().min()) == 1.0 and float(aff[1].detach().min()) == pytest.approx(0.1)


def test_pair_difference_is_the_value_at_i_minus_the_value_at_j():
    index = path_index(5)
    h, w = 8, 11
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    coords = torch.stack([yy, xx])  # the field of positions: x_i − x_j = −direction
    diff = pair_difference(coords, index)
    expected = -torch.from_numpy(index.directions.T).float()[:, :, None].expand_as(diff)
    assert torch.equal(diff, expected)


def test_a_grid_smaller_than_the_radius_is_refused_with_its_size():
    with pytest.raises(ValueError, match="grid 3x20 is too small for radius 5"):
        pair_affinity(torch.zeros(3, 20), path_index(5))
    with pytest.raises(ValueError, match="radius"):
        path_index(1)
