"""The Training dock: train a stage with our own CLI in a subprocess and follow it live.

The dock builds a ``vis-ws`` command (:func:`napari_vis_ws._training.build_command`)
and runs it with :class:`QProcess`, so the viewer never blocks and the very
same run works headless. The command prints ``--progress json`` lines on
stdout: they drive the progress bar (with ETA), the loss curve and the device
line; any other output goes to the log. Cancel sends SIGINT, which our CLI
turns into "finish this step, save the checkpoint, exit 130"; a run that has
not stopped after :attr:`TrainingWidget.cancel_timeout_s` is killed.

A launcher (default empty: this machine) prefixes the command, e.g.
``srun --gres=gpu:1`` or ``ssh gpu-host``, to train on a GPU server or
cluster that shares the project folder (``vis-ws`` must be on its PATH).
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QPointF, QProcess, QProcessEnvironment, Qt, QTimer
from qtpy.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
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

from napari_vis_ws._training import (
    DEVICES,
    STAGES,
    build_command,
    device_used,
    error_line,
    eta_seconds,
    format_eta,
    output_folder,
    parse_progress_line,
)

if TYPE_CHECKING:
    import napari

    from training.progress import Progress

EXIT_INTERRUPTED = 130  # training.cli: stopped by SIGINT, checkpoint saved
PROJECT_DIR = "project"  # default project folder, beside the tags file (as the Pipeline dock)


class LossPlot(QWidget):
    """A small live loss curve: a polyline painted with QPainter (no plotting dependency)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[float] = []
        self.setMinimumHeight(90)
        self.setToolTip("training loss per iteration")

    def clear(self) -> None:
        """Forget every point."""
        self.values = []
        self.update()

    def add(self, value: float) -> None:
        """Append one loss value (non-finite values are skipped)."""
        if math.isfinite(value):
            self.values.append(value)
            self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        """Draw the curve scaled to the widget, with the last and the range of the values."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        rect = self.rect().adjusted(4, 16, -4, -4)
        painter.setPen(QPen(QColor(128, 128, 128), 1))
        painter.drawRect(rect)
        if not self.values:
            painter.drawText(self.rect().adjusted(6, 0, 0, 0), Qt.AlignLeft | Qt.AlignTop, "loss")
            painter.end()
            return
        lo, hi = min(self.values), max(self.values)
        span = hi - lo or 1.0
        n = len(self.values)
        points = QPolygonF()
        for i, v in enumerate(self.values):
            x = rect.left() + (rect.width() * i / (n - 1) if n > 1 else rect.width() / 2)
            y = rect.bottom() - rect.height() * (v - lo) / span
            points.append(QPointF(x, y))
        painter.setPen(QPen(QColor(0, 170, 255), 1.5))
        painter.drawPolyline(points)
        painter.setPen(QPen(QColor(160, 160, 160), 1))
        text = f"loss {self.values[-1]:.4g}   (min {lo:.4g}, max {hi:.4g}, {n} it)"
        painter.drawText(self.rect().adjusted(6, 0, 0, 0), Qt.AlignLeft | Qt.AlignTop, text)
        painter.end()


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
        self.resume_check = QCheckBox("resume from the checkpoint in the output folder")
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

        form = QFormLayout()
        form.addRow("Stage", self.stage_combo)
        form.addRow("Tags", self._with_browse(self.tags_edit, self._browse_tags))
        form.addRow("Project", self._with_browse(self.project_edit, self._browse_project))
        form.addRow("Output", self.out_edit)
        form.addRow("Device", self.device_combo)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Iterations", self.iterations_spin)
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
        self._stage_changed()

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

    def _browse_project(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Project folder")
        if path:
            self._project_auto = False
            self.project_edit.setText(path)

    def _tags_changed(self, text: str) -> None:
        if self._project_auto and text.strip():
            self.project_edit.setText(str(Path(text.strip()).parent / PROJECT_DIR))

    def _project_edited(self, text: str) -> None:
        self._project_auto = not text.strip()

    def _out_edited(self, text: str) -> None:
        self._out_auto = not text.strip()

    def _stage_changed(self, *_: Any) -> None:
        self.iterations_spin.setEnabled(self.stage in ("maskrcnn", "maskconsist"))
        self._update_out()

    def _update_out(self, *_: Any) -> None:
        project = self.project_edit.text().strip()
        if self._out_auto:
            self.out_edit.setText(str(output_folder(self.stage, project)) if project else "")

    def options(self) -> dict[str, Any]:
        """The run options of :func:`~napari_vis_ws._training.build_command` as the dock shows them."""
        return {
            "out": self.out_edit.text().strip() or None,
            "device": self.device_combo.currentText().strip() or "auto",
            "epochs": self.epochs_spin.value(),
            "iterations": self.iterations_spin.value() if self.iterations_spin.isEnabled() else 0,
            "resume": self.resume_check.isChecked(),
            "extra": self.extra_edit.text(),
        }

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
        try:
            self.command = build_command(self.stage, tags_path, project_path, self.options(), launcher)
        except ValueError as exc:  # unbalanced quotes in the options or the launcher
            self._fail(f"bad options: {exc}")
            return
        self.events, self.exit_code, self._cancelled = [], None, False
        self._stdout_buffer, self._stderr_text = "", ""
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
        process.start(self.command[0], self.command[1:])

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
        if self.exit_code == 0:
            self.progress.setValue(self.progress.maximum())
            self.status.setText(f"finished (exit code 0): model in {out}")
        elif self.exit_code == EXIT_INTERRUPTED or (self._cancelled and not crashed):
            self.status.setText(f"cancelled (exit code {self.exit_code}): checkpoint in {out}; tick resume to go on")
        elif crashed:
            self.status.setText("killed" if self._cancelled else "the training process crashed")
        else:
            message = error_line(self._stderr_text) or "training failed"
            self._fail(f"{message} (exit code {self.exit_code})")
        self._done()

    def _process_error(self, error: Any) -> None:
        if error == QProcess.FailedToStart and self.process is not None:
            program = self.command[0] if self.command else "?"
            self.exit_code = -1
            self._fail(f"could not start {program}: {self.process.errorString()}")
            self._done()

    def _done(self) -> None:
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self.process is not None:
            self.process.deleteLater()
        self.process = None

    def _fail(self, message: str) -> None:
        """Show a one-line error in the dock and as a napari notification."""
        from napari.utils.notifications import show_error

        self.status.setText(message)
        self.log.appendPlainText(message)
        show_error(message)
