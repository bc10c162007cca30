"""The Corrections dock's autosave survives SIGKILL: a killed viewer loses no edit older than the autosave interval.

A child process (``autosave_child.py``, a real napari viewer on this test's X
display) edits a project through the Corrections dock, printing the time of
each edit; the test SIGKILLs it at a random moment, then reopens the project
with the training-side loader and with a fresh Corrections dock.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from autosave_child import KEY, N_START, T, edit_of, start_volume
from conftest import REPO

from napari_vis_ws._widgets.corrections import CorrectionsWidget
from training.export import load_labels
from training.project import load_project_state, project_videos

pytestmark = [pytest.mark.gui, pytest.mark.slow]

CHILD = Path(__file__).with_name("autosave_child.py")
INTERVAL_S = 0.4  # the child's autosave interval (the dock's default is 5 s)
EDIT_S = 0.15  # one edit every 150 ms
N_EDITS = 2 * N_START  # 24 edits, about 4 s
MARGIN_S = 0.5  # time for the save that follows the tick (a worker writing the files) and event-loop delays
FILES = {"labels.npz", "pseudo.npz", "state.json"}
TEMP = re.compile(r"^\.(labels\.npz|pseudo\.npz|state\.json)\.[^/]+\.tmp$")  # training.atomic's temporary files


class Child:
    """The editing child process and the lines it printed, each with its time."""

    def __init__(self, project: Path, log: Path) -> None:
        args = [str(CHILD), str(project), str(int(INTERVAL_S * 1000)), str(int(EDIT_S * 1000)), str(N_EDITS)]
        self.stderr = log.open("w")
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}  # DISPLAY (Xvfb) and QT_API are inherited
        self.proc = subprocess.Popen(
            [sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=self.stderr, text=True
        )
        self.ready: float | None = None
        self.edits: dict[int, float] = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if m := re.fullmatch(r"READY t=([\d.]+)", line.strip()):
                self.ready = float(m[1])
            elif m := re.fullmatch(r"EDIT (\d+) t=([\d.]+)", line.strip()):
                self.edits[int(m[1])] = float(m[2])

    def wait_ready(self, timeout: float = 90.0) -> None:
        end = time.monotonic() + timeout
        while self.ready is None:
            if self.proc.poll() is not None or time.monotonic() > end:
                self.proc.kill()
                self.stderr.close()
                log = Path(self.stderr.name).read_text()[-3000:]
                pytest.fail(f"the child viewer did not get ready (exit {self.proc.returncode}):\n{log}")
            time.sleep(0.02)

    def kill_after(self, edit: int, delay: float) -> float:
        """SIGKILL the child ``delay`` seconds after it printed edit ``edit``; returns the time of the kill."""
        while edit not in self.edits or time.time() < self.edits[edit] + delay:
            assert self.proc.poll() is None, "the child exited before the kill"
            time.sleep(0.005)
        killed = time.time()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)  # the pipe's end: every line printed before the kill is read
        self.stderr.close()
        return killed


@pytest.mark.parametrize("seed", [11, 1, 7])  # kills after edits 11, 15 and 21
def test_a_killed_viewer_keeps_every_edit_older_than_the_autosave_interval(seed, tmp_path, make_napari_viewer, qtbot):
    project = tmp_path / "project"
    child = Child(project, tmp_path / "child.log")
    child.wait_ready()
    # mid-editing, at least 10 edits (1.5 s, almost 4 autosave intervals) after the first: a seeded random moment
    rng = np.random.default_rng(seed)
    edit, delay = int(rng.integers(10, N_EDITS - 2)), float(rng.uniform(0, EDIT_S))
    killed = child.kill_after(edit, delay)
    assert child.proc.returncode == -signal.SIGKILL

    old_enough = sorted(k for k, t in child.edits.items() if t < killed - INTERVAL_S - MARGIN_S)
    assert len(old_enough) >= 3, f"only edits {old_enough} were made a save before the kill"

    # the project loads; only the named files and (a kill mid-write) temporary files of them are there
    folder = project / "corrections" / KEY
    names = {p.name for p in folder.iterdir()}
    assert FILES <= names and all(TEMP.match(n) for n in names - FILES), sorted(names)
    assert project_videos(project) == [KEY]
    state = load_project_state(project, KEY)
    np.testing.assert_array_equal(state.pseudo.labels, start_volume())
    assert state.saved is not None and state.saved < killed and state.volume.labels.shape == (T, 120, 160)

    # every edit older than the interval is saved, and the save is one moment of the session: edits 0..m-1
    saved = {k for k in range(N_EDITS) if edit_of(k).in_labels(state.volume.labels)}
    missing = sorted(set(old_enough) - saved)
    ages = {k: round(killed - child.edits[k], 2) for k in missing}
    assert not missing, f"edits lost although made this long (s) before the kill: {ages}"
    assert saved == set(range(len(saved))), f"saved edits {sorted(saved)} are not the first {len(saved)}"
    assert len(saved) <= len(child.edits) + 1  # at most one edit made but not yet printed when killed
    # nothing else changed: the start instances not deleted by a saved edit are intact
    kept = [i for i in range(1, N_START + 1) if 2 * (i - 1) + 1 not in saved]
    np.testing.assert_array_equal(np.isin(state.volume.labels, kept), np.isin(start_volume(), kept))

    # a fresh Corrections dock reopens the project, and its autosave keeps working next to a dead temp file
    viewer = make_napari_viewer()
    dock = CorrectionsWidget(viewer)
    viewer.window.add_dock_widget(dock)
    dock.autosave_timer.setInterval(int(INTERVAL_S * 1000))
    dock.set_project(project)
    layer = viewer.layers["pseudo-labels"]
    np.testing.assert_array_equal(layer.data, state.volume.labels)
    assert dock.message.text() == f"restored the corrections of {KEY} (0 frames reviewed)"
    layer.data_setitem((np.array([0]), np.array([100]), np.array([150])), 77)
    qtbot.waitUntil(lambda: load_labels(folder / "labels.npz").labels[0, 100, 150] == 77, timeout=10000)
