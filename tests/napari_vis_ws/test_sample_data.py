"""The sample data menu opens the shipped sample, the same one `vis-ws sample` makes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SAMPLE

from napari_vis_ws._sample_data import SAMPLE_CONFIG, ensure_sample
from training.cli import main
from training.synthetic import SyntheticConfig


def test_sample_config_is_the_one_the_committed_sample_was_made_with():
    committed = json.loads((SAMPLE / "config.json").read_text())
    assert SyntheticConfig(**SAMPLE_CONFIG).to_dict() == committed


def test_readme_command_regenerates_the_committed_ground_truth(tmp_path):
    out = tmp_path / "s"
    assert main(["sample", "--out", str(out), "--videos", "2", "--frames", "16", "--seed", "0"]) == 0
    assert (out / "gt.json").read_bytes() == (SAMPLE / "gt.json").read_bytes()
    assert (out / "tags.json").read_bytes() == (SAMPLE / "tags.json").read_bytes()


def test_installed_plugin_without_the_repository_regenerates_the_sample(tmp_path, monkeypatch):
    monkeypatch.setattr("napari_vis_ws._sample_data.sample_root", lambda: tmp_path / "missing")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    gt = ensure_sample()
    assert gt.parent == tmp_path / "cache" / "napari-vis-ws" / "sample_data"
    assert gt.read_bytes() == (SAMPLE / "gt.json").read_bytes()


@pytest.mark.gui
def test_sample_menu_opens_frames_and_ground_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-vis-ws", "sample")
    assert [ly.name for ly in viewer.layers] == ["frames", "ground truth"]
    frames, gt = viewer.layers["frames"], viewer.layers["ground truth"]
    assert frames.data.shape == (16, 240, 320, 3) and gt.data.shape == (16, 240, 320)
    classes = set(gt.features["class"]) - {"background"}
    assert classes and classes <= {"disc", "box", "triangle", "star"}
    assert len(np.unique(gt.data)) - 1 == len(gt.features) - 1  # every instance has a row
