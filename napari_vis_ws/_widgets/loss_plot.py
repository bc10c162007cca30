"""A small live loss curve for the Training dock."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from qtpy.QtWidgets import QWidget


class LossPlot(QWidget):
    """A small live loss curve: a polyline painted with QPainter (no plotting dependency)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[float] = []
        self.setMinimumHeight(90)
        self.setToolTip("training loss per iteration")

    def clear(self) -> None:
        """Forget every point."""
        self.values = []
        self.update()

    def add(self, value: float) -> None:
        """Append one loss value (non-finite values are skipped)."""
        if math.isfinite(value):
            self.values.append(value)
            self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt API)
        """Draw the curve scaled to the widget, with the last and the range of the values."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        rect = self.rect().adjusted(4, 16, -4, -4)
        painter.setPen(QPen(QColor(128, 128, 128), 1))
        painter.drawRect(rect)
        if not self.values:
            painter.drawText(self.rect().adjusted(6, 0, 0, 0), Qt.AlignLeft | Qt.AlignTop, "loss")
            painter.end()
            return
        lo, hi = min(self.values), max(self.values)
        span = hi - lo or 1.0
        n = len(self.values)
        points = QPolygonF()
        for i, v in enumerate(self.values):
            x = rect.left() + (rect.width() * i / (n - 1) if n > 1 else rect.width() / 2)
            y = rect.bottom() - rect.height() * (v - lo) / span
            points.append(QPointF(x, y))
        painter.setPen(QPen(QColor(0, 170, 255), 1.5))
        painter.drawPolyline(points)
        painter.setPen(QPen(QColor(160, 160, 160), 1))
        text = f"loss {self.values[-1]:.4g}   (min {lo:.4g}, max {hi:.4g}, {n} it)"
        painter.drawText(self.rect().adjusted(6, 0, 0, 0), Qt.AlignLeft | Qt.AlignTop, text)
        painter.end()
