"""The process `test_autosave_kill.py` SIGKILLs: a napari viewer whose Corrections dock edits a project.

Run as ``python autosave_child.py PROJECT INTERVAL_MS EDIT_MS N_EDITS``. The
child opens a ``pseudo-labels`` layer of :func:`start_volume`, docks the
Corrections widget with its autosave timer at ``INTERVAL_MS``, points it at
``PROJECT`` (nothing is saved before the first edit) and prints ``READY t=<unix time>``. Then
every ``EDIT_MS`` it makes edit ``k`` (:func:`edit_of`: even ``k`` paints a new
instance with the brush, odd ``k`` deletes a start instance with the dock's
Delete button) and prints ``EDIT k t=<unix time>`` once the edit is in the
layer. It never exits on its own before the parent's kill (30 s safety stop).

Importing this module (the parent does, for :func:`start_volume` and
:func:`edit_of`) imports neither Qt nor napari.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

T, H, W = 12, 120, 160
KEY = "clip"  # video key of the layer, so PROJECT/corrections/clip/
CATS = [{"id": 3, "name": "disc"}, {"id": 7, "name": "box"}]
N_START = 12  # instances 1..12 at the top, deleted by the odd edits
SIDE = 8  # their side in pixels
BRUSH = 7  # brush diameter of the painting edits
FIRST_NEW = 100  # painting edit k adds instance FIRST_NEW + k


@dataclass(frozen=True)
class Edit:
    """Edit ``k``: paint ``label`` at (``t``, ``y``, ``x``) with the brush, or delete instance ``label``."""

    k: int
    kind: str  # "paint" or "delete"
    label: int
    t: int = 0
    y: int = 0
    x: int = 0

    def in_labels(self, labels: np.ndarray) -> bool:
        """Whether ``labels`` (T, H, W) holds this edit."""
        if self.kind == "delete":
            return not (labels == self.label).any()
        where = np.argwhere(labels == self.label)
        return bool(labels[self.t, self.y, self.x] == self.label and (where[:, 0] == self.t).all())


def start_volume() -> np.ndarray:
    """(T, H, W) int32: instances 1..N_START, squares of SIDE px in a row near the top, in every frame."""
    labels = np.zeros((T, H, W), np.int32)
    for i in range(N_START):
        labels[:, 8 : 8 + SIDE, 4 + 12 * i : 4 + 12 * i + SIDE] = i + 1
    return labels


def edit_of(k: int) -> Edit:
    """Edit ``k``: odd k deletes start instance ``k // 2 + 1``; even k paints ``FIRST_NEW + k`` below the row."""
    j = k // 2
    if k % 2:
        if j >= N_START:
            raise ValueError(f"edit {k}: only {N_START} start instances to delete")
        return Edit(k, "delete", j + 1)
    y, x = 40 + 16 * (j // 9), 10 + 16 * (j % 9)
    if y + BRUSH >= H:
        raise ValueError(f"edit {k}: no room left to paint")
    return Edit(k, "paint", FIRST_NEW + k, k % T, y, x)


def main(argv: list[str]) -> None:
    project, interval_ms, edit_ms, n_edits = Path(argv[0]), int(argv[1]), int(argv[2]), int(argv[3])
    edits = [edit_of(k) for k in range(n_edits)]  # bad arguments fail before the viewer opens

    import napari
    from qtpy.QtCore import QTimer

    from napari_vis_ws._layers import labels_layer
    from napari_vis_ws._widgets.corrections import CorrectionsWidget
    from training.export import LabelVolume

    labels = start_volume()
    cats = {i: CATS[i % 2]["id"] for i in range(1, N_START + 1)}
    volume = LabelVolume(labels, cats, dict.fromkeys(cats, 0.5), {"id": 1, "name": KEY})
    viewer = napari.Viewer()
    data, kwargs, _ = labels_layer(volume, CATS, "pseudo-labels")
    layer = viewer.add_labels(data, **kwargs)
    layer.brush_size = BRUSH
    dock = CorrectionsWidget(viewer)
    viewer.window.add_dock_widget(dock)
    dock.autosave_timer.setInterval(interval_ms)
    dock.set_project(project)

    state = {"next": 0}
    editor = QTimer()
    editor.setInterval(edit_ms)

    def make_edit() -> None:
        k = state["next"]
        if k >= len(edits):
            editor.stop()
            return
        e = edits[k]
        if e.kind == "paint":
            viewer.dims.set_current_step(0, e.t)
            layer.paint((e.t, e.y, e.x), e.label)  # a brush dab: napari's paint event, as a mouse click
        else:
            dock.select_instances([e.label])
            dock.buttons["delete"].click()
        state["next"] = k + 1
        print(f"EDIT {k} t={time.time():.6f}", flush=True)

    def wait_first_save() -> None:
        if dock.project() == project and dock.save_status.text() == "no edits to save yet":
            print(f"READY t={time.time():.6f}", flush=True)
            editor.start()
        else:
            QTimer.singleShot(20, wait_first_save)

    editor.timeout.connect(make_edit)
    QTimer.singleShot(0, wait_first_save)
    QTimer.singleShot(30000, lambda: os._exit(3))  # the parent died without killing us
    napari.run()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main(sys.argv[1:])
