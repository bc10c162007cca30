"""Torch models run inside napari's process (a real viewer, OpenGL under Xvfb)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.gui

SCRIPT = """
import napari
viewer = napari.Viewer(show=False)   # OpenGL (Mesa's LLVM under Xvfb) is loaded first
import napari_vis_ws                 # as when napari opens the plugin
import torch, torchvision
from training.cam.network import CAMNet
print(tuple(CAMNet(2, "resnet18")(torch.zeros(1, 3, 32, 32)).shape))
viewer.close()
"""


def test_a_torchvision_model_runs_after_the_viewer_is_open():
    # in a subprocess: without the plugin's guard, importing triton here is a segmentation fault
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "(1, 2)"
