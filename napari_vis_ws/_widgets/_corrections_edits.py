"""The Corrections dock's edit actions: a part of the dock (:mod:`napari_vis_ws._widgets.corrections`).

Re-class, merge, split (into components or along a drawn line), delete and
propagate along the flow: each is a :mod:`training.corrections` function
that returns the pixels to change, applied with ``layer.data_setitem``
inside ``layer.block_history()`` so one Ctrl+Z undoes one action.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QShortcut,
    QSpinBox,
)

from napari_vis_ws._widgets._corrections_common import SHORTCUTS, SPLIT_LINE, qt_key, video_key_of
from training import corrections as corr


class EditActions:
    """Edit actions of the Corrections dock: one undo step each.

    Mixed into :class:`~napari_vis_ws._widgets.corrections.CorrectionsWidget`, which owns
    the layer, its change tracking and the table these refresh.
    """

    def _build_actions(self) -> QGroupBox:
        """The "Correct" group: one button and shortcut per action, the propagation settings, the message line."""
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
            key = qt_key(SHORTCUTS[name])
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
        return act

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
