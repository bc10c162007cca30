"""The plugin's docks, opened from the Plugins menu, share one tabbed area instead of a 2,700 px column."""

from __future__ import annotations

import pytest
from qtpy.QtWidgets import QDockWidget

pytestmark = pytest.mark.gui

DOCKS = ["Dataset", "Tags", "Pipeline", "Corrections", "Export", "Training"]


def _open(viewer, qtbot, names: list[str]) -> list[QDockWidget]:
    docks = []
    for name in names:
        dock, _ = viewer.window.add_plugin_dock_widget("napari-vis-ws", name)
        docks.append(dock)
        qtbot.wait(10)  # the event loop runs between menu clicks
    qtbot.wait(50)
    return docks


def test_the_plugins_docks_open_as_tabs_in_a_window_that_fits_the_screen(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    main = viewer.window._qt_window
    docks = _open(viewer, qtbot, DOCKS)
    for dock in docks:
        assert set(main.tabifiedDockWidgets(dock)) == set(docks) - {dock}, dock.objectName()
    shown = [d for d in docks if not d.visibleRegion().isEmpty()]  # the others are behind their tabs
    assert shown == [docks[-1]]
    assert shown[0].height() < 1000 and main.height() <= 1024  # stacked, the window was 2,777 px tall


def test_the_dock_opened_last_is_the_tab_shown(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QTabBar

    viewer = make_napari_viewer(show=True)
    main = viewer.window._qt_window
    dataset, export = _open(viewer, qtbot, ["Dataset", "Export"])
    bars = [b for b in main.findChildren(QTabBar) if b.isVisible() and b.count()]
    assert [[b.tabText(i) for i in range(b.count())] for b in bars] == [[dataset.windowTitle(), export.windowTitle()]]
    assert bars[0].tabText(bars[0].currentIndex()) == export.windowTitle() == "Export (napari-vis-ws)"
    assert dataset.visibleRegion().isEmpty() and not export.visibleRegion().isEmpty()  # Dataset is behind its tab


def test_a_dock_moved_to_the_other_side_is_left_alone(make_napari_viewer, qtbot):
    from qtpy.QtCore import Qt

    viewer = make_napari_viewer(show=True)
    main = viewer.window._qt_window
    (dataset,) = _open(viewer, qtbot, ["Dataset"])
    main.addDockWidget(Qt.LeftDockWidgetArea, dataset)
    (export,) = _open(viewer, qtbot, ["Export"])
    assert main.tabifiedDockWidgets(export) == [] and main.dockWidgetArea(export) == Qt.RightDockWidgetArea
