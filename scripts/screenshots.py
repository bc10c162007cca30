"""Make the README's screenshots of the plugin (run under a display or Xvfb).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import napari  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def settle(seconds: float = 1.0) -> None:
    """Let Qt process events (workers finishing, the canvas drawing)."""
    import time

    end = time.time() + seconds
    while time.time() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def main() -> None:
    from napari_vis_ws._sample_data import ensure_sample
    from napari_vis_ws._widgets.dataset import DatasetWidget

    OUT.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1500, 900)
    widget = DatasetWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Dataset")
    widget.set_path(ensure_sample())
    widget.open_current()
    settle(4)
    viewer.dims.set_current_step(0, 8)
    settle(1)
    viewer.screenshot(str(OUT / "dataset.png"), canvas_only=False)
    print(f"wrote {OUT / 'dataset.png'}")
    viewer.close()


if __name__ == "__main__":
    main()
