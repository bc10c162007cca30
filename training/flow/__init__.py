"""Optical flow (METHOD.md §1): estimation, warping, occlusion, colour coding, storage, RAFT training.

Convention everywhere: a flow is (H, W, 2) float32 (dx, dy) with
``frame1[y + dy, x + dx] ≈ frame0[y, x]``, so
``warp(frame1, estimate_flow(frame0, frame1)) ≈ frame0``.
"""

from training.flow.classical import METHODS, estimate_flow, forward_backward_flow
from training.flow.color import flow_to_color
from training.flow.motion import camera_motion, remove_camera_motion
from training.flow.occlusion import occlusion_mask
from training.flow.storage import VideoFlow, read_video_flow
from training.flow.video import compute_flow, compute_video_flow
from training.flow.warp import warp, warp_tensor

__all__ = [
    "METHODS",
    "VideoFlow",
    "camera_motion",
    "compute_flow",
    "compute_video_flow",
    "estimate_flow",
    "flow_to_color",
    "forward_backward_flow",
    "occlusion_mask",
    "read_video_flow",
    "remove_camera_motion",
    "warp",
    "warp_tensor",
]
