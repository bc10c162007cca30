"""The Training dock: the exact `vis-ws` commands it runs, its JSON-lines protocol, real runs, Cancel, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from napari_vis_ws._training import (
    build_command,
    device_used,
    error_line,
    eta_seconds,
    format_eta,
    parse_progress_line,
)
from napari_vis_ws._widgets.training import EXIT_INTERRUPTED, TrainingWidget
from training.cli import main
from training.progress import Progress

pytestmark = pytest.mark.gui

FAST = "--arch resnet18 --batch-size 4 --crop 64 --workers 0"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Frame tags of 1 video x 4 frames of 64x80."""
    root = tmp_path_factory.mktemp("training")
    args = ["--videos", "1", "--frames", "4", "--height", "64", "--width", "80", "--seed", "1"]
    assert main(["sample", "--out", str(root / "data"), *args]) == 0
    return root / "data" / "tags.json"


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
