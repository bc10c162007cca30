"""f-CAM (METHOD.md §3): CAM x A where the flow moves against the camera, renormalised."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.cam import fcam


def _cams(rng, k=2, h=16, w=20):
    c = rng.random((k, h, w)).astype(np.float32)
    return c / c.reshape(k, -1).max(1)[:, None, None]


def _expected(cams, moving, a):
    out = cams * np.where(moving, a, 1.0)[None]
    return out / out.reshape(len(out), -1).max(1)[:, None, None]


def test_amplifies_exactly_the_moving_region_before_renormalising(rng):
    cams = _cams(rng)
    flow = np.zeros((16, 20, 2), np.float32)
    flow[4:9, 6:12] = (5.0, 0.0)
    moving = np.zeros((16, 20), bool)
    moving[4:9, 6:12] = True
    out = fcam(cams, flow, amplification=3.0, threshold=1.0)
    np.testing.assert_allclose(out, _expected(cams, moving, 3.0), rtol=1e-6)
    assert np.allclose(out.reshape(2, -1).max(1), 1.0)


def test_camera_pan_alone_amplifies_nothing(rng):
    cams = _cams(rng)
    flow = np.broadcast_to(np.float32([3.0, -2.0]), (16, 20, 2)).copy()
    np.testing.assert_allclose(fcam(cams, flow, 2.0, 1.0), cams, rtol=1e-6)


def test_an_object_moving_with_a_panning_camera_is_amplified_relative_to_it(rng):
    cams = _cams(rng)
    flow = np.broadcast_to(np.float32([3.0, 0.0]), (16, 20, 2)).copy()
    flow[2:6, 2:6] = (3.5, 0.0)  # 0.5 px against the camera: below T
    flow[10:14, 10:16] = (6.0, 1.0)  # 3.2 px against the camera: above T
    moving = np.zeros((16, 20), bool)
    moving[10:14, 10:16] = True
    np.testing.assert_allclose(fcam(cams, flow, 2.0, 1.0), _expected(cams, moving, 2.0), rtol=1e-6)


def test_flow_at_another_resolution_than_the_cams(rng):
    cams = _cams(rng)  # the stride-4 grid of a 64x80 frame
    flow = np.zeros((64, 80, 2), np.float32)
    flow[16:36, 24:48] = (0.0, 4.0)
    moving = np.zeros((16, 20), bool)
    moving[4:9, 6:12] = True
    np.testing.assert_allclose(fcam(cams, flow, 2.0, 1.0), _expected(cams, moving, 2.0), rtol=1e-6)


def test_flow_coarser_than_the_cams_is_enlarged(rng):
    cams = _cams(rng)
    flow = np.zeros((8, 10, 2), np.float32)
    flow[2:4, 3:6] = (4.0, 0.0)
    moving = np.zeros((16, 20), bool)
    moving[4:8, 6:12] = True
    np.testing.assert_allclose(fcam(cams, flow, 2.0, 1.0), _expected(cams, moving, 2.0), rtol=1e-6)


def test_numpy_in_numpy_out_and_torch_in_torch_out(rng):
    cams = _cams(rng)
    flow = np.zeros((16, 20, 2), np.float32)
    flow[:5, :5] = 2.0
    out16 = fcam(cams.astype(np.float16), flow)
    assert isinstance(out16, np.ndarray) and out16.dtype == np.float16
    t = fcam(torch.from_numpy(cams), torch.from_numpy(flow))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.shape == (2, 16, 20)
    np.testing.assert_allclose(t.numpy(), fcam(cams, flow), rtol=1e-6)


def test_all_zero_maps_and_no_classes_stay_as_they_are(rng):
    flow = np.ones((16, 20, 2), np.float32)
    assert fcam(np.zeros((0, 16, 20), np.float32), flow).shape == (0, 16, 20)
    assert not fcam(np.zeros((1, 16, 20), np.float32), flow).any()


@pytest.mark.parametrize(
    "cams,flow,match",
    [
        (np.full((1, 4, 4), np.nan, np.float32), np.zeros((4, 4, 2), np.float32), "cams contain NaN"),
        (np.ones((1, 4, 4), np.float32), np.full((4, 4, 2), np.nan, np.float32), "flow contains NaN"),
        (np.ones((4, 4), np.float32), np.zeros((4, 4, 2), np.float32), r"cams must be \(K, h, w\)"),
        (np.ones((1, 4, 4), np.float32), np.zeros((4, 4, 3), np.float32), r"flow must be \(H, W, 2\)"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(cams, flow, match):
    with pytest.raises(ValueError, match=match):
        fcam(cams, flow)


def test_amplification_below_one_is_refused():
    with pytest.raises(ValueError, match="amplification A must be >= 1"):
        fcam(np.ones((1, 4, 4), np.float32), np.zeros((4, 4, 2), np.float32), amplification=0.5)
