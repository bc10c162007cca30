"""Building the ``flow vectors`` layer of a long video keeps the flow file's pages out of memory."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from napari_vis_ws import _stage_layers
from napari_vis_ws._stage_layers import FLOW_STEP, flow_vectors
from training.flow import read_video_flow, storage
from training.flow.storage import flow_writer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")

T, H, W = 257, 192, 256  # 256 pairs of 480 KiB: a 120 MiB flow file


def _file_rss_mib() -> float:
    """Pages of mapped files resident in this process (``RssFile``), MiB."""
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("RssFile:"))
    return int(line.split()[1]) / 1024


def _peak_growth(vf, monkeypatch) -> tuple[np.ndarray, float]:
    """flow_vectors(vf) and the most file-backed memory it held, sampled before each unmapping (MiB)."""
    real, peaks = storage.release_pages, []

    def measured(array: np.ndarray) -> None:
        peaks.append(_file_rss_mib())
        real(array)

    monkeypatch.setattr(storage, "release_pages", measured)
    real(vf.data)
    before = _file_rss_mib()
    vectors = flow_vectors(vf)
    return vectors, max(peaks) - before


def test_flow_vectors_of_a_long_flow_file_keep_its_pages_out_of_memory(tmp_path, monkeypatch):
    with flow_writer(tmp_path, "v", T, H, W, {"method": "test"}) as array:
        for t in range(T - 1):
            array[t, ..., 0] = t % 5  # frame t moves t % 5 px right
            array[t, ..., 1:] = 0
    vf = read_video_flow(tmp_path, "v")
    file_mib = vf.data.nbytes / 2**20

    vectors, growth = _peak_growth(vf, monkeypatch)
    n = (H // FLOW_STEP) * (W // FLOW_STEP)
    assert vectors.shape == (T * n, 2, 3)
    assert np.array_equal(vectors[::n, 1, 2][: T - 1], np.arange(T - 1) % 5)  # dx of each frame's first vector
    assert growth < 16, f"{growth:.1f} MiB of the {file_mib:.0f} MiB flow file stayed mapped"

    # what it did before: reading every frame through the map without unmapping
    monkeypatch.setattr(_stage_layers, "RELEASE_EVERY", 10**9)
    _, unreleased = _peak_growth(vf, monkeypatch)
    assert unreleased > 3 * max(growth, 8), (unreleased, growth)
