"""Optical flow speed and accuracy per method at 240x320.

For each method (dis, farneback, tvl1, raft): frames/s of one flow field
(one direction), pairs/s of what ``vis-ws flow`` stores per pair (forward +
backward flow + occlusion check), and the end-point error on a synthetic
textured frame pair with a known sub-pixel translation. RAFT-small runs from
random init unless ``--raft-weights`` names a local file, so its EPE only
says what an untrained network gives.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_flow.py [--raft-weights RUN/checkpoint.pt]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spin-waiting threads slow a shared CPU

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

SHIFT = (2.3, -1.6)
REPEATS = {"dis": 20, "farneback": 10, "tvl1": 3, "raft": 3}


def textured_pair(h: int, w: int, shift: tuple[float, float], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two uint8 RGB frames with frame1(x + shift) = frame0(x)."""
    margin = 16
    rng = np.random.default_rng(seed)
    tex = ndimage.gaussian_filter(rng.random((h + 2 * margin, w + 2 * margin, 3)), (2.0, 2.0, 0))
    tex = ((tex - tex.min()) / (tex.max() - tex.min()) * 255).astype(np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for ox, oy in ((0.0, 0.0), shift):
        frame = cv2.remap(tex, xs + margin - ox, ys + margin - oy, cv2.INTER_CUBIC)
        frames.append(np.clip(frame + 0.5, 0, 255).astype(np.uint8))
    return frames[0], frames[1]


def seconds_per_call(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--raft-weights", default=None, help="local RAFT-small weights or train-flow checkpoint")
    ap.add_argument("--methods", nargs="+", default=["dis", "farneback", "tvl1", "raft"])
    args = ap.parse_args()

    import torch

    from training.flow import estimate_flow, forward_backward_flow, occlusion_mask
    from training.flow.raft import load_raft

    frame0, frame1 = textured_pair(args.height, args.width, SHIFT)
    model = load_raft(args.raft_weights) if "raft" in args.methods else None
    border = 16
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads); "
        f"{args.width}x{args.height}, synthetic translation dx={SHIFT[0]}, dy={SHIFT[1]}"
    )
    print()
    print("| method | flow frames/s | stored pairs/s (fw + bw + occlusion) | EPE (px) |")
    print("|---|---:|---:|---:|")
    for method in args.methods:
        kw = {"model": model} if method == "raft" else {}
        one = seconds_per_call(lambda m=method, kw=kw: estimate_flow(frame0, frame1, m, **kw), REPEATS[method])

        def stored_pair(m: str = method, kw: dict = kw) -> None:
            forward, backward = forward_backward_flow(frame0, frame1, m, **kw)
            occlusion_mask(forward, backward)

        pair = seconds_per_call(stored_pair, max(REPEATS[method] // 2, 1))
        flow = estimate_flow(frame0, frame1, method, **kw)
        epe = np.hypot(flow[..., 0] - SHIFT[0], flow[..., 1] - SHIFT[1])[border:-border, border:-border].mean()
        name = method if method != "raft" else f"raft ({'weights' if args.raft_weights else 'random init'})"
        print(f"| {name} | {1 / one:.1f} | {1 / pair:.1f} | {epe:.3f} |", flush=True)


if __name__ == "__main__":
    main()
