"""The Corrections dock's instance table and review queue (a part of :mod:`napari_vis_ws._widgets.corrections`).

The table lists the instances of the bound Labels layer (id, class, frames,
score); the review queue lists the unreviewed frames most likely wrong, each
with why (:mod:`training.review`: MaskConsist disagreement, low scores,
instances appearing or vanishing), and marking a frame reviewed moves on.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGroupBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QTableWidgetItem,
    QVBoxLayout,
)

from napari_vis_ws._layers import META_KEY, volume_from_layer
from napari_vis_ws._widgets._corrections_common import video_key_of
from training import corrections as corr
from training import review


class ReviewQueue:
    """Instance table and review queue of the Corrections dock.

    Mixed into :class:`~napari_vis_ws._widgets.corrections.CorrectionsWidget`, which owns
    the layer, the widgets (``table``, ``queue_list``, ...) and the per-frame stats.
    """

    def _build_review(self) -> QGroupBox:
        """The "Review" group: progress and the queue of frames to review."""
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
        return rev

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

    def _update_frames_column(self) -> None:
        """Keep ``features['frames']`` (frames present per id) true after an edit or an undo."""
        assert self.layer is not None
        table = self._table()
        table["frames"] = [len(self._areas.frames_of(int(k))) if int(k) else 0 for k in table["index"]]
        self.layer.features = table

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
