"""The Corrections dock's project and autosave: a part of the dock (:mod:`napari_vis_ws._widgets.corrections`).

Autosave writes ``PROJECT/corrections/<video key>/`` (:mod:`training.project`,
atomic files) every few seconds while there are unsaved changes, in a worker;
choosing a project restores the video's saved corrections. Saves are
ordered: one write at a time, and a snapshot older than the one on disk is
never written. :meth:`Autosave.flush` saves on the calling thread (closing,
switching layers); a save with fewer edits than the one on disk keeps that
one as a backup generation and says so.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPushButton

from napari_vis_ws._layers import META_KEY, labels_features, labels_layer
from napari_vis_ws._widgets._corrections_common import PSEUDO_LABELS, video_key_of
from napari_vis_ws._workers import start_worker


class Autosave:
    """Project folder, restore and autosave of the Corrections dock.

    Mixed into :class:`~napari_vis_ws._widgets.corrections.CorrectionsWidget`, which owns
    the layer, its change tracking (``_dirty``, ``_edited``) and the save state
    (``_saving``, ``_inflight``, ``_generation``, ``_written``, ``_write_lock``).
    """

    def _build_project(self) -> QGroupBox:
        """The "Project" group: the project folder, Save now and the save status."""
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
        return proj

    def _save_pending(self, data: Any) -> None:
        """Write the unsaved edits made in ``data`` (the layer's previous content) to their video, on this thread."""
        from training.errors import InputError

        if self.project() is None or self._key is None:
            return
        try:
            self._write(self._snapshot(data))
        except InputError as exc:
            self._report(f"corrections of {self._key} not saved: {exc}")

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
