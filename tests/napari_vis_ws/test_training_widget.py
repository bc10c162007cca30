"""The Training dock: the exact `vis-ws` commands it runs, its JSON-lines protocol, real runs, Cancel, bad input,
quitting napari mid-run, per-stage options, training on the corrections, and loading (or making) a detector's
predictions of the video in the viewer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch  # noqa: F401  (torch and torchvision before any viewer: see napari_vis_ws/__init__)
import torchvision  # noqa: F401
from conftest import sample_tags, slow_down

from napari_vis_ws._layers import dataset_layers, labels_layer
from napari_vis_ws._training import (
    EXIT_INTERRUPTED,
    build_command,
    device_used,
    error_line,
    eta_seconds,
    format_eta,
    parse_progress_line,
)
from napari_vis_ws._widgets.corrections import CorrectionsWidget
from napari_vis_ws._widgets.training import TrainingWidget
from training.checkpoint import load_checkpoint
from training.data.ytvis import gt_volume, load_ytvis
from training.detection.train import DetectionTrainConfig, train_detector
from training.export import load_labels, save_labels, write_ytvis
from training.progress import Progress

pytestmark = pytest.mark.gui

FAST = "--arch resnet18 --batch-size 4 --crop 64 --workers 0"
FAKE = f"{sys.executable} {Path(__file__).with_name('fake_vis_ws.py')}"  # a launcher: a stand-in vis-ws (1 step/0.1 s)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Frame tags of 1 video x 4 frames of 64x80."""
    return sample_tags(tmp_path_factory.mktemp("training"))


# -- commands ---------------------------------------------------------------------------
def test_build_command_for_every_stage(tmp_path):
    tags, p = tmp_path / "tags.json", tmp_path / "proj"
    py = [sys.executable, "-m", "training.cli"]
    tail = ["--device", "cpu", "--progress", "json"]
    opts = {"device": "cpu", "epochs": 3}
    assert build_command("classifier", tags, p, opts) == [
        *py, "train-cam", str(tags), "--out", str(p / "cam"), "--epochs", "3", *tail,
    ]  # fmt: skip
    assert build_command("flowirn", tags, p, {**opts, "resume": True, "extra": "--variant irn"}) == [
        *py, "train-irn", str(tags), "--cam-model", str(p / "cam"), "--cams", str(p / "cams"),
        "--flow", str(p / "flow"), "--out", str(p / "irn"), "--irn-epochs", "3",
        "--device", "cpu", "--resume", "--variant", "irn", "--progress", "json",
    ]  # fmt: skip
    assert build_command("maskrcnn", tags, p, {"device": "cuda", "iterations": 100}) == [
        *py, "train", str(tags), "--pseudo", str(p / "pseudo"), "--flow", str(p / "flow"),
        "--out", str(p / "maskrcnn"), "--step", "1", "--iterations", "100", "--device", "cuda", "--progress", "json",
    ]  # fmt: skip
    assert build_command("maskconsist", tags, p, {"out": "/x/mc", "epochs": 2}, "srun --gres=gpu:1 -p 'gpu q'") == [
        "srun", "--gres=gpu:1", "-p", "gpu q", "vis-ws", "train", str(tags), "--pseudo", str(p / "pseudo"),
        "--flow", str(p / "flow"), "--out", "/x/mc", "--step", "2", "--init", str(p / "maskrcnn"),
        "--epochs", "2", "--device", "auto", "--progress", "json",
    ]  # fmt: skip
    assert build_command("classifier", tags, p, {}, "ssh gpu-host")[:4] == ["ssh", "gpu-host", "vis-ws", "train-cam"]
    # Weights go to the stages that start from a file; flowIRN and MaskConsist start from earlier runs.
    for stage in ("classifier", "maskrcnn"):
        argv = build_command(stage, tags, p, {"weights": "/w/r18.pth"})
        assert argv[argv.index("--weights") + 1] == "/w/r18.pth"
    for stage in ("flowirn", "maskconsist"):
        assert "--weights" not in build_command(stage, tags, p, {"weights": "/w/r18.pth"})
    # Run all: `vis-ws pipeline` into the project; it always resumes and takes no epochs
    assert build_command("pipeline", tags, p, {**opts, "resume": True, "weights": "/w/r18.pth"}) == [
        *py, "pipeline", str(tags), "--out", str(p), "--weights", "/w/r18.pth", *tail,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown stage"):
        build_command("nope", tags, p, {})


def test_progress_lines_are_parsed_and_other_lines_are_not():
    line = Progress("train-cam", 3, 10, "it", {"loss": 0.5, "lr": 0.1}, "hi").to_json()
    ev = parse_progress_line(line + "\n")
    assert ev == Progress("train-cam", 3, 10, "it", {"loss": 0.5, "lr": 0.1}, "hi")
    for other in ("wrote run/checkpoint.pt", "", "{not json", '{"event": "other"}', "[1, 2]", '{"event": "progress"}'):
        assert parse_progress_line(other) is None
    evs = [(0.0, Progress("s", 1, 11)), (2.0, Progress("s", 3, 11))]
    assert eta_seconds(evs) == pytest.approx(8.0)
    assert eta_seconds(evs[:1]) is None and format_eta(None) == "" and format_eta(3725) == "ETA 1:02:05"
    assert device_used("training from step 0/4: resnet18 on 4 frames, cpu (2 threads)") == "cpu (2 threads)"
    assert device_used("... cuda:0 (NVIDIA H100 80GB HBM3)") == "cuda:0 (NVIDIA H100 80GB HBM3)"
    assert error_line("warning\nvis-ws train-cam: error: t.json: bad\n") == "vis-ws train-cam: error: t.json: bad"


# -- the dock ---------------------------------------------------------------------------
def _dock(make_napari_viewer, tags: Path, out: Path, epochs: int, extra: str = FAST) -> TrainingWidget:
    dock = TrainingWidget(make_napari_viewer())
    dock.tags_edit.setText(str(tags))
    dock.project_edit.setText(str(out.parent))
    dock.out_edit.setText(str(out))
    dock._out_auto = False
    dock.device_combo.setCurrentText("cpu")
    dock.epochs_spin.setValue(epochs)
    dock.extra_edit.setText(extra)
    return dock


def test_a_short_training_runs_from_the_dock(make_napari_viewer, qtbot, data, tmp_path):
    dock = _dock(make_napari_viewer, data, tmp_path / "cam", epochs=1)
    assert dock.stage == "classifier"
    imagenet = tmp_path / "resnet18-imagenet.pth"  # stands in for a downloaded ImageNet file
    torch.save(torchvision.models.resnet18().state_dict(), imagenet)
    dock.weights_edit.setText(str(imagenet))
    dock.start_button.click()
    assert dock.running and not dock.start_button.isEnabled()
    qtbot.waitUntil(lambda: not dock.running, timeout=120_000)
    assert dock.exit_code == 0, dock.log.toPlainText()
    assert dock.progress.value() == dock.progress.maximum() == 1
    assert (tmp_path / "cam" / "checkpoint.pt").is_file()
    assert dock.device_label.text().startswith("device: cpu (")
    assert len(dock.loss_plot.values) == 1
    assert "wrote" in dock.log.toPlainText() and "exit code 0" in dock.status.text()
    assert dock.start_button.isEnabled() and not dock.cancel_button.isEnabled()
    assert json.loads((tmp_path / "cam" / "config.json").read_text())["weights"] == str(imagenet)
    dock.stage_combo.setCurrentIndex(dock.stage_combo.findData("flowirn"))  # IRN starts from the classifier
    assert not dock.weights_edit.isEnabled() and dock.options()["weights"] == ""


def test_cancel_stops_gracefully_with_a_checkpoint(make_napari_viewer, qtbot, data, tmp_path):
    dock = _dock(
        make_napari_viewer, data, tmp_path / "cam", epochs=200, extra=FAST.replace("--batch-size 4", "--batch-size 1")
    )
    dock.start_button.click()
    qtbot.waitUntil(lambda: len(dock.loss_plot.values) >= 1, timeout=120_000)  # a first step was taken
    dock.cancel_button.click()
    qtbot.waitUntil(lambda: not dock.running, timeout=60_000)
    assert dock.exit_code == EXIT_INTERRUPTED, dock.log.toPlainText()
    assert (tmp_path / "cam" / "checkpoint.pt").is_file()
    assert dock.progress.value() < dock.progress.maximum()
    assert "cancelled" in dock.status.text()
    assert dock.start_button.isEnabled() and not dock.cancel_button.isEnabled()


def test_bad_tags_file_gives_a_one_line_error(make_napari_viewer, qtbot, tmp_path):
    bad = tmp_path / "tags.json"
    bad.write_text(json.dumps({"videos": "nope"}))
    dock = _dock(make_napari_viewer, bad, tmp_path / "cam", epochs=1)
    dock.start_button.click()
    qtbot.waitUntil(lambda: not dock.running, timeout=60_000)
    assert dock.exit_code == 2
    status = dock.status.text()
    assert "\n" not in status and "error" in status and "tags.json" in status and "exit code 2" in status
    assert not (tmp_path / "cam").exists()
    assert dock.start_button.isEnabled()


# -- Load predictions ------------------------------------------------------------------
T, H, W = 4, 64, 80
KEY = "synth_0000"
TINY = {"backbone": "mobilenet_v3", "batch_size": 1, "min_size": 64, "max_size": 80, "device": "cpu", "warmup": 0}


@pytest.fixture(scope="module")
def detector(data) -> Path:
    """A 2-iteration Mask R-CNN (MobileNet-v3, 64 px) trained on the ground truth of ``data`` as pseudo-labels."""
    root = data.parent.parent
    gt = load_ytvis(data.parent / "gt.json")
    save_labels(root / "pseudo" / KEY / "pseudo.npz", gt_volume(gt, 1))
    list(train_detector(DetectionTrainConfig(iterations=2, **TINY), data, root / "pseudo", root / "maskrcnn"))
    return root / "maskrcnn"


def _viewer_with_video(make_napari_viewer, data: Path, pseudo: np.ndarray | None = None):
    """A viewer showing video 1 of ``data`` (frames + ground truth), and pseudo-labels when given."""
    viewer = make_napari_viewer()
    for layer_data, kwargs, kind in dataset_layers(data.parent / "gt.json", 1):
        getattr(viewer, f"add_{kind}")(layer_data, **kwargs)
    if pseudo is not None:
        gt = gt_volume(load_ytvis(data.parent / "gt.json"), 1)
        gt.labels = pseudo
        cats = json.loads((data.parent / "gt.json").read_text())["categories"]
        layer_data, kwargs, _ = labels_layer(gt, cats, "pseudo-labels")
        viewer.add_labels(layer_data, **kwargs)
    return viewer


def _load(dock, qtbot, timeout: int = 120_000) -> None:
    """Click Load predictions and wait for the worker: the button is re-enabled when it finishes."""
    assert dock.load_button.isEnabled()
    dock.load_button.click()
    assert not dock.load_button.isEnabled() and dock.predictor is not None
    qtbot.waitUntil(lambda: dock.predictor is None and dock.load_button.isEnabled(), timeout=timeout)


def _predict_dock(make_napari_viewer, data: Path, detector: Path, run: Path):
    """The video of ``data`` in a viewer with a Training dock on CPU whose run folder ``run`` holds ``detector``."""
    shutil.copytree(detector, run)
    viewer = _viewer_with_video(make_napari_viewer, data)
    dock = TrainingWidget(viewer)
    viewer.window.add_dock_widget(dock)
    dock.device_combo.setCurrentText("cpu")
    dock.run_edit.setText(str(run))
    return viewer, dock


def test_load_predictions_predicts_the_shown_video_once_then_reads_it_back(make_napari_viewer, qtbot, data, detector):
    run = data.parent.parent / "run-predict"
    shutil.rmtree(run, ignore_errors=True)
    viewer, dock = _predict_dock(make_napari_viewer, data, detector, run)
    _load(dock, qtbot)
    layer = viewer.layers["predictions"]
    assert layer.data.shape == (T, H, W) and layer.data.dtype == np.int32
    ids = [int(i) for i in np.unique(layer.data) if i]
    index = list(layer.features["index"])
    assert ids and index[0] == 0 and set(ids) <= set(index)  # a 2-iteration model still sees things (tubes overlap)
    assert set(layer.features["class"][1:]) <= {"disc", "box", "triangle", "star"}
    assert all(0.05 <= s <= 1 for s in layer.features["score"][1:])
    saved = run / "predictions" / f"{KEY}.json"
    assert saved.is_file() and {r["video_id"] for r in json.loads(saved.read_text())} == {1}
    assert "predicted now" in dock.predict_status.text() and dock.predict_progress.value() == 1
    stamp = saved.stat().st_mtime_ns

    start = time.monotonic()
    _load(dock, qtbot)  # stored now: read back, not predicted again
    assert time.monotonic() - start < 5 and saved.stat().st_mtime_ns == stamp
    assert "(stored)" in dock.predict_status.text()
    assert [ly.name for ly in viewer.layers].count("predictions") == 1
    np.testing.assert_array_equal(viewer.layers["predictions"].data, layer.data)


def test_cancel_stops_predicting_between_frames_and_writes_nothing(
    make_napari_viewer, qtbot, data, detector, tmp_path, monkeypatch
):
    slow_down(monkeypatch, "training.detection.predict.predict_frames", 0.5)
    run = tmp_path / "run"
    viewer, dock = _predict_dock(make_napari_viewer, data, detector, run)
    dock.load_button.click()
    qtbot.waitUntil(lambda: dock.predict_progress.value() >= 1, timeout=60_000)
    assert dock.predict_cancel_button.isEnabled() and not dock.load_button.isEnabled()
    dock.predict_cancel_button.click()
    qtbot.waitUntil(lambda: dock.predictor is None, timeout=60_000)
    assert dock.predict_status.text() == "prediction cancelled: nothing was written"
    assert 1 <= dock.predict_progress.value() < dock.predict_progress.maximum() == T
    assert not (run / "predictions").exists() and "predictions" not in viewer.layers
    assert dock.load_button.isEnabled() and not dock.predict_cancel_button.isEnabled()


def test_stored_predictions_and_matches_become_layers_and_rank_the_review_queue(
    make_napari_viewer, qtbot, data, tmp_path
):
    gt = gt_volume(load_ytvis(data.parent / "gt.json"), 1)
    cats = json.loads((data.parent / "gt.json").read_text())["categories"]
    predicted = gt.labels.copy()
    predicted[2] = 0  # the detector sees nothing in frame 2: the pseudo-labels there are suspect
    write_ytvis(tmp_path / "results.json", [type(gt)(predicted, gt.categories, gt.scores, gt.video)], cats, "results")
    box = {"boxes": [[10.0, 20.0, 8.0, 6.0]], "classes": [1], "scores": [0.9]}
    pair = {"t": 0, "t2": 1, "matches": [[0, 0, 0.9]], "transferred": [0], "warped_t": box, "expanded_t2": box}
    (tmp_path / "matches").mkdir()
    (tmp_path / "matches" / f"{KEY}.json").write_text(json.dumps({"video": KEY, "pairs": [pair]}))
    viewer = _viewer_with_video(make_napari_viewer, data, pseudo=gt.labels)
    corrections = CorrectionsWidget(viewer)
    viewer.window.add_dock_widget(corrections)
    dock = TrainingWidget(viewer)
    viewer.window.add_dock_widget(dock)
    dock.run_edit.setText(str(tmp_path))  # a project folder with results.json and matches, no model
    _load(dock, qtbot)
    np.testing.assert_array_equal(viewer.layers["predictions"].data, predicted)
    assert len(viewer.layers["matches"].data) == 1 and viewer.layers["matches"].data[0][0, 0] == 1
    dis = viewer.layers["pseudo-labels"].metadata["vis_ws"]["disagreement"]
    assert len(dis) == T and dis[2] == 1.0 and dis[1] == pytest.approx(0.1) and dis[0] == dis[3] == 0.0
    assert corrections.queue()[0] == 2
    assert corrections.queue_list.item(0).text().startswith("frame 2: disagreement 1.00")
    assert not (tmp_path / "predictions").exists()  # nothing was predicted


def test_a_run_folder_without_a_model_gives_a_one_line_notification(make_napari_viewer, qtbot, data, tmp_path):
    from napari.utils.notifications import notification_manager

    (tmp_path / "predictions").mkdir()  # predictions of other videos only, and no checkpoint.pt
    viewer = _viewer_with_video(make_napari_viewer, data)
    dock = TrainingWidget(viewer)
    viewer.window.add_dock_widget(dock)
    dock.run_edit.setText(str(tmp_path))
    seen = len(notification_manager.records)
    _load(dock, qtbot, timeout=30_000)
    messages = [str(n.message) for n in notification_manager.records[seen:]]
    assert len(messages) == 1 and "\n" not in messages[0]
    assert messages[0].startswith(f"{tmp_path}: no predictions of video {KEY} and no trained detector")
    assert dock.predict_status.text() == messages[0] and "predictions" not in viewer.layers
    assert dock.load_button.isEnabled() and not dock.predict_cancel_button.isEnabled()


def test_load_predictions_is_enabled_only_for_a_run_with_predictions_or_a_model(make_napari_viewer, tmp_path):
    from napari.utils.notifications import notification_manager

    dock = TrainingWidget(make_napari_viewer())
    dock.project_edit.setText(str(tmp_path / "project"))
    dock.stage_combo.setCurrentIndex(dock.stage_combo.findData("maskconsist"))
    assert dock.run_edit.text() == str(tmp_path / "project" / "maskconsist")  # follows the stage's output
    assert not dock.load_button.isEnabled()
    (tmp_path / "project" / "maskconsist").mkdir(parents=True)
    (tmp_path / "project" / "maskconsist" / "checkpoint.pt").write_bytes(b"")
    run = dock.run_edit.text()
    dock.run_edit.setText("")  # chosen again: the dock looks again
    dock.run_edit.setText(run)
    assert dock.load_button.isEnabled()
    seen = len(notification_manager.records)
    dock.load_button.click()  # no video open: said in one line, nothing started
    assert dock.predictor is None
    assert [str(n.message) for n in notification_manager.records[seen:]] == [
        "open a video first: Load predictions shows them on the frames layer"
    ]


# -- quitting napari mid-run never loses the run -------------------------------------------
def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


@pytest.mark.parametrize("close", ["viewer.close()", "the window's close button"])
def test_quitting_napari_mid_training_saves_a_checkpoint_that_resumes(make_napari_viewer, qtbot, data, tmp_path, close):
    out = tmp_path / "cam"
    dock = _dock(make_napari_viewer, data, out, epochs=200, extra=FAST.replace("--batch-size 4", "--batch-size 1"))
    viewer = dock.viewer
    viewer.window.add_dock_widget(dock)
    dock.start_button.click()
    qtbot.waitUntil(lambda: len(dock.loss_plot.values) >= 2, timeout=120_000)  # training, past its first save
    if close == "viewer.close()":
        viewer.close()
    else:
        viewer.window._qt_window.close()  # the close button, Ctrl+W (napari asks first, listing the training)
    # napari went on closing only once the run had stopped at a step boundary and saved
    assert dock.exit_code == EXIT_INTERRUPTED, dock.log.toPlainText()
    assert _temp_files(out) == []
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] >= 1

    # `--resume` takes the run up where it stopped (the CLI itself: napari's window is gone)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PYTHONUNBUFFERED": "1"}
    resumed = subprocess.Popen([*dock.command, "--resume"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        first = parse_progress_line(resumed.stdout.readline())
    finally:
        resumed.send_signal(signal.SIGINT)
        resumed.communicate(timeout=120)
    assert first is not None and first.message.startswith(f"resuming at step {state['step']}/"), first
    assert resumed.returncode == EXIT_INTERRUPTED


def test_napari_close_dialog_names_the_running_training_and_its_progress(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    dock = TrainingWidget(viewer)
    viewer.window.add_dock_widget(dock)
    dock.tags_edit.setText(str(tmp_path / "tags.json"))
    dock.stage_combo.setCurrentIndex(dock.stage_combo.findData("maskconsist"))
    dock.launcher_edit.setText(FAKE)
    tasks = viewer.window._task_status_manager
    dock.start_button.click()
    qtbot.waitUntil(lambda: dock.progress.value() >= 2, timeout=30_000)
    shown = dock.progress.value()
    assert tasks.get_status() == [
        f"napari-vis-ws: training MaskConsist, step 2 (iteration {shown}/192): "
        "quitting stops it after this step and saves its checkpoint"
    ]
    viewer.window._qt_window.close()
    assert dock.exit_code == EXIT_INTERRUPTED  # stopped by SIGINT, not killed
    saved = json.loads((tmp_path / "project" / "maskconsist" / "fake-checkpoint.json").read_text())["step"]
    assert saved >= shown and tasks.get_status() == [] and not tasks.is_busy()


def test_a_finished_run_leaves_nothing_in_the_close_dialog(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TOTAL", "3")
    viewer = make_napari_viewer()
    dock = TrainingWidget(viewer)
    dock.tags_edit.setText(str(tmp_path / "tags.json"))
    dock.launcher_edit.setText(FAKE)
    dock.start_button.click()
    assert viewer.window._task_status_manager.get_status()[0].startswith("napari-vis-ws: training Classifier")
    qtbot.waitUntil(lambda: not dock.running, timeout=30_000)
    assert dock.exit_code == 0 and viewer.window._task_status_manager.get_status() == []


def test_closing_the_dock_stops_its_run_with_a_checkpoint(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    dock = TrainingWidget(viewer)
    viewer.window.add_dock_widget(dock, name="Training")
    dock.tags_edit.setText(str(tmp_path / "tags.json"))
    dock.launcher_edit.setText(FAKE)
    dock.start_button.click()
    qtbot.waitUntil(lambda: dock.progress.value() >= 1, timeout=30_000)
    viewer.window.remove_dock_widget(dock)  # what the dock's close button does
    assert dock.exit_code == EXIT_INTERRUPTED and not dock.running
    assert (tmp_path / "project" / "cam" / "fake-checkpoint.json").is_file()


def test_without_napari_task_list_closing_the_window_still_stops_the_run(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    viewer = make_napari_viewer()
    monkeypatch.delattr(type(viewer.window), "_register_task_status")  # an older napari
    dock = TrainingWidget(viewer)
    viewer.window.add_dock_widget(dock)
    dock.tags_edit.setText(str(tmp_path / "tags.json"))
    dock.launcher_edit.setText(FAKE)
    dock.start_button.click()
    qtbot.waitUntil(lambda: dock.progress.value() >= 1, timeout=30_000)
    assert viewer.window._task_status_manager.get_status() == []  # nothing to cancel the run for us
    viewer.window._qt_window.close()
    assert dock.exit_code == EXIT_INTERRUPTED
    assert (tmp_path / "project" / "cam" / "fake-checkpoint.json").is_file()


# -- temporary files of killed writes ----------------------------------------------------------
def test_starting_a_run_removes_temp_files_that_killed_writes_left_in_its_folder(make_napari_viewer, qtbot, tmp_path):
    out = tmp_path / "project" / "cam"
    (out / "predictions").mkdir(parents=True)
    hour_ago = time.time() - 3600
    stale = [out / ".checkpoint.pt.abc123.tmp", out / "predictions" / ".synth_0000.json.k2x_9abc.tmp"]
    kept = [out / ".config.json.f00b4r12.tmp", out / "notes.tmp"]  # being written now; not a temporary file of ours
    for path in stale + kept:
        path.write_bytes(b"half a checkpoint")
    for path in [*stale, kept[1]]:
        os.utime(path, (hour_ago, hour_ago))
    dock = TrainingWidget(make_napari_viewer())
    dock.tags_edit.setText(str(tmp_path / "tags.json"))
    dock.resume_check.setChecked(True)
    dock.launcher_edit.setText("true")  # the run itself does nothing: the dock cleaned up before it started
    dock.start_button.click()
    assert _temp_files(out) == [".config.json.f00b4r12.tmp", "notes.tmp"]
    assert "removed 2 temporary file(s) of killed writes" in dock.log.toPlainText()
    qtbot.waitUntil(lambda: not dock.running, timeout=30_000)


# -- training on the corrections --------------------------------------------------------------
def _corrected_project(data: Path, project: Path) -> tuple[np.ndarray, np.ndarray]:
    """The video of ``data`` in ``project`` with its ground truth as pseudo-labels and frames 1 and 2 corrected
    (frame 1 reviewed: one instance deleted; frame 2 not reviewed). Returns (pseudo, corrected) labels."""
    from training.project import save_corrections, save_pseudo

    gt = load_ytvis(data.parent / "gt.json")
    pseudo = gt_volume(gt, 1)
    save_pseudo(project, KEY, pseudo)
    corrected = gt_volume(gt, 1)
    gone = int(next(k for k in np.unique(corrected.labels[1]) if k))
    corrected.labels[1][corrected.labels[1] == gone] = 0
    corrected.labels[2] = 0
    cats = json.loads((data.parent / "gt.json").read_text())["categories"]
    save_corrections(project, KEY, corrected, reviewed=[1], categories=cats)
    return pseudo.labels, corrected.labels


def test_detector_stages_train_on_the_saved_corrections_when_asked(make_napari_viewer, qtbot, data, tmp_path):
    project = tmp_path / "project"
    pseudo, corrected = _corrected_project(data, project)
    dock = TrainingWidget(make_napari_viewer())
    dock.tags_edit.setText(str(data))
    dock.project_edit.setText(str(project))
    dock.stage_combo.setCurrentIndex(dock.stage_combo.findData("maskrcnn"))
    assert dock.labels_combo.isEnabled() and dock.labels_combo.currentText() == "pseudo-labels"
    dock.labels_combo.setCurrentIndex(dock.labels_combo.findData("corrected"))
    assert dock.labels_combo.currentText() == "pseudo-labels with my corrections"
    dock.launcher_edit.setText("true")
    dock.start_button.click()
    assert dock.command[dock.command.index("--pseudo") + 1] == str(project / "targets")
    target = load_labels(project / "targets" / KEY / "pseudo.npz").labels
    np.testing.assert_array_equal(target[1], corrected[1])  # the reviewed frame, as corrected
    np.testing.assert_array_equal(target[[0, 2, 3]], pseudo[[0, 2, 3]])  # the others, as pseudo-labelled
    assert not np.array_equal(corrected[1], pseudo[1])
    results = json.loads((project / "targets" / "pseudo_labels.json").read_text())
    assert {r["video_id"] for r in results} == {1}
    qtbot.waitUntil(lambda: not dock.running, timeout=30_000)

    dock.stage_combo.setCurrentIndex(dock.stage_combo.findData("classifier"))  # trains on the tags alone
    assert not dock.labels_combo.isEnabled()


def test_training_on_corrections_without_any_is_refused_in_one_line(make_napari_viewer, data, tmp_path):
    from napari.utils.notifications import notification_manager

    dock = TrainingWidget(make_napari_viewer())
    dock.tags_edit.setText(str(data))
    dock.project_edit.setText(str(tmp_path / "project"))
    dock.stage_combo.setCurrentIndex(dock.stage_combo.findData("maskconsist"))
    dock.labels_combo.setCurrentIndex(dock.labels_combo.findData("corrected"))
    dock.launcher_edit.setText("true")
    seen = len(notification_manager.records)
    dock.start_button.click()
    assert not dock.running and dock.process is None
    message = f"no saved corrections in {tmp_path / 'project' / 'corrections'}: "
    message += "correct some frames in the Corrections dock first"
    assert [str(n.message) for n in notification_manager.records[seen:]] == [message]
    assert dock.status.text() == message and not (tmp_path / "project" / "targets").exists()


# -- options per stage, errors in the dock's words, resume keeps the curve ------------------------
def test_options_typed_for_one_stage_stay_with_it(make_napari_viewer, tmp_path):
    dock = TrainingWidget(make_napari_viewer())
    dock.tags_edit.setText(str(tmp_path / "tags.json"))
    dock.extra_edit.setText("--arch resnet18 --crop 192")
    dock.epochs_spin.setValue(7)
    dock.resume_check.setChecked(True)
    dock.out_edit.setText(str(tmp_path / "my-cam"))
    dock._out_edited(str(tmp_path / "my-cam"))  # as typed
    dock.stage_combo.setCurrentIndex(dock.stage_combo.findData("maskrcnn"))
    assert dock.extra_edit.text() == "" and dock.epochs_spin.value() == 0 and not dock.resume_check.isChecked()
    assert dock.out_edit.text() == str(tmp_path / "project" / "maskrcnn")
    argv = build_command(dock.stage, tmp_path / "tags.json", tmp_path / "project", dock.options())
    assert "--arch" not in argv and "--crop" not in argv and "--epochs" not in argv and "--resume" not in argv
    dock.extra_edit.setText("--backbone mobilenet_v3")
    dock.iterations_spin.setValue(50)
    dock.stage_combo.setCurrentIndex(dock.stage_combo.findData("classifier"))
    assert dock.extra_edit.text() == "--arch resnet18 --crop 192" and dock.epochs_spin.value() == 7
    assert dock.resume_check.isChecked() and dock.out_edit.text() == str(tmp_path / "my-cam")
    dock.stage_combo.setCurrentIndex(dock.stage_combo.findData("maskrcnn"))
    assert dock.extra_edit.text() == "--backbone mobilenet_v3" and dock.options()["iterations"] == 50


def test_a_run_error_names_the_dock_control_not_the_cli_flag(make_napari_viewer, qtbot, data, tmp_path):
    out = tmp_path / "cam"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"")  # a run already trained here
    dock = _dock(make_napari_viewer, data, out, epochs=1)
    dock.start_button.click()
    qtbot.waitUntil(lambda: not dock.running, timeout=60_000)
    assert dock.exit_code == 2
    status = dock.status.text()
    assert "already holds a trained checkpoint: tick 'resume from the checkpoint' to continue it" in status
    assert "or choose another Output folder" in status and "--" not in status and "\n" not in status


def test_resuming_a_run_continues_its_loss_curve(make_napari_viewer, qtbot, tmp_path):
    dock = TrainingWidget(make_napari_viewer())
    dock.tags_edit.setText(str(tmp_path / "tags.json"))
    dock.launcher_edit.setText(FAKE)
    dock.start_button.click()
    qtbot.waitUntil(lambda: len(dock.loss_plot.values) >= 3, timeout=30_000)
    dock.cancel_button.click()
    qtbot.waitUntil(lambda: not dock.running, timeout=30_000)
    before, done = list(dock.loss_plot.values), dock.progress.value()
    assert before == [1.0 / (i + 1) for i in range(len(before))]
    dock.resume_check.setChecked(True)
    dock.start_button.click()
    assert dock.loss_plot.values == before and dock.progress.value() == done  # not wiped while it starts
    qtbot.waitUntil(lambda: len(dock.loss_plot.values) >= len(before) + 2, timeout=30_000)
    dock.cancel_button.click()
    qtbot.waitUntil(lambda: not dock.running, timeout=30_000)
    values = dock.loss_plot.values
    assert values[: len(before)] == before and values[len(before)] == 1.0 / (len(before) + 1)  # one curve

    dock.resume_check.setChecked(False)  # a new run in the folder: a new curve (the fake starts over)
    shutil.rmtree(tmp_path / "project" / "cam")
    dock.start_button.click()
    assert dock.loss_plot.values == []
    dock.cancel_button.click()
    qtbot.waitUntil(lambda: not dock.running, timeout=30_000)


def test_more_options_are_forms_of_each_commands_own_options_and_reach_only_its_run(
    make_napari_viewer, qtbot, tmp_path
):
    from training.cam.train import CAMTrainConfig
    from training.irn.train import IRNTrainConfig

    dock = TrainingWidget(make_napari_viewer())
    dock.tags_edit.setText(str(tmp_path / "tags.json"))
    dock.more_button.setChecked(True)  # the first look reads every command's options, in a child process
    qtbot.waitUntil(lambda: bool(dock.more_forms), timeout=120_000)
    assert set(dock.more_forms) == {"classifier", "flowirn", "maskrcnn", "maskconsist", "pipeline"}
    assert {"--preset", "--variant", "--instance-bg"} <= {s.flag for s in dock.more_forms["pipeline"][0]}
    specs, form = dock.more_forms["classifier"]
    fields = {spec.flag: field for spec, field in zip(specs, form, strict=True)}
    assert fields["--crop"].value == CAMTrainConfig().crop and fields["--pooling"].value == CAMTrainConfig().pooling
    assert "--out" not in fields and "--epochs" not in fields and "--device" not in fields  # the dock's own controls
    assert "--crop" in fields["--crop"].tooltip and fields["--crop"].tooltip.count("\n") == 0
    assert dock.more_argv() == []  # nothing changed: the command's defaults stand
    fields["--crop"].value = 192
    fields["--pooling"].value = "lse"
    assert dock.more_argv() == ["--crop", "192", "--pooling", "lse"]
    argv = build_command(
        dock.stage, tmp_path / "tags.json", tmp_path / "project", {**dock.options(), "more": dock.more_argv()}
    )
    assert argv[argv.index("--crop") + 1] == "192" and argv[-2:] == ["--progress", "json"]

    dock.stage_combo.setCurrentIndex(dock.stage_combo.findData("flowirn"))
    assert form.native.isHidden() and not dock.more_forms["flowirn"][1].native.isHidden()
    assert dock.more_argv() == []  # what was set for the classifier stays with it
    irn_specs, irn_form = dock.more_forms["flowirn"]
    irn = {spec.flag: field for spec, field in zip(irn_specs, irn_form, strict=True)}
    assert irn["--irn-crop"].value == IRNTrainConfig().crop and "--crop" not in irn
    assert "--delta-max" not in {s.flag for s in dock.more_forms["maskrcnn"][0]}  # step 2's options: step 2 only
    assert "--delta-max" in {s.flag for s in dock.more_forms["maskconsist"][0]}
    irn["--irn-lr"].value = "fast"
    dock.start_button.click()
    assert not dock.running and dock.status.text() == "More options: --irn-lr 'fast': expected a number"
    dock.stage_combo.setCurrentIndex(dock.stage_combo.findData("classifier"))
    assert dock.more_argv() == ["--crop", "192", "--pooling", "lse"]


def test_run_all_shows_one_progress_bar_per_stage(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TOTAL", "4")
    dock = TrainingWidget(make_napari_viewer())
    dock.tags_edit.setText(str(tmp_path / "tags.json"))
    dock.stage_combo.setCurrentIndex(dock.stage_combo.findData("pipeline"))
    dock.launcher_edit.setText(FAKE)
    dock.start_button.click()
    qtbot.waitUntil(lambda: dock.stage_bars.current == "cams", timeout=30_000)
    bars = dock.stage_bars.bars
    assert list(bars) == ["flow", "train-cam", "cams"] and not dock.stage_bars.isHidden()
    assert [(bars[n].format(), bars[n].value()) for n in ("flow", "train-cam")] == [("done", 4), ("done", 4)]
    dock.cancel_button.click()
    qtbot.waitUntil(lambda: not dock.running, timeout=30_000)
    assert bars["cams"].format() == "stopped at %v/%m" and bars["cams"].value() < 4
    dock.start_button.click()  # Start goes on (the real pipeline skips what is done): the plan's bars again
    qtbot.waitUntil(lambda: not dock.running, timeout=30_000)
    assert dock.exit_code == 0
    assert [(b.format(), b.value()) for b in dock.stage_bars.bars.values()] == [("done", 4)] * 3
    dock.stage_combo.setCurrentIndex(dock.stage_combo.findData("classifier"))
    dock.start_button.click()  # a one-stage run: the dock's own bar only
    assert dock.stage_bars.isHidden()
    dock.cancel_button.click()
    qtbot.waitUntil(lambda: not dock.running, timeout=30_000)
