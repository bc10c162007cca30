"""Optical flow between two frames: OpenCV DIS (default), Farneback, TV-L1, or a RAFT model.

Every method returns the flow in one convention: (H, W, 2) float32 (dx, dy)
with ``frame1[y + dy, x + dx] ≈ frame0[y, x]``, so
``warp(frame1, estimate_flow(frame0, frame1)) ≈ frame0``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from training.data.video import to_rgb

METHODS = ("dis", "farneback", "tvl1", "raft")
# DIS refuses frames under 12 px; RAFT pads small frames itself, but flow on a few pixels is meaningless anyway
MIN_SIZE = 16

# The parameters of each classical method, recorded with every computed flow (METHOD.md §1 measured these)
DIS_PRESET = "medium"
FARNEBACK_PARAMS: dict[str, Any] = {
    "pyr_scale": 0.5,
    "levels": 5,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
}
TVL1_PARAMS: dict[str, Any] = {"attachment": 15.0, "tightness": 0.3, "num_warp": 5, "num_iter": 10}


def method_config(method: str) -> dict[str, Any]:
    """The parameters that determine ``method``'s output (saved beside the flow).

    For ``"raft"`` the weights matter too; :func:`training.flow.raft.raft_config` adds them.
    """
    check_method(method)
    if method == "dis":
        return {"preset": DIS_PRESET}
    if method == "farneback":
        return dict(FARNEBACK_PARAMS)
    if method == "tvl1":
        return dict(TVL1_PARAMS)
    return {}


def check_method(method: str) -> None:
    """Raise ValueError unless ``method`` is one of :data:`METHODS`."""
    if method not in METHODS:
        raise ValueError(f"unknown flow method {method!r}: expected one of {', '.join(METHODS)}")


def check_frames(frame0: np.ndarray, frame1: np.ndarray) -> None:
    """Raise ValueError unless the two frames are (H, W) or (H, W, 3) of one shape, at least 16x16.

    Parameters
    ----------
    frame0, frame1 : array
    """
    a, b = np.shape(frame0), np.shape(frame1)
    if a != b:
        raise ValueError(f"frames must have the same shape, got {a} and {b}")
    if not (len(a) == 2 or (len(a) == 3 and a[2] == 3)):
        raise ValueError(f"expected (H, W) grayscale or (H, W, 3) RGB frames, got shape {a}")
    if min(a[:2]) < MIN_SIZE:
        raise ValueError(f"frames of {a[1]}x{a[0]} are too small for optical flow (at least {MIN_SIZE}x{MIN_SIZE})")


def to_gray(frame: np.ndarray) -> np.ndarray:
    """A frame as (H, W) uint8 luma.

    Parameters
    ----------
    frame : (H, W) or (H, W, 3) array
        uint8; other dtypes are converted like the frame readers do (floats
        taken in [0, 1], wider integers scaled by their range).
    """
    f = np.asarray(frame)
    if f.ndim == 2 and f.dtype == np.uint8:
        return np.ascontiguousarray(f)
    return cv2.cvtColor(to_rgb(f), cv2.COLOR_RGB2GRAY)


def estimate_flow(frame0: np.ndarray, frame1: np.ndarray, method: str = "dis", model: Any = None) -> np.ndarray:
    """Optical flow from ``frame0`` to ``frame1``.

    Parameters
    ----------
    frame0, frame1 : (H, W, 3) uint8 RGB or (H, W) grayscale
        Two frames of one shape, at least 16x16.
    method : {"dis", "farneback", "tvl1", "raft"}
        ``dis``: OpenCV DIS, preset MEDIUM, on grayscale (fast, the default);
        ``farneback``: OpenCV polynomial expansion; ``tvl1``: scikit-image
        TV-L1 (accurate, slow); ``raft``: a RAFT network, given as ``model``.
    model : torchvision RAFT, optional
        Required for ``method="raft"`` (see :func:`training.flow.raft.load_raft`).

    Returns
    -------
    flow : (H, W, 2) float32
        (dx, dy) with ``frame1[y + dy, x + dx] ≈ frame0[y, x]``.

    Raises
    ------
    ValueError
        Frames of different shapes, not 2-D or 3-channel, too small; an
        unknown method; ``raft`` without a model.
    """
    check_method(method)
    check_frames(frame0, frame1)
    if method == "raft":
        if model is None:
            raise ValueError("method 'raft' needs a model (training.flow.raft.load_raft)")
        from training.flow.raft import raft_flow

        return raft_flow(model, frame0, frame1)
    g0, g1 = to_gray(frame0), to_gray(frame1)
    if method == "dis":
        dis = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_MEDIUM)
        # None, not a buffer: DIS would take a buffer of the right size as its initial flow
        flow = dis.calc(g0, g1, None)  # type: ignore[call-overload]
    elif method == "farneback":
        p = FARNEBACK_PARAMS
        # the output buffer is filled, not read (no OPTFLOW_USE_INITIAL_FLOW flag)
        out = np.empty((*g0.shape, 2), np.float32)
        flow = cv2.calcOpticalFlowFarneback(
            g0, g1, out, p["pyr_scale"], p["levels"], p["winsize"], p["iterations"], p["poly_n"], p["poly_sigma"], 0
        )
    else:
        from skimage.registration import optical_flow_tvl1

        # scikit-image returns (row, col) = (dy, dx) displacements with moving(r + v, c + u) ≈ reference(r, c)
        v, u = optical_flow_tvl1(g0.astype(np.float32) / 255.0, g1.astype(np.float32) / 255.0, **TVL1_PARAMS)
        flow = np.stack([u, v], axis=-1)
    return np.ascontiguousarray(flow, dtype=np.float32)


def forward_backward_flow(
    frame0: np.ndarray, frame1: np.ndarray, method: str = "dis", model: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Forward (0 → 1) and backward (1 → 0) flow of a frame pair.

    Same parameters as :func:`estimate_flow`; RAFT runs both directions in one batch.

    Returns
    -------
    forward, backward : (H, W, 2) float32
    """
    if method == "raft" and model is not None:
        from training.flow.raft import raft_flows

        check_frames(frame0, frame1)
        flows = raft_flows(model, np.stack([frame0, frame1]), np.stack([frame1, frame0]))
        return flows[0], flows[1]
    return estimate_flow(frame0, frame1, method, model), estimate_flow(frame1, frame0, method, model)
