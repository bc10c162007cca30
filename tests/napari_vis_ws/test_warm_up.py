"""The Pipeline dock pays a session's one-time costs in a worker when it opens (issue 16: GUI stalls)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from napari_vis_ws._warm_up import BACKEND_MODULES, import_paused

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.gui
def test_opening_the_dock_imports_the_backend_and_freezes_the_heap_until_the_viewer_closes():
    child = Path(__file__).with_name("warm_up_child.py")
    # napari started as a user does, without OMP_WAIT_POLICY: the plugin sets it before torch loads
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}  # DISPLAY (Xvfb) and QT_API inherited
    out = subprocess.run([sys.executable, str(child)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["omp_wait_policy"] == "PASSIVE"  # torch's idle threads do not spin on the viewer's core
    assert not seen["torch_before"] and seen["torch_after"]  # the first stage run will not import torch
    assert seen["registry"] == "UnitRegistry"  # napari's first layer will not parse pint's units
    assert seen["units"] == ["pixel", "pixel", "pixel"]
    assert seen["gc_enabled"]
    assert seen["frozen"]  # full collections skip the session's own objects
    assert not seen["frozen_after_close"]  # a closed viewer is collectable
    assert not seen["frozen_with_a_layer"]  # the user's layer is never frozen
    assert seen["frozen_again"] and not seen["frozen_after_dock_deleted"]  # the dock's deletion thaws it too


@pytest.mark.parametrize("enabled", [True, False])
def test_backend_imports_leave_the_collector_as_they_found_it(enabled):
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        assert import_paused(BACKEND_MODULES) == []  # every name there is a module the stages use
        assert gc.isenabled() == enabled
        assert import_paused(("training.no_such_stage",)) == ["training.no_such_stage"]  # skipped, not raised
    finally:
        (gc.enable if was else gc.disable)()


def test_only_the_freeze_a_token_made_is_thawed_by_it():
    # a dock closed after its window (thawed already) must not thaw the freeze a newer dock made
    import pint

    from napari_vis_ws._warm_up import heap_frozen, settle, thaw

    registry = pint.get_application_registry().get()  # installing it again changes nothing
    first = settle(registry, freeze=True)
    if first is None:
        pytest.skip("the heap of this test process is frozen already")
    second = None
    try:
        assert settle(registry, freeze=True) is None  # one freeze at a time
        thaw(first)
        second = settle(registry, freeze=True)
        assert second is not None and heap_frozen()
        thaw(first)  # stale: the newer freeze stays
        assert heap_frozen() and gc.get_freeze_count() > 0
        thaw(second)
        assert not heap_frozen() and gc.get_freeze_count() == 0
    finally:
        thaw(first)
        thaw(second)

