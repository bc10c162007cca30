"""The Training dock's Load predictions (a part of :mod:`napari_vis_ws._widgets.training`).

Shows what a trained detector predicts on the video in the viewer: the
``predictions`` layer (and ``matches`` when the run has MaskConsist matches
of the video), from the run's stored results, or predicted for that video in
a worker first (progress bar, Cancel). With a ``pseudo-labels`` layer of the
same video open, their MaskConsist disagreement goes into its metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton, QVBoxLayout

from napari_vis_ws._layers import FRAMES, META_KEY
from napari_vis_ws._prediction_layers import PREDICTIONS
from napari_vis_ws._project import LoadedPredictions, prediction_work, put_layers
from napari_vis_ws._stage_layers import attach_disagreement, labels_snapshot
from napari_vis_ws._widgets._score_slider import ScoreSlider
from napari_vis_ws._workers import start_generator_worker


class PredictionLoading:
    """Load predictions of the Training dock: a trained detector's results on the video shown.

    Mixed into :class:`~napari_vis_ws._widgets.training.TrainingWidget`, which owns the
    run folder field and the progress widgets.
    """

    def _build_predictions(self) -> QGroupBox:
        """The "Predictions" group: the run folder, Load predictions and Cancel, its progress and status."""
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

        predictions = QGroupBox("Predictions")
        pred_layout = QVBoxLayout(predictions)
        pred_layout.addLayout(self._with_browse(self.run_edit, self._browse_run))
        pred_buttons = QHBoxLayout()
        pred_buttons.addWidget(self.load_button)
        pred_buttons.addWidget(self.predict_cancel_button)
        pred_layout.addLayout(pred_buttons)
        pred_layout.addWidget(self.predict_progress)
        self.score_slider = ScoreSlider(self.viewer)  # which predictions are drawn
        pred_layout.addWidget(self.score_slider)
        pred_layout.addWidget(self.predict_status)
        return predictions

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
        put_layers(self.viewer, loaded.layers)
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
