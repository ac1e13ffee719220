"""Curate labels' labelling: type or pick a label, Assign it to the selection, Clear, keys 1-9,
undo and redo. While napari paints bins (its Labels tools), the label goes to its brush."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QGroupBox, QHBoxLayout, QPushButton, QVBoxLayout, QWidget

from ...curation.editor import near_duplicate
from ...viewer.targets import KEYS_TITLE, SpotsTarget
from ..parts import ElidedLabel


class LabellingPanel(QWidget):
    """The label box and the undo/redo row of `CurateWidget` (`host`)."""

    def __init__(self, host):
        super().__init__()
        self.host = host
        self._brush_shown: tuple[str, int] | None = None  # napari's (mode, brush code) the box last showed
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.assign_box = QGroupBox("Label the selection")
        assign_layout = QVBoxLayout(self.assign_box)
        row = QHBoxLayout()
        self.label_input = QComboBox()
        self.label_input.setEditable(True)
        self.label_input.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.label_input.setMinimumContentsLength(5)
        self.label_input.setToolTip("Pick a label or type a new one (spaces, commas, * and quotes are fine)")
        # Enter must assign the text as typed: Qt's own Enter handling would first jump to an item
        # equal but for case ("tumour" -> "Tumour"), and insert the text as an item of its own
        self.label_input.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.label_input.completer().setCaseSensitivity(Qt.CaseSensitivity.CaseSensitive)
        self.label_input.lineEdit().returnPressed.connect(self.assign_typed_label)
        self.label_input.activated.connect(self._on_label_picked)
        self.assign_button = QPushButton("Assign")
        self.assign_button.clicked.connect(self.assign_typed_label)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Make the selected spots unlabelled (keys 0, Backspace, Delete)")
        self.clear_button.clicked.connect(lambda: self.assign_to_selection(None))
        row.addWidget(self.label_input, 1)
        row.addWidget(self.assign_button)
        row.addWidget(self.clear_button)
        assign_layout.addLayout(row)
        self.hotkey_help = ElidedLabel()
        assign_layout.addWidget(self.hotkey_help)
        layout.addWidget(self.assign_box)

        history = QHBoxLayout()
        self.undo_button = QPushButton("Undo")
        self.undo_button.clicked.connect(self.undo)
        self.redo_button = QPushButton("Redo")
        self.redo_button.clicked.connect(self.redo)
        history.addWidget(self.undo_button)
        history.addWidget(self.redo_button)
        layout.addLayout(history)

    def show_target(self, target) -> None:
        """Titles and tips for the target's elements."""
        kind = target or SpotsTarget  # with no layer, the spots wording
        self.assign_box.setTitle(kind.assign_title)
        self.assign_button.setText(kind.assign_text)
        self.clear_button.setToolTip(kind.clear_tip)

    def fill_labels(self, categories: list[str], target) -> None:
        typed = self.label_input.currentText()
        self.label_input.blockSignals(True)
        self.label_input.clear()
        self.label_input.addItems(categories)
        self.label_input.setEditText(typed)
        self.label_input.blockSignals(False)
        self._show_key_hint(categories, target)

    def _show_key_hint(self, categories: list[str], target) -> None:
        """One elided line "1 adipose tissue · 2 connective tissue · …"; every key in the tooltip."""
        keyed = list(enumerate(categories[:9], start=1))
        line = " · ".join(f"{k} {label}" for k, label in keyed)
        kind = target or SpotsTarget
        self.hotkey_help.set_full_text(line or kind.empty_key_hint, KEYS_TITLE + "\n".join(kind.key_lines(keyed)))

    def update_history(self, editor) -> None:
        enabled = editor is not None
        self.assign_button.setEnabled(enabled)
        self.clear_button.setEnabled(enabled)
        self.undo_button.setEnabled(enabled and editor.can_undo)
        self.redo_button.setEnabled(enabled and editor.can_redo)
        self.undo_button.setToolTip(f"Undo {editor.undo_description} (Ctrl+Z)" if enabled and editor.can_undo else "Ctrl+Z")
        self.redo_button.setToolTip(f"Redo {editor.redo_description} (Ctrl+Shift+Z)" if enabled and editor.can_redo else "Ctrl+Shift+Z")

    # -- editing
    def undo(self) -> None:
        if self.host.editor is not None:
            self.host.editor.undo()

    def redo(self) -> None:
        if self.host.editor is not None:
            self.host.editor.redo()

    def assign_to_selection(self, label) -> int:
        """Label the selected spots or bins; returns how many changed.

        While napari paints bins (paint, fill, polygon or erase in the layer controls), the label
        becomes the brush's instead (see `paint_with`) and bins change when painted: returns 0.
        """
        host, target = self.host, self.host.target
        if target is None:
            return 0
        if target.is_painting():
            self.paint_with(label)
            return 0
        if host.selection.size == 0:
            host._notify(f"select {target.element}s first")
            return 0
        selection = host.without_hidden(host.selection)  # e.g. clicked before their label was hidden
        if selection.size == 0:
            return 0
        try:
            return target.assign(selection, label)
        except ValueError as exc:
            host._notify(str(exc))
            return 0

    def assign_typed_label(self) -> int:
        """Assign (or on bins, paint with) the typed label; a new one loses surrounding spaces.

        A label that equals a known one except for case or inner spacing is still taken as
        typed, with a warning, since a near-twin category is usually a typo.
        """
        text = self.label_input.currentText()
        if not text.strip():
            self.host._notify("type or pick a label (use Clear to unlabel)")
            return 0
        target = self.host.target
        if target is not None:
            known = target.known_labels()
            if text not in known:
                text = text.strip()
                self.label_input.setEditText(text)
            twin = near_duplicate(text, known)
            if twin is not None:
                existing, how = twin
                self.host._notify(f"‘{text}’ differs from existing ‘{existing}’ only by {how}")
        return self.assign_to_selection(text)

    def assign_hotkey(self, number: int) -> int:
        editor = self.host.editor
        if editor is None:
            return 0
        categories = editor.categories()
        if not 1 <= number <= min(len(categories), 9):
            self.host._notify(f"no label on key {number}")
            return 0
        return self.assign_to_selection(categories[number - 1])

    def paint_with(self, label) -> int | None:
        """Bins: make `label` napari's brush label (a new label gets the next code); None = eraser.

        Switches the layer to napari's paint mode unless it is already painting (brush, polygon
        or fill). Returns the label's code (0 for the eraser), None when the label is refused.
        """
        host, target = self.host, self.host.target
        if target is None or not target.paints:
            return None
        try:
            label = target.normalise(label)
        except ValueError as exc:
            host._notify(str(exc))
            return None
        host.activate(target.layer)
        return target.paint_with(label)

    def _on_label_picked(self, index: int) -> None:
        """A label chosen in the drop-down while napari paints bins is at once the brush's label."""
        target = self.host.target
        if target is not None and target.is_painting() and index >= 0:
            self.paint_with(self.label_input.itemText(index))

    def on_selected_label(self, event=None) -> None:
        """napari's brush changed (bins): while napari paints, the box shows the label its brush paints.

        Only a real change counts (another code, or painting just began): napari re-emits the
        spinner's event on every colour refresh, e.g. after each Assign, and that must never put
        another label in the box than the one the next Assign gives. Outside painting the box is
        the user's alone.
        """
        target = self.host.target
        if target is None or not target.is_painting():
            self._brush_shown = None
            return
        brush = (target.layer.mode, int(target.layer.selected_label))
        if brush == self._brush_shown:
            return
        self._brush_shown = brush
        name = target.selected_label_name()
        if name is not None and self.label_input.currentText() != name:
            self.label_input.setEditText(name)
