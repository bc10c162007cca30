"""Pay a napari session's one-time costs in a worker, not on the main thread (issue 16: GUI stalls).

Three costs used to land on the event loop the first time a project opened
or a stage started, 0.2-0.4 s each on 2 cores:

- napari's first layer initialises pint's unit registry (0.3 s of parsing);
- the stages' first run imports torch, timm and the backend: their many
  objects trigger full garbage collections (0.1-0.3 s each, holding the GIL,
  whichever thread triggers them), and every later full collection scans them
  again (napari runs one per removed layer);
- pandas, which napari needs for its first feature table (1 s).

:func:`start_warm_up` (the Pipeline dock calls it when it opens) imports the
backend with the collector paused, builds a unit registry, and then, on the
main thread, installs the registry (unless napari already made its own) and
freezes the heap (``gc.freeze``): the objects of the imports and of napari
itself live as long as the process, and collections then scan only what was
made afterwards (0.02-0.07 s). The heap is frozen only while the viewer holds
no layer (a frozen layer would never be collected once removed: its data
would leak) and only by a dock that hears its window close, where it thaws
the heap again (:func:`thaw`, also when the dock is deleted first): a closed
viewer must be collectable.

What is left: the C part of ``import torch`` holds the GIL about 0.2 s, once.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Callable
from typing import Any

from napari_vis_ws._workers import start_worker

_owner: object | None = None  # the token of the settle() that froze the heap (a mirror of the process's state)

# what the Pipeline dock's stages and layers import (the heaviest first)
BACKEND_MODULES = (
    "pandas",
    "torch",
    "training.cam.store",
    "training.irn.pseudo_labels",
    "training.irn.train",
    "training.flow",
    "training.link",
    "training.export",
    "training.detection.predict",
    "training.maskconsist.disagreement",
    "dask.array",
    "cv2",
)


def import_paused(modules: tuple[str, ...] = BACKEND_MODULES) -> list[str]:
    """Import ``modules`` with the garbage collector paused (their objects live as long as the process).

    Collections started by a growing heap would hold the GIL, and so stall
    the event loop, 0.1-0.3 s each; paused, the imports are also about 1 s
    faster. The collector's state is restored afterwards. A module that
    fails to import is skipped (this only saves time: the stage that needs
    it says what is wrong when it runs); returns the names of those.
    """
    failed = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError:
                failed.append(name)
    finally:
        if enabled:
            gc.enable()
    return failed


def unit_registry() -> Any:
    """A fresh pint unit registry, built off the main thread (napari's first layer needs one)."""
    import pint

    return pint.UnitRegistry()


def settle(registry: Any, freeze: bool) -> object | None:
    """On the main thread after the warm-up: install ``registry``; freeze the heap when ``freeze``.

    The registry becomes pint's application registry (napari's) only while
    that is still the lazy one nobody has used: swapping a registry in use
    would mix units of two registries. The heap is frozen at most once at a
    time; the caller passes ``freeze`` only when the viewer holds no layer
    and it will :func:`thaw` the heap when the viewer closes. Returns the
    token that thaws this freeze, or None when it did not freeze.
    """
    import pint

    global _owner
    application = pint.get_application_registry()
    if isinstance(application.get(), pint.LazyRegistry):
        pint.set_application_registry(registry)
    if not freeze or _owner is not None or gc.get_freeze_count():
        return None
    gc.freeze()
    _owner = object()
    return _owner


def thaw(token: object | None) -> None:
    """Undo the freeze of :func:`settle` that returned ``token`` (the viewer closes: its objects must be
    collectable again); a token whose freeze is undone already, or None, does nothing."""
    global _owner
    if token is not None and token is _owner:
        gc.unfreeze()
        _owner = None


def heap_frozen() -> bool:
    """Whether :func:`settle` froze the heap (cheap: ``gc.get_freeze_count`` walks every frozen object)."""
    return _owner is not None


def start_warm_up(on_ready: Callable[[Any], None], on_error: Callable[[str], None]) -> Any:
    """Import the backend and build a unit registry in a worker; ``on_ready(registry)`` on the main thread.

    ``on_ready`` calls :func:`settle`. Returns the napari worker.
    """

    def work() -> Any:
        import_paused()
        return unit_registry()

    return start_worker(work, on_ready, on_error)
