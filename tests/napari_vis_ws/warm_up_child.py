"""The process `test_warm_up.py` runs: a fresh napari session opening the Pipeline dock, as a user does.

Run as ``python warm_up_child.py``; prints one JSON line of what it saw. The
session's state (pint's application registry, the frozen heap) belongs to a
process, so a test process that opened viewers before cannot show it.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time


def dock_warmed_up(viewer):
    """Dock the Pipeline widget in ``viewer`` and wait, as a person reading it would, for its warm-up to end."""
    from qtpy.QtWidgets import QApplication

    from napari_vis_ws._widgets.pipeline import PipelineWidget

    dock = PipelineWidget(viewer)
    viewer.window.add_dock_widget(dock)
    end = time.monotonic() + 120
    while dock.warm_up.is_running and time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)
    for _ in range(5):
        QApplication.processEvents()
    return dock


def main() -> None:
    import napari
    import numpy as np
    import pint
    from qtpy.QtCore import QEvent
    from qtpy.QtWidgets import QApplication

    from napari_vis_ws._warm_up import heap_frozen

    def frozen() -> bool:
        return heap_frozen() or gc.get_freeze_count() > 0

    seen: dict = {"torch_before": "torch" in sys.modules}
    viewer = napari.Viewer()
    dock_warmed_up(viewer)
    seen["torch_after"] = "torch" in sys.modules
    seen["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
    seen["registry"] = type(pint.get_application_registry().get()).__name__
    seen["gc_enabled"] = gc.isenabled()
    seen["frozen"] = heap_frozen() and gc.get_freeze_count() > 0
    layer = viewer.add_image(np.zeros((4, 8, 8), np.uint8), name="frames")  # napari's units work with the registry
    seen["units"] = [str(u) for u in layer.units]
    viewer.close()
    seen["frozen_after_close"] = frozen()

    # a viewer holding the user's layer: nothing of it may be frozen (it would never be collected once removed)
    viewer = napari.Viewer()
    viewer.add_image(np.zeros((4, 8, 8), np.uint8), name="the user's image")
    dock_warmed_up(viewer)
    seen["frozen_with_a_layer"] = frozen()
    viewer.close()

    # a dock deleted while its window stays open thaws the heap it froze
    viewer = napari.Viewer()
    dock = dock_warmed_up(viewer)
    seen["frozen_again"] = heap_frozen()
    dock.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    QApplication.processEvents()
    seen["frozen_after_dock_deleted"] = frozen()
    viewer.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
