"""CAM inference (IRN's make_cam): grid and full-size maps of the tagged classes, max 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.cam.infer import make_cams
from training.cam.network import CAMNet


@pytest.fixture(scope="module")
def model() -> CAMNet:
    torch.manual_seed(0)
    m = CAMNet(4, "resnet18").eval()
    with torch.no_grad():
        m.classifier.weight.abs_()  # positive weights: every class has a non-zero CAM
    return m


@pytest.fixture
def image(rng) -> np.ndarray:
    return rng.integers(0, 256, (61, 83, 3), dtype=np.uint8)


def test_shapes_are_the_stride_4_grid_and_the_frame(model, image):
    out = make_cams(model, image, [1, 3], scales=(1.0, 0.5))
    assert out["cams"].shape == (2, 16, 21)  # ((61-1)//4+1, (83-1)//4+1)
    assert out["high_res"].shape == (2, 61, 83)
    assert out["cams"].dtype == out["high_res"].dtype == np.float32


def test_only_the_tagged_classes_in_the_given_order(model, image):
    both = make_cams(model, image, [0, 2], scales=(1.0,))
    swapped = make_cams(model, image, [2, 0], scales=(1.0,))
    np.testing.assert_array_equal(swapped["cams"], both["cams"][::-1])
    one = make_cams(model, image, [2], scales=(1.0,))
    np.testing.assert_allclose(one["cams"][0], both["cams"][1], rtol=1e-6)


def test_each_class_map_has_max_one_and_no_negatives(model, image):
    out = make_cams(model, image, [0, 1, 2, 3], scales=(1.0, 0.5))
    for maps in (out["cams"], out["high_res"]):
        assert maps.min() >= 0
        np.testing.assert_allclose(maps.reshape(4, -1).max(1), 1.0, atol=1e-4)
        assert maps.max() < 1.0


def test_no_tagged_class_gives_empty_maps(model, image):
    out = make_cams(model, image, [])
    assert out["cams"].shape == (0, 16, 21) and out["high_res"].shape == (0, 61, 83)


def test_flipping_the_frame_flips_the_cams(model, rng):
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out = make_cams(model, image, [0, 1], scales=(1.0, 0.5))
    mirrored = make_cams(model, np.ascontiguousarray(image[:, ::-1]), [0, 1], scales=(1.0, 0.5))
    np.testing.assert_allclose(mirrored["cams"], out["cams"][..., ::-1], atol=1e-5)
    np.testing.assert_allclose(mirrored["high_res"], out["high_res"][..., ::-1], atol=1e-5)


def test_full_resolution_and_grid_maps_agree(model, rng):
    image = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    out = make_cams(model, image, [0, 1, 2], scales=(1.0, 0.5))
    pooled = out["high_res"].reshape(3, 16, 4, 24, 4).mean((2, 4))
    assert np.abs(pooled - out["cams"]).max() < 0.05


def test_cams_made_at_a_working_scale_come_back_on_the_frames_grid(model, image):
    # a 61x83 frame seen 3x larger by the network (METHOD §9): the maps a user sees still fit the frame
    frame = make_cams(model, image, [0, 1], scales=(1.0,))
    work = make_cams(model, image, [0, 1], scales=(1.0,), working_scale=3.0)
    assert work["cams"].shape == frame["cams"].shape == (2, 16, 21)
    assert work["high_res"].shape == frame["high_res"].shape == (2, 61, 83)
    assert np.allclose(work["high_res"].reshape(2, -1).max(1), 1, atol=0.05)  # max-normalised at frame size
    assert not np.allclose(work["high_res"], frame["high_res"], atol=0.05)  # the network did see another image


def test_channels_last_weights_give_the_same_cams(model, image):
    """The loaders put models in channels-last layout (1.7x faster CAMs on a CPU): the maps must not change."""
    import copy

    from training.device import fast_layout

    fast = fast_layout(copy.deepcopy(model))
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) for p in fast.parameters())
    ref = make_cams(model, image, [0, 3], scales=(1.0, 0.5))
    out = make_cams(fast, image, [0, 3], scales=(1.0, 0.5))
    for name in ("cams", "high_res"):
        np.testing.assert_allclose(out[name], ref[name], atol=1e-4)
