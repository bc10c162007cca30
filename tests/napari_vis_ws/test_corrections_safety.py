"""Corrections survive what the other docks do to the layer: video switches, stage runs, refills.

The Pipeline dock refills the ``pseudo-labels`` layer whenever it shows a
video; the Corrections dock must never take such a refill for an edit, must
show a video's corrected labels whenever it has some, and must not silently
replace saved corrections with fewer edits.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch  # noqa: F401  (torch and torchvision before any viewer: see napari_vis_ws/__init__)
import torchvision  # noqa: F401
from conftest import tiny_project

from napari_vis_ws._widgets.corrections import CorrectionsWidget
from napari_vis_ws._widgets.pipeline import PipelineWidget
from training.export import load_labels
from training.project import load_project_state, video_dir

pytestmark = pytest.mark.gui

T, H, W = 4, 64, 80
KEYS = ("synth_0000", "synth_0001")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """2 videos x 4 frames of 64x80 (tags in data/) through `vis-ws pseudo-labels` into run/ (1-epoch models)."""
    return tiny_project(tmp_path_factory.mktemp("safety"), videos=2, frames=T, height=H, width=W)


@pytest.fixture
def docks(make_napari_viewer, qtbot, project, tmp_path):
    """The Pipeline and Corrections docks on a copy of the project, video 1 shown, autosave every 200 ms."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(project / "run", run)
    viewer = make_napari_viewer()
    pipeline, corrections = PipelineWidget(viewer), CorrectionsWidget(viewer)
    viewer.window.add_dock_widget(pipeline)
    viewer.window.add_dock_widget(corrections)
    corrections.autosave_timer.setInterval(200)
    pipeline.set_tags(project / "data/tags.json")
    pipeline.set_project(run)
    qtbot.waitUntil(lambda: "pseudo-labels" in viewer.layers and pipeline.show_button.isEnabled(), timeout=60000)
    yield viewer, pipeline, corrections, run
    corrections.flush()


def _switch(qtbot, pipeline, index: int) -> None:
    pipeline.video_combo.setCurrentIndex(index)
    qtbot.waitUntil(pipeline.show_button.isEnabled, timeout=60000)
    qtbot.wait(50)  # the Corrections dock rebinds after the layer's data and metadata are both replaced


def _biggest(labels: np.ndarray, t: int) -> int:
    ids, counts = np.unique(labels[t][labels[t] > 0], return_counts=True)
    return int(ids[np.argmax(counts)])


def _delete_in_frame(qtbot, corrections, viewer, t: int) -> tuple[int, np.ndarray]:
    """Delete the biggest instance of frame ``t`` there, wait for the autosave; returns (id, labels after)."""
    layer = viewer.layers["pseudo-labels"]
    k = _biggest(np.asarray(layer.data), t)
    viewer.dims.set_current_step(0, t)
    corrections.this_frame_only.setChecked(True)
    corrections.select_instances([k])
    corrections.buttons["delete"].click()
    after = np.array(layer.data)
    assert not (after[t] == k).any()
    qtbot.waitUntil(lambda: not corrections._dirty and not corrections._saving, timeout=10000)
    return k, after


def test_switching_videos_and_back_keeps_every_correction_on_disk_and_on_screen(docks, qtbot):
    viewer, pipeline, corrections, run = docks
    layer = viewer.layers["pseudo-labels"]
    assert corrections.project() == run
    _, corrected = _delete_in_frame(qtbot, corrections, viewer, t=2)
    np.testing.assert_array_equal(load_labels(video_dir(run, KEYS[0]) / "labels.npz").labels, corrected)

    _switch(qtbot, pipeline, 1)
    assert layer.metadata["vis_ws"]["video_key"] == KEYS[1]
    qtbot.wait(600)  # several autosave ticks
    assert not (video_dir(run, KEYS[1]) / "labels.npz").exists()  # showing a video is not an edit of it
    np.testing.assert_array_equal(load_labels(video_dir(run, KEYS[0]) / "labels.npz").labels, corrected)

    _switch(qtbot, pipeline, 0)
    np.testing.assert_array_equal(layer.data, corrected)  # the dock shows the corrected labels
    qtbot.wait(600)
    np.testing.assert_array_equal(load_labels(video_dir(run, KEYS[0]) / "labels.npz").labels, corrected)
    assert corrections.project() == run and not corrections._dirty


def test_an_edit_made_just_before_a_switch_is_saved_to_its_own_video(docks, qtbot):
    viewer, pipeline, corrections, run = docks
    corrections.autosave_timer.setInterval(60_000)  # the edit is still pending when the video changes
    layer = viewer.layers["pseudo-labels"]
    viewer.dims.set_current_step(0, 1)
    k = _biggest(np.asarray(layer.data), 1)
    corrections.this_frame_only.setChecked(True)
    corrections.select_instances([k])
    corrections.buttons["delete"].click()
    corrected = np.array(layer.data)
    assert corrections._dirty
    _switch(qtbot, pipeline, 1)
    qtbot.waitUntil(lambda: (video_dir(run, KEYS[0]) / "labels.npz").is_file(), timeout=10000)
    np.testing.assert_array_equal(load_labels(video_dir(run, KEYS[0]) / "labels.npz").labels, corrected)
    assert not (video_dir(run, KEYS[1]) / "labels.npz").exists()


def test_rerunning_pseudo_labels_does_not_overwrite_the_videos_corrections(docks, qtbot):
    viewer, pipeline, corrections, run = docks
    _, corrected = _delete_in_frame(qtbot, corrections, viewer, t=0)
    row = pipeline.stages["pseudo-labels"]
    row.run_button.click()  # the stage skips the stored video and shows it again: a refill of the layer
    qtbot.waitUntil(row.run_button.isEnabled, timeout=120000)
    qtbot.wait(600)
    np.testing.assert_array_equal(viewer.layers["pseudo-labels"].data, corrected)
    np.testing.assert_array_equal(load_labels(video_dir(run, KEYS[0]) / "labels.npz").labels, corrected)


def test_a_save_with_fewer_edits_than_on_disk_keeps_the_previous_one_as_a_backup(docks, qtbot):
    viewer, pipeline, corrections, run = docks
    layer = viewer.layers["pseudo-labels"]
    _, corrected = _delete_in_frame(qtbot, corrections, viewer, t=3)
    layer.undo()  # fewer edits than the save on disk: allowed, but never silently
    qtbot.waitUntil(lambda: not corrections._dirty and not corrections._saving, timeout=10000)
    qtbot.waitUntil(lambda: "backup" in corrections.save_status.text(), timeout=10000)
    state = load_project_state(run, KEYS[0])
    np.testing.assert_array_equal(state.volume.labels, state.pseudo.labels)  # the undo was saved
    backups = sorted((video_dir(run, KEYS[0]) / "backups").iterdir())
    assert len(backups) == 1
    np.testing.assert_array_equal(load_labels(backups[0] / "labels.npz").labels, corrected)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])  # seed 1 once caught a save racing a refill (the key of the old video)
def test_200_random_rounds_of_switches_edits_stages_and_autosaves_neither_crash_nor_lose_an_edit(
    project, tmp_path, seed
):
    """A real viewer in a child process (a crash shows as its exit code, with faulthandler's traceback)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from conftest import REPO

    run, ledger = tmp_path / "run", tmp_path / "ledger.npz"
    shutil.copytree(project / "run", run)
    child = Path(__file__).with_name("stress_child.py")
    args = [str(project / "data/tags.json"), str(run), "200", str(seed), str(ledger)]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}  # DISPLAY (Xvfb) and QT_API are inherited
    out = subprocess.run(
        [sys.executable, "-X", "faulthandler", str(child), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, f"exit {out.returncode}:\n{out.stderr[-6000:]}"
    assert "DONE" in out.stdout
    assert "frozen=True" in out.stdout  # the session as a user has it: the dock's warm-up froze the heap
    expected = dict(np.load(ledger))
    assert expected, "no edit was made"
    for key, labels in expected.items():
        saved = load_labels(video_dir(run, key) / "labels.npz").labels
        np.testing.assert_array_equal(saved, labels, err_msg=f"corrections of {key} on disk")
    for folder in (run / "corrections").iterdir():
        assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")], folder
