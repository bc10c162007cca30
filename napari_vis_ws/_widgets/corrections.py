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

The dock's parts, one module each: this one binds the layer and tracks its
changes; :mod:`._corrections_review` (table and review queue),
:mod:`._corrections_edits` (the edit actions), :mod:`._corrections_autosave`
(project, restore, autosave) and :mod:`._corrections_common` (names and
per-frame stats they share).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QEvent, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QTableWidget,
    QVBoxLayout,
    QWidget,
)

from napari_vis_ws._layers import META_KEY
from napari_vis_ws._tasks import WindowClose
from napari_vis_ws._widgets._corrections_autosave import Autosave
from napari_vis_ws._widgets._corrections_common import (
    AUTOSAVE_MS,
    COLUMNS,
    PSEUDO_LABELS,
    SHORTCUTS,
    SPLIT_LINE,
    FrameStats,
    frames_of_history_item,
    run_folder_of,
    video_key_of,
)
from napari_vis_ws._widgets._corrections_edits import EditActions
from napari_vis_ws._widgets._corrections_review import ReviewQueue
from training import corrections as corr
from training.run_folder import Project

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels

__all__ = ["PSEUDO_LABELS", "SHORTCUTS", "SPLIT_LINE", "CorrectionsWidget", "run_folder_of", "video_key_of"]


class CorrectionsWidget(Autosave, EditActions, ReviewQueue, QWidget):
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
        self.window_close = WindowClose(self, self.flush)  # the window closing saves at once (its loop may end)
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

        layout = QVBoxLayout(self)
        layout.addWidget(self.layer_combo)
        layout.addWidget(self.table, 2)
        layout.addWidget(self._build_actions())
        layout.addWidget(self._build_review(), 1)
        layout.addWidget(self._build_project())

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
    def event(self, event: QEvent) -> bool:
        """Save when the dock goes: hidden (in a worker) or taken out of its dock, i.e. closed (at once)."""
        kind = event.type()
        if getattr(self, "layer", None) is None:  # nothing to save (or still in __init__)
            pass
        elif kind == QEvent.ParentChange and self.parent() is None:
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

    def _say(self, text: str) -> None:
        self.message.setText(text)
        self.viewer.status = text

    def current_frame(self) -> int:
        """The frame shown (the first axis of the viewer)."""
        return int(self.viewer.dims.current_step[0])

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
