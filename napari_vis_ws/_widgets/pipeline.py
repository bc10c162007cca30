"""The Pipeline dock: run each stage of flowIRN on one video and see its results as layers.

A project is a run folder with the layout of ``vis-ws pseudo-labels TAGS --out
RUN``: ``flow/``, ``cam/`` (trained classifier), ``cams/``, ``irn/`` (trained
IRN) and ``pseudo/``, and of ``vis-ws pipeline TAGS --out RUN`` for the
detector: ``maskconsist/`` (preferred) or ``maskrcnn/``, ``results.json``. A
run made by the command line opens here as is, and what the dock computes
lands in the same places, so reopening a project shows its results without
computing anything. The default project of a tags file ``DIR/tags.json`` is
``DIR/project/``.

Each stage (Flow, CAMs, Pseudo-labels, Predictions) runs in a napari generator
worker that yields after every frame: the progress bar follows, Cancel stops it
between two frames, and the layers (:mod:`napari_vis_ws._stage_layers`) are
built in the worker and handed to the main thread, the only place layers are
touched. CAM layers refresh while the stage runs; the others appear when it
ends. Predictions is the Training dock's Load predictions
(:func:`napari_vis_ws._project.prediction_work`) on the project: the
video's stored predictions, or the project's detector run on it and kept in
``RUN/predictions/<video>.json``.

**Settings…** shows a form of the options of ``vis-ws pseudo-labels`` that
the stages take (flow method, device, the instance background score,
normalisation and split), generated from the command itself; a field left
empty keeps what the project recorded, else the default, so the dock and
the command line make the same labels.

A stage that cannot run yet says what it lacks and offers what makes it:
**Run Flow, then CAMs, then Pseudo-labels** for this video's missing
results, or **Run all** where a model has to be trained first
(:func:`napari_vis_ws._stages.missing_before`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_vis_ws._layers import FRAMES, META_KEY, dataset_layers
from napari_vis_ws._placing import LayerPlacer
from napari_vis_ws._prediction_layers import PREDICTIONS, describe_matches
from napari_vis_ws._project import LoadedPredictions, matches_path
from napari_vis_ws._stage_layers import (
    PSEUDO_LABELS,
    SHOWN_STAGES,
    STAGES,
    attach_disagreement,
    labels_snapshot,
    newest_result,
    project_layers,
)
from napari_vis_ws._stages import (
    STAGE_WORK,
    missing_before,
    predictions_stage,
    settings_options,
    stage_settings,
    video_shape,
    video_source,
)
from napari_vis_ws._tasks import WindowClose, register_task, update_task, wait_for_workers
from napari_vis_ws._warm_up import settle, start_warm_up, thaw
from napari_vis_ws._widgets._option_forms import OptionForms
from napari_vis_ws._widgets._pipeline_run_all import TITLES, RunAllOffers
from napari_vis_ws._widgets._score_slider import ScoreSlider
from napari_vis_ws._workers import start_generator_worker, start_worker

if TYPE_CHECKING:
    import napari


PROJECT_DIR = "project"  # default project folder, beside the tags file
REFRESH_S = 0.5  # how often the layers of a running stage are rebuilt
STOP_WAIT_S = 60.0  # closing the window waits this long for a stage to stop after its current frame
DOCK_STAGES = (*STAGES, PREDICTIONS)  # one row each, in this order


def with_layers(
    events: Iterator[Any], build: Callable[[], list[tuple]], refresh_s: float | None = None
) -> Iterator[Any]:
    """Pass a stage's progress events on, then its layers (a list of layer-data tuples).

    With ``refresh_s``, the layers are also rebuilt and yielded that often
    while the stage runs (for stages that write frame by frame).
    """
    last = time.monotonic()
    for event in events:  # closing this generator (Cancel) closes ``events`` too
        yield event
        if refresh_s is not None and time.monotonic() - last >= refresh_s:
            yield build()
            last = time.monotonic()
    yield build()


# -- the dock ---------------------------------------------------------------------
@dataclass
class StageRow:
    """The controls of one stage."""

    run_button: QPushButton
    progress: QProgressBar
    cancel_button: QPushButton


class PipelineWidget(RunAllOffers, QWidget):
    """Choose a tags file, a video and a project; run Flow, CAMs, Pseudo-labels, Predictions; see every result."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: Any = None  # the running stage
        self.loader: Any = None  # the worker loading stored results
        self._load_id = 0  # only the latest load is shown
        self.running: str | None = None
        self._messages: dict[str, str] = {}  # last log line of each stage
        self._tags: Path | None = None
        self._categories: list[dict[str, Any]] = []
        self._project_auto = True  # the project field follows the tags file until the user edits it
        self._newest: str | None = None  # the newest result of the running stage
        self._task: Any = None  # the running stage in napari's task registry (its close dialog lists it)
        self._closing = False
        self._opened: set[Path] = set()  # projects whose stale temporary files were removed
        self._showing = 0  # the load whose layers are being put in the viewer
        self._next: str | None = None  # the stage to run when the running one finishes
        self._keys: dict[int, str] = {}  # video id -> its output name, from the tags file
        self.placer = LayerPlacer(napari_viewer)  # stage layers into the viewer, paced (napari_vis_ws._placing)

        source, stages = self._source_group(), self._stage_group()
        self.settings = OptionForms(
            "Settings…",
            "How the stages run: the options of `vis-ws pseudo-labels` they take (empty: the project's recorded "
            "setting, else the default)",
            settings_options,
            self._notify,
        )
        self.settings.select("settings")
        self.score_slider = ScoreSlider(napari_viewer)  # which predictions are drawn
        layout = QVBoxLayout(self)
        layout.addWidget(source)
        layout.addWidget(stages)
        layout.addWidget(self.score_slider)
        layout.addWidget(self.settings)
        layout.addWidget(self.info)
        layout.addStretch(1)
        from napari_vis_ws._docking import tabify_when_docked

        tabify_when_docked(self)  # into a tab with the plugin's other docks (issue 16)
        self.window_close = WindowClose(self, self._window_closing)
        self._freeze: object | None = None  # the token of the heap freeze this dock made (napari_vis_ws._warm_up)
        # the backend's imports and napari's unit registry, while the user reads the dock (issue 16)
        self.warm_up = start_warm_up(self._warmed_up, self._notify)

    def _source_group(self) -> QGroupBox:
        """The "Video and project" group: tags file, video, project folder, Show results."""
        self.tags_edit = QLineEdit()
        self.tags_edit.setPlaceholderText("frame-tags JSON (vis-ws tags)")
        self.tags_edit.editingFinished.connect(self._tags_changed)
        tags_browse = QPushButton("Browse…")
        tags_browse.clicked.connect(self._browse_tags)
        tags_row = QHBoxLayout()
        tags_row.addWidget(self.tags_edit)
        tags_row.addWidget(tags_browse)

        self.video_combo = QComboBox()
        self.video_combo.currentIndexChanged.connect(self._video_changed)

        self.project_edit = QLineEdit()
        self.project_edit.setPlaceholderText(f"project folder (default: {PROJECT_DIR}/ beside the tags file)")
        self.project_edit.setToolTip(
            "Run folder: flow/, cam/, cams/, irn/, pseudo/ (as `vis-ws pseudo-labels --out`), "
            "maskconsist/ or maskrcnn/ (as `vis-ws pipeline --out`)"
        )
        self.project_edit.textEdited.connect(self._project_edited)
        self.project_edit.editingFinished.connect(lambda: self.show_results())
        project_browse = QPushButton("Browse…")
        project_browse.clicked.connect(self._browse_project)
        project_row = QHBoxLayout()
        project_row.addWidget(self.project_edit)
        project_row.addWidget(project_browse)

        self.show_button = QPushButton("Show results")
        self.show_button.setToolTip("Show every result stored in the project for this video")
        self.show_button.clicked.connect(lambda: self.show_results())
        self.info = QLabel("")
        self.info.setWordWrap(True)

        source = QGroupBox("Video and project")
        form = QFormLayout(source)
        form.addRow("Tags", tags_row)
        form.addRow("Video", self.video_combo)
        form.addRow("Project", project_row)
        form.addRow(self.show_button)
        self._source_controls = [self.tags_edit, tags_browse, self.video_combo, self.project_edit, project_browse]
        return source

    def _stage_group(self) -> QGroupBox:
        """The "Stages" group: per stage a Run button, a progress bar and Cancel (``self.stages``); Run all."""
        stages = QGroupBox("Stages")
        grid = QGridLayout(stages)
        self._run_all_row(grid, len(DOCK_STAGES))
        self.stages: dict[str, StageRow] = {}
        for i, name in enumerate(DOCK_STAGES):
            run = QPushButton(f"Run {TITLES[name]}")
            run.clicked.connect(partial(self.run_stage, name))
            bar = QProgressBar()
            bar.setRange(0, 1)
            bar.setValue(0)
            cancel = QPushButton("Cancel")
            cancel.setEnabled(False)
            cancel.clicked.connect(partial(self.cancel, name))
            grid.addWidget(QLabel(TITLES[name]), i, 0)
            grid.addWidget(run, i, 1)
            grid.addWidget(bar, i, 2)
            grid.addWidget(cancel, i, 3)
            self.stages[name] = StageRow(run, bar, cancel)
        return stages

    def _window_closing(self) -> None:
        """napari's window is closing: no more layers are put in place (napari's dims fail under a layer added
        then), and the heap is thawed so the closed viewer can be collected. A close refused (napari's dialog)
        lets the dock show results again."""
        self._closing = True
        thaw(self._freeze)
        QTimer.singleShot(0, self._close_refused)

    def _close_refused(self) -> None:
        try:
            window = self.window_close.window()
            if window is not None and window.isVisible() and self.worker is None:
                self._closing = False
        except RuntimeError:  # the dock went with the window
            pass

    # -- the session's one-time costs (napari_vis_ws._warm_up) ----------------------
    def _warmed_up(self, registry: Any) -> None:
        """Install the unit registry; freeze the heap if the viewer is empty and this dock hears it close."""
        if not self._closing:
            token = settle(registry, freeze=not len(self.viewer.layers) and self.window_close.window() is not None)
            if token is not None:  # a dock deleted before its window closes thaws the heap too
                self._freeze = token
                self.destroyed.connect(lambda *_: thaw(token))

    # -- choosing -----------------------------------------------------------------
    @property
    def project(self) -> Path | None:
        """The project folder, or None when none is set."""
        text = self.project_edit.text().strip()
        return Path(text) if text else None

    @property
    def video_id(self) -> int | None:
        """Id of the chosen video."""
        return self.video_combo.currentData()

    def set_tags(self, path: str | os.PathLike) -> None:
        """Point the dock at a tags (or dataset) JSON and list its videos."""
        self.tags_edit.setText(str(path))
        self._tags_changed()

    def set_project(self, path: str | os.PathLike) -> None:
        """Use ``path`` as the project folder and show what it holds for the current video."""
        self.project_edit.setText(str(path))
        self._project_auto = False
        self.show_results()

    def _browse_tags(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Frame tags", "", "JSON (*.json);;All (*)")
        if path:
            self.set_tags(path)

    def _browse_project(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Project folder", self.project_edit.text())
        if path:
            self.set_project(path)

    def _project_edited(self, _text: str) -> None:
        self._project_auto = False

    def _tags_changed(self) -> None:
        from training.data.sources import load_dataset_json, video_key
        from training.errors import InputError

        text = self.tags_edit.text().strip()
        path = Path(text) if text else None
        if path == self._tags:
            return
        self._tags, self._categories = None, []
        self.video_combo.blockSignals(True)
        self.video_combo.clear()
        self.video_combo.blockSignals(False)
        if path is None:
            return
        try:
            data = load_dataset_json(path)
        except InputError as exc:
            self._notify(str(exc))
            return
        self._tags, self._categories = path, list(data["categories"])
        self._keys = {int(v["id"]): video_key(v) for v in data["videos"]}
        if self._project_auto:
            self.project_edit.setText(str(path.parent / PROJECT_DIR))
        self.video_combo.blockSignals(True)
        for v in data["videos"]:
            self.video_combo.addItem(f"{v['id']}: {video_key(v)} ({len(v['file_names'])} frames)", v["id"])
        self.video_combo.blockSignals(False)
        self._video_changed()

    def _video_changed(self) -> None:
        if self.video_id is not None:
            self.show_results()

    # -- showing stored results ---------------------------------------------------
    def _ready(self) -> tuple[Path, Path, int] | None:
        """(tags, project, video id), or None after saying what is missing."""
        if self._tags is None or self.video_id is None:
            self._notify("choose a frame-tags JSON and a video first")
            return None
        if self.project is None:
            self._notify("choose a project folder first")
            return None
        return self._tags, self.project, int(self.video_id)

    def _frames_shown(self, tags: Path, video_id: int) -> bool:
        if FRAMES not in self.viewer.layers:
            return False
        src = self.viewer.layers[FRAMES].metadata.get(META_KEY, {})
        return src.get("json") == str(tags) and src.get("video_id") == video_id

    def show_results(self, note: str = "") -> None:
        """Show the video and every result the project holds for it (read in a worker, nothing computed).

        ``note`` starts the line shown in the dock once they are loaded.
        """
        if self.running is not None or self._tags is None or self.video_id is None or self.project is None:
            return
        tags, project, video_id = self._tags, self.project, int(self.video_id)
        with_frames = not self._frames_shown(tags, video_id)
        categories = self._categories
        clean = project not in self._opened
        self._opened.add(project)

        def load() -> tuple[str, tuple[int, int, int], list[tuple], list[tuple]]:
            import pandas  # noqa: F401  (napari's feature tables need it: its first import, 1 s, off the main thread)

            if clean:  # a project opened: the temporary files of writes killed long ago go
                from training.atomic import remove_stale_temp_files

                remove_stale_temp_files(project, recursive=True)
            source = video_source(tags, video_id)
            shape = video_shape(source)
            frames = dataset_layers(tags, video_id) if with_frames else []
            stored = project_layers(project, source.key, categories, shape, video=source.video)
            return source.key, shape, frames, stored

        self._load_id += 1
        load_id = self._load_id

        def current() -> bool:
            return load_id == self._load_id and not self._closing

        def ready() -> None:
            if current():
                self.show_button.setEnabled(True)

        def shown(loaded: tuple[str, tuple[int, int, int], list[tuple], list[tuple]]) -> None:
            if current():
                self._showing = load_id
                self._show_loaded(note, loaded, current, ready)

        def finished() -> None:
            if self._showing != load_id:  # nothing to show (an error): ready now, else once every layer is in
                ready()

        self.show_button.setEnabled(False)
        self.info.setText("opening…")
        self.loader = start_worker(load, shown, self._notify, finished)

    def _show_loaded(
        self,
        note: str,
        loaded: tuple[str, tuple[int, int, int], list[tuple], list[tuple]],
        current: Callable[[], bool],
        ready: Callable[[], None],
    ) -> None:
        """Put the loaded layers in the viewer, one per turn of the event loop while ``current()``; then ``ready()``."""
        key, (t, h, w), frames, layers = loaded
        if frames:
            before = self.viewer.layers[FRAMES].data.shape if FRAMES in self.viewer.layers else None
            for data, kwargs, kind in frames:
                self.placer.put(data, kwargs, kind)
            self.viewer.layers.move(self.viewer.layers.index(FRAMES), 0)
            self.viewer.dims.set_current_step(0, 0)
            if before is not None and before != self.viewer.layers[FRAMES].data.shape:
                self.viewer.reset_view()  # another frame size (another dock's video): the whole frame in view
        names = ", ".join(kw["name"] for _, kw, _ in layers)
        found = f"results: {names}" if layers else f"no results yet in {self.project}: run the stages below"
        self.info.setText(f"{note}{key}: {t} frames of {w}×{h}; {found}")
        self.placer.show(layers, SHOWN_STAGES, paced=current, then=ready)

    # -- running stages -------------------------------------------------------------
    def run_stage(self, name: str) -> None:
        """Run one stage on the chosen video in a generator worker; when it cannot run yet, offer what it needs."""
        if self.running is not None:
            return
        ready = self._ready()
        if ready is None:
            return
        tags, project, video_id = ready
        self.offer_button.hide()
        need = missing_before(name, project, self._keys.get(video_id, ""))
        if need is not None:
            self._make_offer(name, *need)
            return
        try:
            settings = stage_settings(name, self.settings.values("settings"))
        except ValueError as exc:  # a Settings field its option cannot take
            self._notify(f"{TITLES[name]}: {exc}")
            return
        categories = self._categories
        pseudo = labels_snapshot(self.viewer, PSEUDO_LABELS) if name == PREDICTIONS else None  # for the disagreement

        def work() -> Iterator[Any]:
            if name == PREDICTIONS:  # hands over its own layers (a LoadedPredictions) at its end
                yield from predictions_stage(tags, project, video_id, categories, pseudo, **settings)
                return
            source = video_source(tags, video_id)
            shape = video_shape(source)

            def build() -> list[tuple]:
                return project_layers(project, source.key, categories, shape, (name,))

            events = STAGE_WORK[name](tags, project, video_id, **settings)
            yield from with_layers(events, build, REFRESH_S if name == "cams" else None)

        row = self.stages[name]
        self.running = name
        for r in self.stages.values():
            r.run_button.setEnabled(False)
        for w in [*self._source_controls, self.show_button]:
            w.setEnabled(False)
        row.progress.setRange(0, 1)
        row.progress.setValue(0)
        row.progress.setFormat("%p%")
        row.cancel_button.setEnabled(True)
        self.info.setText(f"{TITLES[name]}: running…")
        self.worker = start_generator_worker(
            work,
            partial(self._stage_yielded, name),
            self._notify,
            partial(self._stage_done, name),
            partial(self._stage_finished, name),
        )
        what = f"{TITLES[name]} of video {video_id} in {project}: quitting stops it after the current frame"
        self._task = register_task(self.viewer, what, self.stop_and_wait)

    def stop_and_wait(self, timeout_s: float = STOP_WAIT_S) -> bool:
        """Stop the running stage after its current frame and wait until it has cleaned up (closing the window).

        Returns whether it stopped within ``timeout_s``.
        """
        self._closing = True  # nothing is shown any more: the viewer is going
        if self.worker is None:
            return True
        self.worker.quit()
        return wait_for_workers(timeout_s)  # its generator is closed in its thread: its clean-up runs first

    def cancel(self, name: str) -> None:
        """Stop the running stage after the frame it is on."""
        if self.running == name and self.worker is not None:
            self.worker.quit()
            self.stages[name].cancel_button.setEnabled(False)
            self.info.setText(f"{TITLES[name]}: cancelling…")

    def _stage_yielded(self, name: str, value: Any) -> None:
        from training.progress import Progress

        if self._closing:  # the window is gone: its widgets and layers with it
            return
        if isinstance(value, Progress):
            bar = self.stages[name].progress
            bar.setRange(0, max(value.total, 1))
            bar.setValue(min(value.done, max(value.total, 1)))
            bar.setFormat(f"%v/%m {value.unit}s")
            if value.message:
                self._messages[name] = value.message
                self.info.setText(value.message)
        elif isinstance(value, LoadedPredictions):
            self._show_predictions(value)
        else:  # paced: the first CAM refresh adds a layer per class, 0.1-0.3 s of the main thread each
            self.placer.show(value, (name,), paced=lambda: not self._closing)
            self._newest = newest_result([kw["name"] for _, kw, _ in value])

    def _show_predictions(self, loaded: LoadedPredictions) -> None:
        """Show ``predictions`` (and ``matches``); hand the disagreement to the pseudo-labels layer."""
        self.placer.show(loaded.layers, (PREDICTIONS, "matches"))
        attach_disagreement(self.viewer, loaded.disagreement)
        predictions = next((d for d, kw, _ in loaded.layers if kw["name"] == PREDICTIONS), None)
        count = 0 if predictions is None else int(np.count_nonzero(np.unique(predictions)))
        how = f"predicted now, saved to {loaded.predicted}" if loaded.predicted else "stored"
        matched = describe_matches(matches_path(self.project, loaded.key)) if self.project is not None else ""
        self._messages[PREDICTIONS] = f"{loaded.key}: {count} predicted instances ({how})" + (
            f". {matched}" if matched else ""
        )

    def _stage_done(self, name: str) -> None:
        if self._closing:
            return
        if self._newest is not None and self._newest in self.viewer.layers:
            self.viewer.layers[self._newest].visible = True  # the result just made is shown
        self._newest = None
        bar = self.stages[name].progress
        bar.setValue(bar.maximum())
        self.info.setText(f"{TITLES[name]}: done. {self._messages.pop(name, '')}".strip())
        self._next = self._queue.pop(0) if self._queue else None  # an offer's next stage, once this one is over

    def _stage_finished(self, name: str) -> None:
        if self.placer.pacing and not self._closing:  # its last layers are still going in: finish after them
            QTimer.singleShot(20, partial(self._stage_finished, name))
            return
        row = self.stages[name]
        cancelled = self.worker is not None and self.worker.abort_requested
        update_task(self.viewer, self._task, "cancelled" if cancelled else "completed")
        self._task = None
        self.running = None
        if self._closing:
            self.worker = None
            return
        self.worker = None
        row.cancel_button.setEnabled(False)
        for w in [*self._source_controls, self.show_button]:
            w.setEnabled(True)
        for r in self.stages.values():
            r.run_button.setEnabled(True)
        after, self._next = self._next, None
        if cancelled or after is None:
            self._queue = []  # a cancelled or failed step ends the offer's chain
        if cancelled and not self._closing:  # show what the stage wrote before it stopped
            self.show_results(f"{TITLES[name]} cancelled at {row.progress.value()}/{row.progress.maximum()}. ")
        elif after is not None:
            self.run_stage(after)

    def _notify(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.info.setText(message)
        show_error(message)
