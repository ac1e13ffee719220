"""Color spots' Label page: the label-column chooser and the legend (swatch, show/hide, solo)."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QColorDialog,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ... import coloring as col
from ..parts import WrappingCheckBox


class LegendPanel(QWidget):
    """One row per label of `host`'s layer; clicks go back to the host (it owns the colouring)."""

    def __init__(self, host):
        super().__init__()
        self.host = host
        self.legend_rows: dict[str, tuple[QPushButton, WrappingCheckBox, QToolButton]] = {}
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("Colour by"))
        self.column_combo = QComboBox()
        self.column_combo.activated.connect(lambda _: host.choose_label_column(self.column_combo.currentText()))
        row.addWidget(self.column_combo, 1)
        layout.addLayout(row)
        self.legend_box = QWidget()
        self.legend_layout = QVBoxLayout(self.legend_box)
        self.legend_layout.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.legend_box)
        layout.addWidget(scroll, 1)
        self.show_all_button = QPushButton("Show all")
        self.show_all_button.clicked.connect(host.show_all_labels)
        layout.addWidget(self.show_all_button)
        hint = QLabel("Click a swatch to change its colour, a label to hide/show its spots.")
        hint.setWordWrap(True)
        layout.addWidget(hint)

    def fill_columns(self, columns: list[str], wanted: str | None) -> None:
        self.column_combo.blockSignals(True)
        self.column_combo.clear()
        self.column_combo.addItems(columns)
        if wanted in columns:
            self.column_combo.setCurrentText(wanted)
        self.column_combo.blockSignals(False)

    def rebuild(self, entries, hidden: set[str], hotkeys: bool) -> None:
        """Rows for `entries` (none: an empty legend); `hotkeys`: keys 1-9 of Curate labels assign them."""
        while self.legend_layout.count():
            item = self.legend_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.legend_rows = {}
        if entries is None:
            return
        host = self.host
        for k, entry in enumerate(entries):
            row = QWidget()
            h = QHBoxLayout(row)
            h.setContentsMargins(0, 0, 0, 0)
            swatch = QPushButton()
            swatch.setFixedSize(22, 18)
            swatch.setStyleSheet(f"background-color: {entry.color}; border: 1px solid #444;")
            swatch.setToolTip("not painted: the tissue shows" if entry.color == col.NOT_DRAWN else "change colour")
            swatch.setEnabled(entry.color != col.NOT_DRAWN)
            swatch.clicked.connect(lambda _=False, lab=entry.label: self._pick_color(lab))
            key = f"[{k + 1}] " if hotkeys and k < 9 and not entry.unlabelled else ""
            check = WrappingCheckBox(f"{key}{entry.label}  ({entry.count})")
            if key:
                check.setToolTip(f"key {k + 1} on the spots layer assigns this label (Curate labels)")
            check.setChecked(entry.label not in hidden)
            check.toggled.connect(lambda on, lab=entry.label: host.set_label_visible(lab, on))
            solo = QToolButton()
            solo.setText("solo")
            solo.setToolTip("show only this label")
            solo.clicked.connect(lambda _=False, lab=entry.label: host.solo_label(lab))
            h.addWidget(swatch, 0, Qt.AlignmentFlag.AlignTop)
            h.addWidget(check, 1)
            h.addWidget(solo, 0, Qt.AlignmentFlag.AlignTop)
            self.legend_layout.addWidget(row)
            self.legend_rows[entry.label] = (swatch, check, solo)
        self.legend_layout.addStretch(1)

    def _pick_color(self, label: str) -> None:
        current = {e.label: e.color for e in self.host.legend_entries()}.get(label, "#ffffff")
        chosen = QColorDialog.getColor(QColor(current), self, f"Colour of {label}")
        if chosen.isValid():
            self.host.set_label_color(label, chosen.name())
