"""A long video opens and goes through the Flow and CAM stages in flat memory (benchmarks/bench_long_video.py, small).

600 frames of 240x320: the frames take 132 MiB, their flow on disk 439 MiB,
the CAMs and f-CAMs of 40 frames 50 MiB in float32. Each stage runs in a fresh
process that samples its resident memory; from a quarter of the frames to the
last one the peak may grow by a few MiB, not by what holding frames or
outputs in memory would take.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

pytestmark = pytest.mark.slow

BENCH = REPO / "benchmarks" / "bench_long_video.py"
T, H, W, CAM_FRAMES = 600, 240, 320, 40
FLOW_MIB = (T - 1) * H * W * 5 * 2 / 2**20  # the float16 flow file
MAX_GROWTH_MIB = {"open": 24.0, "flow": 24.0, "cams": 16.0}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("long-video")
    args = ["--frames", T, "--height", H, "--width", W, "--every", 10, "--cam-frames", CAM_FRAMES]
    args += ["--json", tmp / "memory.json", "--keep", tmp / "data"]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    subprocess.run([sys.executable, BENCH, *map(str, args)], check=True, timeout=600, env=env, cwd=REPO)
    return {"data": tmp / "data", **json.loads((tmp / "memory.json").read_text())}


def _growth(samples: list[dict], total: int) -> float:
    """Peak RSS growth (MiB) from the sample at a quarter of ``total`` frames to the last frame's."""
    frames = [s for s in samples if "note" not in s]
    quarter = next(s for s in frames if s["done"] >= total // 4)
    assert frames[-1]["done"] == total and quarter["done"] < total
    return frames[-1]["peak"] - quarter["peak"]


@pytest.mark.parametrize(("stage", "total"), [("open", T), ("flow", T - 1), ("cams", CAM_FRAMES)])
def test_peak_memory_does_not_grow_with_the_frames_of_a_long_video(run, stage, total):
    growth = _growth(run[stage]["samples"], total)
    assert growth < MAX_GROWTH_MIB[stage], f"{stage}: peak RSS grew {growth:.0f} MiB over the last 3/4 of the frames"


def test_the_long_video_flow_and_cams_are_on_disk(run):
    flow = np.load(run["data"] / "project/flow/long.flow.npy", mmap_mode="r")
    assert flow.shape == (T - 1, H, W, 5) and abs(run["disk_mib"]["flow"] - FLOW_MIB) < 1
    assert np.abs(np.asarray(flow[T // 2, ..., 0:2], np.float32)).max() > 0.5  # the camera pans 1 px per frame
    cams = sorted(p.name for p in (run["data"] / "project/cams/long").glob("*.npz"))
    assert cams == [f"{t:05d}.npz" for t in range(CAM_FRAMES)]
