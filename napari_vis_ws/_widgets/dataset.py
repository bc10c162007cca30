"""The Dataset dock: open a video or a dataset, pick a video, evaluate results.

Everything slow (decoding ground-truth RLEs, evaluation) runs in a napari
thread worker; layers are touched only in the worker's callbacks, which napari
runs on the main thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_vis_ws._docking import tabify_when_docked
from napari_vis_ws._layers import dataset_layers, find_dataset_json, frames_layer
from napari_vis_ws._project import put_layers
from napari_vis_ws._workers import start_worker

if TYPE_CHECKING:
    import napari


class DatasetWidget(QWidget):
    """Open a video file, frame folder, TIFF stack or YouTube-VIS dataset; evaluate results."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._data: dict[str, Any] | None = None
        self._json: Path | None = None
        self._read_path: str | None = None  # the path text _path_changed last read
        self.worker: Any = None

        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("video, frame folder, TIFF stack or dataset JSON")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.sample_button = QPushButton("Sample")
        self.sample_button.setToolTip("Open the shipped synthetic sample video")
        self.sample_button.clicked.connect(self.open_sample)
        row = QHBoxLayout()
        row.addWidget(self.path_edit)
        row.addWidget(browse)
        row.addWidget(self.sample_button)

        self.video_combo = QComboBox()
        self.video_combo.setToolTip("Videos of the dataset")
        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(self.open_current)
        self.path_edit.returnPressed.connect(self.open_current)
        self.info = QLabel("")
        self.info.setWordWrap(True)

        src = QGroupBox("Source")
        form = QFormLayout(src)
        form.addRow(row)
        form.addRow("Video", self.video_combo)
        form.addRow(self.open_button)
        form.addRow(self.info)

        self.results_edit = QLineEdit()
        self.results_edit.setPlaceholderText("YouTube-VIS results JSON")
        self.frame_level = QCheckBox("frame-level AP (pseudo-label quality)")
        self.eval_button = QPushButton("Evaluate")
        self.eval_button.clicked.connect(self.evaluate)
        self.eval_output = QPlainTextEdit()
        self.eval_output.setReadOnly(True)
        ev = QGroupBox("Evaluate against the ground truth")
        ev_layout = QVBoxLayout(ev)
        res_row = QHBoxLayout()
        res_row.addWidget(self.results_edit)
        res_browse = QPushButton("Browse…")
        res_browse.clicked.connect(self._browse_results)
        res_row.addWidget(res_browse)
        ev_layout.addLayout(res_row)
        ev_layout.addWidget(self.frame_level)
        ev_layout.addWidget(self.eval_button)
        ev_layout.addWidget(self.eval_output)

        layout = QVBoxLayout(self)
        layout.addWidget(src)
        layout.addWidget(ev)
        layout.addStretch(1)
        self.path_edit.editingFinished.connect(lambda: self._path_changed())
        tabify_when_docked(self)

    # -- source ---------------------------------------------------------------
    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open video or dataset",
            "",
            "Videos and datasets (*.mp4 *.avi *.mov *.webm *.tif *.tiff *.json);;All (*)",
        )
        if path:
            self.set_path(path)

    def _browse_results(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "YouTube-VIS results", "", "JSON (*.json);;All (*)")
        if path:
            self.results_edit.setText(path)

    def set_path(self, path: str | Path) -> None:
        """Point the widget at a file or folder and list its videos."""
        self.path_edit.setText(str(path))
        self._path_changed(force=True)

    def _path_changed(self, force: bool = False) -> None:
        """Read the dataset JSON the path names (or the one in its folder) and list its videos.

        A JSON that is not a dataset is reported once, in one line naming the
        file and what it lacks; ``force=False`` (editing finished) skips a path
        already read, so Enter does not report the same problem twice.
        """
        from training.data.sources import load_dataset_json
        from training.errors import InputError

        text = self.path_edit.text().strip()
        if text == self._read_path and not force:
            return
        self._read_path = text
        self.video_combo.clear()
        self._data, self._json = None, None
        p = Path(text)
        json_path = find_dataset_json(p) if p.is_dir() else (p if p.suffix.lower() == ".json" else None)
        if json_path is None:
            self.video_combo.setEnabled(False)
            self.info.setText("")
            return
        try:
            data = load_dataset_json(json_path)
        except InputError as exc:
            self.video_combo.setEnabled(False)
            self._notify(str(exc))
            return
        self._data, self._json = data, json_path
        for v in data["videos"]:
            n = len(v["file_names"])
            label = str(v.get("name") or Path(v["file_names"][0]).parent)
            self.video_combo.addItem(f"{v['id']}: {label} ({n} frames)", v["id"])
        self.video_combo.setEnabled(True)
        self.info.setText(f"{json_path.name}: {len(data['videos'])} videos")

    def open_sample(self) -> None:
        """Open the first video of the shipped sample dataset."""
        from napari_vis_ws._sample_data import ensure_sample

        self.set_path(ensure_sample())
        self.open_current()

    def open_current(self) -> None:
        """Open the chosen video (in a worker; layers appear when it is done)."""
        from training.data.video import open_frames

        text = self.path_edit.text().strip()
        p = Path(text)
        is_dataset = p.suffix.lower() == ".json" or (p.is_dir() and find_dataset_json(p) is not None)
        if is_dataset and (self._json is None or text != self._read_path):
            self._path_changed(force=True)
            if self._json is None:
                return  # not a dataset: _path_changed said why (a JSON is no video to open as frames)
        if self._json is not None:
            vid = self.video_combo.currentData()
            json_path = self._json

            def load() -> list[tuple]:
                return dataset_layers(json_path, vid)
        else:

            def load() -> list[tuple]:
                return [frames_layer(open_frames(p))]

        self.open_button.setEnabled(False)
        self.info.setText("opening…")
        self.worker = start_worker(load, self._show, self._notify, lambda: self.open_button.setEnabled(True))

    def _show(self, layer_data: list[tuple]) -> None:
        put_layers(self.viewer, layer_data, restyle=True)
        frames = layer_data[0][0]
        t, h, w = frames.shape[:3]
        extra = f", {layer_data[1][0].max()} instances" if len(layer_data) > 1 else ""
        self.info.setText(f"{t} frames of {w}×{h}{extra}")
        self.viewer.dims.set_current_step(0, 0)

    def _notify(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.info.setText(message)
        show_error(message)

    # -- evaluation -----------------------------------------------------------
    def evaluate(self) -> None:
        """Score the results file against the dataset's ground truth (in a worker)."""
        if self._json is None:
            self._notify("open a YouTube-VIS ground-truth JSON first")
            return
        gt_path, res_path = self._json, Path(self.results_edit.text().strip())
        frame_level = self.frame_level.isChecked()

        def run() -> str:
            from training.data.ytvis import load_ytvis
            from training.errors import InputError
            from training.evaluation import evaluate_frames, evaluate_ytvis, format_table
            from training.json_io import read_json

            gt = load_ytvis(gt_path)
            results = read_json(res_path)
            if not isinstance(results, list):
                raise InputError(res_path, "expected a JSON list of results")
            fn = evaluate_frames if frame_level else evaluate_ytvis
            return format_table(fn(gt, results, gt_path=str(gt_path), results_path=str(res_path)))

        def failed(message: str) -> None:
            self.eval_output.setPlainText(message)
            self._notify(message)

        self.eval_button.setEnabled(False)
        self.eval_output.setPlainText("evaluating…")
        self.worker = start_worker(
            run, self.eval_output.setPlainText, failed, lambda: self.eval_button.setEnabled(True)
        )
