"""The Corrections dock: fix pseudo-labels by hand, review frames, autosave the project.

The dock edits a Labels layer (``pseudo-labels`` by default). Every action is
a :mod:`training.corrections` function that returns the pixels to change; the
dock applies them with ``layer.data_setitem`` inside ``layer.block_history()``
so one Ctrl+Z undoes one action, a propagation over many frames included.
Re-classing moves the instance to a new id whose row in the layer's features
has the new class, so undo brings back the old id with its old class.

Keyboard shortcuts (none is a napari default; each is also a button):
Shift+M merge, Shift+S split into components, Shift+K split along the drawn
line, Shift+D delete, Shift+F / Shift+B propagate forward / backward,
Shift+R mark the frame reviewed, Shift+N next frame of the review queue.

The review queue lists the unreviewed frames most likely wrong, each with
why (``frame 7: disagreement 0.80, low score 0.20``): MaskConsist
disagreement between the pseudo-labels and the detector, stored in the
layer's ``metadata["vis_ws"]["disagreement"]`` by whoever loads predictions
or matches beside them (the Pipeline dock, the Training dock's Load
predictions), low instance scores, and instances appearing or vanishing.

Autosave writes ``PROJECT/corrections/<video key>/`` (:mod:`training.project`,
atomic files) every few seconds while there are unsaved changes; choosing a
project that holds saved corrections of the video restores them (and removes
temporary files of a save killed mid-way). Only edits are saved: showing a
video writes nothing.

Another dock may put new content in the layer (``layer.data = ...``: the
Pipeline dock showing another video or a stage's new pseudo-labels). That is
never an edit: the edits still pending are saved to the video they were made
on (from the array they were made in), then the dock binds to the new
content, and when the project holds corrections of that video the layer
shows them, not the uncorrected pseudo-labels. A save with fewer edits than
the one on disk (an undo) keeps that one as a backup generation and says so. Closing the dock or the viewer, or
switching to another layer, saves what is pending at once. Saves are ordered:
one write at a time, and a snapshot older than the one on disk is never
written, so ``labels.npz`` and ``state.json`` always come from one moment.

An edit costs a pass over the frames it touched, not over the video: the dock
keeps per-frame checksums and instance areas (:class:`FrameStats`) and takes
the touched frames from napari's paint event. An undo or redo (napari's
``set_data`` event, which moving through frames fires too) can only touch
frames an edit touched, so only those and the frame shown are checked.
"""

from __future__ import annotations

import threading
import time
import weakref
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QShortcut,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_vis_ws._layers import META_KEY, labels_features, labels_layer, volume_from_layer
from napari_vis_ws._tasks import watch_window
from napari_vis_ws._workers import start_worker
from training import corrections as corr
from training import review
from training.run_folder import Project

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels

PSEUDO_LABELS = "pseudo-labels"
SPLIT_LINE = "split line"  # Shapes layer whose last path cuts an instance (Shift+K)
AUTOSAVE_MS = 5000
# action → napari key binding; checked against napari.utils.shortcuts.default_shortcuts (no Shift+letter
# there but Shift+V, Shift+A, Shift+L, Shift+P)
SHORTCUTS = {
    "merge": "Shift-M",
    "split": "Shift-S",
    "split_line": "Shift-K",
    "delete": "Shift-D",
    "propagate_forward": "Shift-F",
    "propagate_backward": "Shift-B",
    "toggle_reviewed": "Shift-R",
    "next_in_queue": "Shift-N",
}
COLUMNS = ("id", "class", "frames", "score")


def _qt_key(binding: str) -> str:
    return binding.replace("-", "+")


def video_key_of(layer: Any) -> str:
    """The layer's video key: ``metadata[vis_ws][video_key]``, else from its video entry, else its name."""
    from training.data.sources import video_key

    meta = layer.metadata.get(META_KEY, {})
    if meta.get("video_key"):
        return str(meta["video_key"])
    video = meta.get("video") or {}
    if video.get("file_names") or video.get("name"):
        return video_key({"id": video.get("id", 1), **video})
    return video_key({"id": 1, "name": layer.name})


def frames_of_history_item(atoms: Any, n_frames: int) -> set[int] | None:
    """Frames touched by a napari Labels history item (a list of atoms), or None if it cannot tell.

    An atom is ``(indices, old values, new values)`` (``data_setitem``) or a
    masked paint atom whose ``slice_key`` is its bounding box (brush, fill).
    """
    frames: set[int] = set()
    for atom in atoms if isinstance(atoms, list | tuple) else [None]:
        key = getattr(atom, "slice_key", None)
        if key is not None:
            first = key[0]
            if isinstance(first, slice):
                frames.update(range(*first.indices(n_frames)))
            else:
                frames.add(int(first))
        elif isinstance(atom, tuple) and len(atom) == 3 and isinstance(atom[0], tuple) and len(atom[0]):
            frames.update(np.unique(np.asarray(atom[0][0])).tolist())
        else:
            return None
    return {f for f in frames if 0 <= f < n_frames}


class FrameStats:
    """Per-frame CRC-32 and instance areas of a (T, H, W) label volume, recomputed frame by frame.

    Attributes
    ----------
    crc : (T,) int64, CRC-32 of each frame (-1 before the first scan)
    per_frame : list of {id: pixels}, one per frame
    """

    def __init__(self) -> None:
        self.crc = np.full(0, -1, np.int64)
        self.per_frame: list[dict[int, int]] = []
        self._areas: corr.InstanceAreas | None = None

    def scan(self, labels: np.ndarray, frames: set[int] | None = None) -> list[int]:
        """Checksum ``frames`` (None: all) and recount the instances of those that changed; returns these."""
        n_t = labels.shape[0]
        if len(self.per_frame) != n_t:
            self.crc = np.full(n_t, -1, np.int64)
            self.per_frame = [{} for _ in range(n_t)]
            frames = None
        changed = []
        for t in range(n_t) if frames is None else sorted(frames):
            frame = np.ascontiguousarray(labels[t])
            crc = zlib.crc32(frame)
            if crc == self.crc[t]:
                continue
            a = corr.instance_areas(frame[None])
            self.crc[t] = crc
            self.per_frame[t] = dict(zip(a.ids.tolist(), a.areas[0].tolist(), strict=True))
            changed.append(t)
        if changed:
            self._areas = None
        return changed

    def areas(self) -> corr.InstanceAreas:
        """The instance areas of the whole volume (cached until a frame changes)."""
        if self._areas is None:
            ids = np.array(sorted(set().union(*self.per_frame)), np.int64)
            areas = np.zeros((len(self.per_frame), ids.size), np.int64)
            col = {int(k): i for i, k in enumerate(ids.tolist())}
            for t, d in enumerate(self.per_frame):
                for k, n in d.items():
                    areas[t, col[k]] = n
            self._areas = corr.InstanceAreas(ids, areas)
        return self._areas


def run_folder_of(layer: Any) -> Path | None:
    """The run folder of a layer read from ``RUN/pseudo/<key>/pseudo.npz`` (the pipeline's layout), if so."""
    meta = layer.metadata.get(META_KEY, {})
    if meta.get("project"):
        return Path(meta["project"])
    path = meta.get("path")
    if path and Path(path).parent.parent.name == Project("").pseudo.name:
        return Path(path).parent.parent.parent
    return None


class CorrectionsWidget(QWidget):
    """Correct a Labels layer of instances: table, merge/split/delete, flow propagation, review, autosave."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.layer: Labels | None = None
        self.reviewed: set[int] = set()
        self.worker: Any = None
        self._pseudo: Any = None  # LabelVolume snapshot of the layer before any correction
        self._key: str | None = None  # video key of the content the dock is bound to
        self._bound_data: Any = None  # the array edits are made in (a refill replaces it, not its pixels)
        self._refilling = False  # the dock itself is replacing the layer's data (restoring corrections)
        self._rebind_pending = False
        self._backup_note = ""  # what the last save kept as a backup, shown with the save status
        self._flow: tuple[str, str, Any] | None = None
        self._stats = FrameStats()
        self._seen_data = 0  # id of the layer's data the stats are of
        self._touched: set[int] = set()  # frames edited since the layer was bound: what an undo can change
        self._needs_refresh = False  # paint events updated the stats; the table follows on the next check
        self._dirty = False
        self._saving = False
        self._inflight: dict[str, Any] | None = None  # the snapshot a worker is writing
        self._generation = 0  # snapshots taken, in order (main thread)
        self._write_lock = threading.Lock()  # one writer at a time, worker or main thread
        self._written: dict[tuple[str, str], int] = {}  # (project, key) → generation on disk
        self._watched: Callable[[], QObject | None] = lambda: None  # the window whose closing saves (eventFilter)
        self._edited: float | None = None  # time.time() of the last edit
        self._saved_at: float | None = None  # time.monotonic() of the last save
        self._areas = corr.instance_areas(np.zeros((0, 1, 1), np.int32))
        self._filling = False

        # -- layer + instance table
        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("The Labels layer to correct")
        self.layer_combo.currentTextChanged.connect(self._layer_chosen)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(["id", "class", "frames present", "score"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.itemSelectionChanged.connect(self._rows_selected)

        # -- actions
        self.buttons: dict[str, QPushButton] = {}
        grid = QGridLayout()
        labels = {
            "merge": "Merge",
            "split": "Split pieces",
            "split_line": "Split on line",
            "delete": "Delete",
            "propagate_forward": "Propagate →",
            "propagate_backward": "← Propagate",
            "toggle_reviewed": "Reviewed",
            "next_in_queue": "Next to review",
        }
        tips = {
            "merge": "Merge the selected instances into the one with the lowest id",
            "split": "Give each 4-connected piece of the instance in this frame its own id (largest keeps the id)",
            "split_line": f"Cut the instance in this frame along the last path of the '{SPLIT_LINE}' layer",
            "delete": "Erase the selected instances (in every frame, or this frame only)",
            "propagate_forward": "Carry this frame's mask of the instance N frames forward along the optical flow",
            "propagate_backward": "Carry this frame's mask of the instance N frames backward along the optical flow",
            "toggle_reviewed": "Mark this frame reviewed (again: unmark it)",
            "next_in_queue": "Jump to the unreviewed frame most likely wrong",
        }
        for i, (name, text) in enumerate(labels.items()):
            key = _qt_key(SHORTCUTS[name])
            b = QPushButton(f"{text} ({key})")
            b.setToolTip(f"{tips[name]} [{key}]")
            b.clicked.connect(getattr(self, name))
            self.buttons[name] = b
            grid.addWidget(b, i // 2, i % 2)
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.WidgetWithChildrenShortcut)
            shortcut.activated.connect(getattr(self, name))
        self.draw_line_button = QPushButton("Draw cut line")
        self.draw_line_button.setToolTip(f"Add a '{SPLIT_LINE}' Shapes layer in path mode to draw a cut")
        self.draw_line_button.clicked.connect(self.draw_split_line)
        self.this_frame_only = QCheckBox("delete in this frame only")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 10000)
        self.steps_spin.setValue(5)
        self.steps_spin.setToolTip("N: how many frames to propagate over")
        self.overlap_spin = QDoubleSpinBox()
        self.overlap_spin.setRange(0.0, 1.0)
        self.overlap_spin.setSingleStep(0.05)
        self.overlap_spin.setValue(0.5)
        self.overlap_spin.setToolTip("Stop where less than this fraction of the carried mask lies on labelled pixels")
        self.flow_edit = QLineEdit()
        self.flow_edit.setPlaceholderText("flow folder (RUN/flow)")
        self.message = QLabel("")
        self.message.setWordWrap(True)

        act = QGroupBox("Correct")
        form = QFormLayout(act)
        form.addRow(grid)
        line_row = QHBoxLayout()
        line_row.addWidget(self.draw_line_button)
        line_row.addWidget(self.this_frame_only)
        form.addRow(line_row)
        form.addRow("Propagate N frames", self.steps_spin)
        form.addRow("Min. overlap", self.overlap_spin)
        form.addRow("Flow", self.flow_edit)
        form.addRow(self.message)

        # -- review
        self.progress = QLabel("")
        self.queue_list = QListWidget()
        self.queue_list.setToolTip(
            "Unreviewed frames, most likely wrong first: MaskConsist disagreement with the predictions "
            "(when loaded), low scores, instances appearing or vanishing"
        )
        self.queue_list.itemActivated.connect(self._queue_item_chosen)
        self.queue_list.itemClicked.connect(self._queue_item_chosen)
        rev = QGroupBox("Review")
        rev_layout = QVBoxLayout(rev)
        rev_layout.addWidget(self.progress)
        rev_layout.addWidget(self.queue_list)

        # -- project / autosave
        self.project_edit = QLineEdit()
        self.project_edit.setPlaceholderText("project folder (corrections are saved in it)")
        self.project_edit.returnPressed.connect(lambda: self.set_project(self.project_edit.text().strip()))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_project)
        self.save_button = QPushButton("Save now")
        self.save_button.clicked.connect(self.save_now)
        self.save_status = QLabel("autosave off: choose a project folder")
        proj = QGroupBox("Project")
        proj_layout = QFormLayout(proj)
        row = QHBoxLayout()
        row.addWidget(self.project_edit)
        row.addWidget(browse)
        proj_layout.addRow(row)
        row2 = QHBoxLayout()
        row2.addWidget(self.save_status, 1)
        row2.addWidget(self.save_button)
        proj_layout.addRow(row2)

        layout = QVBoxLayout(self)
        layout.addWidget(self.layer_combo)
        layout.addWidget(self.table, 2)
        layout.addWidget(act)
        layout.addWidget(rev, 1)
        layout.addWidget(proj)

        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(AUTOSAVE_MS)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()
        self.clock = QTimer(self)
        self.clock.setInterval(1000)
        self.clock.timeout.connect(self._show_save_status)
        self.clock.start()
        self._check_timer = QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(150)
        self._check_timer.timeout.connect(self._check_changed)

        self._bind_keys()
        self.viewer.layers.events.inserted.connect(self._layers_changed)
        self.viewer.layers.events.removed.connect(self._layers_changed)
        self._layers_changed()
        from napari_vis_ws._docking import tabify_when_docked
        tabify_when_docked(self)  # into a tab with the plugin's other docks (issue 16)

    # -- closing ------------------------------------------------------------------
    def _watch_window(self) -> None:
        self._watched = watch_window(self, self._watched)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        """Save synchronously when the viewer's window closes (its event loop may end right after)."""
        if event.type() == QEvent.Close and watched is self._watched():
            self.flush()
        return False

    def event(self, event: QEvent) -> bool:
        """Save when the dock goes: hidden (in a worker) or taken out of its dock, i.e. closed (at once)."""
        kind = event.type()
        if kind == QEvent.ParentChange and self.parent() is not None:
            # napari docks the widget, then the dock in its window: look for the window once that is done
            QTimer.singleShot(0, self._watch_window)
        elif kind == QEvent.Show:
            self._watch_window()
        elif getattr(self, "layer", None) is None:  # nothing to save (or still in __init__)
            pass
        elif kind == QEvent.ParentChange:
            self.flush()  # napari's dock close button takes the widget out of its dock
        elif kind == QEvent.Hide:
            if self.window().isVisible():
                self.autosave()  # only the dock is hidden: the app goes on
            else:
                self.flush()  # the window is closing
        return super().event(event)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        self.flush()
        super().closeEvent(event)

    # -- keys ---------------------------------------------------------------------
    def _bind_keys(self) -> None:
        ref = weakref.ref(self)

        def call(name: str) -> Callable[[Any], None]:
            def pressed(_viewer: Any) -> None:
                widget = ref()
                if widget is not None:
                    try:
                        getattr(widget, name)()
                    except RuntimeError:  # the dock was closed: its Qt side is gone
                        pass

            return pressed

        for name, key in SHORTCUTS.items():
            self.viewer.bind_key(key, call(name), overwrite=True)

    # -- layer --------------------------------------------------------------------
    def _labels_layers(self) -> list[Labels]:
        from napari.layers import Labels

        return [ly for ly in self.viewer.layers if isinstance(ly, Labels)]

    def _bound_layer_present(self) -> bool:
        # by unique_id: a plugin dock sees layers through proxies, a new proxy per access
        return self.layer is not None and any(ly.unique_id == self.layer.unique_id for ly in self._labels_layers())

    def _layers_changed(self, event: Any = None) -> None:
        names = [ly.name for ly in self._labels_layers()]
        current = self.layer.name if self._bound_layer_present() else None
        added = getattr(event, "value", None) if getattr(event, "type", "") == "inserted" else None
        if getattr(added, "name", None) == PSEUDO_LABELS and PSEUDO_LABELS in names:
            current = PSEUDO_LABELS  # new pseudo-labels (e.g. the Pipeline dock reopened them) take over
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems(names)
        self.layer_combo.blockSignals(False)
        pick = current or (PSEUDO_LABELS if PSEUDO_LABELS in names else (names[0] if names else None))
        if pick is not None:
            self.layer_combo.setCurrentText(pick)
        self._layer_chosen(pick or "")

    def _layer_chosen(self, name: str) -> None:
        layer = self.viewer.layers[name] if name and name in self.viewer.layers else None
        if getattr(layer, "unique_id", None) == getattr(self.layer, "unique_id", None) and self._bound_layer_present():
            return
        self.set_layer(layer)

    def set_layer(self, layer: Labels | None) -> None:
        """Correct ``layer`` (a Labels layer of (T, H, W) instance ids).

        Unsaved corrections of the previous layer are saved first; the project
        folder follows the layer (its ``metadata[vis_ws]``), so corrections of
        one layer never overwrite another's.
        """
        if self.layer is not None:
            self.flush()
            for ev, cb in self._layer_callbacks():
                ev.disconnect(cb)
        if layer is not None and np.ndim(layer.data) != 3:
            self._say(f"{layer.name}: needs (T, H, W) labels, got {np.ndim(layer.data)} dimensions")
            layer = None
        self.layer = layer
        self._key = None
        self._bound_data = None
        if layer is None:
            self._flow = None
            self._pseudo = None
            self._saved_at = None
            self._dirty = False
            self.project_edit.setText("")
            self.reviewed = set()
            self.refresh()
            return
        for ev, cb in self._layer_callbacks():
            ev.connect(cb)
        self._bind_content()

    def _bind_content(self, project: Path | None = None) -> None:
        """Take the layer's current content as the start of the corrections (a new layer, or new data in it).

        The project is the layer's run folder, else ``project``; when it holds
        corrections of this video, the layer shows those.
        """
        assert self.layer is not None
        layer = self.layer
        meta = layer.metadata.setdefault(META_KEY, {})
        self._key = video_key_of(layer)
        self._bound_data = layer.data
        self._flow = None
        self._saved_at = None
        self._dirty = False
        self._backup_note = ""
        self.project_edit.setText("")
        self.reviewed = {int(f) for f in meta.get("reviewed", [])}
        self._pseudo = None if meta.get("corrected") else self._volume()[0]
        self._rescan()
        self._needs_refresh = False
        run = run_folder_of(layer) or project
        if not self.flow_edit.text() and run is not None and Project(run).flow.is_dir():
            self.flow_edit.setText(str(Project(run).flow))
        self.refresh()
        if run is not None:
            self.set_project(run)

    def _layer_callbacks(self) -> list[tuple[Any, Callable]]:
        ly = self.layer
        assert ly is not None
        return [
            (ly.events.paint, self._painted),
            (ly.events.data, self._data_replaced),
            (ly.events.set_data, self._maybe_changed),
            (ly.events.selected_label, self._label_picked),
            (ly.events.metadata, self._metadata_changed),
        ]

    def _labels(self) -> np.ndarray:
        assert self.layer is not None
        return np.asarray(self.layer.data)

    def _rescan(self) -> list[int]:
        """Checksum every frame (a new layer or new data); returns the frames that changed."""
        assert self.layer is not None
        if id(self.layer.data) != self._seen_data:
            self._stats = FrameStats()
            self._seen_data = id(self.layer.data)
        self._touched = set()
        return self._stats.scan(self._labels())

    def _categories(self) -> list[dict[str, Any]]:
        assert self.layer is not None
        cats = self.layer.metadata.get(META_KEY, {}).get("categories")
        if cats:
            return list(cats)
        table = self._table()
        pairs = {int(c): str(n) for c, n in zip(table["category_id"], table["class"], strict=True) if int(c) != 0}
        return [{"id": c, "name": n} for c, n in sorted(pairs.items())] or [{"id": 1, "name": "class 1"}]

    def _table(self) -> dict[str, list]:
        """The layer's features as an instance table, with a row for every id in the data."""
        assert self.layer is not None
        cats = self.layer.metadata.get(META_KEY, {}).get("categories") or [{"id": 1, "name": "class 1"}]
        f = self.layer.features
        n = len(f)
        table: dict[str, list] = {c: f[c].tolist() for c in f.columns} if n else {"index": [0]}
        table.setdefault("index", list(range(n)))
        first = {"class": cats[0]["name"], "category_id": cats[0]["id"], "score": 1.0, "frames": 0}
        for col, value in first.items():
            table.setdefault(col, [value] * len(table["index"]))
        return corr.complete_table(table, self._areas.ids.tolist(), cats[0]["id"], cats[0]["name"])

    def _volume(self, data: Any = None) -> tuple[Any, list[dict[str, Any]]]:
        """A copy of the layer (or of ``data``, its content before a refill) as a LabelVolume, and its categories."""
        assert self.layer is not None
        meta = {"features": self.layer.features, "metadata": self.layer.metadata}
        return volume_from_layer(np.array(self.layer.data if data is None else data, copy=True), meta)

    # -- display --------------------------------------------------------------------
    def refresh(self) -> None:
        """Recompute the instance table, review progress and review queue from the layer."""
        if self.layer is not None and self._check_timer.isActive():  # an undo or a brush stroke not seen yet
            self._check_timer.stop()
            self._needs_refresh = True
            self._check_changed()
            return
        self._fill_table()

    def _fill_table(self) -> None:
        if self.layer is None:
            self._areas = corr.instance_areas(np.zeros((0, 1, 1), np.int32))
            self.table.setRowCount(0)
            self.progress.setText("no Labels layer to correct")
            self.queue_list.clear()
            return
        keep = self._row_ids()
        self._areas = self._stats.areas()
        table = self._table()
        row_of = {int(k): i for i, k in enumerate(table["index"])}
        names = [c["name"] for c in self._categories()]
        self._filling = True
        self.table.setRowCount(len(self._areas.ids))
        for r, k in enumerate(self._areas.ids.tolist()):
            i = row_of[k]
            frames = self._areas.frames_of(k)
            item = QTableWidgetItem(str(k))
            item.setData(Qt.UserRole, k)
            self.table.setItem(r, 0, item)
            combo = QComboBox()
            combo.addItems(names if table["class"][i] in names else [*names, str(table["class"][i])])
            combo.setCurrentText(str(table["class"][i]))
            # deferred: re-classing rebuilds the table, which deletes this combo
            combo.currentTextChanged.connect(lambda text, k=k: QTimer.singleShot(0, lambda: self.reclass(k, text)))
            self.table.setCellWidget(r, 1, combo)
            fr = QTableWidgetItem(corr.frame_ranges(frames))
            fr.setToolTip(f"{len(frames)} frames")
            self.table.setItem(r, 2, fr)
            score = table["score"][i]
            self.table.setItem(r, 3, QTableWidgetItem("" if score is None else f"{float(score):.2f}"))
        self._filling = False
        present = set(self._areas.ids.tolist())
        self._select_rows([k for k in keep if k in present] or [self.layer.selected_label])
        self._show_review()

    def _show_review(self) -> None:
        if self.layer is None:
            return
        n_t = self._labels().shape[0]
        self.progress.setText(f"{len(self.reviewed)}/{n_t} frames reviewed")
        self.queue_list.clear()
        for f, reason in self.queue_reasons(k=20):
            it = QListWidgetItem(f"frame {f}: {reason}" if reason else f"frame {f}")
            it.setData(Qt.UserRole, f)
            it.setToolTip("why: " + (reason or "nothing stands out"))
            self.queue_list.addItem(it)

    def _suspicion(self) -> review.Suspicion:
        """Why each frame may be wrong: scores, instance counts and, when the layer has it, MaskConsist disagreement."""
        assert self.layer is not None
        table = self._table()
        scores = {int(i): float(s) for i, s in zip(table["index"], table["score"], strict=True) if s is not None}
        dis = self.layer.metadata.get(META_KEY, {}).get("disagreement")
        if dis is not None and np.size(dis) != self._areas.areas.shape[0]:
            dis = None  # made for another version of the video
        return review.suspicion_terms(self._areas, scores, None if dis is None else np.asarray(dis, np.float64))

    def queue_reasons(self, k: int = 20) -> list[tuple[int, str]]:
        """(frame, why) of the unreviewed frames most likely wrong, worst first, e.g. (7, "disagreement 0.80")."""
        if self.layer is None:
            return []
        terms = self._suspicion()
        return [(f, terms.reason(f)) for f in review.worst_frames(terms.total, self.reviewed, k)]

    def queue(self, k: int = 20) -> list[int]:
        """Unreviewed frames, most likely wrong first (``metadata[vis_ws][disagreement]`` is used when present).

        The rank adds up low scores, instances appearing or vanishing and the
        MaskConsist disagreement that loading predictions or matches stores in
        the layer's metadata (:func:`training.review.suspicion_terms`).
        """
        return [f for f, _ in self.queue_reasons(k)]

    def _select_rows(self, ids: list[int]) -> None:
        self.table.blockSignals(True)
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.MultiSelection)
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(Qt.UserRole) in ids:
                self.table.selectRow(r)
        self.table.setSelectionMode(mode)
        self.table.blockSignals(False)

    def select_instances(self, ids: list[int]) -> None:
        """Select table rows (as a click / Ctrl+click would); the lowest id becomes the layer's label."""
        self._select_rows([int(i) for i in ids])
        self._rows_selected()

    def _row_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [int(self.table.item(r, 0).data(Qt.UserRole)) for r in rows]

    def selected_ids(self) -> list[int]:
        """Ids of the selected rows, else the layer's selected label when it is present."""
        ids = self._row_ids()
        if not ids and self.layer is not None and self.layer.selected_label in set(self._areas.ids.tolist()):
            ids = [int(self.layer.selected_label)]
        return ids

    def _rows_selected(self) -> None:
        ids = self.selected_ids()
        if ids and self.layer is not None and self.layer.selected_label != ids[0]:
            self.layer.events.selected_label.disconnect(self._label_picked)
            self.layer.selected_label = ids[0]
            self.layer.events.selected_label.connect(self._label_picked)

    def _metadata_changed(self, event: Any = None) -> None:
        if self.layer is not None and not self._refilling and video_key_of(self.layer) != self._key:
            if self._dirty and self._bound_data is not None:  # the video changed under pending edits
                self._save_pending(self._bound_data)
                self._dirty = False
            self._schedule_rebind()  # another video's content arrives with it
            return
        self._show_review()  # e.g. a MaskConsist disagreement arrived with the predictions

    def _label_picked(self, event: Any = None) -> None:
        if self.layer is not None:
            self._select_rows([self.layer.selected_label])

    def _say(self, text: str) -> None:
        self.message.setText(text)
        self.viewer.status = text

    def current_frame(self) -> int:
        """The frame shown (the first axis of the viewer)."""
        return int(self.viewer.dims.current_step[0])

    # -- edits ------------------------------------------------------------------------
    def _apply(self, edits: list[corr.Edit], message: str, table: dict[str, list] | None = None) -> None:
        """Apply pixel edits as ONE undo step, update features and the display."""
        assert self.layer is not None
        if table is None and not any(e.size for e in edits):
            self._say(message)
            return
        if table is not None:
            self.layer.features = table
        with self.layer.block_history():
            for e in edits:
                if e.size:
                    self.layer.data_setitem(e.index, e.values)
        self._after_edit()
        self._say(message)

    def _after_edit(self) -> None:
        # the paint event of data_setitem has updated the stats of the frames the edit touched
        self._check_timer.stop()
        self._needs_refresh = False
        self._dirty = True
        self._edited = time.time()
        self.refresh()
        self._update_frames_column()

    def _update_frames_column(self) -> None:
        """Keep ``features['frames']`` (frames present per id) true after an edit or an undo."""
        assert self.layer is not None
        table = self._table()
        table["frames"] = [len(self._areas.frames_of(int(k))) if int(k) else 0 for k in table["index"]]
        self.layer.features = table

    def _need(self, count: int = 1) -> list[int] | None:
        if self.layer is None:
            self._say("no Labels layer to correct: open pseudo-labels first")
            return None
        if self._check_timer.isActive():  # a brush stroke or an undo not yet seen by the table
            self._check_timer.stop()
            self._check_changed()
        ids = self.selected_ids()
        if len(ids) < count:
            self._say("select two or more instances in the table" if count > 1 else "select an instance in the table")
            return None
        return ids

    def reclass(self, k: int, class_name: str) -> None:
        """Give instance ``k`` the class ``class_name`` (it moves to a new id; one undo step)."""
        if self._filling or self.layer is None:
            return
        cats = {c["name"]: c["id"] for c in self._categories()}
        if class_name not in cats:
            self._say(f"unknown class {class_name!r}: pick one of {', '.join(cats)}")
            return
        table = self._table()
        new = corr.next_id(self._labels(), table["index"])
        try:
            edit, table = corr.relabel_class(self._labels(), table, int(k), cats[class_name], class_name, new)
        except ValueError as exc:
            self._say(str(exc))
            return
        self._apply([edit], f"instance {k} is now {class_name} (id {new})", table)
        self.layer.selected_label = new

    def merge(self) -> None:
        """Merge the selected instances into the lowest id of them."""
        ids = self._need(2)
        if ids is None:
            return
        keep, drop = min(ids), sorted(set(ids) - {min(ids)})
        try:
            edit = corr.merge_instances(self._labels(), keep, drop)
        except ValueError as exc:
            self._say(str(exc))
            return
        self._apply([edit], f"merged {', '.join(map(str, drop))} into {keep}")

    def _first_free(self) -> int:
        return corr.next_id(self._labels(), self._table()["index"])

    def _with_new_rows(self, k: int, new_ids: list[int]) -> dict[str, list]:
        return corr.add_instances(self._table(), k, new_ids)

    def split(self) -> None:
        """Split the selected instance in the current frame into its 4-connected pieces."""
        ids = self._need()
        if ids is None:
            return
        k, t = ids[0], self.current_frame()
        try:
            edit, new = corr.split_components(self._labels(), k, t, self._first_free())
        except ValueError as exc:
            self._say(str(exc))
            return
        if not new:
            self._say(f"instance {k} is in one piece in frame {t}")
            return
        self._apply([edit], f"split {k} in frame {t}: new ids {', '.join(map(str, new))}", self._with_new_rows(k, new))

    def draw_split_line(self) -> None:
        """Add (or select) the ``split line`` Shapes layer in path mode."""
        if SPLIT_LINE not in self.viewer.layers:
            self.viewer.add_shapes(name=SPLIT_LINE, ndim=self._labels().ndim if self.layer is not None else 3)
        shapes = self.viewer.layers[SPLIT_LINE]
        self.viewer.layers.selection.active = shapes
        shapes.mode = "add_path"
        self._say("draw a path across the instance, then Split on line (Shift+K)")

    def split_line(self) -> None:
        """Cut the selected instance in the current frame along the last path of the ``split line`` layer."""
        ids = self._need()
        if ids is None:
            return
        if SPLIT_LINE not in self.viewer.layers or not len(self.viewer.layers[SPLIT_LINE].data):
            self._say(f"draw a cut in the '{SPLIT_LINE}' layer first (Draw cut line)")
            return
        shapes = self.viewer.layers[SPLIT_LINE]
        points = np.asarray(shapes.data[-1], dtype=np.float64)[:, -2:]
        k, t = ids[0], self.current_frame()
        try:
            edit, new = corr.split_by_line(self._labels(), k, t, points, self._first_free())
        except ValueError as exc:
            self._say(str(exc))
            return
        if not new:
            self._say(f"the line does not cut instance {k} in two in frame {t}")
            return
        shapes.data = []
        self._apply([edit], f"cut {k} in frame {t}: new ids {', '.join(map(str, new))}", self._with_new_rows(k, new))
        self.viewer.layers.selection.active = self.layer

    def delete(self) -> None:
        """Erase the selected instances, in every frame or (checkbox) in the current frame only."""
        ids = self._need()
        if ids is None:
            return
        frames = [self.current_frame()] if self.this_frame_only.isChecked() else None
        labels = self._labels()
        edits = [corr.delete_instance(labels, k, frames) for k in ids]  # disjoint pixels: one step applies all
        where = f" in frame {frames[0]}" if frames else ""
        if not any(e.size for e in edits):
            self._say(f"nothing to delete: {', '.join(map(str, ids))} not in frame {frames[0] if frames else '-'}")
            return
        self._apply(edits, f"deleted {', '.join(map(str, ids))}{where}")

    def _video_flow(self) -> Any:
        from training.flow import read_video_flow

        folder, key = self.flow_edit.text().strip(), video_key_of(self.layer)
        if not folder:
            raise ValueError("choose the flow folder (RUN/flow) to propagate with")
        if self._flow is None or self._flow[:2] != (folder, key):
            self._flow = (folder, key, read_video_flow(folder, key))
        return self._flow[2]

    def propagate_forward(self) -> None:
        """Carry the selected instance's mask in this frame N frames forward along the flow."""
        self._propagate("forward")

    def propagate_backward(self) -> None:
        """Carry the selected instance's mask in this frame N frames backward along the flow."""
        self._propagate("backward")

    def _propagate(self, direction: corr.Direction) -> None:
        ids = self._need()
        if ids is None:
            return
        k, t = ids[0], self.current_frame()
        try:
            prop = corr.propagate_mask(
                self._labels(),
                k,
                t,
                self._video_flow(),
                self.steps_spin.value(),
                direction,
                min_overlap=self.overlap_spin.value(),
            )
        except ValueError as exc:  # InputError (no flow) is a ValueError too
            self._say(str(exc))
            return
        self._apply([prop.edit], f"{k} {direction}: {prop.summary()}")

    # -- review ---------------------------------------------------------------------
    def toggle_reviewed(self) -> None:
        """Mark the current frame reviewed, or unmark it."""
        if self.layer is None:
            return
        t = self.current_frame()
        self.reviewed.symmetric_difference_update({t})
        self.layer.metadata.setdefault(META_KEY, {})["reviewed"] = sorted(self.reviewed)
        self._dirty = True
        self._edited = time.time()
        self._show_review()
        self._say(f"frame {t} {'reviewed' if t in self.reviewed else 'no longer reviewed'}")

    def next_in_queue(self) -> None:
        """Jump to the unreviewed frame most likely wrong (other than the one shown)."""
        t = self.current_frame()
        frames = [f for f in self.queue(k=2) if f != t]
        if not frames:
            self._say("every frame is reviewed")
            return
        self.viewer.dims.set_current_step(0, frames[0])
        self._say(f"frame {frames[0]}: next to review")

    def _queue_item_chosen(self, item: QListWidgetItem) -> None:
        self.viewer.dims.set_current_step(0, int(item.data(Qt.UserRole)))

    # -- changes made elsewhere (brush, fill, undo) -------------------------------------
    def _painted(self, event: Any = None) -> None:
        """A committed edit (brush, fill, data_setitem): update the stats of the frames it touched."""
        assert self.layer is not None
        labels = self._labels()
        frames = frames_of_history_item(getattr(event, "value", None), labels.shape[0])
        if frames is None or id(self.layer.data) != self._seen_data:
            self._rescan()
            self._touched = set(range(labels.shape[0]))  # its undo could touch any frame
        else:
            self._stats.scan(labels, frames)
            self._touched |= frames
        self._dirty = True
        self._edited = time.time()
        self._needs_refresh = True
        self._check_timer.start()

    def _data_replaced(self, event: Any = None) -> None:
        """``layer.data = ...``: new content, never an edit.

        When the dock restores saved corrections, that is all. When another
        dock refills the layer, the edits still pending are saved to the video
        they were made on (from the array they were made in), and the dock
        binds to the new content once the refill is over (its metadata, which
        names the video, is usually replaced right after the data).
        """
        assert self.layer is not None
        if self._refilling:
            self._rescan()
            return
        if self._dirty and self._bound_data is not None:
            self._save_pending(self._bound_data)
        self._dirty = False
        self._bound_data = self.layer.data
        self._rescan()
        self._schedule_rebind()

    def _save_pending(self, data: Any) -> None:
        """Write the unsaved edits made in ``data`` (the layer's previous content) to their video, on this thread."""
        from training.errors import InputError

        if self.project() is None or self._key is None:
            return
        try:
            self._write(self._snapshot(data))
        except InputError as exc:
            self._report(f"corrections of {self._key} not saved: {exc}")

    def _schedule_rebind(self) -> None:
        if not self._rebind_pending:
            self._rebind_pending = True
            QTimer.singleShot(0, self._rebind)

    def _rebind(self) -> None:
        """Bind to the layer's new content (after a refill by another dock), keeping the project folder."""
        self._rebind_pending = False
        if self.layer is None:
            return
        try:
            project = self.project()
        except RuntimeError:  # the dock is gone
            return
        self._bind_content(project)

    def _maybe_changed(self, event: Any = None) -> None:
        self._check_timer.start()  # set_data also fires when the view moves: look later, once

    def _check_changed(self) -> None:
        """Bring the table up to date after paint events, an undo or a redo.

        Undo and redo replay edits the dock saw as paint events, so only the
        frames those touched can differ (and the frame shown, in case an edit
        made before the dock was bound is undone there): their checksums tell.
        """
        if self.layer is None:
            return
        if id(self.layer.data) != self._seen_data:
            changed = self._rescan()
        else:
            labels = self._labels()
            shown = {t for t in [self.current_frame()] if 0 <= t < labels.shape[0]}
            changed = self._stats.scan(labels, self._touched | shown)
        if changed:
            self._dirty = True
            self._edited = time.time()
        if changed or self._needs_refresh:
            self._needs_refresh = False
            self._fill_table()
            self._update_frames_column()

    # -- project ---------------------------------------------------------------------
    def _browse_project(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Project folder")
        if path:
            self.set_project(path)

    def project(self) -> Path | None:
        text = self.project_edit.text().strip()
        return Path(text) if text else None

    def set_project(self, folder: str | Path) -> None:
        """Save corrections into ``folder``; restore the video's saved corrections when it has some.

        In a viewer without a Labels layer, the project's first saved video
        opens as a ``pseudo-labels`` layer.
        """
        from training.errors import InputError
        from training.project import load_project_state, project_videos, remove_stale_temp_files

        folder = Path(folder)
        self.project_edit.setText(str(folder))
        try:
            remove_stale_temp_files(folder)  # left by a save that was killed mid-way
        except OSError:
            pass  # a folder we cannot list: saving will say so
        if self.layer is None:
            keys = project_videos(folder)
            if not keys:
                self._say(f"{folder}: no saved corrections to open")
                return
            self._open_saved(folder, keys[0])
            return
        key = video_key_of(self.layer)
        self.layer.metadata.setdefault(META_KEY, {})["project"] = str(folder)
        try:
            state = load_project_state(folder, key)
        except InputError:
            state = None
        if state is not None:
            if state.volume.labels.shape != self._labels().shape:
                self.project_edit.setText("")
                shapes = f"{state.volume.labels.shape} vs the layer's {self._labels().shape}"
                self._say(f"{folder}: saved corrections of {key} do not fit this layer ({shapes}); autosave off")
                return
            shown = self.layer.metadata.get(META_KEY, {}).get("corrected")  # as the Pipeline dock shows a video
            if shown and np.array_equal(self._labels(), state.volume.labels):  # not read before the last save
                self._restored(state)
            else:
                self._restore(state)
            return
        self._saved_at = None
        self._show_save_status()  # nothing to write until the first edit: showing a video is not one

    def _open_saved(self, folder: Path, key: str) -> None:
        from training.project import load_project_state

        state = load_project_state(folder, key)
        meta = {"video_key": key, "project": str(folder), "reviewed": sorted(state.reviewed)}
        data, kwargs, _ = labels_layer(state.volume, state.categories, PSEUDO_LABELS, meta)
        layer = self.viewer.add_labels(data, **kwargs)  # binding to it restores the project (metadata)
        if self.layer is None or self.layer.unique_id != layer.unique_id:
            self.set_layer(layer)

    def _restore(self, state: Any) -> None:
        """Show the saved corrections ``state`` (a ProjectState) in the layer: new content, not an edit."""
        assert self.layer is not None
        meta = self.layer.metadata.setdefault(META_KEY, {})
        meta["categories"] = state.categories
        meta["reviewed"] = sorted(state.reviewed)
        meta["corrected"] = True
        self._refilling = True
        try:
            self.layer.data = state.volume.labels
            self.layer.features = labels_features(state.volume, state.categories)
        finally:
            self._refilling = False
        self._bound_data = self.layer.data
        self._restored(state)

    def _restored(self, state: Any) -> None:
        """Bound to content equal to the saved corrections ``state``."""
        assert self.layer is not None
        self.reviewed = set(state.reviewed)
        self._pseudo = state.pseudo  # kept on disk already; in memory it makes counting edits cheap
        self._check_timer.stop()
        self._needs_refresh = False
        self._dirty = False
        self._saved_at = time.monotonic()
        self._edited = state.edited
        self.refresh()
        self._say(f"restored the corrections of {state.key} ({len(state.reviewed)} frames reviewed)")
        self._show_save_status()

    def autosave(self) -> None:
        """Save when something changed since the last save (the timer calls this every few seconds)."""
        if self._check_timer.isActive():
            self._check_timer.stop()
            self._check_changed()
        if self._dirty:
            self.save_now()

    def _snapshot(self, data: Any = None) -> dict[str, Any]:
        """What a save writes, copied now (the worker must not read the layer while the user edits it).

        ``data``: the array the edits were made in, when the layer holds new content already.
        """
        assert self.layer is not None
        volume, categories = self._volume(data)
        self._generation += 1
        return {
            "project": self.project(),
            "key": self._key if self._key is not None else video_key_of(self.layer),
            "pseudo": self._pseudo,
            "volume": volume,
            "reviewed": sorted(self.reviewed),
            "categories": categories,
            "edited": self._edited,
            "generation": self._generation,
        }

    def flush(self) -> None:
        """Save now, on this thread, and leave no save in flight (closing, switching layers).

        Writes the current state when it changed, else the snapshot a worker
        is still writing (so nothing depends on that thread finishing later).
        """
        from training.errors import InputError

        if self.layer is None:
            return
        try:
            if self._check_timer.isActive():  # a brush stroke or an undo not yet seen
                self._check_timer.stop()
                self._check_changed()
            project = self.project()
        except RuntimeError:  # the Qt side is gone; the snapshot in flight is all there is
            project = None
        snap = self._snapshot() if self._dirty and project is not None else self._inflight
        if snap is None:
            return
        try:
            self._note_backup(self._write(snap))
        except InputError as exc:
            self._dirty = True
            self._report(f"corrections not saved: {exc}")
            return
        if snap is not self._inflight:
            self._dirty = False
        self._saved_at = time.monotonic()

    def _write(self, snap: dict[str, Any]) -> Any:
        """Write a snapshot unless a newer one of the same video is on disk; any thread.

        Returns the :class:`training.project.SavedCorrections`, or None when
        the snapshot was older than the saved one (so it was not written).
        """
        from training.errors import InputError
        from training.project import save_corrections

        slot = (str(snap["project"]), str(snap["key"]))
        with self._write_lock:  # a worker's write in progress finishes first
            if self._written.get(slot, 0) >= snap["generation"]:
                return None
            try:
                saved = save_corrections(**{k: v for k, v in snap.items() if k != "generation"})
            except OSError as exc:
                raise InputError(snap["project"], f"cannot save corrections ({exc.strerror or exc})") from None
            self._written[slot] = snap["generation"]
            return saved

    def _report(self, text: str) -> None:
        """Say a failed save in the dock, and as a napari notification when the dock is closing or gone."""
        from napari.utils.notifications import show_error

        try:
            self._say(text)
            closing = not self.isVisible()
        except RuntimeError:  # the dock's Qt side is gone
            closing = True
        if closing:
            show_error(text)

    def save_now(self) -> None:
        """Write the layer and review state to the project (in a worker; the files are replaced atomically)."""
        if self.layer is None or self.project() is None or self._rebind_pending:
            return  # (new content not bound yet: the edits made before it arrived are saved already)
        if self._saving:  # saved again as soon as the running save ends
            self._dirty = True
            return
        snap = self._snapshot()
        self._dirty = False
        self._saving = True
        self._inflight = snap
        self.save_status.setText("saving…")

        def saved(result: Any) -> None:
            self._saving = False
            self._inflight = None
            self._saved_at = time.monotonic()
            try:
                self._note_backup(result)
                self._show_save_status()
            except RuntimeError:  # the dock was closed while its last save ran: the file is written all the same
                return
            if self._dirty:
                QTimer.singleShot(0, self.autosave)  # not save_now: a refill may come first, and is no edit

        def failed(message: str) -> None:
            self._saving = False
            self._inflight = None
            self._dirty = True
            try:
                self.save_status.setText(f"not saved: {message}")
            except RuntimeError:  # the dock was closed meanwhile: say it in the viewer instead
                from napari.utils.notifications import show_error

                show_error(f"corrections not saved: {message}")

        def done() -> None:
            self._saving = False
            self._inflight = None

        self.worker = start_worker(lambda: self._write(snap), saved, failed, done)

    def _note_backup(self, result: Any) -> None:
        """Say it when a save kept the previous one as a backup (it had more edits)."""
        if result is None:
            return
        if result.backup is None:
            self._backup_note = ""  # said until a save that keeps everything
            return
        was = f"{result.previous_pixels:,} corrected pixels" if result.previous_pixels >= 0 else "more reviewed frames"
        folder = result.backup.relative_to(result.folder.parent.parent)
        self._backup_note = f"; the previous save ({was}) is kept as backup {folder}"
        self._say(f"saved the corrections of {result.folder.name} with fewer edits than before{self._backup_note}")

    def _show_save_status(self) -> None:
        if self._saving:
            return
        if self.project() is None:
            self.save_status.setText("autosave off: choose a project folder")
        elif self._saved_at is None:
            self.save_status.setText("no edits to save yet" if not self._dirty else "not saved yet")
        else:
            ago = int(time.monotonic() - self._saved_at)
            pending = ", changes pending" if self._dirty else ""
            self.save_status.setText(f"saved {ago} s ago{pending}{self._backup_note}")
