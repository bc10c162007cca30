"""The process `test_corrections_safety.py`'s stress test runs: random video switches, edits, stages and autosaves.

Run as ``python -X faulthandler stress_child.py TAGS RUN ROUNDS SEED LEDGER``.
The child opens a real napari viewer with the Pipeline and Corrections docks
on the project ``RUN`` (autosave every 100 ms), then plays ``ROUNDS`` random
rounds (once the dock's warm-up has frozen the heap), each one of: an edit in
the Corrections dock (delete an instance in one frame, or paint a square with
the brush), a switch to the other video (as a user can: only while the dock
lets them), a stage run from the Pipeline dock (not waited for: edits go on
while it runs), an autosave tick, or a pause. It
records after every edit what the video's labels must be, and at the end
closes the window as a user does (pending saves are flushed), writes that
ledger to ``LEDGER`` (``.npz``: one array per video key) and exits 0. A crash
shows as a non-zero exit with faulthandler's traceback of every thread.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

STAGES = ("flow", "pseudo-labels", "cams")


def main(argv: list[str]) -> None:
    tags, run, rounds, seed, ledger_path = Path(argv[0]), Path(argv[1]), int(argv[2]), int(argv[3]), Path(argv[4])
    import napari
    import torch  # noqa: F401  (before the viewer, as napari_vis_ws/__init__ explains)
    from qtpy.QtCore import QTimer

    from napari_vis_ws._widgets.corrections import CorrectionsWidget, video_key_of
    from napari_vis_ws._widgets.pipeline import PipelineWidget

    rng = np.random.default_rng(seed)
    viewer = napari.Viewer()
    pipeline, corrections = PipelineWidget(viewer), CorrectionsWidget(viewer)
    viewer.window.add_dock_widget(pipeline)
    viewer.window.add_dock_widget(corrections)
    corrections.autosave_timer.setInterval(100)
    from qtpy.QtWidgets import QApplication

    from napari_vis_ws._warm_up import heap_frozen

    while pipeline.warm_up.is_running:  # as a person reads the dock first: the session's heap gets frozen
        QApplication.processEvents()
        time.sleep(0.01)
    QApplication.processEvents()
    frozen = heap_frozen()
    pipeline.set_tags(tags)
    pipeline.set_project(run)
    ledger: dict[str, np.ndarray] = {}
    counts = dict.fromkeys(("edit", "switch", "stage", "autosave", "pause"), 0)
    state = {"round": 0, "next_id": 1000}

    def layer():
        return viewer.layers["pseudo-labels"] if "pseudo-labels" in viewer.layers else None

    def bound() -> bool:
        ly = layer()
        if ly is None or corrections.layer is None or corrections.project() is None:
            return False
        return video_key_of(corrections.layer) == ly.metadata.get("vis_ws", {}).get("video_key") and not getattr(
            corrections, "_rebind_pending", False
        )

    def edit() -> None:
        ly = layer()
        labels = np.asarray(ly.data)
        t = int(rng.integers(labels.shape[0]))
        viewer.dims.set_current_step(0, t)
        ids = [int(i) for i in np.unique(labels[t]) if i]
        if ids and rng.random() < 0.5:
            corrections.this_frame_only.setChecked(True)
            corrections.select_instances([ids[int(rng.integers(len(ids)))]])
            corrections.buttons["delete"].click()
        else:
            y, x = int(rng.integers(4, labels.shape[1] - 4)), int(rng.integers(4, labels.shape[2] - 4))
            ly.brush_size = 5
            ly.paint((t, y, x), state["next_id"])  # a brush dab: napari's paint event, as a mouse click
            state["next_id"] += 1
        ledger[video_key_of(ly)] = np.array(ly.data)

    def play() -> None:
        if state["round"] >= rounds:
            finish()
            return
        if not bound() and layer() is not None and pipeline.show_button.isEnabled():
            QTimer.singleShot(20, play)  # a video is still being shown: wait for it, as a person would
            return
        state["round"] += 1
        action = rng.choice(["edit", "switch", "stage", "autosave", "pause"], p=[0.4, 0.2, 0.15, 0.15, 0.1])
        if action == "edit" and bound():
            edit()
        elif action == "switch" and pipeline.video_combo.isEnabled():
            pipeline.video_combo.setCurrentIndex(1 - pipeline.video_combo.currentIndex())
        elif action == "stage" and pipeline.running is None:
            pipeline.run_stage(str(rng.choice(STAGES)))
        elif action == "autosave":
            corrections.autosave()
        else:
            action = "pause"
        counts[str(action)] += 1
        QTimer.singleShot(int(rng.integers(0, 60)), play)

    def finish() -> None:
        if pipeline.running is not None:  # let the last stage end, then quit
            QTimer.singleShot(50, finish)
            return
        viewer.window._qt_window.close()  # the window's close button: the Corrections dock flushes
        np.savez(ledger_path, **ledger)
        print(f"DONE {counts} frozen={frozen} {time.time():.3f}", flush=True)

    QTimer.singleShot(0, play)
    QTimer.singleShot(600_000, lambda: os._exit(3))  # stuck: fail rather than hang the test run
    napari.run()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main(sys.argv[1:])
