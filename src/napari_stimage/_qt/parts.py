"""Small Qt parts the dock widgets share: an elided one-line label, a scroll area that asks
the dock for its content's full size, a checkbox whose text wraps."""

from __future__ import annotations

from qtpy.QtCore import QEvent, QSize, Qt
from qtpy.QtGui import QFontMetrics
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QMessageBox, QScrollArea, QSizePolicy, QWidget


class ElidedLabel(QLabel):
    """One line of text cut with "…" to the width it gets; the whole text is in the tooltip."""

    def __init__(self, text: str = "", elide: Qt.TextElideMode = Qt.TextElideMode.ElideRight):
        super().__init__()
        self._full_text = ""
        self._elide_mode = elide
        # never ask the dock for the whole line's width: the hint must not widen the panel
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(20)
        self.set_full_text(text)

    def full_text(self) -> str:
        return self._full_text

    def set_full_text(self, text: str, tooltip: str | None = None) -> None:
        self._full_text = text
        self.setToolTip(tooltip if tooltip is not None else text)
        self._elide()

    def resizeEvent(self, event):  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        metrics = QFontMetrics(self.font())
        width = self.contentsRect().width() - 2 * max(self.margin(), 0) - 2  # minus a pixel of slack each side
        self.setText(metrics.elidedText(self._full_text, self._elide_mode, max(width, 20)))


class ScrollArea(QScrollArea):
    """Scrolls its content when the dock is too small, but asks the dock for the content's full size.

    Squeezed by its neighbours, it keeps `min_visible_height` px of the content visible.
    """

    def __init__(self, min_visible_height: int):
        super().__init__()
        self._min_visible_height = min_visible_height

    def setWidget(self, widget):  # noqa: N802 (Qt API)
        super().setWidget(widget)
        widget.installEventFilter(self)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        # the content's layout changed (a slide bound, rows shown): the dock must re-read our hints
        if obj is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return super().eventFilter(obj, event)

    def sizeHint(self):  # noqa: N802 (Qt API)
        content = self.widget()
        if content is None:
            return super().sizeHint()
        hint = content.sizeHint().expandedTo(content.minimumSizeHint())  # the layout's floor can exceed its hint
        margins = self.contentsMargins()
        return hint.grownBy(margins) + QSize(self.verticalScrollBar().sizeHint().width(), 0)

    def minimumSizeHint(self):  # noqa: N802 (Qt API)
        # a dock squeezed by its neighbours still shows the chooser, the status and the tools
        content = self.widget()
        floor = super().minimumSizeHint()
        if content is None:
            return floor
        return QSize(floor.width(), max(floor.height(), min(content.sizeHint().height(), self._min_visible_height)))


class WrappingCheckBox(QWidget):
    """A checkbox whose text wraps onto more lines (QCheckBox's cannot), so a long label never
    pushes the legend's solo button out of the dock. Clicking the text toggles it, as usual."""

    def __init__(self, text: str):
        super().__init__()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.box = QCheckBox()
        self.text_label = QLabel(text)
        self.text_label.setWordWrap(True)
        # a word longer than the dock is cut rather than widening the row
        self.text_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.text_label.setMinimumWidth(40)
        layout.addWidget(self.box)
        layout.addWidget(self.text_label, 1)
        self.toggled = self.box.toggled

    def text(self) -> str:
        return self.text_label.text()

    def click(self) -> None:
        self.box.click()

    def isChecked(self) -> bool:  # noqa: N802 (Qt naming)
        return self.box.isChecked()

    def setChecked(self, checked: bool) -> None:  # noqa: N802 (Qt naming)
        self.box.setChecked(checked)

    def mouseReleaseEvent(self, event):  # noqa: N802 (Qt API): a click on the text
        if event.button() == Qt.MouseButton.LeftButton:
            self.box.click()
        super().mouseReleaseEvent(event)


def ask(parent, title: str, text: str, choices: tuple[str, ...]) -> str:
    """A modal question with one button per choice; returns the chosen button's text (the last
    choice when the box is closed otherwise)."""
    box = QMessageBox(parent)
    box.setWindowTitle(title)
    box.setText(text)
    buttons = {box.addButton(choice, QMessageBox.ButtonRole.AcceptRole): choice for choice in choices}
    box.exec()
    return buttons.get(box.clickedButton(), choices[-1])
