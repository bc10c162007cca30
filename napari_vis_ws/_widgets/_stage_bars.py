"""One progress bar per stage of a Run all (``vis-ws pipeline``) in the Training dock.

The pipeline announces its stages (``==> stages: flow, train-cam, ...``) and
each as it starts (``==> cams``: :func:`napari_vis_ws._training.stage_announcement`);
the dock's progress events then move the bar of the stage that runs. Stages
done show full, the running one its count, the ones to come empty. The
dock's Cancel stops the run at a step boundary; Start goes on from there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QGridLayout, QLabel, QProgressBar, QWidget

if TYPE_CHECKING:
    from training.progress import Progress


class StageBars(QWidget):
    """A label and a progress bar per announced stage; hidden until a run announces its stages.

    ``done`` is emitted with a stage's name when the next one starts (its
    results are all written: the Pipeline dock shows them then).
    """

    done = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.bars: dict[str, QProgressBar] = {}
        self.current: str | None = None
        self.hide()

    def clear(self) -> None:
        """No stages: hidden (a run of one stage has the dock's own bar)."""
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.bars, self.current = {}, None
        self.hide()

    def announce(self, kind: str, names: list[str]) -> None:
        """A ``stage_announcement``: the plan (one empty bar each), or the stage that starts (those before it full)."""
        if kind == "plan":
            self.clear()
            for row, name in enumerate(names):
                bar = QProgressBar()
                bar.setRange(0, 1)
                bar.setValue(0)
                bar.setFormat("waiting")
                self.grid.addWidget(QLabel(name), row, 0)
                self.grid.addWidget(bar, row, 1)
                self.bars[name] = bar
            self.show()
        elif names[0] in self.bars:
            for name in list(self.bars)[: list(self.bars).index(names[0])]:
                if self.bars[name].format() != "done":
                    self._full(name)
                    self.done.emit(name)
            self.current = names[0]
            self.bars[names[0]].setRange(0, 0)  # busy until its first event
            self.bars[names[0]].setFormat("starting…")

    def update_from(self, event: Progress) -> None:
        """The running stage's bar follows a progress event."""
        bar = self.bars.get(self.current or "")
        if bar is None:
            return
        bar.setRange(0, max(event.total, 1))
        bar.setValue(min(event.done, max(event.total, 1)))
        bar.setFormat(f"%v/%m {event.unit}")

    def finish(self, ok: bool) -> None:
        """The run ended: with ``ok`` every bar full; else the running one keeps where it stopped."""
        if ok:
            for name in self.bars:
                self._full(name)
        elif self.current in self.bars:
            bar = self.bars[self.current]
            bar.setRange(0, max(bar.maximum(), 1))
            bar.setFormat("stopped at %v/%m")
        self.current = None

    def _full(self, name: str) -> None:
        bar = self.bars[name]
        bar.setRange(0, max(bar.maximum(), 1))
        bar.setValue(bar.maximum())
        bar.setFormat("done")
