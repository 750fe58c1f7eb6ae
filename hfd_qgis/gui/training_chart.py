"""Live chart of training loss and validation score per epoch, drawn with QPainter (no plotting package)."""

from __future__ import annotations

import math

from qgis.PyQt.QtCore import QPointF, QRectF, Qt
from qgis.PyQt.QtGui import QColor, QFont, QPainter, QPen
from qgis.PyQt.QtWidgets import QSizePolicy, QWidget

LOSS_COLOR = QColor("#c0392b")
SCORE_COLOR = QColor("#2e86de")
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 48, 26, 30


class TrainingChart(QWidget):
    """Training loss (left axis, its own range) and validation score (0..1, right axis) per epoch."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(320, 180)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.losses: list[float] = []
        self.scores: list[float] = []
        self.score_label = "validation mIoU"

    def clear(self) -> None:
        self.losses, self.scores = [], []
        self.update()

    def add_epoch(self, loss: float, score: float | None) -> None:
        """Append one epoch (``score`` None or NaN when there was no validation)."""
        self.losses.append(float(loss))
        self.scores.append(math.nan if score is None else float(score))
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.fillRect(self.rect(), QColor("white"))
        plot = QRectF(
            MARGIN_LEFT,
            MARGIN_TOP,
            max(self.width() - MARGIN_LEFT - MARGIN_RIGHT, 1),
            max(self.height() - MARGIN_TOP - MARGIN_BOTTOM, 1),
        )
        painter.setPen(QPen(QColor("#888888"), 1))
        painter.drawRect(plot)
        painter.setFont(QFont(self.font().family(), 8))
        self._legend(painter)
        if not self.losses:
            painter.setPen(QColor("#666666"))
            painter.drawText(plot, Qt.AlignCenter, "loss and validation score appear here after each epoch")
            return
        low, high = min(self.losses), max(self.losses)
        if high - low < 1e-9:
            low, high = low - 0.5, high + 0.5
        self._axis_labels(painter, plot, low, high)
        self._line(painter, plot, [(v - low) / (high - low) for v in self.losses], LOSS_COLOR)
        self._line(painter, plot, self.scores, SCORE_COLOR)
        painter.end()

    def _legend(self, painter: QPainter) -> None:
        x = MARGIN_LEFT
        for color, text in ((LOSS_COLOR, "training loss"), (SCORE_COLOR, self.score_label)):
            painter.fillRect(QRectF(x, 8, 14, 4), color)
            painter.setPen(QColor("#222222"))
            painter.drawText(QPointF(x + 18, 14), text)
            x += 30 + painter.fontMetrics().horizontalAdvance(text)

    def _axis_labels(self, painter: QPainter, plot: QRectF, low: float, high: float) -> None:
        painter.setPen(LOSS_COLOR)
        painter.drawText(QPointF(4, plot.bottom()), f"{low:.3g}")
        painter.drawText(QPointF(4, plot.top() + 10), f"{high:.3g}")
        painter.setPen(SCORE_COLOR)
        painter.drawText(QPointF(plot.right() + 6, plot.bottom()), "0")
        painter.drawText(QPointF(plot.right() + 6, plot.top() + 10), "1")
        painter.setPen(QColor("#222222"))
        epochs = len(self.losses)
        painter.drawText(QPointF(plot.left(), plot.bottom() + 16), "epoch 1")
        painter.drawText(QPointF(plot.right() - 50, plot.bottom() + 16), f"epoch {epochs}")

    def _point(self, plot: QRectF, index: int, value: float) -> QPointF:
        count = len(self.losses)
        x = plot.left() + (plot.width() * index / (count - 1) if count > 1 else plot.width() / 2)
        return QPointF(x, plot.bottom() - plot.height() * min(max(value, 0.0), 1.0))

    def _line(self, painter: QPainter, plot: QRectF, values: list[float], color: QColor) -> None:
        painter.setPen(QPen(color, 2))
        points = [self._point(plot, i, v) for i, v in enumerate(values) if not math.isnan(v)]
        for start, end in zip(points[:-1], points[1:], strict=True):
            painter.drawLine(start, end)
        painter.setBrush(color)
        for point in points:
            painter.drawEllipse(point, 3, 3)
