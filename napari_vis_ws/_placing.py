"""Putting a stage's layers into the viewer: reused by name, paced one per event-loop turn, in drawing order.

napari spends 0.1-0.3 s of the main thread on every layer it adds (layer
controls, vispy visuals) and a garbage collection on every layer it removes,
so :class:`LayerPlacer` reuses what it can (a same-named layer takes the new
data, :func:`~napari_vis_ws._project.put_layer`; a layer no longer needed is
renamed for a new one of the same kind),
puts one layer in per turn of the event loop when asked, and keeps the stage
layers above the others in :func:`~napari_vis_ws._stage_layers.layer_rank`
order. Only the main thread calls it.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from qtpy.QtCore import QTimer

from napari_vis_ws._layers import META_KEY
from napari_vis_ws._project import fits, put_layer
from napari_vis_ws._stage_layers import SHOWN_STAGES, layer_rank, newest_result
from napari_vis_ws._warm_up import heap_frozen


@contextmanager
def _young_objects_collected() -> Iterator[None]:
    """Let the garbage collections napari runs while removing layers skip the objects that existed before.

    napari calls ``gc.collect()`` for every layer it removes (a workaround for
    OpenGL drivers on Windows). With torch and napari loaded that is a full
    collection of about half a million objects, 0.3-0.5 s each: switching to a
    video with other classes, or starting CAMs, held the event loop 2.7 s
    (measured on the 16-frame sample, 2 cores). Frozen objects (``gc.freeze``)
    are skipped by those collections and collected normally afterwards.
    """
    if heap_frozen():  # frozen for good when the dock opened: collections are short already
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class LayerPlacer:
    """Puts layer-data tuples into ``viewer`` (see the module docstring).

    Attributes
    ----------
    pacing : bool
        Whether a paced set of layers is still going in.
    """

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.pacing = False
        self._token = 0  # the latest paced set; an older one stops where it is

    def put(self, data: Any, kwargs: dict[str, Any], kind: str, restyle: bool = False, visible: bool = True) -> None:
        """:func:`~napari_vis_ws._project.put_layer` into this viewer."""
        put_layer(self.viewer, data, kwargs, kind, restyle, visible)

    def show(
        self,
        layers: list[tuple],
        stages: tuple[str, ...],
        paced: Callable[[], bool] | None = None,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Show the layers of some stages; drop those stages' layers that are not in the new set.

        With ``paced``, one layer goes in per turn of the event loop, as long
        as ``paced()`` holds (napari spends 0.1-0.3 s of the main thread on
        each: eleven at once held it 1.5-2.4 s); ``then()`` follows the last.

        A layer that is no longer needed (``cam [dog]`` after switching to a
        video of cats) is renamed and reused for a new one of the same kind:
        napari takes a garbage collection to remove a layer. Of the new
        layers only the newest result (:func:`newest_result`) is visible; the
        others are added hidden, and layers already there keep the visibility
        the user gave them.
        """
        keep = {kw["name"] for _, kw, _ in layers}
        shown = newest_result([kw["name"] for _, kw, _ in layers])
        stale = [
            ly
            for ly in self.viewer.layers
            if ly.metadata.get(META_KEY, {}).get("stage") in stages and ly.name not in keep
        ]

        def put(data: Any, kwargs: dict[str, Any], kind: str) -> None:
            reuse = None
            if kwargs["name"] not in self.viewer.layers:
                reuse = next((ly for ly in stale if fits(ly, kwargs, kind)), None)
            if reuse is not None:
                stale.remove(reuse)
                reuse.name = kwargs["name"]
            self.put(data, kwargs, kind, restyle=reuse is not None, visible=kwargs["name"] == shown)

        def drop(i: int) -> None:  # the stale layers left once the new ones are in (one per step when paced)
            if i < len(stale) and stale[i] in self.viewer.layers:
                with _young_objects_collected():
                    self.viewer.layers.remove(stale[i])

        def finish() -> None:
            self.order()
            if then is not None:
                then()

        steps = [partial(put, *layer) for layer in layers]
        steps += [partial(drop, i) for i in range(len(stale))] + [finish]
        if paced is None:
            for step in steps:
                step()
            return

        self._token += 1
        token = self._token
        self.pacing = True

        def run(i: int) -> None:
            if token != self._token:  # a newer set of layers took over (it holds all of them)
                return
            if not paced():  # a newer load (another video) took over, or the viewer is closing
                self.pacing = False
                return
            steps[i]()
            if i + 1 < len(steps):
                QTimer.singleShot(0, partial(run, i + 1))
            else:
                self.pacing = False

        QTimer.singleShot(0, partial(run, 0))  # not in this turn: the caller may have put a layer already

    def order(self) -> None:
        """Stage layers above the others, in the order of :func:`layer_rank` (flow at the bottom, points on top)."""
        layers = self.viewer.layers
        managed = [ly for ly in layers if ly.metadata.get(META_KEY, {}).get("stage") in SHOWN_STAGES]
        ranked = sorted(managed, key=lambda ly: layer_rank(ly.name))  # stable: same-rank layers keep their order
        if managed == ranked and all(layers.index(ly) >= len(layers) - len(managed) for ly in managed):
            return
        for layer in ranked:
            layers.move(layers.index(layer), len(layers))
