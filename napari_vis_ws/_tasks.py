"""Long work as napari tasks, and the docks' watch on their window: nothing is lost when napari closes.

napari's window keeps a task-status registry (``napari.utils.task_status``):
when the user closes the window while a task is busy, its close dialog lists
every task's ``provider: description`` line, and on closing it calls each
task's cancel callback before the window goes. A dock registers its running
work here (:func:`register_task`) with a callback that stops it at a step
boundary and waits for its clean-up (a stage worker closing its generator, a
training run saving its checkpoint), so quitting napari never leaves a
half-written file. The registry is napari's private window API
(``Window._register_task_status``, napari >= 0.5); without it the task
functions do nothing, and a dock relies on its window's Close event instead
(:class:`WindowClose`, which the docks also use to save on closing).

Waiting must not run the Qt event loop: while napari closes its window,
``processEvents`` lets it delete parts of the window it then uses again.
:func:`wait_for_workers` blocks on the thread pool instead.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent, QObject, QTimer

PROVIDER = "napari-vis-ws"  # the name napari's close dialog gives our running work


def register_task(viewer: Any, description: str, stop: Callable[[], Any]) -> Any:
    """Register busy work in the viewer's window; returns its id (None when napari has no registry).

    ``stop()`` is called when the window closes with the task busy: it must
    stop the work and return once it has cleaned up. A bound method is held
    weakly, so napari's window does not keep the dock alive.
    """
    register = getattr(getattr(viewer, "window", None), "_register_task_status", None)
    if register is None:
        return None
    ref = weakref.WeakMethod(stop) if hasattr(stop, "__self__") else (lambda: stop)

    def cancel() -> bool:
        method = ref()
        if method is None:
            return False
        try:
            method()
        except RuntimeError:  # the dock is deleted already, and its work with it
            return False
        return True

    try:
        from napari.utils.task_status import Status

        return register(PROVIDER, Status.BUSY, description, cancel_callback=cancel)
    except (ImportError, AttributeError, TypeError):
        return None


def update_task(viewer: Any, task: Any, status: str, description: str = "") -> None:
    """Set a registered task's status: ``busy``, ``completed``, ``cancelled``, ``failed`` or ``start_failed``."""
    update = getattr(getattr(viewer, "window", None), "_update_task_status", None)
    if task is None or update is None:
        return
    try:
        from napari.utils.task_status import Status

        update(task, Status(status), description)
    except (ImportError, AttributeError, TypeError, ValueError):
        return


def wait_for_workers(timeout_s: float) -> bool:
    """Block until every thread worker has returned (a cancelled stage cleans up first), or ``timeout_s``."""
    from qtpy.QtCore import QThreadPool

    return bool(QThreadPool.globalInstance().waitForDone(int(timeout_s * 1000)))


class WindowClose(QObject):
    """Calls ``on_close()`` when the top-level window a dock is docked in (napari's main window) closes.

    The window is found once the dock is docked (napari docks the widget,
    then the dock in its window: a turn of the event loop later) and held
    weakly, so the dock does not keep napari's window alive. A child of the
    dock: it goes with it.

    Parameters
    ----------
    widget : QWidget
        The dock's widget.
    on_close : callable
        Called on the window's Close event, before it goes (save, stop work).
    """

    def __init__(self, widget: Any, on_close: Callable[[], Any]) -> None:
        super().__init__(widget)
        self.widget, self._on_close = widget, on_close
        self.window: Callable[[], Any] = lambda: None  # the window watched (weak), once found
        widget.installEventFilter(self)

    def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802 (Qt's name)
        """The dock docked or shown: look for its window; that window closing: ``on_close()``."""
        if watched is self.widget and event.type() in (QEvent.ParentChange, QEvent.Show):
            QTimer.singleShot(0, self.watch)
        elif event.type() == QEvent.Close and watched is self.window():
            self._on_close()
        return False

    def watch(self) -> None:
        """Find the window above the dock and listen to it (nothing while undocked, or already listening)."""
        try:
            root = self.widget
            while root.parentWidget() is not None:
                root = root.parentWidget()
        except RuntimeError:  # the dock was deleted meanwhile
            return
        if root is self.widget or root is self.window():
            return
        root.installEventFilter(self)
        self.window = weakref.ref(root)
