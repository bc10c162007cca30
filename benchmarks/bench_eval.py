"""Speed of ``evaluate_ytvis`` on a synthetic set of ground truth and noisy results.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_eval.py [--videos 40 --frames 36]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from training.evaluation import evaluate_frames, evaluate_ytvis
from training.export import LabelVolume, labels_to_ytvis


def make_set(n_videos: int, n_frames: int, h: int, w: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """Ground truth with moving boxes, results = jittered copies plus false positives."""
    rng = np.random.default_rng(seed)
    videos, anns, results = [], [], []
    for v in range(1, n_videos + 1):
        gt = np.zeros((n_frames, h, w), np.int32)
        dt = np.zeros((n_frames, h, w), np.int32)
        cats, scores = {}, {}
        for k in range(1, 6):
            y, x = rng.integers(0, h - 80), rng.integers(0, w - 80)
            sy, sx = rng.integers(20, 80, 2)
            vy, vx = rng.integers(-2, 3, 2)
            for t in range(n_frames):
                yy, xx = np.clip(y + vy * t, 0, h - sy), np.clip(x + vx * t, 0, w - sx)
                gt[t, yy : yy + sy, xx : xx + sx] = k
                j = rng.integers(-4, 5, 2)
                dt[t, max(yy + j[0], 0) : yy + sy + j[0], max(xx + j[1], 0) : xx + sx + j[1]] = k
            cats[k] = int(rng.integers(1, 5))
            scores[k] = float(rng.random())
        video = {"id": v, "file_names": [f"v{v}/{t:05d}.jpg" for t in range(n_frames)]}
        g = LabelVolume(gt, cats, video=video)
        videos.append(g.video)
        anns.extend(labels_to_ytvis(g, "gt", first_id=len(anns) + 1))
        results.extend(labels_to_ytvis(LabelVolume(dt, cats, scores, video), "results"))
    gt_data = {"videos": videos, "categories": [{"id": c, "name": str(c)} for c in range(1, 5)], "annotations": anns}
    return gt_data, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--frames", type=int, default=36)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--width", type=int, default=640)
    args = ap.parse_args()
    gt, res = make_set(args.videos, args.frames, args.height, args.width)
    t0 = time.perf_counter()
    stats = evaluate_ytvis(gt, res)
    t_video = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluate_frames(gt, res)
    t_frame = time.perf_counter() - t0
    print(f"{args.videos} videos x {args.frames} frames at {args.width}x{args.height}, {len(res)} result tubes")
    print(f"video AP: {t_video:.2f} s (AP {stats['AP']:.3f}); frame-level AP: {t_frame:.2f} s")


if __name__ == "__main__":
    main()
