"""The Export dock follows the layer list and exports the corrected labels, as a person would find it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_volume
from pycocotools import mask as mask_utils

from napari_vis_ws._layers import labels_layer
from napari_vis_ws._widgets.export import ExportWidget

pytestmark = pytest.mark.gui

CATS = [{"id": 3, "name": "disc"}, {"id": 7, "name": "box"}]


def _add(viewer, name: str, seed: int):
    """A Labels layer as the plugin makes it (features, metadata), with masks that differ per seed."""
    volume = make_volume(t=3, seed=seed)
    if seed == 2:  # an instance (9, a box) only these labels have
        volume.labels[:, 12:18, 0:6] = 9
        volume.categories[9], volume.scores[9] = 7, 1.0
    data, kwargs, _ = labels_layer(volume, CATS, name)
    return viewer.add_labels(data.copy(), **kwargs)


def _names(dock: ExportWidget) -> list[str]:
    return [dock.layer_list.item(i).text() for i in range(dock.layer_list.count())]


@pytest.fixture
def viewer_and_dock(make_napari_viewer):
    viewer = make_napari_viewer()
    _add(viewer, "ground truth", seed=1)
    dock = ExportWidget(viewer)
    viewer.window.add_dock_widget(dock)
    return viewer, dock


def test_pseudo_labels_added_after_the_dock_opened_are_ticked_instead_of_ground_truth(viewer_and_dock, qtbot, tmp_path):
    viewer, dock = viewer_and_dock
    assert dock.checked_layers() == ["ground truth"]  # the only Labels layer
    pseudo = _add(viewer, "pseudo-labels", seed=2)
    assert _names(dock) == ["ground truth", "pseudo-labels"]
    assert dock.checked_layers() == ["pseudo-labels"]

    out = tmp_path / "corrected.json"
    dock.out_edit.setText(str(out))
    dock.export_button.click()
    qtbot.waitUntil(dock.export_button.isEnabled, timeout=20000)
    written = json.loads(out.read_text())
    assert len(written["videos"]) == 1
    data = np.asarray(pseudo.data)
    assert {a["instance_id"] for a in written["annotations"]} == {1, 2, 5, 9}  # 9 exists only in pseudo-labels
    for ann in written["annotations"]:
        for t, seg in enumerate(ann["segmentations"]):
            mask = np.zeros(data.shape[1:], bool) if seg is None else mask_utils.decode(seg).astype(bool)
            np.testing.assert_array_equal(mask, data[t] == ann["instance_id"])


def test_a_tick_set_by_hand_is_kept_while_its_layer_exists(viewer_and_dock):
    viewer, dock = viewer_and_dock
    _add(viewer, "pseudo-labels", seed=2)
    dock.set_checked(["ground truth", "pseudo-labels"])  # the user ticks both
    _add(viewer, "predictions", seed=3)
    assert dock.checked_layers() == ["ground truth", "pseudo-labels"]
    viewer.layers.remove("predictions")
    assert dock.checked_layers() == ["ground truth", "pseudo-labels"]


def test_renaming_a_layer_renames_it_in_the_list_and_keeps_its_tick(viewer_and_dock):
    viewer, dock = viewer_and_dock
    _add(viewer, "pseudo-labels", seed=2)
    viewer.layers["pseudo-labels"].name = "corrected"
    assert _names(dock) == ["ground truth", "corrected"]
    assert dock.checked_layers() == ["corrected"]
    viewer.layers["ground truth"].name = "reference"
    assert _names(dock) == ["reference", "corrected"]
    assert dock.checked_layers() == ["corrected"]


def test_removing_a_layer_drops_it_from_the_list(viewer_and_dock):
    viewer, dock = viewer_and_dock
    _add(viewer, "pseudo-labels", seed=2)
    viewer.layers.remove("pseudo-labels")
    assert _names(dock) == ["ground truth"]
    assert dock.checked_layers() == ["ground truth"]  # the only Labels layer again
