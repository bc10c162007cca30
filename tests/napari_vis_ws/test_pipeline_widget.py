"""The Pipeline dock, driven as a person would: pick a video, run each stage, cancel, reopen a project."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401  (torch and torchvision before any viewer: see napari_vis_ws/__init__)
import torchvision  # noqa: F401
from conftest import slow_down, tiny_project
from qtpy.QtCore import QTimer

from napari_vis_ws._widgets.pipeline import PipelineWidget

pytestmark = pytest.mark.gui

T, H, W = 4, 64, 80
KEY = "synth_0000"  # video 1 of the project
TINY = {"backbone": "mobilenet_v3", "batch_size": 1, "min_size": 64, "max_size": 80, "device": "cpu", "warmup": 0}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """2 videos x 4 frames of 64x80 (tags in data/) through `vis-ws pseudo-labels` into run/ (1-epoch models)."""
    return tiny_project(tmp_path_factory.mktemp("pipeline"), videos=2, frames=T, height=H, width=W)


@pytest.fixture(scope="module")
def detector(project) -> Path:
    """A 2-iteration Mask R-CNN (MobileNet-v3, 64 px) trained on the project's pseudo-labels, as `vis-ws pipeline`."""
    from training.detection.train import DetectionTrainConfig, train_detector

    config, out = DetectionTrainConfig(iterations=2, **TINY), project / "detector" / "maskrcnn"
    list(train_detector(config, project / "data/tags.json", project / "run/pseudo", out))
    return out


@pytest.fixture
def dock(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    w = PipelineWidget(viewer)
    viewer.window.add_dock_widget(w)
    yield w
    if w.worker is not None:  # a failed test must not leave a stage running into the next one
        w.worker.quit()
        qtbot.waitUntil(lambda: w.worker is None, timeout=30000)


def _wait(qtbot, button, timeout: int = 60000) -> None:
    """Wait for the worker a button started: the button is re-enabled when it finishes."""
    assert not button.isEnabled()  # the click started a worker
    qtbot.waitUntil(button.isEnabled, timeout=timeout)


def _open(dock, qtbot, project: Path, folder: Path, video: int = 0) -> None:
    """Choose the tags file, the project folder and a video, and wait for the stored results to show."""
    dock.set_tags(project / "data/tags.json")
    dock.set_project(folder)
    dock.video_combo.setCurrentIndex(video)
    _wait(qtbot, dock.show_button)


def _fresh(project: Path, folder: Path) -> Path:
    """A project with the CLI's trained models and nothing computed."""
    for model in ("cam", "irn"):
        shutil.copytree(project / "run" / model, folder / model)
    return folder


def _slow_flow(monkeypatch, seconds: float = 0.3) -> None:
    slow_down(monkeypatch, "training.flow.video.pair_flow", seconds)


def _cancel_after_a_step(dock, qtbot, row, steps: int, timeout: int) -> None:
    """Run a stage's row, Cancel it once a first step is done, and wait for the stored results to reload."""
    row.run_button.click()
    qtbot.waitUntil(lambda: row.progress.value() >= 1, timeout=timeout)
    row.cancel_button.click()
    _wait(qtbot, row.run_button, timeout=timeout)
    qtbot.waitUntil(dock.show_button.isEnabled, timeout=30_000)  # the results reloaded after the cancel
    assert 1 <= row.progress.value() < row.progress.maximum() == steps


def _names(dock) -> list[str]:
    return [layer.name for layer in dock.viewer.layers]


def test_running_each_stage_from_the_dock_adds_its_layers(dock, qtbot, project, tmp_path):
    folder = _fresh(project, tmp_path / "p")
    _open(dock, qtbot, project, folder, video=1)
    assert dock.video_combo.count() == 2 and _names(dock) == ["frames"]
    assert "no results yet" in dock.info.text()
    layers = dock.viewer.layers

    flow = dock.stages["flow"]
    flow.run_button.click()
    assert flow.cancel_button.isEnabled() and not dock.stages["cams"].run_button.isEnabled()
    _wait(qtbot, flow.run_button)
    assert flow.progress.value() == flow.progress.maximum() == T - 1  # one step per frame pair
    assert layers["flow"].data.shape == (T, H, W, 3) and layers["flow vectors"].data.shape[1:] == (2, 3)
    assert (folder / "flow/synth_0001.flow.npy").is_file() and not flow.cancel_button.isEnabled()

    cams = dock.stages["cams"]
    cams.run_button.click()
    _wait(qtbot, cams.run_button)
    assert cams.progress.value() == cams.progress.maximum() == T
    for name in ("cam [disc]", "cam [star]", "f-cam [disc]", "f-cam [star]"):  # the classes tagged in video 2
        assert layers[name].data.shape == (T, H, W)
    assert np.asarray(layers["cam [disc]"].data[0]).max() == pytest.approx(1.0, abs=1e-3)  # max-normalised

    assert [ly.name for ly in layers if ly.visible and "cam [" in ly.name] == ["f-cam [disc]"]  # not six additive maps

    pseudo = dock.stages["pseudo-labels"]
    pseudo.run_button.click()
    _wait(qtbot, pseudo.run_button)
    assert layers["pseudo-labels"].visible and not layers["boundary"].visible
    assert pseudo.progress.value() == pseudo.progress.maximum() == T
    labels = layers["pseudo-labels"]
    assert labels.data.shape == (T, H, W) and labels.editable
    ids = [int(i) for i in np.unique(labels.data) if i]
    assert ids and list(labels.features["index"]) == [0, *ids]
    assert set(labels.features["class"][1:]) <= {"disc", "star"}
    assert {"boundary", "displacement", "centroids"} <= set(_names(dock))
    assert (folder / "pseudo/synth_0001/pseudo.npz").is_file() and not (folder / "pseudo/synth_0000").exists()


def test_cancel_stops_a_stage_between_frames(dock, qtbot, project, tmp_path, monkeypatch):
    _slow_flow(monkeypatch)
    folder = _fresh(project, tmp_path / "p")
    _open(dock, qtbot, project, folder)
    flow = dock.stages["flow"]
    _cancel_after_a_step(dock, qtbot, flow, steps=T - 1, timeout=30_000)
    assert not flow.cancel_button.isEnabled() and dock.worker is None
    assert "Flow cancelled" in dock.info.text()
    assert list((folder / "flow").iterdir()) == []  # the half-written flow was removed
    assert "flow" not in _names(dock)


def test_the_event_loop_keeps_running_while_a_stage_works(dock, qtbot, project, tmp_path, monkeypatch):
    _slow_flow(monkeypatch)
    _open(dock, qtbot, project, tmp_path / "p")
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(10)
    start = time.monotonic()
    dock.stages["flow"].run_button.click()
    _wait(qtbot, dock.stages["flow"].run_button)
    seconds = time.monotonic() - start
    timer.stop()
    assert seconds > 0.8  # three pairs of 0.3 s
    assert len(ticks) > 0.3 * seconds / 0.010  # the main thread kept serving its 10 ms timer


def test_reopening_a_project_shows_every_result_without_computing(dock, qtbot, project):
    run = project / "run"
    stamps = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    _open(dock, qtbot, project, run, video=1)  # the first opening also imports the backend and sets up OpenGL
    cams = [n for n in _names(dock) if "cam [" in n]
    assert cams == ["cam [disc]", "cam [star]", "f-cam [disc]", "f-cam [star]"]  # video 2's classes
    start = time.monotonic()
    dock.video_combo.setCurrentIndex(0)
    _wait(qtbot, dock.show_button)
    seconds = time.monotonic() - start
    assert _names(dock) == [
        "frames",
        "flow",
        "flow vectors",
        "cam [box]",
        "cam [triangle]",
        "f-cam [box]",
        "f-cam [triangle]",
        "boundary",
        "pseudo-labels",
        "displacement",
        "centroids",
    ]
    assert dock.viewer.layers["frames"].metadata["vis_ws"]["video_id"] == 1
    assert [ly.name for ly in dock.viewer.layers if ly.visible] == ["frames", "pseudo-labels"]  # the newest result
    assert seconds < 1.0, f"showing the stored results took {seconds:.2f} s"
    assert dock.worker is None and all(s.progress.value() == 0 for s in dock.stages.values())
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == stamps


@pytest.mark.parametrize(
    ("stage", "missing"), [("cams", "no trained classifier in"), ("pseudo-labels", "no trained IRN in")]
)
def test_a_stage_without_its_model_says_what_is_missing_and_offers_run_all(
    dock, qtbot, project, tmp_path, stage, missing
):
    _open(dock, qtbot, project, tmp_path / "empty")
    row = dock.stages[stage]
    row.run_button.click()
    assert row.run_button.isEnabled() and dock.worker is None  # nothing started
    model = "cam" if stage == "cams" else "irn"
    title = "CAMs" if stage == "cams" else "Pseudo-labels"
    assert dock.info.text() == (f"{title} cannot run yet: {missing} {tmp_path / 'empty' / model}. "
                                "Run all: train what is missing, then every video's pseudo-labels?")  # fmt: skip
    assert not dock.offer_button.isHidden() and row.progress.value() == 0 and not (tmp_path / "empty").exists()
    if stage == "cams":
        return
    dock.offer_button.click()  # the offer taken: Run all starts in the Training dock
    _, training = dock.viewer.window.add_plugin_dock_widget("napari-vis-ws", "Training")  # the one it opened
    assert training.running and training.command[training.command.index("pipeline") + 1] == str(
        project / "data/tags.json")  # fmt: skip
    until = training.command.index("--until")
    assert training.command[until + 1] == "pseudo-labels" and dock.offer_button.isHidden()
    training.cancel()
    qtbot.waitUntil(lambda: not training.running, timeout=60000)


def test_a_stage_missing_this_videos_results_offers_to_run_them_first(dock, qtbot, project, tmp_path):
    folder = _fresh(project, tmp_path / "fresh")
    _open(dock, qtbot, project, folder)
    dock.stages["pseudo-labels"].run_button.click()
    assert dock.offer_button.text() == "Run Flow, then CAMs, then Pseudo-labels"
    assert f"no CAMs of video {KEY} in {folder / 'cams'}" in dock.info.text()
    dock.offer_button.click()
    qtbot.waitUntil(lambda: "pseudo-labels" in _names(dock) and dock.running is None, timeout=120000)
    assert {"flow", "cam [box]", "pseudo-labels"} <= set(_names(dock)) and dock.offer_button.isHidden()
    assert [dock.stages[s].progress.value() for s in ("flow", "cams", "pseudo-labels")] == [T - 1, T, T]


@pytest.mark.slow
def test_quitting_napari_during_run_all_stops_it_cleanly(dock, qtbot, project, tmp_path):
    # the finished run must not start a worker while napari closes (napari's task list is being walked)
    viewer = dock.viewer
    _, training = viewer.window.add_plugin_dock_widget("napari-vis-ws", "Training", tabify=True)
    training.stage_combo.setCurrentIndex(training.stage_combo.findData("pipeline"))
    training.extra_edit.setText("--preset tiny")
    training.stage_combo.setCurrentIndex(0)
    folder = tmp_path / "fresh"
    _open(dock, qtbot, project, folder)
    dock.run_all()  # to the pseudo-labels: the detector box is not ticked
    assert training.command[-6:-2] == ["--until", "pseudo-labels", "--preset", "tiny"]
    qtbot.waitUntil(lambda: bool(training.events), timeout=120_000)
    viewer.window._qt_window.close()  # as File > Close Window: stops the run, then closes
    assert training.exit_code == 130  # SIGINT: stopped at a step boundary, resumable
    assert not list(folder.rglob("*.tmp"))


def test_layers_seen_through_napari_public_proxy_are_updated_in_place():
    """A dock opened from the Plugins menu sees layers through PublicOnlyProxy; they must still be reused."""
    from napari.layers import Image
    from napari.utils._proxies import PublicOnlyProxy

    from napari_vis_ws._project import fits

    layer = Image(np.zeros((2, 8, 8), np.float32))
    assert fits(PublicOnlyProxy(layer), {}, "image")
    assert not fits(PublicOnlyProxy(layer), {}, "labels")


def test_put_layers_reuses_a_same_named_layer_of_the_same_kind_and_replaces_the_rest(make_napari_viewer):
    # issue 18: one rule for every dock (the Dataset dock removed and re-added, the Training dock had its own loop)
    from napari_vis_ws._project import put_layers

    viewer = make_napari_viewer()
    labels = np.zeros((2, 8, 8), np.int32)
    first = [(labels, {"name": "l", "features": {"index": [0]}, "opacity": 0.3}, "labels"),
             (np.zeros((2, 8, 8), np.uint8), {"name": "i", "contrast_limits": (0, 255)}, "image"),
             ([np.array([[0, 0, 0], [0, 4, 4]])], {"name": "s", "shape_type": "line"}, "shapes")]  # fmt: skip
    put_layers(viewer, first)
    kept, shapes = viewer.layers["l"], viewer.layers["s"]
    kept.opacity = 0.9  # the user's choice
    again = [(labels + 1, {"name": "l", "features": {"index": [0, 1]}, "opacity": 0.3}, "labels"),
             (np.zeros((2, 8, 8), np.float32), {"name": "i", "contrast_limits": (0, 1)}, "image"),
             ([np.array([[0, 1, 1], [0, 5, 5]])], {"name": "s", "shape_type": "line"}, "shapes")]  # fmt: skip
    put_layers(viewer, again)
    assert viewer.layers["l"] is kept and kept.data.max() == 1 and list(kept.features["index"]) == [0, 1]
    assert kept.opacity == 0.9 and tuple(viewer.layers["i"].contrast_limits) == (0, 255)  # display settings kept
    assert viewer.layers["s"] is not shapes and len(viewer.layers) == 3  # shapes added anew, nothing stacked
    put_layers(viewer, again, restyle=True)  # a file opened anew looks as new
    assert viewer.layers["l"] is kept and kept.opacity == 0.3 and tuple(viewer.layers["i"].contrast_limits) == (0, 1)


# -- Predictions --------------------------------------------------------------------------
def _with_detector(project: Path, detector: Path, folder: Path) -> Path:
    """A project with flow, pseudo-labels and a trained Mask R-CNN in maskrcnn/, no predictions."""
    for stage in ("flow", "pseudo"):
        shutil.copytree(project / "run" / stage, folder / stage)
    shutil.copytree(detector, folder / "maskrcnn")
    return folder


def test_run_predictions_shows_the_detectors_tubes_and_keeps_them_in_the_project(
    dock, qtbot, project, detector, tmp_path
):
    folder = _with_detector(project, detector, tmp_path / "p")
    box = {"boxes": [[10.0, 20.0, 8.0, 6.0]], "classes": [1], "scores": [0.9]}
    pair = {"t": 0, "t2": 1, "matches": [[0, 0, 0.9]], "transferred": [0], "warped_t": box, "expanded_t2": box}
    (folder / "maskconsist/matches").mkdir(parents=True)  # MaskConsist's matches of the video, no MaskConsist model
    (folder / "maskconsist/matches" / f"{KEY}.json").write_text(json.dumps({"video": KEY, "pairs": [pair]}))
    _open(dock, qtbot, project, folder)
    assert "pseudo-labels" in _names(dock) and "predictions" not in _names(dock)
    layers = dock.viewer.layers

    row = dock.stages["predictions"]
    row.run_button.click()
    assert row.cancel_button.isEnabled() and not dock.stages["flow"].run_button.isEnabled()
    _wait(qtbot, row.run_button, timeout=120_000)
    assert row.progress.value() == row.progress.maximum() == T  # one step per frame
    predictions = layers["predictions"]
    assert predictions.data.shape == (T, H, W) and predictions.data.dtype == np.int32
    ids = [int(i) for i in np.unique(predictions.data) if i]
    assert ids and set(ids) <= set(predictions.features["index"])
    assert set(predictions.features["class"][1:]) <= {"disc", "box", "triangle", "star"}
    assert all(0.05 <= s <= 1 for s in predictions.features["score"][1:])
    assert len(layers["matches"].data) == 1 and layers["matches"].data[0][0, 0] == 1
    assert len(layers["pseudo-labels"].metadata["vis_ws"]["disagreement"]) == T  # for the review queue
    saved = folder / "predictions" / f"{KEY}.json"
    assert {r["video_id"] for r in json.loads(saved.read_text())} == {1}
    assert dock.info.text().startswith(f"Predictions: done. {KEY}: ")
    matched = "MaskConsist: 1 matches in 1 frame pairs, 1 transferred as labels"
    assert f"predicted instances (predicted now, saved to {saved}). {matched}" in dock.info.text()
    assert layers["predictions"].visible and not layers["warped masks"].visible

    stamp, data = saved.stat().st_mtime_ns, np.array(predictions.data)
    dock.video_combo.setCurrentIndex(1)  # a video without predictions: the layers go
    _wait(qtbot, dock.show_button)
    assert "predictions" not in _names(dock) and "matches" not in _names(dock)
    start = time.monotonic()
    dock.video_combo.setCurrentIndex(0)  # reopened: the stored predictions show at once
    _wait(qtbot, dock.show_button)
    assert time.monotonic() - start < 5.0
    np.testing.assert_array_equal(layers["predictions"].data, data)
    assert "matches" in _names(dock) and saved.stat().st_mtime_ns == stamp


def test_score_slider_draws_only_confident_predictions_in_their_class_colour(dock, qtbot, project, tmp_path):
    # issue 19: low-score noise covered the frames; a slider (default 0.5) chooses what is drawn
    from napari_vis_ws._prediction_layers import class_color
    from napari_vis_ws._widgets.training import TrainingWidget
    from training.data.sources import iter_videos
    from training.export import LabelVolume, labels_to_ytvis

    folder = tmp_path / "p"
    video = next(iter_videos(project / "data/tags.json")).video
    labels = np.zeros((T, H, W), np.int32)
    labels[:, 5:20, 5:20], labels[:, 30:50, 30:60] = 1, 2
    volume = LabelVolume(labels, {1: 1, 2: 2}, {1: 0.9, 2: 0.2}, video)
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(labels_to_ytvis(volume, "results")))
    _open(dock, qtbot, project, folder)  # stored predictions show with the other results
    qtbot.waitUntil(lambda: "predictions" in _names(dock), timeout=30_000)
    layer = dock.viewer.layers["predictions"]
    ids = {int(i): float(s) for i, s in zip(layer.features["index"], layer.features["score"], strict=True) if i}
    confident, noise = max(ids, key=ids.get), min(ids, key=ids.get)

    def alpha(i: int) -> float:
        return float(layer.colormap.map(np.array([i]))[0, 3])

    qtbot.waitUntil(lambda: alpha(noise) == 0.0, timeout=10_000)  # hidden at the default 0.5, not drawn
    assert alpha(confident) == 1.0 and dock.score_slider.label.text() == "0.50 (1 of 2 shown)"
    cat = dict(zip(layer.features["index"], layer.features["category_id"], strict=True))[confident]
    np.testing.assert_allclose(layer.colormap.map(np.array([confident]))[0, :3],
                               [int(class_color(cat)[k:k + 2], 16) / 255 for k in (1, 3, 5)], atol=0.01)  # fmt: skip
    assert np.array_equal(np.unique(layer.data), [0, 1, 2])  # every prediction stays in the layer
    training = TrainingWidget(dock.viewer)  # a second dock's slider follows the same layer
    dock.viewer.window.add_dock_widget(training)
    dock.score_slider.slider.setValue(10)
    assert alpha(noise) == 1.0 and dock.score_slider.label.text() == "0.10 (2 of 2 shown)"
    assert training.score_slider.slider.value() == 10
    training.score_slider.slider.setValue(95)
    assert alpha(confident) == 0.0 and dock.score_slider.slider.value() == 95


def test_cancel_stops_predicting_between_frames_and_writes_nothing(
    dock, qtbot, project, detector, tmp_path, monkeypatch
):
    slow_down(monkeypatch, "training.detection.predict.predict_frames", 0.5)
    folder = tmp_path / "p"
    shutil.copytree(detector, folder / "maskrcnn")
    _open(dock, qtbot, project, folder)
    row = dock.stages["predictions"]
    _cancel_after_a_step(dock, qtbot, row, steps=T, timeout=60_000)
    assert "Predictions cancelled" in dock.info.text() and dock.worker is None
    assert not (folder / "predictions").exists() and "predictions" not in _names(dock)


def test_predictions_without_a_detector_say_what_is_missing_and_offer_to_train_one(dock, qtbot, project, tmp_path):
    empty = tmp_path / "empty"
    _open(dock, qtbot, project, empty)
    row = dock.stages["predictions"]
    row.run_button.click()
    assert row.run_button.isEnabled() and dock.worker is None
    assert dock.info.text() == (
        f"Predictions cannot run yet: no trained detector in {empty / 'maskconsist'} or {empty / 'maskrcnn'}. "
        "Run all with the detector: train it, then predict every video?"
    )
    assert dock.offer_button.text() == "Run all with the detector: train it, then predict every video"
    assert row.progress.value() == 0 and "predictions" not in _names(dock) and not empty.exists()


def test_closing_the_viewer_lists_the_running_stage_and_stops_it_after_its_frame(
    make_napari_viewer, qtbot, project, tmp_path, monkeypatch
):
    _slow_flow(monkeypatch, 0.5)
    viewer = make_napari_viewer()
    dock = PipelineWidget(viewer)
    viewer.window.add_dock_widget(dock)
    folder = _fresh(project, tmp_path / "p")
    _open(dock, qtbot, project, folder)
    row = dock.stages["flow"]
    row.run_button.click()
    qtbot.waitUntil(lambda: row.progress.value() >= 1, timeout=30_000)
    status = viewer.window._qt_window._window._task_status_manager.get_status()  # what napari's close dialog lists
    assert any(s.startswith("napari-vis-ws: Flow of video 1 in ") for s in status), status
    viewer.close()
    assert not dock.worker.is_running  # stopped before the window went, after the frame it was on
    assert list((folder / "flow").iterdir()) == []  # the half-written flow was removed, no temp file left


def test_opening_a_project_removes_temp_files_of_writes_killed_long_ago(dock, qtbot, project, tmp_path):
    import os

    folder = _fresh(project, tmp_path / "p")
    (folder / "cams" / KEY).mkdir(parents=True)
    old, fresh = folder / "cams" / KEY / ".00003.npz.k2x9abcd.tmp", folder / "irn" / ".checkpoint.pt.u7q3mz0w.tmp"
    for path in (old, fresh):
        path.write_bytes(b"half a file")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    _open(dock, qtbot, project, folder)
    assert not old.exists() and fresh.exists()  # a write going on now (another process) keeps its file


def test_dock_labels_a_video_with_the_projects_recorded_instance_background(project, tmp_path):
    # issue 17 §3: the dock dropped `--instance-bg`, so a dock run redid at 0.25 the labels made at another value
    from napari_vis_ws._stages import pseudo_labels_stage
    from training.irn.pseudo_labels import make_pseudo_labels

    run = tmp_path / "run"
    run.mkdir()
    for name in ("flow", "cam", "cams", "irn"):
        (run / name).symlink_to(project / "run" / name)
    tags = project / "data/tags.json"
    made = make_pseudo_labels(
        tags, run / "irn", run / "cams", run / "pseudo", video_ids=[1], bg_threshold=0.6, instance_norm="class"
    )
    list(made)
    stamp = (run / "pseudo/synth_0000/pseudo.npz").stat().st_mtime_ns
    events = list(pseudo_labels_stage(tags, run, 1))
    assert any("already done" in (e.message or "") for e in events)
    assert (run / "pseudo/synth_0000/pseudo.npz").stat().st_mtime_ns == stamp
    shutil.rmtree(run / "pseudo/synth_0000")
    list(pseudo_labels_stage(tags, run, 1))  # made by the dock: at the project's 0.6
    record = json.loads((run / "pseudo/synth_0000/pseudo.json").read_text())
    assert record["instance_bg"] == 0.6 and record["instance_norm"] == "class"  # and its instance normalisation


def test_settings_form_is_the_commands_options_and_reaches_the_stage(dock, qtbot, project, tmp_path):
    # issue 18: the Pipeline dock ran only the recorded or preset settings, with no form to change them
    from napari.utils.notifications import notification_manager

    folder = _fresh(project, tmp_path / "p")
    for name in ("flow", "cams"):
        shutil.copytree(project / "run" / name, folder / name)
    _open(dock, qtbot, project, folder)
    dock.settings.button.setChecked(True)  # read from `vis-ws pseudo-labels` in a child process
    qtbot.waitUntil(lambda: bool(dock.settings.forms), timeout=120_000)
    specs, form = dock.settings.forms["settings"]
    assert [s.flag for s in specs] == ["--flow-method", "--instance-bg", "--instance-norm", "--instance-split",
                                       "--device"]  # fmt: skip
    assert "background score of the instance argmax" in form.instance_bg.tooltip  # the command's help
    assert form.flow_method.value == "dis" and form.instance_bg.value == ""  # empty: the recorded setting

    form.instance_bg.value = "high"
    seen = len(notification_manager.records)
    pseudo = dock.stages["pseudo-labels"]
    pseudo.run_button.click()
    assert pseudo.run_button.isEnabled() and dock.worker is None  # refused before anything ran
    assert [str(n.message) for n in notification_manager.records[seen:]] == [
        "Pseudo-labels: --instance-bg 'high': expected a number"
    ]
    form.instance_bg.value = "0.6"
    form.instance_norm.value = "class"
    pseudo.run_button.click()
    _wait(qtbot, pseudo.run_button)
    record = json.loads((folder / f"pseudo/{KEY}/pseudo.json").read_text())
    assert record["instance_bg"] == 0.6 and record["instance_norm"] == "class"
    assert dock.viewer.layers["pseudo-labels"].data.shape == (T, H, W)


def test_run_all_shows_each_stages_results_as_it_finishes(dock, qtbot, project, monkeypatch):
    import sys

    monkeypatch.setenv("FAKE_TOTAL", "3")  # a stand-in vis-ws: stages flow, train-cam, cams of 3 steps each
    _, training = dock.viewer.window.add_plugin_dock_widget("napari-vis-ws", "Training")
    training.launcher_edit.setText(f"{sys.executable} {Path(__file__).with_name('fake_vis_ws.py')}")
    _open(dock, qtbot, project, project / "run")
    for name in [ly.name for ly in dock.viewer.layers if ly.name != "frames"]:
        dock.viewer.layers.remove(name)
    shown: list[str] = []

    def finished() -> bool:
        text = dock.info.text()
        if text and (not shown or shown[-1] != text):
            shown.append(text)
        return text.startswith("Run all finished. ")

    dock.info.setText("")
    assert dock.run_all() is training
    qtbot.waitUntil(finished, timeout=60_000)
    qtbot.waitUntil(dock.show_button.isEnabled, timeout=60_000)  # every layer in place
    assert training.exit_code == 0
    runs = [text.split(". ")[0] for text in shown if text.startswith("Run all")]
    assert runs == ["Run all: flow done", "Run all finished"]  # flow shown as it ended; train-cam makes no layer
    assert "flow" in _names(dock) and "pseudo-labels" in _names(dock)  # the video's results, back as layers


def test_closing_napari_while_layers_are_put_in_place_raises_nothing(make_napari_viewer, qtbot, project):
    viewer = make_napari_viewer(show=True)
    dock = PipelineWidget(viewer)
    viewer.window.add_dock_widget(dock)
    qtbot.wait(100)  # docked: the dock hears its window close
    _open(dock, qtbot, project, project / "run")
    dock._window_closing()  # as a close napari's dialog refuses: the window stays, the dock goes on
    qtbot.waitUntil(lambda: not dock._closing, timeout=5000)
    dock.video_combo.setCurrentIndex(1)  # the other video's layers start going in, one per turn
    qtbot.waitUntil(lambda: dock.placer.pacing, timeout=30_000)
    viewer.close()  # napari's dims used to raise IndexError under the next layer put in
    qtbot.wait(500)
    assert not dock.placer.pacing
