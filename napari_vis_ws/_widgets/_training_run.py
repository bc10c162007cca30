"""The Training dock's run: ``vis-ws`` in a subprocess, its progress, Cancel and quitting.

A part of :mod:`napari_vis_ws._widgets.training`.

The command runs in a :class:`QProcess`; its ``--progress json`` lines drive
the progress bar, the loss curve and the device line. Cancel sends SIGINT
(the CLI saves its checkpoint and exits 130); a run that has not stopped
after ``cancel_timeout_s`` is killed. The run is a task of napari's window,
so quitting napari stops it the way Cancel does and waits for its checkpoint.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QProcess, QProcessEnvironment, QTimer
from qtpy.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout

from napari_vis_ws._tasks import register_task, update_task
from napari_vis_ws._training import (
    DETECTOR_STAGES,
    EXIT_INTERRUPTED,
    STAGES,
    UNITS,
    build_command,
    device_used,
    dock_error,
    error_line,
    eta_seconds,
    format_eta,
    parse_progress_line,
    stage_announcement,
    stage_name,
)
from napari_vis_ws._widgets._stage_bars import StageBars
from napari_vis_ws._widgets.loss_plot import LossPlot

if TYPE_CHECKING:
    from training.progress import Progress


class TrainingRun:
    """Starting, following and stopping the Training dock's ``vis-ws`` run.

    Mixed into :class:`~napari_vis_ws._widgets.training.TrainingWidget`, which owns the
    form (stage, options, folders), the progress widgets and ``process``.
    """

    def _build_run_view(self) -> QVBoxLayout:
        """Start and Cancel, the progress bar, the device and status lines, the loss curve and the log."""
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
        self.stage_bars = StageBars()  # Run all: one bar per stage of the pipeline
        self.device_label = QLabel("device: -")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.loss_plot = LossPlot()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)

        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        view = QVBoxLayout()
        view.addLayout(buttons)
        view.addWidget(self.progress)
        view.addWidget(self.stage_bars)
        view.addWidget(self.device_label)
        view.addWidget(self.status)
        view.addWidget(self.loss_plot)
        view.addWidget(self.log, stretch=1)
        return view

    def start(self, more: list[str] | None = None) -> None:
        """Start the chosen stage as a ``vis-ws`` subprocess (one at a time); ``more``: arguments added for this run."""
        if self.running:
            return
        tags, project = self.tags_edit.text().strip(), self.project_edit.text().strip()
        if not tags or not project:
            self._fail("choose a frame-tags JSON and a project folder first")
            return
        launcher = self.launcher_edit.text().strip()
        tags_path, project_path = Path(tags).absolute(), Path(project).absolute()
        options = self.options()
        try:
            options["more"] = [*self.more_argv(), *(more or [])]
        except ValueError as exc:  # a number field holding text
            self._fail(f"More options: {exc}")
            return
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
            self.stage_bars.clear()
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

    @property
    def cancelling(self) -> bool:
        """Whether the run was asked to stop (Cancel, or napari closing): what it still prints is its end."""
        return bool(self.running and self._cancelled)

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
            announced = stage_announcement(line)
            if announced is not None:
                self.stage_bars.announce(*announced)
            return
        if self.events and self.events[-1][1].stage != event.stage:  # the pipeline's next stage
            self.events = []
            if "loss" in event.metrics or self.stage == "pipeline":
                self.loss_plot.clear()  # one curve per training stage
        self.events.append((time.monotonic(), event))
        self.progress.setRange(0, max(event.total, 1))
        self.progress.setValue(min(event.done, max(event.total, 1)))
        eta = format_eta(eta_seconds(self.events))
        self.progress.setFormat(f"{event.stage} %v/%m {event.unit} (%p%)" + (f"  {eta}" if eta else ""))
        self.stage_bars.update_from(event)
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
        self.stage_bars.finish(self.exit_code == 0)
        if self.exit_code == 0:
            self.progress.setValue(self.progress.maximum())
            self.status.setText(f"finished (exit code 0): model in {out}")
            if self.stage in DETECTOR_STAGES:
                self.status.setText(f"finished (exit code 0): model in {out}; Load predictions shows what it sees")
            elif self.stage == "pipeline":
                self.status.setText(f"finished (exit code 0): every stage in {out}; Load predictions shows them")
        elif cancelled and self.stage == "pipeline":
            self.status.setText(f"cancelled (exit code {self.exit_code}): Start again goes on where it stopped")
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
