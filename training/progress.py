"""Progress of long operations, shared by the CLI (tqdm / JSON lines) and the GUI.

Long operations are generators that yield :class:`Progress` events; whoever
drives them decides how to show them and can stop early by closing the
generator (``gen.close()`` raises ``GeneratorExit`` inside it, where a
training loop saves its checkpoint). The CLI drives them with
:func:`drive`; napari drives the same generators in a generator worker.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO


@dataclass
class Progress:
    """One step of a long operation.

    Attributes
    ----------
    stage : str
        What is running ("flow", "train-cam", ...).
    done, total : int
        Units done so far and in all (frames, iterations, videos).
    unit : str
        What a unit is.
    metrics : dict
        Numbers worth showing (loss, lr, fps ...); JSON-serialisable.
    message : str
        A line for the log, or "".
    """

    stage: str
    done: int
    total: int
    unit: str = "it"
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""

    def to_json(self) -> str:
        """One JSON line (the subprocess protocol of the plugin's training dock)."""
        return json.dumps({"event": "progress", "time": time.time(), **asdict(self)})


def drive(events: Iterable[Progress], json_lines: bool = False, stream: TextIO | None = None) -> Progress | None:
    """Consume a progress generator, showing a tqdm bar (or JSON lines).

    Parameters
    ----------
    events : iterable of Progress
    json_lines : bool
        Print one JSON object per event on ``stream`` instead of a bar.
    stream : text stream, default stderr (bar) / stdout (JSON lines)

    Returns
    -------
    last : the last event, or None if there was none.
    """
    last = None
    if json_lines:
        out = stream or sys.stdout
        for ev in events:
            print(ev.to_json(), file=out, flush=True)
            last = ev
        return last
    from tqdm import tqdm

    bar = None
    shown: tuple[str, int] | None = None  # (stage, total) of the open bar; a disabled tqdm keeps no desc
    try:
        for ev in events:
            if bar is None or shown != (ev.stage, ev.total):
                if bar is not None:
                    bar.close()
                bar = tqdm(total=ev.total, desc=ev.stage, unit=ev.unit, file=stream or sys.stderr, disable=None)
                shown = (ev.stage, ev.total)
            bar.update(ev.done - bar.n)
            if ev.metrics:
                bar.set_postfix({k: f"{v:.4g}" for k, v in ev.metrics.items()}, refresh=False)
            if ev.message:
                bar.write(ev.message)
            last = ev
    finally:
        if bar is not None:
            bar.close()
    return last


def counted(items: Iterable[Any], stage: str, total: int, unit: str = "it") -> Iterator[tuple[Any, Progress]]:
    """Pair each item with the progress event to yield after it is processed."""
    for i, item in enumerate(items):
        yield item, Progress(stage, i + 1, total, unit)


def stop_on_interrupt(events: Generator[Progress, None, None]) -> Iterator[Progress]:
    """Pass ``events`` through; on Ctrl+C finish the current step, close the generator, then raise.

    Closing a training generator between two steps saves its checkpoint in a
    consistent state (a KeyboardInterrupt in the middle of an optimizer step
    would not). A second Ctrl+C interrupts at once.
    """
    stop: list[bool] = []

    def handler(signum: int, frame: Any) -> None:
        stop.append(True)
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        for ev in events:
            yield ev
            if stop:
                break
    finally:
        signal.signal(signal.SIGINT, previous)
        events.close()
    if stop:
        raise KeyboardInterrupt


def drive_training(events: Generator[Progress, None, None], json_lines: bool = False) -> Progress | None:
    """:func:`drive` a training generator so that Ctrl+C / SIGINT stops it between two steps.

    The generator is closed either way (a training loop saves its checkpoint
    then); an interrupt is re-raised as KeyboardInterrupt (``vis-ws`` exits 130).
    """
    try:
        return drive(stop_on_interrupt(events), json_lines=json_lines)
    finally:
        events.close()
