"""The Pipeline dock's Run all and its offers: what a stage that cannot run yet needs, one click away.

**Run all…** hands the tags and the project to the Training dock, which runs
``vis-ws pipeline`` as a subprocess (progress per stage, Cancel, quitting
safely); this dock shows the video's flow, CAMs and pseudo-labels as each of
those stages ends, and everything when the run ends. A stage that cannot run
yet (:func:`napari_vis_ws._stages.missing_before`) says what it lacks and shows
a button that runs it: this video's earlier stages in order, or Run all when a
model has to be trained first.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QCheckBox, QGridLayout, QPushButton

from napari_vis_ws._prediction_layers import PREDICTIONS

PLUGIN, TRAINING_DOCK = "napari-vis-ws", "Training"  # napari.yaml: the dock that runs Run all
RUN_ALL_SHOWN = ("flow", "cams", "pseudo-labels")  # Run all stages whose layers show here as each ends
TITLES = {"flow": "Flow", "cams": "CAMs", "pseudo-labels": "Pseudo-labels", PREDICTIONS: "Predictions"}


class RunAllOffers:
    """Run all and the offers, mixed into :class:`~napari_vis_ws._widgets.pipeline.PipelineWidget`,
    which owns the tags, project, stages, ``info`` line and ``show_results``."""

    def _run_all_row(self, grid: QGridLayout, row: int) -> None:
        """Run all…, its detector box (row ``row``) and the offer's button, hidden (the row below)."""
        self.run_all_button = QPushButton("Run all…")
        self.run_all_button.setToolTip(
            "Every stage for every video, training what is missing with this machine's preset (vis-ws pipeline), "
            "in the Training dock: its progress, Cancel and loss curve; the results show here when it ends"
        )
        self.run_all_button.clicked.connect(self.run_all)
        self.detector_check = QCheckBox("and the detector, predictions")
        self.detector_check.setToolTip(
            "Run all stops at the pseudo-labels (to correct them first) unless this is ticked: then it trains Mask "
            "R-CNN on them and predicts every video"
        )
        grid.addWidget(self.run_all_button, row, 1)
        grid.addWidget(self.detector_check, row, 2, 1, 2)
        self.offer_button = QPushButton()  # what a stage that cannot run yet needs first
        self.offer_button.hide()
        self.offer_button.clicked.connect(self.take_offer)
        grid.addWidget(self.offer_button, row + 1, 0, 1, 4)
        self._offer: tuple[str, str | list[str]] | None = None  # (the stage asked for, what the offer runs)
        self._queue: list[str] = []  # stages of this video to run after the running one (an offer taken)
        self._following: Any = None  # the Training dock whose Run all stages this dock follows

    def _make_offer(self, name: str, what: str, plan: str | list[str]) -> None:
        """Say what stage ``name`` lacks and show the button that runs what makes it (:meth:`take_offer`)."""
        self._offer = (name, plan)
        if plan == "all":
            text = "Run all: train what is missing, then every video's pseudo-labels"
        elif plan == "detector":
            text = "Run all with the detector: train it, then predict every video"
        else:
            text = "Run " + ", then ".join(TITLES[s] for s in plan)
        self.offer_button.setText(text)
        self.offer_button.show()
        self.info.setText(f"{TITLES[name]} cannot run yet: {what}. {text}?")

    def take_offer(self) -> None:
        """Run what the last stage that could not run needs (the offer's button), then that stage."""
        if self._offer is None:
            return
        _, plan = self._offer
        self._offer = None
        self.offer_button.hide()
        if isinstance(plan, list):
            self._queue = plan[1:]
            self.run_stage(plan[0])
        else:
            if plan == "detector":
                self.detector_check.setChecked(True)
            self.run_all()

    def run_all(self) -> Any:
        """Start Run all (``vis-ws pipeline``, to the pseudo-labels unless :attr:`detector_check` is ticked)
        on the tags and project in the Training dock; returns that dock.

        The Training dock runs it as a subprocess (progress, Cancel, quitting
        safely); this dock shows the video's results as stages end and when it ends.
        """
        if self._tags is None or self.project is None:
            self._notify("Run all: choose a frame-tags JSON and a project folder first")
            return None
        _, training = self.viewer.window.add_plugin_dock_widget(PLUGIN, TRAINING_DOCK, tabify=True)
        if training.running:
            self._notify("Run all: the Training dock is already running; wait for it or cancel it there")
            return training
        training.tags_edit.setText(str(self._tags))
        training.project_edit.setText(str(self.project))
        training.stage_combo.setCurrentIndex(training.stage_combo.findData("pipeline"))
        training.start([] if self.detector_check.isChecked() else ["--until", "pseudo-labels"])
        if training.process is not None:  # after the dock's own handler: its exit code is known
            training.process.finished.connect(lambda *_: self._run_all_finished(training))
            if self._following is not training:  # each stage's results shown as it finishes
                training.stage_bars.done.connect(partial(self._run_all_stage_done, training))
                self._following = training
        return training

    def _run_all_stage_done(self, training: Any, stage: str) -> None:
        """A stage of Run all finished for every video: show this video's results, if they are this project's."""
        out = training.command[training.command.index("--out") + 1] if "--out" in training.command else ""
        if stage not in RUN_ALL_SHOWN or self._closing or training.cancelling or self.running is not None:
            return
        if self.project is not None and Path(out) == self.project.absolute():
            self.show_results(f"Run all: {stage} done. ")

    def _run_all_finished(self, training: Any) -> None:
        """Show what Run all made, unless it was stopped (napari closing: no worker may start then)."""
        if training.exit_code == 0 and not self._closing:
            self.show_results("Run all finished. ")
