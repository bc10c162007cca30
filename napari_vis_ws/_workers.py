"""Running backend calls in napari thread workers, bad input as a one-line message.

A :class:`training.errors.InputError` raised by the work is expected (the user
picked a bad file): it is caught in the worker and handed to ``on_error`` as
its one-line message, instead of napari's traceback dialog. Anything else is a
bug and goes to napari's error reporting as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from training.errors import InputError


def start_worker(
    work: Callable[[], Any],
    on_result: Callable[[Any], None],
    on_error: Callable[[str], None],
    on_finished: Callable[[], None] | None = None,
) -> Any:
    """Run ``work()`` in a thread; call back on the main thread.

    Returns
    -------
    worker : napari FunctionWorker (already started); its ``finished`` signal
        fires after ``on_result`` / ``on_error``.
    """
    from napari.qt.threading import create_worker

    def guarded() -> tuple[bool, Any]:
        try:
            return True, work()
        except InputError as exc:
            return False, str(exc)

    def done(outcome: tuple[bool, Any]) -> None:
        ok, value = outcome
        (on_result if ok else on_error)(value)

    worker = create_worker(guarded)
    worker.returned.connect(done)
    if on_finished is not None:
        worker.finished.connect(on_finished)
    worker.start()
    return worker
