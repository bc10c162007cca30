"""Long work as napari tasks: listed in napari's close dialog, stopped cleanly when the window closes.

napari's window keeps a task-status registry (``napari.utils.task_status``):
when the user closes the window while a task is busy, its close dialog lists
every task's ``provider: description`` line, and on closing it calls each
task's cancel callback before the window goes. A dock registers its running
work here with a callback that stops it at a step boundary and waits for its
clean-up (a stage worker closing its generator, a training run saving its
checkpoint), so quitting napari never leaves a half-written file.

The registry is napari's private window API (``Window._register_task_status``,
napari >= 0.5); without it these functions do nothing and return None.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

PROVIDER = "napari-vis-ws"


def register_task(viewer: Any, description: str, stop: Callable[[], Any]) -> Any:
    """Register busy work in the viewer's window; returns its id (None when napari has no registry).

    ``stop()`` is called when the window closes with the task busy: it must
    stop the work and return once it has cleaned up (see :func:`wait_until`).
    """
    register = getattr(getattr(viewer, "window", None), "_register_task_status", None)
    if register is None:
        return None
    from napari.utils.task_status import Status

    def cancel() -> bool:
        stop()
        return True

    return register(PROVIDER, Status.BUSY, description, cancel_callback=cancel)


def update_task(viewer: Any, task: Any, status: str, description: str = "") -> None:
    """Set a registered task's status (a ``napari.utils.task_status.Status`` name: BUSY, COMPLETED, CANCELLED...)."""
    update = getattr(getattr(viewer, "window", None), "_update_task_status", None)
    if task is None or update is None:
        return
    from napari.utils.task_status import Status

    update(task, Status[status], description)


def wait_until(done: Callable[[], bool], timeout_s: float) -> bool:
    """Serve the Qt event loop until ``done()`` (a worker's ``finished`` arrives through it) or ``timeout_s``."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        QApplication.processEvents()
        time.sleep(0.01)
    return True
