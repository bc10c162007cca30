"""The Dataset dock, driven as a person would: open, pick a video, evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_volume

from napari_vis_ws._widgets.dataset import DatasetWidget

pytestmark = pytest.mark.gui


@pytest.fixture
def widget(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    w = DatasetWidget(viewer)
    viewer.window.add_dock_widget(w)
    return w


def _wait(qtbot, button):
    """Wait for the worker a button started: the button is re-enabled when it finishes.

    (Waiting on the worker's finished signal would miss a worker that ends before the wait starts.)
    """
    assert not button.isEnabled()  # the click started a worker
    qtbot.waitUntil(button.isEnabled, timeout=60000)


def test_picking_the_second_video_shows_its_frames_and_ground_truth(widget, qtbot, tiny_dataset):
    widget.set_path(tiny_dataset)
    assert widget.video_combo.count() == 2
    widget.video_combo.setCurrentIndex(1)
    widget.open_button.click()
    _wait(qtbot, widget.open_button)
    layers = widget.viewer.layers
    assert layers["frames"].data.shape == (2, 20, 30, 3)
    np.testing.assert_array_equal(layers["ground truth"].data, make_volume(t=2, seed=2).labels)
    assert widget.info.text().startswith("2 frames of 30×20")
    # reopening replaces the layers instead of stacking copies
    widget.open_button.click()
    _wait(qtbot, widget.open_button)
    assert [ly.name for ly in layers] == ["frames", "ground truth"]


def test_evaluating_ground_truth_as_results_gives_perfect_ap(widget, qtbot, tiny_dataset, tmp_path):
    from training.cli import main

    res = tmp_path / "res.json"
    assert main(["export", str(tiny_dataset), "--form", "results", "--out", str(res)]) == 0
    widget.set_path(tiny_dataset)
    widget.results_edit.setText(str(res))
    widget.eval_button.click()
    _wait(qtbot, widget.eval_button)
    text = widget.eval_output.toPlainText()
    assert "Average Precision" in text and "= 1.000" in text


def test_bad_results_file_shows_a_one_line_error(widget, qtbot, tiny_dataset, tmp_path):
    res = tmp_path / "res.json"
    res.write_text(json.dumps([{"video_id": 77, "category_id": 3, "score": 1, "segmentations": [None] * 3}]))
    widget.set_path(tiny_dataset)
    widget.results_edit.setText(str(res))
    widget.eval_button.click()
    _wait(qtbot, widget.eval_button)
    assert "res.json" in widget.eval_output.toPlainText() and "77" in widget.eval_output.toPlainText()
    assert "\n" not in widget.eval_output.toPlainText().strip()


def test_a_video_file_opens_without_a_video_list(widget, qtbot, real_clip):
    widget.set_path(real_clip)
    assert not widget.video_combo.isEnabled()
    widget.open_button.click()
    _wait(qtbot, widget.open_button)
    assert widget.viewer.layers["frames"].data.shape == (250, 272, 640, 3)


@pytest.fixture
def toasts(monkeypatch):
    """The error notifications the dock shows, in order."""
    import napari.utils.notifications

    shown: list[str] = []
    monkeypatch.setattr(napari.utils.notifications, "show_error", shown.append)
    return shown


@pytest.mark.parametrize(
    "content,what,expected",
    [
        ({"images": [], "annotations": [], "categories": []}, "a COCO JSON", "give the YouTube-VIS JSON"),
        (
            [{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [None]}],
            "a results list",
            "expected a YouTube-VIS dataset JSON: an object with a 'videos' list",
        ),
        ({"info": {}, "licenses": []}, "keys 'info', 'licenses' but no 'videos' list", "expected a YouTube-VIS"),
    ],
    ids=["coco", "results", "other"],
)
def test_a_json_that_is_no_dataset_says_what_it_is_in_one_line(
    widget, qtbot, toasts, tmp_path, content, what, expected
):
    path = tmp_path / "picked.json"
    path.write_text(json.dumps(content))
    widget.set_path(path)
    widget.open_button.click()
    assert widget.open_button.isEnabled()  # nothing to open: no worker started
    assert toasts and set(toasts) == {widget.info.text()}  # one message (Open repeats it), shown in the dock
    message = widget.info.text()
    assert message.startswith(f"{path}: ") and what in message and expected in message
    assert "\n" not in message and "unknown file type" not in message
    assert not widget.video_combo.isEnabled() and len(widget.viewer.layers) == 0


def test_pressing_enter_on_a_json_that_is_no_dataset_reports_it_once(widget, qtbot, toasts, tmp_path):
    from qtpy.QtCore import Qt

    path = tmp_path / "results.json"
    path.write_text(json.dumps([{"video_id": 1, "category_id": 1, "score": 0.9, "segmentations": [None]}]))
    widget.path_edit.setText(str(path))
    qtbot.keyClick(widget.path_edit, Qt.Key_Return)
    qtbot.wait(100)
    assert toasts == [
        f"{path}: a results list (instances with a 'score'), not a dataset: expected a YouTube-VIS "
        "dataset JSON: an object with a 'videos' list (ground truth or frame tags)"
    ]
