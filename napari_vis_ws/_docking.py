"""Tabify the plugin's docks: each one opened beside another goes into its tab group, raised.

napari stacks docks opened from the Plugins menu one under the other; the
plugin's five made a window 2,746 px tall. A dock class calls
:func:`tabify_when_docked` in its ``__init__``; when napari adds the
``QDockWidget`` wrapping the widget to its main window,
:func:`tabify_with_siblings` puts it in a tab with the plugin's other docks
on the same side.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QDockWidget, QMainWindow, QWidget


class _DockWatcher(QObject):
    """A child of a plugin widget: marks its dock as the plugin's and tabifies it when it is placed.

    napari constructs the widget, wraps it in a dock (the widget's
    ParentChange), then adds the dock to the main window, which emits the
    dock's ``dockLocationChanged``. Tabifying right then, before the window
    lays itself out, keeps the window from first growing to fit the docks
    stacked (it would not shrink back).
    """

    def __init__(self, widget: QWidget) -> None:
        super().__init__(widget)
        self._widget = widget
        self._dock: QDockWidget | None = None
        widget.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if obj is self._widget and event.type() == QEvent.ParentChange:
            dock = _dock_of(self._widget)
            if dock is not None and dock is not self._dock:
                if self._dock is not None:
                    self._dock.dockLocationChanged.disconnect(self._placed)
                self._dock = dock
                dock.dockLocationChanged.connect(self._placed)
        return False

    def _placed(self, area: Qt.DockWidgetArea) -> None:
        """The dock is in the main window: tabify it once; later moves are the user's."""
        if self._dock is not None:
            self._dock.dockLocationChanged.disconnect(self._placed)
            self._dock = None
        self._widget.removeEventFilter(self)
        tabify_with_siblings(self._widget)


def _dock_of(widget: QWidget) -> QDockWidget | None:
    """The QDockWidget in ``widget``'s parent chain (napari's QtViewerDockWidget), if any."""
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parentWidget()
    return parent


def tabify_with_siblings(widget: QWidget) -> bool:
    """Put ``widget``'s dock in a tab with the plugin's other docks on the same side, and raise it.

    Parameters
    ----------
    widget : QWidget
        A plugin dock widget that called :func:`tabify_when_docked`.

    Returns
    -------
    bool
        True when the dock is in a main window (tabified or alone on its
        side), False when it is not docked yet.
    """
    dock = _dock_of(widget)
    main = None if dock is None else dock.parentWidget()
    if dock is None or not isinstance(main, QMainWindow) or dock.isFloating():
        return False
    area = main.dockWidgetArea(dock)
    siblings = [
        other
        for other in main.findChildren(QDockWidget)
        if other is not dock
        and other.findChildren(_DockWatcher)  # one of the plugin's docks
        and not other.isHidden()
        and not other.isFloating()
        and main.dockWidgetArea(other) == area
    ]
    if siblings:
        main.tabifyDockWidget(siblings[0], dock)
        dock.show()
        dock.raise_()
    return True


def tabify_when_docked(widget: QWidget) -> None:
    """Call in a plugin dock widget's ``__init__``: tabify its dock with its siblings once napari docks it."""
    _DockWatcher(widget)
