"""The whole plugin in one go, as a person drives it: open the sample, run the pipeline, correct, export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401  (torch and torchvision before any viewer: see napari_vis_ws/__init__)
import torchvision  # noqa: F401
from conftest import SAMPLE, tiny_project
from pycocotools import mask as mask_utils

from napari_vis_ws._widgets.pipeline import PipelineWidget
from training.export import load_labels

pytestmark = [pytest.mark.slow, pytest.mark.gui]

T, H, W = 16, 240, 320  # the sample's first video


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A project holding only a classifier and an IRN (1-epoch ResNet-18s of `vis-ws pseudo-labels` on a tiny set)."""
    root = tmp_path_factory.mktemp("e2e")
    tiny_project(root, videos=1, frames=4, height=64, width=80)  # the sample's four classes, trained in seconds
    project = root / "project"
    for model in ("cam", "irn"):
        shutil.copytree(root / "run" / model, project / model)
    return project


def _wait(qtbot, button, timeout: int = 120_000) -> None:
    """Wait for the worker a click started: its button is re-enabled when it finishes."""
    assert not button.isEnabled()
    qtbot.waitUntil(button.isEnabled, timeout=timeout)


@pytest.fixture
def one_scale_cams(monkeypatch) -> None:
    """CAM inference at one scale without flip: the paper's 4 scales x flip take ~2 s a frame of the sample on a CPU."""
    import training.cam.store as store

    real = store.frame_maps

    def frame_maps(model, image, class_indices, keys, scales, flip, scale=1.0):
        return real(model, image, class_indices, keys, (1.0,), False, scale)

    monkeypatch.setattr(store, "frame_maps", frame_maps)


def test_open_sample_run_pipeline_correct_and_export(make_napari_viewer, qtbot, models, one_scale_cams, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-vis-ws", "sample")
    assert viewer.layers["frames"].data.shape == (T, H, W, 3)

    # -- the pipeline on the sample's first video, into a fresh project holding the two models
    # not from the Plugins menu: there the dock sees layers through proxies, and its `fits` (type(layer).__name__)
    # then re-creates every CAM layer at each refresh, a garbage collection each (see the report)
    pipeline = PipelineWidget(viewer)
    viewer.window.add_dock_widget(pipeline)
    pipeline.set_project(models)
    pipeline.set_tags(SAMPLE / "tags.json")
    _wait(qtbot, pipeline.show_button)
    assert pipeline.video_id == 1
    for stage in ("flow", "cams", "pseudo-labels"):
        row = pipeline.stages[stage]
        row.run_button.click()
        _wait(qtbot, row.run_button)
        assert row.progress.value() == row.progress.maximum() > 0, pipeline.info.text()
    layers = viewer.layers
    assert layers["flow"].data.shape == (T, H, W, 3)
    cams = [ly.name for ly in layers if ly.name.startswith("cam [")]
    tagged = {c["name"] for c in json.loads((SAMPLE / "tags.json").read_text())["categories"]}
    assert cams and {n[5:-1] for n in cams} <= tagged
    assert all(layers[n].data.shape == (T, H, W) for n in cams)
    pseudo = layers["pseudo-labels"]
    assert pseudo.data.shape == (T, H, W) and len(np.unique(pseudo.data)) > 2
    assert (models / "pseudo" / "synth_0000" / "pseudo.npz").is_file() and not (SAMPLE / "project").exists()

    # -- corrections: a brush stroke (one undo step, as napari's brush makes it), a merge, one undo
    _, corrections = viewer.window.add_plugin_dock_widget("napari-vis-ws", "Corrections")
    assert corrections.layer.name == "pseudo-labels"
    t = 5
    viewer.dims.set_current_step(0, t)
    new = int(pseudo.data.max()) + 1
    before_stroke = np.array(pseudo.data, copy=True)
    pseudo.brush_size = 7
    with pseudo.block_history():
        for x in range(20, 80, 3):
            pseudo.paint((t, 200, x), new, refresh=False)
    pseudo.refresh()
    painted = np.argwhere(np.asarray(pseudo.data) != before_stroke)
    assert len(painted) > 100 and set(painted[:, 0]) == {t}
    qtbot.waitUntil(lambda: new in [int(i) for i in corrections._areas.ids], timeout=5000)

    ids = [int(i) for i in np.unique(pseudo.data[t]) if i and i != new]
    merged = ids[:2]
    before_merge = np.array(pseudo.data, copy=True)
    corrections.select_instances(merged)
    corrections.buttons["merge"].click()
    assert merged[1] not in pseudo.data and corrections.message.text() == f"merged {merged[1]} into {merged[0]}"
    pseudo.undo()  # the merge goes, the stroke stays
    np.testing.assert_array_equal(pseudo.data, before_merge)
    assert (pseudo.data[tuple(painted.T)] == new).all()

    # -- export YouTube-VIS JSON and read it back with pycocotools
    _, export = viewer.window.add_plugin_dock_widget("napari-vis-ws", "Export")
    assert export.checked_layers() == ["pseudo-labels"]
    out = tmp_path / "corrected.json"
    export.out_edit.setText(str(out))
    export.export_button.click()
    _wait(qtbot, export.export_button, timeout=60_000)
    assert export.summary.text().startswith("wrote 1 video, ")
    ytvis = json.loads(out.read_text())
    assert ytvis["videos"][0]["length"] == T and (ytvis["videos"][0]["height"], ytvis["videos"][0]["width"]) == (H, W)
    stroke = next(a for a in ytvis["annotations"] if a["instance_id"] == new)
    assert [i for i, seg in enumerate(stroke["segmentations"]) if seg is not None] == [t]
    mask = mask_utils.decode(stroke["segmentations"][t]).astype(bool)
    assert mask[painted[:, 1], painted[:, 2]].all() and mask.sum() == len(painted)
    for a in ytvis["annotations"]:  # every exported mask is the layer's
        if a["segmentations"][t] is not None:
            decoded = mask_utils.decode(a["segmentations"][t]).astype(bool)
            np.testing.assert_array_equal(decoded, np.asarray(pseudo.data[t]) == a["instance_id"])
    corrections.save_now()  # the autosaved project holds the corrections too
    qtbot.waitUntil(lambda: not corrections._saving and not corrections._dirty, timeout=20_000)
    saved = load_labels(models / "corrections" / "synth_0000" / "labels.npz")
    np.testing.assert_array_equal(saved.labels, pseudo.data)
