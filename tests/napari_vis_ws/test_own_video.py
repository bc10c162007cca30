"""Your own videos end to end in the plugin (issue 19): new project → tag by keyboard → Run all → layers → export."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from qtpy.QtCore import Qt

pytestmark = pytest.mark.gui

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "JPEGImages"


def _keys(qtbot, widget, *keys) -> None:
    for key in keys:
        shift = key.startswith("shift+")
        code = {"home": Qt.Key_Home, "end": Qt.Key_End}.get(key) or getattr(Qt, f"Key_{key[-1]}")
        qtbot.keyClick(widget, code, Qt.ShiftModifier if shift else Qt.NoModifier)


def _new_project(make_napari_viewer, qtbot, videos: list[Path], classes: str, folder: Path, frames: str = ""):
    viewer = make_napari_viewer()
    _, tags = viewer.window.add_plugin_dock_widget("napari-vis-ws", "Tags")
    tags.videos_edit.setText(";".join(map(str, videos)))
    tags.new_classes_edit.setText(classes)
    tags.new_frames_edit.setText(frames)
    tags.new_folder_edit.setText(str(folder))
    tags.create_button.click()
    qtbot.waitUntil(lambda: tags.session is not None, timeout=60_000)
    return viewer, tags


def test_a_real_clip_becomes_a_project_tagged_over_frame_ranges_by_keyboard(make_napari_viewer, qtbot, real_clip,
                                                                             tmp_path):  # fmt: skip
    viewer, tags = _new_project(make_napari_viewer, qtbot, [real_clip], "person, bicycle", tmp_path / "bikes")
    assert viewer.layers["frames"].data.shape == (250, 272, 640, 3) and tags.video_combo.count() == 1
    strips = tags.strips
    strips.setFocus()
    _keys(qtbot, strips, "1")  # frame 0: person
    tags.go(120)  # a click on the timeline
    _keys(qtbot, strips, "shift+1", "2")  # person over 0-120, bicycle at 120
    _keys(qtbot, strips, "end", "shift+2")  # bicycle over 120-249
    tags.save()
    saved = json.loads((tmp_path / "bikes/tags.json").read_text())
    by_frame = {e["frame"]: e["category_ids"] for e in saved["frame_tags"]}
    assert len(by_frame) == 250 and by_frame[0] == [1] and by_frame[120] == [1, 2] and by_frame[249] == [2]


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["sample", "real"])
def test_own_videos_new_project_tagged_run_all_and_exported(clip, make_napari_viewer, qtbot, tmp_path, real_clip):
    folder = tmp_path / "mine"
    if clip == "sample":
        videos, classes, frames = [SAMPLE / "synth_0000", SAMPLE / "synth_0001"], "disc, star", 16
    else:  # bikes.mp4 itself, its first 12 frames: Run all at tiny settings in a minute (250 frames take several)
        videos, classes, frames = [real_clip], "person, bicycle", 12
    viewer, tags = _new_project(make_napari_viewer, qtbot, videos, classes, folder, "" if clip == "sample" else ":12")
    assert [len(v["file_names"]) for v in tags._tags["videos"]] == [frames] * len(videos)
    for index in range(len(videos)):  # tag each video by keyboard: class 1 everywhere, class 2 in its second half
        tags.video_combo.setCurrentIndex(index)
        tags.strips.setFocus()
        _keys(qtbot, tags.strips, "home", "1", "end", "shift+1")
        tags.go(frames // 2)
        _keys(qtbot, tags.strips, "2", "end", "shift+2")
    tags.save()

    _, training = viewer.window.add_plugin_dock_widget("napari-vis-ws", "Training", tabify=True)
    training.stage_combo.setCurrentIndex(training.stage_combo.findData("pipeline"))
    training.extra_edit.setText("--preset tiny")  # seconds, not the cpu preset's quarter of an hour
    _, pipeline = viewer.window.add_plugin_dock_widget("napari-vis-ws", "Pipeline", tabify=True)
    pipeline.set_tags(folder / "tags.json")
    pipeline.set_project(folder)  # the project folder holds the runs too
    qtbot.waitUntil(pipeline.show_button.isEnabled, timeout=60_000)
    pipeline.detector_check.setChecked(True)  # on to the detector and the predictions
    assert pipeline.run_all() is training
    assert training.running and training.stage == "pipeline" and training.command[-6:-2] == [
        "--device", "auto", "--preset", "tiny"]  # fmt: skip
    assert training.command[training.command.index("--out") + 1] == str(folder)
    pipeline.run_all()  # a second click while it runs starts nothing
    assert not training.epochs_spin.isEnabled() and not training.resume_check.isEnabled()  # the pipeline resumes
    stages_seen: list[str] = []
    while training.running:  # the Training dock follows each stage; each training stage starts its own curve
        qtbot.wait(200)
        if training.events and (not stages_seen or stages_seen[-1] != training.events[-1][1].stage):
            stages_seen.append(training.events[-1][1].stage)
        losses = sum(math.isfinite(e.metrics.get("loss", math.nan)) for _, e in training.events)  # this stage's
        assert len(training.loss_plot.values) == losses  # the curve holds the running stage's losses only
    assert training.exit_code == 0, training.log.toPlainText()
    assert {"train-cam", "train-irn", "pseudo-labels"} <= set(stages_seen)
    bars = training.stage_bars.bars  # a bar per stage of the pipeline, every one full
    assert {"flow", "train-cam", "cams", "pseudo-labels", "predict"} <= set(bars)
    assert all(bar.format() == "done" and bar.value() == bar.maximum() for bar in bars.values())
    assert training.status.text().startswith("finished (exit code 0): every stage")
    assert training.load_button.isEnabled()  # its predictions are there to load
    qtbot.waitUntil(lambda: pipeline.info.text().startswith("Run all finished. "), timeout=60_000)
    qtbot.waitUntil(lambda: {"pseudo-labels", "predictions"} <= {ly.name for ly in viewer.layers}, timeout=120_000)
    assert (folder / "results.json").is_file() and (folder / f"pseudo/{videos[0].stem}/pseudo.npz").is_file()

    _, export = viewer.window.add_plugin_dock_widget("napari-vis-ws", "Export", tabify=True)
    assert "pseudo-labels" in export.checked_layers()
    out = tmp_path / "labels.json"
    export.out_edit.setText(str(out))
    export.export_button.click()
    qtbot.waitUntil(export.export_button.isEnabled, timeout=30_000)
    written = json.loads(out.read_text())
    assert written["videos"][0]["length"] == frames
    assert {c["name"] for c in written["categories"]} == {c.strip() for c in classes.split(",")}
