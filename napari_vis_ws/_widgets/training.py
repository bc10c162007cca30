"""The Training dock: train a stage with our own CLI in a subprocess and follow it live.

The dock builds a ``vis-ws`` command (:func:`napari_vis_ws._training.build_command`)
and runs it with :class:`QProcess`, so the viewer never blocks and the very
same run works headless. The command prints ``--progress json`` lines on
stdout: they drive the progress bar (with ETA), the loss curve and the device
line; any other output goes to the log. Cancel sends SIGINT, which our CLI
turns into "finish this step, save the checkpoint, exit 130"; a run that has
not stopped after :attr:`TrainingWidget.cancel_timeout_s` is killed.

Quitting napari never kills a run half-way: the run is a task of napari's
window (its close dialog lists it), and closing the window, or the dock,
stops it the way Cancel does and waits (the window still painted) for its
checkpoint before napari goes on closing. Before a run starts in an output
folder, the temporary files of writes killed long ago are removed there.

Options (epochs, iterations, weights, resume, output, more options) are kept
per stage: switching the stage shows that stage's own. The Mask R-CNN stages
train on the pseudo-labels, or on the pseudo-labels with the corrections
saved in the project (``PROJECT/corrections/``), written as training targets
to ``PROJECT/targets`` when the run starts. A resumed run continues the loss
curve of the run it resumes.

A launcher (default empty: this machine) prefixes the command, e.g.
``srun --gres=gpu:1`` or ``ssh gpu-host``, to train on a GPU server or
cluster that shares the project folder (``vis-ws`` must be on its PATH).

Load predictions shows what a trained detector predicts on the video in the
viewer (the ``frames`` layer of a dataset or tags JSON): the ``predictions``
layer (and ``matches`` when the run has MaskConsist matches of the video),
from the run's stored results (``RUN/results.json``,
``RUN/predictions/<video>.json``); a run with a model but no results for the
video first predicts that one video in a worker thread (``vis-ws predict``'s
:func:`training.detection.predict.predict`, progress bar, Cancel), saved as
``RUN/predictions/<video>.json``. With a ``pseudo-labels`` layer of the same
video open, their MaskConsist disagreement per frame goes into its metadata,
where the Corrections dock's review queue reads it.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QEvent, QObject, QProcess, QProcessEnvironment, QTimer
from qtpy.QtGui import QCloseEvent
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_vis_ws._layers import FRAMES, META_KEY
from napari_vis_ws._prediction_layers import PREDICTIONS, has_predictions
from napari_vis_ws._predictions import LoadedPredictions, prediction_work
from napari_vis_ws._stage_layers import attach_disagreement, labels_snapshot
from napari_vis_ws._tasks import register_task, update_task, watch_window
from napari_vis_ws._training import (
    DEVICES,
    STAGES,
    WEIGHTS_STAGES,
    build_command,
    device_used,
    dock_error,
    error_line,
    eta_seconds,
    format_eta,
    output_folder,
    parse_progress_line,
    stage_name,
)
from napari_vis_ws._widgets.loss_plot import LossPlot
from napari_vis_ws._workers import start_generator_worker

if TYPE_CHECKING:
    import napari

    from training.progress import Progress

EXIT_INTERRUPTED = 130  # training.cli: stopped by SIGINT, checkpoint saved
PROJECT_DIR = "project"  # default project folder, beside the tags file (as the Pipeline dock)
DETECTOR_STAGES = ("maskrcnn", "maskconsist")
LABELS = {"pseudo": "pseudo-labels", "corrected": "pseudo-labels with my corrections"}
UNITS = {"it": "iteration"}


class TrainingWidget(QWidget):
    """Choose a stage, tags, project, device and epochs; train with ``vis-ws`` in a subprocess; follow it live."""

    cancel_timeout_s: float = 60.0  # after Cancel (SIGINT), kill the run if it has not stopped by then

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.process: QProcess | None = None
        self.exit_code: int | None = None  # of the last run
        self.command: list[str] = []
        self.events: list[tuple[float, Progress]] = []  # (time, event) of the current stage, for the ETA
        self._stdout_buffer = ""
        self._stderr_text = ""
        self._cancelled = False
        self._out_auto = True  # the output field follows stage + project until the user edits it
        self._project_auto = True  # the project field follows the tags file until the user edits it
        self._run_auto = True  # the predictions' run field follows the output field until the user edits it
        self.predictor: Any = None  # the worker loading (or making) predictions
        self._task_id: Any = None  # the run as a task of napari's window (its close dialog lists it)
        self._watched: Callable[[], QObject | None] = lambda: None  # the window whose Close stops the run
        self._stage_options: dict[str, dict[str, Any]] = {}  # the option fields of each stage shown so far
        self._shown_stage = ""  # the stage whose options the fields show
        self._last_out = ""  # the output folder of the last run started here (a resume of it keeps its curve)

        self.stage_combo = QComboBox()
        for key, (title, _) in STAGES.items():
            self.stage_combo.addItem(title, key)
        self.stage_combo.currentIndexChanged.connect(self._stage_changed)

        self.tags_edit = QLineEdit()
        self.tags_edit.setPlaceholderText("frame-tags JSON (vis-ws tags)")
        self.tags_edit.textChanged.connect(self._tags_changed)
        self.project_edit = QLineEdit()
        self.project_edit.setPlaceholderText(f"run folder (default: {PROJECT_DIR}/ beside the tags file)")
        self.project_edit.setToolTip("flow/, cam/, cams/, irn/, pseudo/ as `vis-ws pseudo-labels --out RUN`")
        self.project_edit.textEdited.connect(self._project_edited)
        self.project_edit.textChanged.connect(self._update_out)
        self.out_edit = QLineEdit()
        self.out_edit.setToolTip("where the trained model goes (default: the stage's folder in the project)")
        self.out_edit.textEdited.connect(self._out_edited)

        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICES))
        self.device_combo.setEditable(True)  # cuda:1 ...
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(0, 100000)
        self.epochs_spin.setSpecialValueText("default")
        self.iterations_spin = QSpinBox()
        self.iterations_spin.setRange(0, 10_000_000)
        self.iterations_spin.setSpecialValueText("from epochs")
        self.iterations_spin.setToolTip("Mask R-CNN stages: train exactly this many iterations")
        self.weights_edit = QLineEdit()
        self.weights_edit.setPlaceholderText("ImageNet (or: none, or a local weights / checkpoint file)")
        self.weights_edit.setToolTip(
            "Classifier and Mask R-CNN step 1 start from ImageNet (EfficientNet-Lite0's weights install with the "
            "plugin). Type 'none' for random init, or choose a file: ImageNet weights of the same network, or a "
            "train-cam checkpoint. IRN always reads its own frozen ImageNet network."
        )
        self.resume_check = QCheckBox("resume from the checkpoint in the output folder")
        self.labels_combo = QComboBox()
        for key, title in LABELS.items():
            self.labels_combo.addItem(title, key)
        self.labels_combo.setToolTip(
            "Mask R-CNN stages: train on the pseudo-labels (PROJECT/pseudo), or on them with the corrections "
            "saved by the Corrections dock (written to PROJECT/targets when the run starts)"
        )
        self.extra_edit = QLineEdit()
        self.extra_edit.setPlaceholderText("more vis-ws options, e.g. --arch resnet18 --crop 224")
        self.launcher_edit = QLineEdit()
        self.launcher_edit.setPlaceholderText("this machine (or e.g. srun --gres=gpu:1, ssh gpu-host)")
        self.launcher_edit.setToolTip(
            "Command prefix that runs `vis-ws` elsewhere; that machine must see the project folder at the same path"
        )

        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current step and save a checkpoint (resume it later)")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.device_label = QLabel("device: -")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.loss_plot = LossPlot()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)

        self.run_edit = QLineEdit()
        self.run_edit.setPlaceholderText("run folder with a trained detector or its predictions")
        self.run_edit.setToolTip(
            "A `vis-ws train` run folder (checkpoint.pt) or a project (results.json, maskconsist/, maskrcnn/)"
        )
        self.run_edit.textEdited.connect(self._run_edited)
        self.run_edit.textChanged.connect(self._update_load_button)
        self.load_button = QPushButton("Load predictions")
        self.load_button.setToolTip(
            "Show the run's predictions (and MaskConsist matches) of the video in the viewer as layers; "
            "predict that video first when the run has a model but no results for it"
        )
        self.load_button.clicked.connect(self.load_predictions)
        self.predict_cancel_button = QPushButton("Cancel")
        self.predict_cancel_button.setToolTip("Stop predicting after the current frame (nothing is written)")
        self.predict_cancel_button.clicked.connect(self.cancel_predictions)
        self.predict_cancel_button.setEnabled(False)
        self.predict_progress = QProgressBar()
        self.predict_progress.setRange(0, 1)
        self.predict_progress.setValue(0)
        self.predict_status = QLabel("")
        self.predict_status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Stage", self.stage_combo)
        form.addRow("Tags", self._with_browse(self.tags_edit, self._browse_tags))
        form.addRow("Project", self._with_browse(self.project_edit, self._browse_project))
        form.addRow("Output", self.out_edit)
        form.addRow("Device", self.device_combo)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Iterations", self.iterations_spin)
        form.addRow("Labels", self.labels_combo)
        self.weights_button = QPushButton("Browse…")
        self.weights_button.clicked.connect(self._browse_weights)
        weights_row = QHBoxLayout()
        weights_row.addWidget(self.weights_edit)
        weights_row.addWidget(self.weights_button)
        form.addRow("Weights", weights_row)
        form.addRow("", self.resume_check)
        form.addRow("Options", self.extra_edit)
        form.addRow("Launcher", self.launcher_edit)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.device_label)
        layout.addWidget(self.status)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.log, stretch=1)
        predictions = QGroupBox("Predictions")
        pred_layout = QVBoxLayout(predictions)
        pred_layout.addLayout(self._with_browse(self.run_edit, self._browse_run))
        pred_buttons = QHBoxLayout()
        pred_buttons.addWidget(self.load_button)
        pred_buttons.addWidget(self.predict_cancel_button)
        pred_layout.addLayout(pred_buttons)
        pred_layout.addWidget(self.predict_progress)
        pred_layout.addWidget(self.predict_status)
        layout.addWidget(predictions)
        self.out_edit.textChanged.connect(self._update_run)
        self._stage_changed()
        from napari_vis_ws._docking import tabify_when_docked
        tabify_when_docked(self)  # into a tab with the plugin's other docks (issue 16)

    # -- settings -----------------------------------------------------------------
    @staticmethod
    def _with_browse(edit: QLineEdit, browse: Any) -> QHBoxLayout:
        button = QPushButton("Browse…")
        button.clicked.connect(browse)
        row = QHBoxLayout()
        row.addWidget(edit)
        row.addWidget(button)
        return row

    @property
    def stage(self) -> str:
        """The key of the chosen stage (see :data:`napari_vis_ws._training.STAGES`)."""
        return str(self.stage_combo.currentData())

    def _browse_tags(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Frame tags", "", "JSON (*.json)")
        if path:
            self.tags_edit.setText(path)

    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Weights", "", "PyTorch weights (*.pt *.pth);;All files (*)")
        if path:
            self.weights_edit.setText(path)

    def _browse_project(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Project folder")
        if path:
            self._project_auto = False
            self.project_edit.setText(path)

    def _browse_run(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Run folder", self.run_edit.text())
        if path:
            self._run_auto = False
            self.run_edit.setText(path)

    def _run_edited(self, text: str) -> None:
        self._run_auto = not text.strip()

    def _update_run(self, *_: Any) -> None:
        """The predictions' run follows the output of a detector stage, else the project."""
        if self._run_auto:
            text = self.out_edit.text() if self.stage in DETECTOR_STAGES else self.project_edit.text()
            self.run_edit.setText(text.strip())

    def _update_load_button(self, *_: Any) -> None:
        run = self.run_edit.text().strip()
        self.load_button.setEnabled(self.predictor is None and bool(run) and has_predictions(run))

    def _tags_changed(self, text: str) -> None:
        if self._project_auto and text.strip():
            self.project_edit.setText(str(Path(text.strip()).parent / PROJECT_DIR))

    def _project_edited(self, text: str) -> None:
        self._project_auto = not text.strip()

    def _out_edited(self, text: str) -> None:
        self._out_auto = not text.strip()

    def _stage_fields(self) -> dict[str, Any]:
        """The option fields as they are now, to show again when their stage is chosen again."""
        return {
            "epochs": self.epochs_spin.value(),
            "iterations": self.iterations_spin.value(),
            "weights": self.weights_edit.text(),
            "resume": self.resume_check.isChecked(),
            "extra": self.extra_edit.text(),
            "out": self.out_edit.text(),
            "out_auto": self._out_auto,
        }

    def _show_stage_fields(self, fields: dict[str, Any]) -> None:
        self.epochs_spin.setValue(int(fields.get("epochs", 0)))
        self.iterations_spin.setValue(int(fields.get("iterations", 0)))
        self.weights_edit.setText(str(fields.get("weights", "")))
        self.resume_check.setChecked(bool(fields.get("resume", False)))
        self.extra_edit.setText(str(fields.get("extra", "")))
        self._out_auto = bool(fields.get("out_auto", True))
        if not self._out_auto:
            self.out_edit.setText(str(fields.get("out", "")))

    def _stage_changed(self, *_: Any) -> None:
        """Show the chosen stage's own options (those typed for another stage stay with it)."""
        if self._shown_stage and self._shown_stage != self.stage:
            self._stage_options[self._shown_stage] = self._stage_fields()
            self._show_stage_fields(self._stage_options.get(self.stage, {}))
        self._shown_stage = self.stage
        self.iterations_spin.setEnabled(self.stage in DETECTOR_STAGES)
        self.labels_combo.setEnabled(self.stage in DETECTOR_STAGES)
        self.weights_edit.setEnabled(self.stage in WEIGHTS_STAGES)
        self.weights_button.setEnabled(self.stage in WEIGHTS_STAGES)
        self._update_out()

    def _update_out(self, *_: Any) -> None:
        project = self.project_edit.text().strip()
        if self._out_auto:
            self.out_edit.setText(str(output_folder(self.stage, project)) if project else "")
        self._update_run()

    def options(self) -> dict[str, Any]:
        """The run options of :func:`~napari_vis_ws._training.build_command` as the dock shows them."""
        return {
            "out": self.out_edit.text().strip() or None,
            "device": self.device_combo.currentText().strip() or "auto",
            "epochs": self.epochs_spin.value(),
            "iterations": self.iterations_spin.value() if self.iterations_spin.isEnabled() else 0,
            "weights": self.weights_edit.text().strip() if self.weights_edit.isEnabled() else "",
            "resume": self.resume_check.isChecked(),
            "extra": self.extra_edit.text(),
        }

    @property
    def labels(self) -> str:
        """What the Mask R-CNN stages train on: ``pseudo`` or ``corrected`` (see :data:`LABELS`)."""
        return str(self.labels_combo.currentData())

    # -- running ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether a training process is running."""
        return self.process is not None and self.process.state() != QProcess.NotRunning

    def start(self) -> None:
        """Start the chosen stage as a ``vis-ws`` subprocess (one at a time)."""
        if self.running:
            return
        tags, project = self.tags_edit.text().strip(), self.project_edit.text().strip()
        if not tags or not project:
            self._fail("choose a frame-tags JSON and a project folder first")
            return
        launcher = self.launcher_edit.text().strip()
        tags_path, project_path = Path(tags).absolute(), Path(project).absolute()
        options = self.options()
        if self.stage in DETECTOR_STAGES and self.labels == "corrected":
            targets = self._write_targets(project_path)
            if targets is None:
                return
            options["pseudo"] = str(targets)
        try:
            command = build_command(self.stage, tags_path, project_path, options, launcher)
        except ValueError as exc:  # unbalanced quotes in the options or the launcher
            self._fail(f"bad options: {exc}")
            return
        self.command = command
        out = str(command[command.index("--out") + 1]) if "--out" in command else ""
        self._remove_stale_temp_files(out)
        resuming_here = bool(options["resume"]) and out == self._last_out and bool(self.loss_plot.values)
        self._last_out = out
        self.events, self.exit_code, self._cancelled = [], None, False
        self._stdout_buffer, self._stderr_text = "", ""
        if resuming_here:  # the same run goes on: keep its curve and progress until the first event moves it
            self.progress.setFormat("resuming…")
        else:
            self.loss_plot.clear()
            self.progress.setRange(0, 0)  # busy until the first event
            self.progress.setFormat("starting…")
        self.device_label.setText("device: -")
        self.log.appendPlainText("$ " + " ".join(self.command))
        self.status.setText(f"running {STAGES[self.stage][0]}" + (f" via {launcher}" if launcher else ""))

        process = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        env.insert("OMP_WAIT_POLICY", env.value("OMP_WAIT_POLICY", "PASSIVE"))
        if not launcher:  # the local interpreter finds this very `training` package
            import training

            root = str(Path(training.__file__).resolve().parent.parent)
            paths = [root, *[p for p in env.value("PYTHONPATH", "").split(os.pathsep) if p]]
            env.insert("PYTHONPATH", os.pathsep.join(paths))
        process.setProcessEnvironment(env)
        process.setProcessChannelMode(QProcess.SeparateChannels)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._finished)
        process.errorOccurred.connect(self._process_error)
        self.process = process
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._register_task()
        process.start(self.command[0], self.command[1:])

    def _write_targets(self, project: Path) -> Path | None:
        """Write the project's corrected training targets to ``PROJECT/targets``; None after saying why not."""
        from training.errors import InputError
        from training.project import project_videos, write_training_targets
        from training.run_folder import Project

        if not project_videos(project):
            what = "correct some frames in the Corrections dock first"
            self._fail(f"no saved corrections in {Project(project).corrections}: {what}")
            return None
        try:
            summary = write_training_targets(project, Project(project).targets)
        except (InputError, OSError, ValueError) as exc:
            self._fail(f"could not write the training targets: {exc}")
            return None
        self.log.appendPlainText(f"training targets: {summary}")
        return summary.path

    def _remove_stale_temp_files(self, out: str) -> None:
        """Remove the temporary files that writes killed long ago left in the run folder (a killed run's)."""
        from training.atomic import remove_stale_temp_files

        if not out:
            return
        try:
            removed = remove_stale_temp_files(out, recursive=True)
        except OSError as exc:
            self.log.appendPlainText(f"{out}: could not look for temporary files of killed writes ({exc})")
            return
        if removed:
            names = ", ".join(p.name for p in removed[:3]) + (", …" if len(removed) > 3 else "")
            self.log.appendPlainText(f"removed {len(removed)} temporary file(s) of killed writes in {out}: {names}")

    # -- napari's task list: the close dialog names the run, quitting stops it cleanly ---------
    def _task_description(self, event: Progress | None = None) -> str:
        where = ""
        if event is not None and event.total > 0:
            where = f" ({UNITS.get(event.unit, event.unit)} {event.done}/{event.total})"
        return f"training {stage_name(self.stage)}{where}: quitting stops it after this step and saves its checkpoint"

    def _register_task(self) -> None:
        """List the run in napari's window as a busy task, stopped cleanly when the window closes."""
        self._task_id = register_task(self.viewer, self._task_description(), self._stop_for_close)

    def _update_task(self, status: str, description: str = "") -> None:
        """Set the run's task in napari's window to ``status`` (see :func:`napari_vis_ws._tasks.update_task`)."""
        update_task(self.viewer, self._task_id, status, description)
        if status != "busy":
            self._task_id = None

    def _stop_for_close(self) -> bool:
        """napari's window is closing (its task cancel callback): stop the run and wait for its checkpoint."""
        try:
            return self.stop_and_wait() is not None
        except RuntimeError:  # the dock is already deleted, and its run with it
            return False

    def stop_and_wait(self) -> int | None:
        """Stop the run as Cancel does and wait for it to exit, the dock still painted; its exit code.

        After :attr:`cancel_timeout_s` the run is killed. Returns None when no run was going.
        The wait runs no event loop (``processEvents`` would let napari delete the parts of its
        window it has scheduled for deletion while it closes, and then use them): the run's output
        is read while waiting (``waitForFinished``) and the dock repainted at once after each read.
        """
        process = self.process
        if not self.running or process is None:
            return None
        if not self._cancelled:
            self.cancel()
        self.status.setText("closing: the training stops after this step and saves its checkpoint…")
        deadline = time.monotonic() + self.cancel_timeout_s
        while self.process is process and self.running and time.monotonic() < deadline:
            process.waitForFinished(100)  # reads its output (progress, loss) and delivers `finished`
            self._repaint()
        if self.process is process and self.running:
            self.log.appendPlainText(f"still running {self.cancel_timeout_s:g} s after it was asked to stop: killed")
            process.kill()
            process.waitForFinished(5000)
        if self.process is process:  # `finished` was not delivered: end the run here
            self._finished(process.exitCode(), process.exitStatus())
        self._repaint()
        return self.exit_code

    def _repaint(self) -> None:
        """Paint the dock now (its status, progress and loss curve), without running the event loop."""
        try:
            if self.isVisible():
                self.repaint()
        except RuntimeError:  # the dock is being deleted
            pass

    def _watch_window(self) -> None:
        self._watched = watch_window(self, self._watched)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        """Stop the run when the window closes, where napari has no task list to do it (older napari)."""
        if event.type() == QEvent.Close and watched is self._watched() and self._task_id is None:
            self.stop_and_wait()
        return False

    def event(self, event: QEvent) -> bool:
        """Watch the window once docked; a dock taken out of its window (its close button) stops its run."""
        kind = event.type()
        if kind == QEvent.ParentChange:
            if self.parent() is not None:
                QTimer.singleShot(0, self._watch_window)  # napari docks the widget, then the dock in its window
            elif getattr(self, "process", None) is not None and self.running:
                self.stop_and_wait()
        elif kind == QEvent.Show:
            self._watch_window()
        return super().event(event)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        """The dock as a window of its own: closing it stops its run cleanly first."""
        self.stop_and_wait()
        super().closeEvent(event)

    def cancel(self) -> None:
        """Ask the run to stop gracefully (SIGINT: checkpoint, exit 130); kill it after ``cancel_timeout_s``."""
        if not self.running or self.process is None:
            return
        self._cancelled = True
        self.cancel_button.setEnabled(False)
        self.status.setText("cancelling: saving a checkpoint…")
        pid = int(self.process.processId())
        if os.name == "posix" and pid > 0:
            os.kill(pid, signal.SIGINT)
        else:
            self.process.terminate()
        process = self.process
        QTimer.singleShot(int(self.cancel_timeout_s * 1000), lambda: self._kill_if_running(process))

    def _kill_if_running(self, process: QProcess) -> None:
        if process is self.process and self.running:
            self.log.appendPlainText(f"still running {self.cancel_timeout_s:g} s after Cancel: killed")
            process.kill()

    def _read_stdout(self) -> None:
        if self.process is None:
            return
        self._stdout_buffer += bytes(self.process.readAllStandardOutput()).decode("utf-8", "replace")
        *lines, self._stdout_buffer = self._stdout_buffer.split("\n")
        for line in lines:
            self._handle_line(line)

    def _read_stderr(self) -> None:
        if self.process is None:
            return
        text = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        self._stderr_text += text
        for line in text.splitlines():
            if line.strip():
                self.log.appendPlainText(line.rstrip())

    def _handle_line(self, line: str) -> None:
        """One stdout line: a progress event (bar, ETA, loss, device, message) or a log line."""
        event = parse_progress_line(line)
        if event is None:
            if line.strip():
                self.log.appendPlainText(line.rstrip())
            return
        if self.events and self.events[-1][1].stage != event.stage:
            self.events = []
        self.events.append((time.monotonic(), event))
        self.progress.setRange(0, max(event.total, 1))
        self.progress.setValue(min(event.done, max(event.total, 1)))
        eta = format_eta(eta_seconds(self.events))
        self.progress.setFormat(f"{event.stage} %v/%m {event.unit} (%p%)" + (f"  {eta}" if eta else ""))
        if "loss" in event.metrics:
            self.loss_plot.add(event.metrics["loss"])
        if self._task_id is not None:
            self._update_task("busy", self._task_description(event))
        if event.message:
            self.log.appendPlainText(event.message)
            device = device_used(event.message)
            if device is not None:
                self.device_label.setText(f"device: {device}")

    def _finished(self, exit_code: int, exit_status: Any = None) -> None:
        if self.process is None:
            return
        self._read_stdout()
        self._read_stderr()
        if self._stdout_buffer.strip():
            self._handle_line(self._stdout_buffer)
        self._stdout_buffer = ""
        crashed = exit_status == QProcess.CrashExit
        self.exit_code = -1 if crashed else int(exit_code)
        self.progress.setRange(0, max(self.progress.maximum(), 1))
        if self.events:
            self.progress.setFormat(self.progress.format().split("  ETA")[0])
        out = self.out_edit.text().strip()
        cancelled = self.exit_code == EXIT_INTERRUPTED or (self._cancelled and not crashed)
        self._update_task("completed" if self.exit_code == 0 else "cancelled" if cancelled else "failed")
        if self.exit_code == 0:
            self.progress.setValue(self.progress.maximum())
            self.status.setText(f"finished (exit code 0): model in {out}")
            if self.stage in DETECTOR_STAGES:
                self.status.setText(f"finished (exit code 0): model in {out}; Load predictions shows what it sees")
        elif cancelled:
            self.status.setText(f"cancelled (exit code {self.exit_code}): checkpoint in {out}; tick resume to go on")
        elif crashed:
            self.status.setText("killed" if self._cancelled else "the training process crashed")
        else:
            message = dock_error(error_line(self._stderr_text)) or "training failed"
            self._fail(f"{message} (exit code {self.exit_code})")
        self._done()

    def _process_error(self, error: Any) -> None:
        if error == QProcess.FailedToStart and self.process is not None:
            program = self.command[0] if self.command else "?"
            self.exit_code = -1
            self._update_task("start_failed")
            self._fail(f"could not start {program}: {self.process.errorString()}")
            self._done()

    def _done(self) -> None:
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self.process is not None:
            self.process.deleteLater()
        self.process = None
        self._update_load_button()  # the run may have a model now

    # -- predictions ----------------------------------------------------------------
    def _current_video(self) -> tuple[Path, int, list[dict[str, Any]]] | None:
        """(dataset JSON, video id, categories) of the ``frames`` layer, or None after saying what is missing."""
        meta = self.viewer.layers[FRAMES].metadata.get(META_KEY, {}) if FRAMES in self.viewer.layers else None
        if meta is None:
            self._fail("open a video first: Load predictions shows them on the frames layer")
            return None
        if not meta.get("json") or meta.get("video_id") is None:
            self._fail("Load predictions needs a video opened from a dataset or tags JSON (its frames layer has none)")
            return None
        return Path(meta["json"]), int(meta["video_id"]), list(meta.get("categories") or [])

    def load_predictions(self) -> None:
        """Show the run's predictions of the current video as layers (predicting them first if needed)."""
        if self.predictor is not None:
            return
        run_text = self.run_edit.text().strip()
        if not run_text:
            self._fail("choose the run folder of a trained Mask R-CNN or MaskConsist model first")
            return
        current = self._current_video()
        if current is None:
            return
        json_path, video_id, categories = current
        run, pseudo = Path(run_text), labels_snapshot(self.viewer)
        device = self.device_combo.currentText().strip() or "auto"
        project = self.project_edit.text().strip()
        # the video's flow, to link tubes along it: in the run (a project), beside it (project/maskconsist), the project
        from training.run_folder import Project

        candidates = [Project(run).flow, Project(run.parent).flow, *([Project(project).flow] if project else [])]
        flow_dirs = tuple(dict.fromkeys(candidates))

        def work() -> Iterator[Any]:
            return prediction_work(json_path, video_id, run, categories, device, flow_dirs, pseudo)

        self.predict_progress.setRange(0, 0)  # busy until the first event
        self.predict_status.setText(f"loading the predictions of {run}…")
        self.load_button.setEnabled(False)
        self.predict_cancel_button.setEnabled(True)
        self.predictor = start_generator_worker(
            work, self._prediction_yielded, self._prediction_failed, on_finished=self._prediction_finished
        )

    def cancel_predictions(self) -> None:
        """Stop predicting after the current frame; nothing is written."""
        if self.predictor is not None:
            self.predictor.quit()
            self.predict_cancel_button.setEnabled(False)
            self.predict_status.setText("cancelling…")

    def _prediction_yielded(self, value: Any) -> None:
        from training.progress import Progress

        if isinstance(value, Progress):
            self.predict_progress.setRange(0, max(value.total, 1))
            self.predict_progress.setValue(min(value.done, max(value.total, 1)))
            self.predict_progress.setFormat(f"predicting %v/%m {value.unit}s")
            if value.message:
                self.predict_status.setText(value.message)
        elif isinstance(value, LoadedPredictions):
            self._show_predictions(value)

    def _show_predictions(self, loaded: LoadedPredictions) -> None:
        """Add (or refresh) the layers; hand the disagreement to the pseudo-labels layer."""
        from napari.layers import Labels

        for data, kwargs, kind in loaded.layers:
            name = kwargs["name"]
            if name in self.viewer.layers:
                layer = self.viewer.layers[name]
                if kind == "labels" and isinstance(layer, Labels):  # isinstance: a plugin dock sees a proxy
                    layer.data = data
                    layer.features = kwargs["features"]
                    layer.metadata = {**layer.metadata, **kwargs["metadata"]}
                    continue
                self.viewer.layers.remove(name)  # shapes carry per-shape styles: add anew
            getattr(self.viewer, f"add_{kind}")(data, **kwargs)
        attach_disagreement(self.viewer, loaded.disagreement)
        predictions = next((d for d, kw, _ in loaded.layers if kw["name"] == PREDICTIONS), None)
        count = 0 if predictions is None else len([k for k in np.unique(predictions) if k])
        how = f"predicted now, saved to {loaded.predicted}" if loaded.predicted else "stored"
        names = ", ".join(kw["name"] for _, kw, _ in loaded.layers)
        self.predict_progress.setRange(0, 1)
        self.predict_progress.setValue(1)
        self.predict_progress.setFormat("%p%")
        self.predict_status.setText(f"{loaded.key}: {count} predicted instances ({how}); layers {names}")

    def _prediction_failed(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.predict_status.setText(message)
        show_error(message)

    def _prediction_finished(self) -> None:
        cancelled = self.predictor is not None and self.predictor.abort_requested
        self.predictor = None
        self.predict_cancel_button.setEnabled(False)
        if self.predict_progress.maximum() == 0:  # ended before any event
            self.predict_progress.setRange(0, 1)
            self.predict_progress.setValue(0)
        if cancelled:
            self.predict_status.setText("prediction cancelled: nothing was written")
        self._update_load_button()

    def _fail(self, message: str) -> None:
        """Show a one-line error in the dock and as a napari notification."""
        from napari.utils.notifications import show_error

        self.status.setText(message)
        self.log.appendPlainText(message)
        show_error(message)
