"""The Tags dock: frame-level class tags, the only supervision the method needs, made keyboard first.

**New project** makes one from video files or frames folders and class
names (``vis-ws project new``: the frames stay in the videos). Choose a
project's ``tags.json`` (or any frame-tags file) and a video: its frames
open in the viewer, and a timeline shows one strip per class over the
video's frames: the class's colour where it is tagged, grey where the frame
is tagged without it, hatched where the frame is untagged (unknown: the
classifier does not train on it). Click the timeline
(or move napari's slider) to go to a frame; drag on a class's strip to tag a
range (right button: clear it). With the timeline focused, the keys of
:class:`training.data.tag_edits.TagSession` tag: ``1``-``9`` toggle a class on
this frame, ``Shift`` + number extends it from its last tagged frame to here,
``0`` marks the frame empty, ``C`` copies the previous frame, ``Delete``
untags, arrows / Page Up / Page Down / Home / End move, ``Ctrl+Z`` undoes one
action. Classes can be added, renamed and given a colour (the predictions
layer draws them in it); these are undone like the tags. Every change is
saved to the tags file within a second, atomically, so a crash loses at most
the last second.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QRect, Qt, QTimer
from qtpy.QtGui import QBrush, QColor, QKeyEvent, QMouseEvent, QPainter, QPaintEvent
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_vis_ws._docking import tabify_when_docked
from napari_vis_ws._layers import FRAMES, frames_layer
from napari_vis_ws._prediction_layers import class_color
from napari_vis_ws._project import put_layers
from napari_vis_ws._stages import video_source
from napari_vis_ws._tasks import WindowClose
from napari_vis_ws._workers import start_generator_worker

if TYPE_CHECKING:
    import napari

    from training.data.tag_edits import TagSession

SAVE_DELAY_MS = 1000  # a change is written this long after the last one
ROW = 22  # height of one class's strip, px
KEYS = {
    Qt.Key_Left: "left", Qt.Key_Right: "right", Qt.Key_PageUp: "pageup", Qt.Key_PageDown: "pagedown",
    Qt.Key_Home: "home", Qt.Key_End: "end", Qt.Key_Delete: "delete", Qt.Key_Backspace: "delete", Qt.Key_C: "c",
}  # fmt: skip
SHIFTED_DIGITS = {")": "0", "!": "1", "@": "2", "#": "3", "$": "4", "%": "5", "^": "6", "&": "7", "*": "8", "(": "9"}


def key_name(event: QKeyEvent) -> str:
    """A Qt key press as :meth:`TagSession.press` names it (``shift+2``, ``ctrl+z``, ``left``); "" for others."""
    mods = event.modifiers()
    ctrl = "ctrl+" if mods & Qt.ControlModifier else ""
    shift = "shift+" if mods & Qt.ShiftModifier else ""
    if event.key() == Qt.Key_Z and ctrl:
        return f"ctrl+{shift}z"
    text = event.text()
    digit = text if text.isdigit() else SHIFTED_DIGITS.get(text, "")
    if Qt.Key_0 <= event.key() <= Qt.Key_9:
        digit = str(event.key() - Qt.Key_0)
    if digit and not ctrl:
        return f"{shift}{digit}"
    return KEYS.get(event.key(), "") if not ctrl else ""


class TagStrips(QWidget):
    """The timeline: one strip per class over the frames, the current frame marked; it takes the keys."""

    def __init__(self, dock: TagsWidget) -> None:
        super().__init__()
        self.dock = dock
        self.setFocusPolicy(Qt.StrongFocus)
        self.setMinimumHeight(2 * ROW)
        self._drag: tuple[int, int, bool] | None = None  # (class column, first frame, on)

    def _frame_at(self, x: float) -> int:
        session = self.dock.session
        n = session.n_frames if session is not None else 1
        return int(min(max(x / max(self.width(), 1) * n, 0), n - 1))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        session = self.dock.session
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#202020"))
        if session is None:
            painter.end()
            return
        n, w = session.n_frames, self.width()
        unknown, absent = QBrush(QColor("#555555"), Qt.BDiagPattern), QBrush(QColor("#3a3a3a"))
        for k, category in enumerate(session.category_ids):
            state = np.where(session.tagged, 1 + session.present[:, k], 0)  # 0 unknown, 1 absent, 2 present
            starts = np.flatnonzero(np.diff(state, prepend=-1))
            brushes = (unknown, absent, QBrush(QColor(class_color(category, session.categories))))
            for a, b in zip(starts, [*starts[1:], n], strict=True):  # one rectangle per run of frames
                x0, x1 = int(a * w / n), int(b * w / n)
                painter.fillRect(QRect(x0, k * ROW + 2, max(x1 - x0, 1), ROW - 4), brushes[state[a]])
        x = int((session.frame + 0.5) * w / n)
        painter.setPen(QColor("white"))
        painter.drawLine(x, 0, x, self.height())
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        session = self.dock.session
        if session is None:
            return
        self.setFocus()
        frame = self._frame_at(event.pos().x())
        column = int(event.pos().y() // ROW)
        if 0 <= column < len(session.category_ids):
            self._drag = (column, frame, event.button() != Qt.RightButton)
        self.dock.go(frame)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._drag is not None:
            self.dock.go(self._frame_at(event.pos().x()))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        session = self.dock.session
        if self._drag is not None and session is not None:
            column, first, on = self._drag
            last = self._frame_at(event.pos().x())
            if last != first or on:  # a click tags its frame; a right click without a drag only moves
                session.set_range(column, first, last, on)
                self.dock.changed()
        self._drag = None

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        session = self.dock.session
        key = key_name(event)
        if session is None or not key or not session.press(key):
            super().keyPressEvent(event)
            return
        moved = key in ("left", "right", "pageup", "pagedown", "home", "end")
        self.dock.go(session.frame) if moved else self.dock.changed()


class TagsWidget(QWidget):
    """Tag frames of a project's videos with classes (see the module docstring)."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session: TagSession | None = None
        self.tags_path: Path | None = None
        self._tags: dict[str, Any] | None = None
        self._dirty = False  # changes not written yet
        self.window_close = WindowClose(self, self.save)  # napari closing: what is pending is saved
        self._creating: Any = None  # the worker making a new project
        self._save_timer = QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.timeout.connect(self.save)

        self.tags_edit = QLineEdit()
        self.tags_edit.setPlaceholderText("PROJECT/tags.json (vis-ws project new) or a frame-tags JSON")
        self.tags_edit.editingFinished.connect(lambda: self.open(self.tags_edit.text().strip()))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.tags_edit)
        row.addWidget(browse)
        self.video_combo = QComboBox()
        self.video_combo.currentIndexChanged.connect(self._video_changed)
        self.class_edit = QLineEdit()
        self.class_edit.setPlaceholderText("class name")
        add = QPushButton("Add class")
        add.clicked.connect(self.add_class)
        rename = QPushButton("Rename")
        rename.setToolTip("Rename the class chosen in the list to the name typed")
        rename.clicked.connect(self.rename_class)
        color = QPushButton("Colour…")
        color.setToolTip("The colour of the class chosen in the list, here and in the predictions layer")
        color.clicked.connect(lambda: self.choose_color())
        self.class_combo = QComboBox()
        classes = QHBoxLayout()
        classes.addWidget(self.class_combo, stretch=1)
        classes.addWidget(self.class_edit, stretch=1)
        class_buttons = QHBoxLayout()
        class_buttons.addWidget(add)
        class_buttons.addWidget(rename)
        class_buttons.addWidget(color)
        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        self.strips = TagStrips(self)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Tags", row)
        form.addRow("Video", self.video_combo)
        form.addRow("Classes", classes)
        form.addRow("", class_buttons)
        layout = QVBoxLayout(self)
        layout.addWidget(self._new_project_group())
        layout.addLayout(form)
        layout.addWidget(self.legend)
        layout.addWidget(self.strips)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.viewer.dims.events.current_step.connect(self._step_changed)
        self.destroyed.connect(lambda *_, d=self.viewer.dims.events.current_step, f=self._step_changed: d.disconnect(f))
        tabify_when_docked(self)

    def _new_project_group(self) -> QGroupBox:
        """ "New project": video files or frames folders, class names, a folder (``vis-ws project new``)."""
        self.videos_edit = QLineEdit()
        self.videos_edit.setPlaceholderText("video files or frames folders, separated by ;")
        add_videos = QPushButton("Add videos…")
        add_videos.clicked.connect(self._browse_videos)
        self.new_classes_edit = QLineEdit()
        self.new_classes_edit.setPlaceholderText("class names, separated by commas: person, bicycle")
        self.new_frames_edit = QLineEdit()
        self.new_frames_edit.setPlaceholderText("all, or START:STOP of each video (0:250 = the first 250)")
        self.new_folder_edit = QLineEdit()
        self.new_folder_edit.setPlaceholderText("project folder (made)")
        self.extract_check = QCheckBox("Copy the frames into the project")
        self.extract_check.setToolTip(
            "FOLDER/JPEGImages/NAME/ (JPEG, quality 95): the project no longer needs the video files, and training "
            "reads frames without seeking in a video (vis-ws project new --extract)"
        )
        self.create_button = QPushButton("Create project")
        self.create_button.setToolTip("Write PROJECT/tags.json; frames stay in the videos (nothing is extracted)")
        self.create_button.clicked.connect(self.create_project)
        group = QGroupBox("New project")
        form = QFormLayout(group)
        row = QHBoxLayout()
        row.addWidget(self.videos_edit)
        row.addWidget(add_videos)
        form.addRow("Videos", row)
        form.addRow("Classes", self.new_classes_edit)
        form.addRow("Frames", self.new_frames_edit)
        form.addRow("Folder", self.new_folder_edit)
        form.addRow(self.extract_check)
        form.addRow(self.create_button)
        return group

    def _browse_videos(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Videos", "", "Videos (*.mp4 *.avi *.mov *.webm *.mkv *.m4v)")
        if paths:
            known = [p for p in self.videos_edit.text().split(";") if p.strip()]
            self.videos_edit.setText(";".join([*known, *paths]))

    def create_project(self) -> None:
        """Make the project in a worker (each video's first frame is decoded; with "Copy the frames", every
        frame is copied, with progress), then open it here. Clicked while copying: stop, nothing is kept."""
        from training.run_folder import Project

        if self._creating is not None:
            self._creating.quit()  # the copy stops at a frame; its folders are removed, no tags.json
            self.create_button.setEnabled(False)
            return
        sources = [Path(p.strip()) for p in self.videos_edit.text().split(";") if p.strip()]
        classes = [c for c in self.new_classes_edit.text().split(",") if c.strip()]
        frames = self.new_frames_edit.text()
        extract = self.extract_check.isChecked()
        folder = self.new_folder_edit.text().strip()
        if not folder:
            self._fail("New project: choose a project folder")
            return
        path = Project(folder).tags

        def work() -> Iterator[Any]:
            from training.atomic import write_json
            from training.data.new_project import extract_frames, frame_range, new_project_tags, without_sources
            from training.errors import InputError

            if path.exists():
                raise InputError(path, "exists: open it above, or choose another folder")
            tags = new_project_tags(sources, classes, frame_range(frames))
            if extract:
                names = [str(v["name"]) for v in tags["videos"]]
                yield from extract_frames(tags, path, names)
                tags = without_sources(tags, names)
            write_json(path, tags, indent=1)
            yield path

        def finished() -> None:
            self._creating = None
            self.create_button.setText("Create project")
            self.create_button.setEnabled(True)

        if extract:
            self.create_button.setText("Stop copying")
        else:
            self.create_button.setEnabled(False)
        self._creating = start_generator_worker(work, self._creation_step, self._fail, on_finished=finished)

    def _creation_step(self, value: Any) -> None:
        """A frame copied (progress in the status line), or the project written (opened here)."""
        from training.progress import Progress

        if isinstance(value, Progress):
            self.status.setText(f"copying the frames into the project: {value.done}/{value.total}")
        else:
            self.open(value)

    # -- choosing ---------------------------------------------------------------------
    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Frame tags", "", "JSON (*.json)")
        if path:
            self.tags_edit.setText(path)
            self.open(path)

    def open(self, path: str | Path) -> None:
        """Read a frame-tags file and list its videos (bad files are named in one line)."""
        from training.data.tags import load_tags
        from training.errors import InputError

        if not str(path):
            return
        self.save()  # the file open so far keeps its last changes
        try:
            tags = load_tags(path)
        except InputError as exc:
            self._fail(str(exc))
            return
        self.tags_path, self._tags, self.session = Path(path), tags, None  # the old file's session is done
        self.tags_edit.setText(str(path))
        self.video_combo.blockSignals(True)
        self.video_combo.clear()
        for v in tags["videos"]:
            self.video_combo.addItem(f"{v.get('name', v['id'])} ({len(v['file_names'])} frames)", v["id"])
        self.video_combo.blockSignals(False)
        self._video_changed()

    def _video_changed(self, *_: Any) -> None:
        from training.data.tag_edits import TagSession
        from training.errors import InputError

        if self._tags is None or self.video_combo.currentData() is None:
            return
        if self.session is not None:
            self._tags = self.session.tags()  # the tags of the video left, kept
        video_id = int(self.video_combo.currentData())
        self.session = TagSession(self._tags, video_id)
        self._show_classes()
        try:
            source = video_source(self.tags_path, video_id)  # type: ignore[arg-type]
            shape = self.viewer.layers[FRAMES].data.shape if FRAMES in self.viewer.layers else None
            put_layers(self.viewer, [frames_layer(source.reader, {"video_key": source.key})], restyle=True)
            if shape != self.viewer.layers[FRAMES].data.shape:
                self.viewer.reset_view()  # another frame size: the whole frame in view
        except InputError as exc:
            self._fail(str(exc))  # tag anyway: the strips do not need the frames
        self.go(0)

    def _show_classes(self) -> None:
        """The class list, legend and strips of the session's classes (the chosen class stays chosen)."""
        if self.session is None:
            return
        chosen = self.class_combo.currentData()
        categories = self.session.categories
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        parts = []
        for n, c in enumerate(categories, start=1):
            self.class_combo.addItem(f"{n}: {c['name']}", c["id"])
            key = str(n) if n <= 9 else "-"
            parts.append(f"<span style='color:{class_color(c['id'], categories)}'>■</span> {key} {c['name']}")
        self.class_combo.setCurrentIndex(max(self.class_combo.findData(chosen), 0))
        self.class_combo.blockSignals(False)
        self.legend.setText(" · ".join(parts))
        self.strips.setMinimumHeight(max(len(categories), 1) * ROW)
        self.strips.update()

    # -- the frame ----------------------------------------------------------------------
    def go(self, frame: int) -> None:
        """Look at ``frame`` in the timeline and in the viewer."""
        if self.session is None:
            return
        self.session.go(frame)
        if FRAMES in self.viewer.layers and self.viewer.dims.ndim >= 3 and self.viewer.dims.current_step[0] != frame:
            self.viewer.dims.set_current_step(0, self.session.frame)
        self._show_status()

    def _step_changed(self, *_: Any) -> None:
        if self.session is not None and FRAMES in self.viewer.layers and self.viewer.dims.ndim >= 3:
            self.session.go(int(self.viewer.dims.current_step[0]))
            self._show_status()

    def _show_status(self) -> None:
        session = self.session
        if session is None:
            return
        t = session.frame
        names = {c["id"]: c["name"] for c in session.categories}
        what = "untagged"
        if session.tagged[t]:
            what = ", ".join(names[session.category_ids[k]] for k in range(len(session.category_ids))
                             if session.present[t, k]) or "nothing (tagged empty)"  # fmt: skip
        done = int(session.tagged.sum())
        self.status.setText(f"frame {t + 1}/{session.n_frames}: {what}. {done} of {session.n_frames} frames tagged")
        self.strips.update()

    # -- changes --------------------------------------------------------------------------
    def changed(self) -> None:
        """The tags or classes changed: show them, and save within :data:`SAVE_DELAY_MS`."""
        self._show_classes()
        self._show_status()
        self._dirty = True
        self._save_timer.start(SAVE_DELAY_MS)

    def save(self) -> None:
        """Write the tags file now, atomically (nothing to do when nothing changed)."""
        from training.atomic import write_json

        if self.session is None or self.tags_path is None or not self._dirty:
            return
        self._save_timer.stop()
        self._dirty = False
        self._tags = self.session.tags()
        try:
            write_json(self.tags_path, self._tags, indent=1)
        except OSError as exc:  # kept, and written by the next save (the next change, hiding, closing)
            self._dirty = True
            self._fail(f"{self.tags_path}: cannot save the tags ({exc.strerror or exc}); they are kept here")

    def add_class(self) -> None:
        """Add the class typed (a new id after the largest); its strip appears. One undo step."""
        if self._class_edit(lambda s: s.add_class(self.class_edit.text())):
            self.class_edit.clear()
            self.class_combo.setCurrentIndex(self.class_combo.count() - 1)

    def rename_class(self) -> None:
        """Rename the class chosen in the list to the name typed (its tags stay). One undo step."""
        if self._class_edit(lambda s: s.rename_class(self.class_combo.currentData(), self.class_edit.text())):
            self.class_edit.clear()

    def choose_color(self, color: str | None = None) -> None:
        """The colour of the class chosen in the list (``None``: ask with a colour dialog). One undo step."""
        if self.session is None or self.class_combo.currentData() is None:
            self._fail("open a tags file first")
            return
        category_id = int(self.class_combo.currentData())
        if color is None:
            from qtpy.QtWidgets import QColorDialog

            now = QColor(class_color(category_id, self.session.categories))
            picked = QColorDialog.getColor(now, self, "Class colour")
            if not picked.isValid():
                return
            color = picked.name()
        self._class_edit(lambda s: s.set_color(category_id, color))

    def _class_edit(self, edit: Any) -> bool:
        """Apply ``edit(session)`` (a class action of :class:`TagSession`); a refusal is shown in one line."""
        from training.errors import InputError

        if self.session is None:
            self._fail("open a tags file first")
            return False
        try:
            edit(self.session)
        except InputError as exc:
            self._fail(str(exc))
            return False
        self.changed()
        return True

    def _fail(self, message: str) -> None:
        from napari.utils.notifications import show_error

        self.status.setText(message)
        show_error(message)

    def hideEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        """Hidden (another tab, the dock closed): what is pending is saved now."""
        self.save()
        super().hideEvent(event)
