"""Running backend calls in napari thread workers, bad input as a one-line message.

:func:`start_worker` runs a function; :func:`start_generator_worker` runs a
generator of progress events (a pipeline stage), cancellable between yields.

A :class:`training.errors.InputError` raised by the work is expected (the user
picked a bad file): it is caught in the worker and handed to ``on_error`` as
its one-line message, instead of napari's traceback dialog. Anything else is a
bug and goes to napari's error reporting as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from functools import cache
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


def start_generator_worker(
    work: Callable[[], Iterator[Any]],
    on_yield: Callable[[Any], None],
    on_error: Callable[[str], None],
    on_done: Callable[[], None] | None = None,
    on_finished: Callable[[], None] | None = None,
) -> Any:
    """Run the generator ``work()`` in a thread, calling back on the main thread for each value it yields.

    ``worker.quit()`` cancels it between two yields: the generator is closed in
    the worker thread (``GeneratorExit`` at its ``yield``), so the backend's
    clean-up (temporary files, checkpoints) runs before ``finished``.

    Parameters
    ----------
    work : callable returning a generator
    on_yield : called with each yielded value
    on_error : called with the one-line message of an :class:`InputError`
    on_done : called when the generator ran to its end (not when cancelled or failed)
    on_finished : called last in every case

    Returns
    -------
    worker : napari GeneratorWorker (already started)
    """
    from napari.qt.threading import create_worker

    def guarded() -> Generator[Any, None, str | None]:
        try:
            yield from work()
        except InputError as exc:
            return str(exc)
        return None

    def returned(message: str | None) -> None:
        if message is not None:
            on_error(message)
        elif on_done is not None:
            on_done()

    worker = create_worker(guarded, _worker_class=_closing_generator_worker())
    worker.yielded.connect(on_yield)
    worker.returned.connect(returned)
    if on_finished is not None:
        worker.finished.connect(on_finished)
    worker.start()
    return worker


@cache
def _closing_generator_worker() -> type:
    """napari's GeneratorWorker, closing its generator in the worker thread when it stops (cancel included)."""
    from napari.qt.threading import GeneratorWorker

    class ClosingGeneratorWorker(GeneratorWorker):
        def work(self) -> Any:
            try:
                return super().work()
            finally:
                self._gen.close()

    return ClosingGeneratorWorker

