"""How fast a long video opens, and whether memory stays flat while frames are read.

Writes a synthetic H.264 video (default 10 minutes at 25 fps, 240x320) to a
temp folder, then measures: time to open (packet scan), time to the first
frame, random-access latency, sequential decode rate, and peak RSS growth.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/bench_video_reader.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_video(path: Path, n_frames: int, h: int, w: int, fps: int = 25) -> None:
    import av

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h, w * 2, 3), dtype=np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "g": "50"}
        for i in range(n_frames):
            x = (i * 3) % w
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, x : x + w]), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--width", type=int, default=320)
    args = ap.parse_args()
    from training.data.video import open_frames

    n = int(args.minutes * 60 * 25)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "long.mp4"
        t0 = time.perf_counter()
        write_video(path, n, args.height, args.width)
        print(f"wrote {n} frames ({path.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - t0:.1f} s")
        rss0 = peak_rss_mib()
        t0 = time.perf_counter()
        reader = open_frames(path)
        t_open = time.perf_counter() - t0
        arr = reader.to_dask()
        t0 = time.perf_counter()
        arr[0].compute()
        t_first = time.perf_counter() - t0
        rng = np.random.default_rng(1)
        idx = rng.integers(0, n, 20)
        t0 = time.perf_counter()
        for i in idx:
            reader.read(int(i))
        t_random = (time.perf_counter() - t0) / len(idx)
        m = min(n, 2000)
        t0 = time.perf_counter()
        for i in range(m):
            reader.read(i)
        fps = m / (time.perf_counter() - t0)
        print(f"frames: {len(reader)} of {reader.frame_shape[1]}x{reader.frame_shape[0]}")
        print(f"open (packet scan): {t_open * 1000:.0f} ms; first frame via dask: {t_first * 1000:.0f} ms")
        print(f"random access: {t_random * 1000:.0f} ms/frame; sequential: {fps:.0f} frames/s over {m} frames")
        print(
            f"peak RSS growth while reading: {peak_rss_mib() - rss0:.0f} MiB "
            f"(all frames in memory would be {n * reader.frame_shape[0] * reader.frame_shape[1] * 3 / 2**20:.0f} MiB)"
        )


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
