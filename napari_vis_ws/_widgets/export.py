"""The Export dock: Labels layers → YouTube-VIS / COCO JSON (RLE), and training targets from a project.

The layers are copied on the main thread; writing (RLE encoding, atomic
files via :mod:`training.project`) runs in a worker, and the dock shows what
was written ("wrote 2 videos, 14 instances, 83 masks to X").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_vis_ws._docking import tabify_when_docked
from napari_vis_ws._layers import volume_from_layer
from napari_vis_ws._widgets.corrections import PSEUDO_LABELS, run_folder_of
from napari_vis_ws._workers import start_worker
from training.run_folder import Project

if TYPE_CHECKING:
    import napari

FORMATS = {"YouTube-VIS JSON": "ytvis", "COCO JSON (RLE)": "coco"}
FORMS = {"ground truth": "gt", "results (with scores)": "results"}


def _guarded(path: str, work: Any) -> Any:
    """``work()``, with a file system or input problem as a one-line InputError naming ``path``."""
    from training.errors import InputError

    try:
        return work()
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(path, str(getattr(exc, "strerror", None) or exc)) from None


def _merge_categories(lists: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    by_id: dict[int, dict[str, Any]] = {}
    for cats in lists:
        for c in cats:
            by_id.setdefault(int(c["id"]), c)
    return [by_id[k] for k in sorted(by_id)]


class ExportWidget(QWidget):
    """Write chosen Labels layers as YouTube-VIS or COCO JSON; write a project's training targets."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: Any = None

        self.layer_list = QListWidget()
        self.layer_list.setToolTip("Labels layers to export, one video each")
        self.format_combo = QComboBox()
        self.format_combo.addItems(list(FORMATS))
        self.form_combo = QComboBox()
        self.form_combo.addItems(list(FORMS))
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("output .json")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_out)
        self.export_button = QPushButton("Export")
        self.export_button.clicked.connect(self.export)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)

        ex = QGroupBox("Instance masks")
        form = QFormLayout(ex)
        form.addRow("Layers", self.layer_list)
        form.addRow("Format", self.format_combo)
        form.addRow("Form", self.form_combo)
        row = QHBoxLayout()
        row.addWidget(self.out_edit)
        row.addWidget(browse)
        form.addRow("Output", row)
        form.addRow(self.export_button)
        form.addRow(self.summary)

        self.project_edit = QLineEdit()
        self.project_edit.setPlaceholderText("project folder with corrections/")
        proj_browse = QPushButton("Browse…")
        proj_browse.clicked.connect(lambda: self._browse_dir(self.project_edit, "Project folder"))
        self.targets_edit = QLineEdit()
        self.targets_edit.setPlaceholderText("output folder (PROJECT/targets)")
        tgt_browse = QPushButton("Browse…")
        tgt_browse.clicked.connect(lambda: self._browse_dir(self.targets_edit, "Training targets folder"))
        self.targets_button = QPushButton("Write training targets")
        self.targets_button.setToolTip(
            "Reviewed frames from the saved corrections, the others from the pseudo-labels: "
            "OUT/<video>/pseudo.npz + OUT/pseudo_labels.json, read by training in place of pseudo-labels"
        )
        self.targets_button.clicked.connect(self.write_targets)
        self.targets_summary = QLabel("")
        self.targets_summary.setWordWrap(True)
        self.targets_summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        tg = QGroupBox("Training targets (saved corrections)")
        tform = QFormLayout(tg)
        r1 = QHBoxLayout()
        r1.addWidget(self.project_edit)
        r1.addWidget(proj_browse)
        tform.addRow("Project", r1)
        r2 = QHBoxLayout()
        r2.addWidget(self.targets_edit)
        r2.addWidget(tgt_browse)
        tform.addRow("Output", r2)
        tform.addRow(self.targets_button)
        tform.addRow(self.targets_summary)

        layout = QVBoxLayout(self)
        layout.addWidget(ex)
        layout.addWidget(tg)
        layout.addStretch(1)
        # ticks the user set by hand, by layer (id): kept while the layer exists, across renames and moves
        self._hand: dict[int, bool] = {}
        self._rebuilding = False
        self.layer_list.itemChanged.connect(self._item_changed)
        self.viewer.layers.events.inserted.connect(self._layers_changed)
        self.viewer.layers.events.removed.connect(self._layers_changed)
        self.viewer.layers.events.moved.connect(self._layers_changed)
        self._layers_changed()
        tabify_when_docked(self)

    # -- layers ---------------------------------------------------------------------
    def _layers_changed(self, event: Any = None) -> None:
        """List the Labels layers in the viewer's order; tick hand choices, else the default.

        The default is ``pseudo-labels`` (the layer the Corrections dock
        corrects and saves), or the only Labels layer when there is none.
        """
        from napari.layers import Labels

        if event is not None and event.type == "removed" and isinstance(event.value, Labels):
            event.value.events.name.disconnect(self._layer_renamed)
        labels = [ly for ly in self.viewer.layers if isinstance(ly, Labels)]
        self._hand = {k: v for k, v in self._hand.items() if k in {id(ly) for ly in labels}}
        names = [ly.name for ly in labels]
        self._rebuilding = True
        try:
            self.layer_list.clear()
            for layer in labels:
                layer.events.name.connect(self._layer_renamed)  # a second connect of the same callback is a no-op
                default = layer.name == PSEUDO_LABELS or (PSEUDO_LABELS not in names and len(names) == 1)
                item = QListWidgetItem(layer.name)
                item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
                item.setData(Qt.UserRole, id(layer))
                item.setCheckState(Qt.Checked if self._hand.get(id(layer), default) else Qt.Unchecked)
                self.layer_list.addItem(item)
        finally:
            self._rebuilding = False
        if not self.project_edit.text():
            for name in names:
                run = run_folder_of(self.viewer.layers[name])
                if run is not None:
                    self.project_edit.setText(str(run))
                    break

    def _item_changed(self, item: QListWidgetItem) -> None:
        """A tick set by hand (or by :meth:`set_checked`): keep it while its layer exists."""
        if not self._rebuilding:
            self._hand[item.data(Qt.UserRole)] = item.checkState() == Qt.Checked

    def _layer_renamed(self, event: Any) -> None:
        """A renamed layer keeps its tick (renaming ``pseudo-labels`` must not untick it), under its new name."""
        for i in range(self.layer_list.count()):
            it = self.layer_list.item(i)
            if it.data(Qt.UserRole) == id(event.source):
                self._hand[id(event.source)] = it.checkState() == Qt.Checked
        self._layers_changed()

    def checked_layers(self) -> list[str]:
        """Names of the layers ticked for export."""
        items = [self.layer_list.item(i) for i in range(self.layer_list.count())]
        return [it.text() for it in items if it.checkState() == Qt.Checked]

    def set_checked(self, names: list[str]) -> None:
        """Tick exactly these layers."""
        for i in range(self.layer_list.count()):
            it = self.layer_list.item(i)
            it.setCheckState(Qt.Checked if it.text() in names else Qt.Unchecked)

    # -- export ---------------------------------------------------------------------
    def _browse_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export", "", "JSON (*.json)")
        if path:
            self.out_edit.setText(path)

    def _browse_dir(self, edit: QLineEdit, title: str) -> None:
        path = QFileDialog.getExistingDirectory(self, title)
        if path:
            edit.setText(path)

    def export(self) -> None:
        """Write the ticked layers (in a worker); the summary says what was written."""
        from training.project import export_volumes

        names = self.checked_layers()
        out = self.out_edit.text().strip()
        if not names or not out:
            self.summary.setText("tick at least one Labels layer and choose an output .json")
            return
        try:
            pairs = [
                volume_from_layer(
                    np.array(self.viewer.layers[n].data, copy=True),
                    {"features": self.viewer.layers[n].features, "metadata": self.viewer.layers[n].metadata},
                )
                for n in names
            ]
        except ValueError as exc:
            self.summary.setText(str(exc))
            return
        volumes = [v for v, _ in pairs]
        categories = _merge_categories([c for _, c in pairs])
        fmt = FORMATS[self.format_combo.currentText()]
        form = FORMS[self.form_combo.currentText()]

        def work() -> str:
            return str(_guarded(out, lambda: export_volumes(out, volumes, categories, fmt, form)))

        self.export_button.setEnabled(False)
        self.summary.setText("writing…")
        self.worker = start_worker(
            work, self.summary.setText, self.summary.setText, lambda: self.export_button.setEnabled(True)
        )

    def write_targets(self) -> None:
        """Write the project's training targets (in a worker)."""
        from training.project import write_training_targets

        project = self.project_edit.text().strip()
        if not project:
            self.targets_summary.setText("choose the project folder whose corrections to use")
            return
        out = self.targets_edit.text().strip() or str(Project(project).targets)
        self.targets_edit.setText(out)

        def work() -> str:
            return str(_guarded(out, lambda: write_training_targets(project, out)))

        self.targets_button.setEnabled(False)
        self.targets_summary.setText("writing…")
        self.worker = start_worker(
            work,
            self.targets_summary.setText,
            self.targets_summary.setText,
            lambda: self.targets_button.setEnabled(True),
        )
