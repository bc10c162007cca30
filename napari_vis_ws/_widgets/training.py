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
per stage: switching the stage shows that stage's own. "More options…" shows
a form of every other option of the stage's command, generated from the
command itself (:mod:`._option_forms`, read once in a child process so torch
stays out of napari's): each field shows the command's default and its help,
and only the fields changed from their default reach the command. The Mask R-CNN stages
train on the pseudo-labels, or on the pseudo-labels with the corrections
saved in the project (``PROJECT/corrections/``), written as training targets
to ``PROJECT/targets`` when the run starts. A resumed run continues the loss
curve of the run it resumes.

The stage **Run all** runs ``vis-ws pipeline`` into the project: every stage
from the tags to the predictions, training what is missing with this
machine's preset (its "More options" choose another, and the instance
settings), each stage resuming or skipping what the project holds, so
Cancel and Start again goes on where it stopped. The progress bar follows
the stage running, and each training stage starts its own loss curve.

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

The dock's parts: this module holds the form (stage, options, folders);
:mod:`._training_run` runs and follows the subprocess, :mod:`._training_predictions`
loads predictions; :mod:`napari_vis_ws._training` (Qt-free) builds the command
and reads its output.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QEvent, QProcess
from qtpy.QtGui import QCloseEvent
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_vis_ws._project import has_predictions
from napari_vis_ws._tasks import WindowClose
from napari_vis_ws._training import (
    DETECTOR_STAGES,
    DEVICES,
    EPOCH_STAGES,
    LABELS,
    PROJECT_DIR,
    STAGES,
    WEIGHTS_STAGES,
    form_options,
    output_folder,
)
from napari_vis_ws._widgets._option_forms import OptionForms
from napari_vis_ws._widgets._training_predictions import PredictionLoading
from napari_vis_ws._widgets._training_run import TrainingRun

if TYPE_CHECKING:
    import napari

    from training.progress import Progress


class TrainingWidget(TrainingRun, PredictionLoading, QWidget):
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
        self.window_close = WindowClose(self, self._window_closing)  # napari closing: the run stops cleanly
        self._stage_options: dict[str, dict[str, Any]] = {}  # the option fields of each stage shown so far
        self._shown_stage = ""  # the stage whose options the fields show
        self._last_out = ""  # the output folder of the last run started here (a resume of it keeps its curve)

        layout = QVBoxLayout(self)
        layout.addLayout(self._build_form())
        layout.addLayout(self._build_run_view(), stretch=1)
        layout.addWidget(self._build_predictions())
        self.out_edit.textChanged.connect(self._update_run)
        self._stage_changed()
        from napari_vis_ws._docking import tabify_when_docked

        tabify_when_docked(self)  # into a tab with the plugin's other docks (issue 16)

    def _build_form(self) -> QFormLayout:
        """The run's settings: stage, tags, project, output, device, epochs, iterations, labels, weights, options."""
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
        self.extra_edit.setPlaceholderText("any other vis-ws arguments, e.g. --nproc 2")
        self.launcher_edit = QLineEdit()
        self.launcher_edit.setPlaceholderText("this machine (or e.g. srun --gres=gpu:1, ssh gpu-host)")
        self.launcher_edit.setToolTip(
            "Command prefix that runs `vis-ws` elsewhere; that machine must see the project folder at the same path"
        )

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
        self.more = OptionForms(
            "More options…",
            "Every other option of the stage's command, with its default (vis-ws … --help)",
            form_options,
            self._fail,
        )
        form.addRow(self.more)
        form.addRow("Options", self.extra_edit)
        form.addRow("Launcher", self.launcher_edit)
        return form

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
        self.epochs_spin.setEnabled(self.stage in EPOCH_STAGES)
        self.resume_check.setEnabled(self.stage in EPOCH_STAGES)  # the pipeline always resumes
        self.weights_edit.setEnabled(self.stage in WEIGHTS_STAGES)
        self.weights_button.setEnabled(self.stage in WEIGHTS_STAGES)
        self.more.select(self.stage)
        self._update_out()

    # -- more options: forms generated from each command's options ----------------
    @property
    def more_button(self) -> QPushButton:
        """Shows the chosen stage's "More options" form (the first time, reads the commands' options)."""
        return self.more.button

    @property
    def more_forms(self) -> dict[str, tuple[list[Any], Any]]:
        """Stage → (its OptionSpecs, its magicgui form), once read."""
        return self.more.forms

    def more_argv(self) -> list[str]:
        """The chosen stage's "More options" that differ from its command's defaults, as arguments.

        Raises
        ------
        ValueError
            A field its option cannot take (one line naming the flag).
        """
        return self.more.argv(self.stage)

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
            "epochs": self.epochs_spin.value() if self.epochs_spin.isEnabled() else 0,
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

    def _window_closing(self) -> None:
        """Stop the run when the window closes, where napari has no task list to do it (older napari)."""
        if self._task_id is None:
            self.stop_and_wait()

    def event(self, event: QEvent) -> bool:
        """A dock taken out of its window (its close button) stops its run."""
        if event.type() == QEvent.ParentChange and self.parent() is None:
            if getattr(self, "process", None) is not None and self.running:
                self.stop_and_wait()
        return super().event(event)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        """The dock as a window of its own: closing it stops its run cleanly first."""
        self.stop_and_wait()
        super().closeEvent(event)

    def _fail(self, message: str) -> None:
        """Show a one-line error in the dock and as a napari notification."""
        from napari.utils.notifications import show_error

        self.status.setText(message)
        self.log.appendPlainText(message)
        show_error(message)
