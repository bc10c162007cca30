"""The docks' "Score ≥" slider: which predictions the ``predictions`` layer draws.

The layer holds every predicted instance; the slider only changes which are
drawn (:func:`napari_vis_ws._prediction_layers.show_above`: those scored at
least the threshold, in their class's colour), so moving it costs no
recomputation and exports still hold everything. It follows the layer: a
``predictions`` layer added or given new predictions is drawn at the
slider's threshold at once, and the threshold kept in the layer's metadata
moves every dock's slider (the Pipeline and Training docks each have one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget

from napari_vis_ws._layers import META_KEY
from napari_vis_ws._prediction_layers import PREDICTIONS, SCORE_THRESHOLD, show_above

STEPS = 100  # slider positions over [0, 1]


class ScoreSlider(QWidget):
    """``Score ≥ 0.50`` and a slider; the label says how many of the video's predicted instances are drawn.

    Parameters
    ----------
    viewer : napari.Viewer
    """

    def __init__(self, viewer: Any) -> None:
        super().__init__()
        self.viewer = viewer
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setRange(0, STEPS)
        self.slider.setValue(round(SCORE_THRESHOLD * STEPS))
        self.slider.setToolTip("Draw the predicted instances scored at least this (the others stay in the layer)")
        self.label = QLabel()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Score ≥"))
        layout.addWidget(self.slider, stretch=1)
        layout.addWidget(self.label)
        self._connected: list[tuple[Any, Callable[..., None]]] = []  # (emitter, callback), undone when deleted
        self.slider.valueChanged.connect(lambda _: self.apply())
        self._connect(viewer.layers.events.inserted, self._inserted)
        for layer in viewer.layers:
            self._follow(layer)
        self.destroyed.connect(lambda *_, c=self._connected: _disconnect(c))
        self.apply()

    @property
    def threshold(self) -> float:
        """The score an instance needs to be drawn, in [0, 1]."""
        return self.slider.value() / STEPS

    def _connect(self, emitter: Any, callback: Callable[..., None]) -> None:
        emitter.connect(callback)
        self._connected.append((emitter, callback))

    def _inserted(self, event: Any) -> None:
        self._follow(event.value)
        self.apply()

    def _follow(self, layer: Any) -> None:
        if layer.name == PREDICTIONS:
            self._connect(layer.events.features, lambda *_: self.apply())  # new predictions put in place
            self._connect(layer.events.metadata, lambda *_: self._moved_elsewhere(layer))

    def _moved_elsewhere(self, layer: Any) -> None:
        """Another dock's slider set the layer's threshold: show it here too."""
        value = layer.metadata.get(META_KEY, {}).get("score_threshold")
        if value is not None and round(value * STEPS) != self.slider.value():
            self.slider.setValue(round(value * STEPS))  # applies: the same threshold, no event loop

    def apply(self) -> None:
        """Draw the ``predictions`` layer's instances scored at least :attr:`threshold` (if there is one)."""
        text = f"{self.threshold:.2f}"
        if PREDICTIONS in self.viewer.layers:
            shown, total = show_above(self.viewer.layers[PREDICTIONS], self.threshold)
            text += f" ({shown} of {total} shown)"
        self.label.setText(text)


def _disconnect(connections: list[tuple[Any, Callable[..., None]]]) -> None:
    """Undo a deleted slider's connections to the viewer and its layers."""
    for emitter, callback in connections:
        emitter.disconnect(callback)
    connections.clear()
