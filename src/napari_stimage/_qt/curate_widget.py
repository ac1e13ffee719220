"""Curation dock widget: select spots, assign labels, undo, save. A thin view over `editing.py`.

The layer chooser lists spots layers (Points) and bin-labels layers (VisiumHD rasters).

Spots layers: selection tools act on the chosen layer (they make it the active layer):
- Click: napari's own select mode (click, shift-click, drag a box).
- Rectangle / Lasso / Brush: drag on the canvas; hold Shift to add to the selection,
  Alt to remove from it. The brush radius is in image pixels.
Keys on the spots layer: 1-9 give the selection the first nine labels of `editor.categories()`
(an order fixed for the session: a new label is appended, never shifts the keys), 0 / Backspace /
Delete clear its labels (they never delete spots), Ctrl+Z undo, Ctrl+Shift+Z redo, L / B / R pick
Lasso / Brush / Rectangle, Escape = Pan/zoom and select none (napari's P, S, Z, A stay).
The widget follows the layer selected in the layer list when it is a spots or bin-labels layer.

Bin-labels layers are painted with napari's own Labels tools: choosing a label (Assign / Enter,
the drop-down or keys 1-9) makes it the brush's label and switches to paint mode; Clear (or 0 /
Backspace / Delete) picks the eraser. Brush = napari's paint brush, Lasso = napari's polygon
tool, Pan/zoom = pan. Every stroke is an edit of the same `LabelEditor` (see `bins.py`), so
undo, saving, the unsaved flag, the close guard and recovery work as for spots. The widget
watches the viewer (`bins.watch_viewer`), so bin layers added by napari's reader are editable
from the moment they are inserted.
"""

from __future__ import annotations

import contextlib
import weakref
from pathlib import Path

import numpy as np
from qtpy.QtCore import QEvent, QObject, QSize, Qt, QTimer
from qtpy.QtGui import QFontMetrics
from qtpy.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from ..core.selection import SpotIndex, points_in_polygon, points_in_rectangle
from ..curation.editor import LabelEditor, near_duplicate, normalise_label
from ..io.stimage.annotation import AnnotationChangedOnDisk, AnnotationDeletedOnDisk
from ..viewer import bins
from ..viewer.editors import editor_for_layer
from ..viewer.following import HELPER_KEY, LayerFollower, unwrap
from ..viewer.metadata import slide_of

TOOLS = ("pan", "click", "rectangle", "lasso", "brush")
TOOL_TITLES = {"pan": "Pan/zoom", "click": "Click", "rectangle": "Rectangle", "lasso": "Lasso", "brush": "Brush"}
CLEAR_KEYS = ("0", "Backspace", "Delete")
# Keys on the spots layer that pick a tool; napari's own Points keys (P, S, Z, A, V) stay as they are.
TOOL_KEYS = {"lasso": "L", "brush": "B", "rectangle": "R"}
PAN_KEY = "Escape"  # back to pan/zoom and select none
STROKE_LAYER_NAME = "selection stroke"
# the outline of a rectangle or lasso: magenta (no label colour is pink or purple) and as many
# screen pixels wide at every zoom; the brush shows its footprint, translucent, in image pixels
STROKE_COLOR = "#ff00ff"
STROKE_PIXELS = 3.0
BRUSH_COLOR = "#ff00ff59"  # alpha 0.35: the spots under the footprint stay visible
TOOL_TIPS = {
    "pan": "Pan and zoom the view (Esc on the spots layer; also selects none)",
    "click": "Click a spot; Shift-click adds; drag a box (napari's select mode, key S)",
    "rectangle": "Drag a rectangle; Shift adds to the selection, Alt removes (key R)",
    "lasso": "Draw a free-hand outline; Shift adds to the selection, Alt removes (key L)",
    "brush": "Paint over spots (radius below); Shift adds to the selection, Alt removes (key B)",
}
# On a bin-labels layer the tools are napari's own Labels modes; the others do not apply.
BIN_TOOL_MODES = {"pan": "pan_zoom", "brush": "paint", "lasso": "polygon"}
BIN_TOOL_TIPS = {
    "pan": "Pan and zoom the view",
    "brush": "Paint bins with the chosen label (napari's brush; its size is in the layer controls)",
    "lasso": "Click an outline, double-click to close it: its bins get the chosen label (napari's polygon)",
}
PAINTING_MODES = ("paint", "polygon", "fill")
MIN_VISIBLE_HEIGHT = 560  # px of the dock kept visible when the window is short; the rest scrolls


RECOVERY_WAIT_MS = 100  # while napari shows a progress bar (the slide is still being added), ask later
RECOVERY_WAIT_TICKS = 300  # but never wait more than 30 s for a bar that is never closed
_RECOVERY_QUEUED: weakref.WeakSet = weakref.WeakSet()  # editors whose recovery was offered: once each


def _napari_progress_open() -> bool:
    """napari shows a progress bar (viewer.open adds a slide's layers inside one).

    Private use, guarded: napari keeps its open bars in the class attribute
    `progress._all_instances` (napari 0.4-0.9); without it, no bar is taken as open.
    """
    from napari.utils import progress

    return bool(len(getattr(progress, "_all_instances", ())))


class _ElidedLabel(QLabel):
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


class _ScrollArea(QScrollArea):
    """Scrolls its content when the dock is too small, but asks the dock for the content's full size.

    Squeezed by its neighbours, it keeps `min_visible_height` px of the content visible.
    """

    def __init__(self, min_visible_height: int = MIN_VISIBLE_HEIGHT):
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


class _CloseGuard(QObject):
    """Asks before the main window closes while the widget has unsaved edits."""

    def __init__(self, widget: CurateWidget):
        super().__init__(widget)
        self._widget = widget

    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.Close and not self._widget.confirm_discard_all():
            event.ignore()
            return True
        return False


class CurateWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.layer = None
        self.editor: LabelEditor | None = None
        self.sync: bins.LabelsLayerSync | None = None  # set while the chosen layer is a bin-labels layer
        self.tool = "pan"
        self._save_worker = None
        self._bound_keys: list = []
        self._spot_index: SpotIndex | None = None
        self._stroke = None  # Shapes layer showing the lasso / rectangle / brush while it is drawn
        self._closing = False  # the viewer is closing and the user already answered for all layers
        self._close_guard = _CloseGuard(self)
        self._guarded_windows = weakref.WeakSet()  # main windows whose close the guard watches (weak: no leak)
        self._recovery_pending: list[weakref.ref] = []  # editors whose recovery is asked once the slide is open
        self._recovery_wait = 0
        self._napari_help = ""  # the curated layer's own status-bar hint, given back when it is left
        self._build_ui()

        bins.watch_viewer(self.viewer)  # before the follower's inserted handler: layers arrive bound
        self.follower = LayerFollower(self.viewer, self._is_target, self._bind, self._refresh_chooser)
        self.viewer.layers.events.removing.connect(self._on_layer_removing)
        self.follower.refresh()

    def showEvent(self, event):  # noqa: N802 (Qt API)
        """Once docked and shown, guard the main window's close (no private napari attribute)."""
        super().showEvent(event)
        window = self.window()
        if isinstance(window, QMainWindow) and window not in self._guarded_windows:
            window.installEventFilter(self._close_guard)
            self._guarded_windows.add(window)

    # -- ui --------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        # The content scrolls instead of being squeezed when the dock is short or narrow.
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.scroll_area = _ScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        content = QWidget()
        self.scroll_area.setWidget(content)
        outer.addWidget(self.scroll_area)
        root = QVBoxLayout(content)

        self.layer_combo = QComboBox()
        self.layer_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.layer_combo.setMinimumContentsLength(12)  # long slide names must not widen the dock
        self.layer_combo.currentIndexChanged.connect(self._on_layer_chosen)
        chooser_title = QLabel("Spots or bin-labels layer")
        chooser_title.setToolTip("Follows the layer selected in the layer list")
        root.addWidget(chooser_title)
        root.addWidget(self.layer_combo)
        # long slide names are cut in the middle, so "saved" / "● unsaved changes" stays visible
        self.status = _ElidedLabel("no slide", elide=Qt.TextElideMode.ElideMiddle)
        root.addWidget(self.status)

        tools = self.tools_box = QGroupBox("Select spots")
        box = QVBoxLayout(tools)
        grid = QGridLayout()
        self.tool_group = QButtonGroup(self)
        self.tool_buttons = {}
        for k, tool in enumerate(TOOLS):
            button = QPushButton(TOOL_TITLES[tool])
            button.setToolTip(TOOL_TIPS[tool])
            button.setCheckable(True)
            button.clicked.connect(lambda _=False, t=tool: self.set_tool(t))
            self.tool_group.addButton(button)
            self.tool_buttons[tool] = button
            grid.addWidget(button, k // 3, k % 3)
        self.tool_buttons["pan"].setChecked(True)
        box.addLayout(grid)
        radius_row = QHBoxLayout()
        self.brush_radius = QDoubleSpinBox()
        self.brush_radius.setRange(0.5, 100000.0)
        self.brush_radius.setDecimals(1)
        self.brush_radius.setSuffix(" px")
        self.brush_radius.setToolTip("Brush radius in image pixels")
        radius_row.addWidget(QLabel("Brush radius"))
        radius_row.addWidget(self.brush_radius, 1)
        box.addLayout(radius_row)
        label_row = QHBoxLayout()
        self.select_label_combo = QComboBox()
        self.select_label_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.select_label_combo.setMinimumContentsLength(8)
        self.select_label_button = QPushButton("Select label")
        self.select_label_button.setToolTip("Select every spot with the label chosen on the left")
        self.select_label_button.clicked.connect(self.select_label)
        label_row.addWidget(self.select_label_combo, 1)
        label_row.addWidget(self.select_label_button)
        box.addLayout(label_row)
        selection_row = QHBoxLayout()
        self.invert_button = QPushButton("Invert")
        self.invert_button.clicked.connect(self.invert_selection)
        self.deselect_button = QPushButton("Select none")
        self.deselect_button.setToolTip("Select no spot (Esc on the spots layer)")
        self.deselect_button.clicked.connect(self.select_none)
        self.selection_count = QLabel("0 selected")
        selection_row.addWidget(self.invert_button)
        selection_row.addWidget(self.deselect_button)
        selection_row.addWidget(self.selection_count, 1)
        box.addLayout(selection_row)
        root.addWidget(tools)

        assign = self.assign_box = QGroupBox("Label the selection")
        assign_layout = QVBoxLayout(assign)
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
        self.hotkey_help = _ElidedLabel()
        assign_layout.addWidget(self.hotkey_help)
        root.addWidget(assign)

        history = QHBoxLayout()
        self.undo_button = QPushButton("Undo")
        self.undo_button.clicked.connect(self.undo)
        self.redo_button = QPushButton("Redo")
        self.redo_button.clicked.connect(self.redo)
        history.addWidget(self.undo_button)
        history.addWidget(self.redo_button)
        root.addLayout(history)

        files = QGridLayout()
        self.save_button = QPushButton("Save")
        self.save_button.clicked.connect(lambda: self.save())
        self.save_as_button = QPushButton("Save as…")
        self.save_as_button.clicked.connect(self.save_as)
        self.import_button = QPushButton("Import Loupe CSV…")
        self.import_button.setToolTip("Import a Loupe Browser category CSV (Barcode,<Category>) as labels")
        self.import_button.clicked.connect(self.import_loupe_dialog)
        self.export_button = QPushButton("Export Loupe CSV…")
        self.export_button.setToolTip("Export the labels as a Loupe Browser category CSV")
        self.export_button.clicked.connect(self.export_loupe_dialog)
        files.addWidget(self.save_button, 0, 0)
        files.addWidget(self.save_as_button, 0, 1)
        files.addWidget(self.import_button, 1, 0)
        files.addWidget(self.export_button, 1, 1)
        root.addLayout(files)
        root.addStretch(1)
        self._update_state()

    # -- layers ----------------------------------------------------------------------------------
    @staticmethod
    def _is_target(layer) -> bool:
        """Spots layers (Points) and bin-labels layers (Labels) of slides."""
        from napari.layers import Points

        return (isinstance(layer, Points) and slide_of(layer) is not None) or bins.is_bin_labels_layer(layer)

    def _target_layers(self):
        """Spots and bin-labels layers of slides, unwrapped, in layer order."""
        return self.follower.candidates()

    def _refresh_chooser(self) -> None:
        layers = self._target_layers()
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        for layer in layers:
            self.layer_combo.addItem(layer.name)
        self.layer_combo.blockSignals(False)
        self._show_in_chooser(self.layer)

    def _show_in_chooser(self, layer) -> None:
        layers = self._target_layers()
        index = next((k for k, other in enumerate(layers) if other is layer), -1)
        if index >= 0 and self.layer_combo.currentIndex() != index:
            self.layer_combo.blockSignals(True)
            self.layer_combo.setCurrentIndex(index)
            self.layer_combo.blockSignals(False)

    def _on_layer_chosen(self, index: int) -> None:
        """A layer picked in the chooser is also selected in the layer list: the two never disagree."""
        layers = self._target_layers()
        if 0 <= index < len(layers):
            self.follower.follow(layers[index])
            self._activate(layers[index])

    def _activate(self, layer) -> None:
        """Select `layer` in the layer list (drags and keys go to the active layer), unfollowed."""
        if layer is not None and self.follower.active() is not layer:
            with self.follower.quiet():
                self.viewer.layers.selection.active = layer

    def _bind(self, layer) -> None:
        """Work on `layer` (unwrapped; the follower calls this when the followed layer changes)."""
        self._remove_stroke_layer()
        if self.layer is not None:
            self._unbind_keys()
            self._restore_napari_help()
            if self.sync is not None:
                self.layer.events.selected_label.disconnect(self._on_selected_label)
            else:
                if self._on_layer_drag in self.layer.mouse_drag_callbacks:
                    self.layer.mouse_drag_callbacks.remove(self._on_layer_drag)
                self.layer.selected_data.events.items_changed.disconnect(self._update_selection_count)
        if self.editor is not None:
            self.editor.remove_view(self._on_labels_changed)
        self.layer, self.editor, self.sync = layer, None, None
        self._spot_index = None
        if layer is not None:
            if bins.is_bin_labels_layer(layer):
                self.sync = bins.bind_bin_labels(layer)  # already bound by the watcher: returns its link
                self.editor = self.sync.editor
                layer.events.selected_label.connect(self._on_selected_label)
            else:
                self.editor = editor_for_layer(layer)
                layer.mouse_drag_callbacks.append(self._on_layer_drag)
                layer.selected_data.events.items_changed.connect(self._update_selection_count)
                radii = slide_of(layer).spots["r"].to_numpy()
                self.brush_radius.setValue(float(np.median(radii)) * 1.5 if len(radii) else 10.0)
            self.editor.add_view(self._on_labels_changed)
            self._bind_keys(layer)
            # after napari's own handler, which rewrites the layer's help on each mode change
            layer.events.mode.connect(self._show_help, position="last")
            self._queue_recovery_offer(self.editor)
        self._show_tools_for_target()
        self._on_labels_changed(None)
        self._show_in_chooser(layer)
        if layer is not None and not self.is_bins and self.tool != "pan":
            self.set_tool(self.tool)  # the chosen tool carries over to the newly curated spots layer
        self._show_help()

    @property
    def is_bins(self) -> bool:
        """The chosen layer is a bin-labels raster (painted), not spots (selected)."""
        return self.sync is not None

    def _show_tools_for_target(self) -> None:
        is_bins = self.is_bins
        self.tools_box.setTitle("Paint bins" if is_bins else "Select spots")
        self.assign_box.setTitle("Label to paint with" if is_bins else "Label the selection")
        self.assign_button.setText("Paint with" if is_bins else "Assign")
        self.clear_button.setToolTip(
            "Erase: painted bins become unlabelled (keys 0, Backspace, Delete)" if is_bins
            else "Make the selected spots unlabelled (keys 0, Backspace, Delete)"
        )
        for tool, button in self.tool_buttons.items():
            button.setEnabled(not is_bins or tool in BIN_TOOL_MODES)
            button.setToolTip((BIN_TOOL_TIPS if is_bins else TOOL_TIPS).get(tool, "Not for bins: paint them instead"))
        self.brush_radius.setEnabled(not is_bins)
        for widget in (self.select_label_combo, self.select_label_button, self.invert_button, self.deselect_button):
            widget.setVisible(not is_bins)
        if is_bins:
            self.selection_count.setText("")
        else:
            self._update_selection_count()
        if self.tool not in BIN_TOOL_MODES and is_bins:
            self.tool = "pan"
            self.tool_buttons["pan"].setChecked(True)

    def _bind_keys(self, layer) -> None:
        def hotkey(n):
            return lambda _layer: self.assign_hotkey(n)

        def tool_key(tool):
            return lambda _layer: self.set_tool(tool)

        bindings = {str(n): hotkey(n) for n in range(1, 10)}
        bindings.update({key: (lambda _layer: self.assign_to_selection(None)) for key in CLEAR_KEYS})
        if not self.is_bins:  # a bound bin layer already sends Ctrl+Z to the editor (bins.LabelsLayerSync.bind)
            bindings["Control-Z"] = lambda _layer: self.undo()
            bindings["Control-Shift-Z"] = lambda _layer: self.redo()
            bindings.update({key: tool_key(tool) for tool, key in TOOL_KEYS.items()})
            bindings[PAN_KEY] = lambda _layer: self.pan_and_select_none()
        for key, func in bindings.items():
            layer.bind_key(key, func, overwrite=True)
        self._bound_keys = list(bindings)

    # -- status bar hint -----------------------------------------------------------------------
    def _help_text(self) -> str | None:
        """The status bar's hint for the curated layer in its current mode; None for a napari mode
        picked in the layer controls (napari's own hint is right there)."""
        layer = self.layer
        if self.is_bins:
            tool = next((t for t, mode in BIN_TOOL_MODES.items() if mode == layer.mode), None)
            if layer.mode == "erase":
                text = "Eraser: painted bins become unlabelled"
            elif tool is None:
                return None
            else:
                text = f"{TOOL_TITLES[tool]}: {BIN_TOOL_TIPS[tool]}"
            return f"{text} · keys 1-9 paint with the labels of Curate labels, 0 eraser, Ctrl+Z undo"
        if layer.mode == "select":
            tool = "click"
        elif layer.mode == "pan_zoom":
            tool = self.tool if self.tool != "click" else "pan"
        else:
            return None
        keys = ", ".join(f"{key} {TOOL_TITLES[t]}" for t, key in TOOL_KEYS.items())
        return (f"{TOOL_TITLES[tool]}: {TOOL_TIPS[tool]} · keys 1-9 assign the labels of Curate labels, "
                f"0 clears, {keys}, Esc Pan/zoom, Ctrl+Z undo")

    def _show_help(self, event=None) -> None:
        """Our keys in the status bar: napari's Points/Labels hint names keys 1-9 for its own modes,
        which the widget rebinds to labels on the curated layer."""
        layer = self.layer
        if layer is None:
            return
        text = self._help_text()
        if text is None:
            return
        if layer.help != text:
            self._napari_help = layer.help
            layer.help = text
        if self.follower.active() is layer:
            self.viewer.help = text

    def _restore_napari_help(self) -> None:
        layer = self.layer
        layer.events.mode.disconnect(self._show_help)
        if layer.help == self._help_text():
            layer.help = self._napari_help
            if self.follower.active() is layer:
                self.viewer.help = layer.help

    def _unbind_keys(self) -> None:
        for key in self._bound_keys:
            with contextlib.suppress(KeyError, ValueError, TypeError):
                self.layer.bind_key(key, None)
        self._bound_keys = []

    # -- selection -------------------------------------------------------------------------------
    @property
    def selection(self) -> np.ndarray:
        if self.layer is None or self.is_bins:
            return np.empty(0, np.int64)
        return np.array(sorted(self.layer.selected_data), dtype=np.int64)

    def set_selection(self, indices, mode: str = "replace") -> None:
        if self.layer is None or self.is_bins:
            return
        indices = set(np.asarray(indices, dtype=np.int64).tolist())
        current = set(self.layer.selected_data)
        if mode == "add":
            indices = current | indices
        elif mode == "remove":
            indices = current - indices
        self.layer.selected_data = indices
        self._update_selection_count()

    def select_none(self) -> None:
        self.set_selection(np.empty(0, np.int64))

    def pan_and_select_none(self) -> None:
        """Escape on the spots layer: leave the drawing tool and drop the selection."""
        self.set_tool("pan")
        self.select_none()

    def select_label(self) -> None:
        if self.editor is None or self.is_bins:
            return
        index = self.select_label_combo.currentIndex()
        label = self.select_label_combo.itemData(index)
        self.set_selection(self._without_hidden(self.editor.indices_with_label(label)))

    def invert_selection(self) -> None:
        if self.layer is None or self.is_bins:
            return
        mask = np.ones(len(self.layer.data), dtype=bool)
        mask[self.selection] = False
        self.set_selection(self._without_hidden(np.flatnonzero(mask)))

    def set_tool(self, tool: str) -> None:
        """Choose a tool. Its layer changes (re-selecting the curated layer, adding or removing the
        stroke layer) happen unfollowed, so they can never rebind the widget and re-enter here."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; one of {TOOLS}")
        layer = self.layer
        if self.is_bins:
            if tool not in BIN_TOOL_MODES:
                self.tool_buttons[self.tool].setChecked(True)
                self._notify(f"{TOOL_TITLES[tool]} selects spots; paint bins with Brush or Lasso")
                return
            self.tool = tool
            self.tool_buttons[tool].setChecked(True)
            self._activate(layer)
            layer.mode = BIN_TOOL_MODES[tool]
            self._show_help()
            return
        self.tool = tool
        self.tool_buttons[tool].setChecked(True)
        if layer is None:
            return
        with self.follower.quiet():
            self._activate(layer)
            if tool in ("pan", "click"):
                self._remove_stroke_layer()  # the helper layer lives only while a drawing tool is on
            if tool == "click":
                layer.mode = "select"
            else:
                layer.mode = "pan_zoom"
                # drawing tools drag on the canvas: the camera must not pan meanwhile
                layer.mouse_pan = tool == "pan"
                if tool != "pan":
                    self._stroke_layer()
        self._show_help()

    def _data_point(self, event) -> np.ndarray:
        return np.asarray(self.layer.world_to_data(event.position), dtype=np.float64)[-2:]

    def _on_layer_drag(self, layer, event):
        """Drag callback of the spots layer: rectangle, lasso or brush selection."""
        tool = self.tool
        if tool not in ("rectangle", "lasso", "brush") or layer is not self.layer or layer.mode != "pan_zoom":
            return  # another mode picked in the layer controls wins over the drawing tool
        modifiers = {str(getattr(m, "name", m)).lower() for m in (event.modifiers or ())}
        mode = "add" if "shift" in modifiers else "remove" if "alt" in modifiers else "replace"
        path = [self._data_point(event)]
        yield
        while event.type == "mouse_move":
            point = self._data_point(event)
            if np.any(point != path[-1]):
                path.append(point)
                self._draw_stroke(tool, path)
            yield
        path.append(self._data_point(event))  # the release position
        self._clear_stroke()  # the outline is gone once the selection is made
        positions = np.asarray(layer.data)[:, -2:]
        if tool == "rectangle":
            picked = points_in_rectangle(positions, path[0], path[-1])
        elif tool == "lasso":
            picked = points_in_polygon(positions, np.asarray(path))
        else:
            if self._spot_index is None or self._spot_index.positions.shape != positions.shape:
                self._spot_index = SpotIndex(positions)  # built on the first stroke, reused after
            picked = self._spot_index.near_path(np.asarray(path), self.brush_radius.value())
        self.set_selection(self._without_hidden(picked), mode)

    def _without_hidden(self, indices) -> np.ndarray:
        """`indices` less the spots whose label is hidden in the legend, saying how many were skipped."""
        shown, skipped = self.editor.split_hidden(indices)
        if skipped:
            self._notify(f"{skipped} hidden spot(s) skipped: show their label in the legend to select them")
        return shown

    def _stroke_layer(self):
        """A Shapes layer that shows the shape while it is drawn.

        It exists only while a drawing tool is chosen (removed on Pan/zoom, Click or another
        layer) and is empty between drags, so it never hides or outlasts a selection. It is a
        helper layer (`HELPER_KEY`): no widget follows it.
        """
        stroke = self._stroke
        if stroke is None or stroke not in self.viewer.layers:
            with self.follower.quiet():
                stroke = unwrap(self.viewer.add_shapes(
                    name=STROKE_LAYER_NAME,
                    edge_color=STROKE_COLOR,
                    face_color="transparent",
                    scale=self.layer.scale,
                    translate=self.layer.translate,
                    metadata={HELPER_KEY: True},
                ))
                self._stroke = stroke
                self._activate(self.layer)  # drags go to the active layer
        return stroke

    def _clear_stroke(self) -> None:
        stroke = self._stroke
        if stroke is not None and stroke in self.viewer.layers and len(stroke.data):
            stroke.data = []

    def _remove_stroke_layer(self) -> None:
        stroke, self._stroke = self._stroke, None
        if stroke is None or stroke not in self.viewer.layers:
            return
        with self.follower.quiet():
            was_active = self.follower.active() is stroke
            self.viewer.layers.remove(stroke)
            if was_active and self.layer is not None and self.layer in self.viewer.layers:
                self._activate(self.layer)  # not whichever neighbour napari picks

    def _draw_stroke(self, tool: str, path: list) -> None:
        if self._stroke is None or self._stroke not in self.viewer.layers:
            return
        stroke = self._stroke
        points = np.asarray(path)
        with stroke.events.blocker_all():
            stroke.data = []
        # data units per screen pixel: the camera zoom is screen pixels per world unit
        width = STROKE_PIXELS / (self.viewer.camera.zoom * abs(float(stroke.scale[-1])))
        if tool == "rectangle":
            (y0, x0), (y1, x1) = points[0], points[-1]
            stroke.add_rectangles([np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]])], edge_width=width,
                                  edge_color=STROKE_COLOR)
        elif tool == "lasso" and len(points) >= 3:
            stroke.add_polygons([points], edge_width=width, edge_color=STROKE_COLOR)
        elif tool == "brush":
            line = points if len(points) > 1 else np.vstack([points, points + 1e-3])
            stroke.add_paths([line], edge_width=2 * self.brush_radius.value(), edge_color=BRUSH_COLOR)
        stroke.refresh()

    # -- editing ---------------------------------------------------------------------------------
    def assign_to_selection(self, label) -> int:
        """Label the selected spots; returns how many changed.

        On a bin-labels layer there is no selection: the label becomes the brush's (see
        `paint_with`) and bins change when painted, so this returns 0.
        """
        if self.editor is None:
            return 0
        if self.is_bins:
            self.paint_with(label)
            return 0
        if self.selection.size == 0:
            self._notify("select spots first")
            return 0
        selection = self._without_hidden(self.selection)  # e.g. clicked before their label was hidden
        if selection.size == 0:
            return 0
        try:
            return self.editor.assign(selection, label)
        except ValueError as exc:
            self._notify(str(exc))
            return 0

    def assign_typed_label(self) -> int:
        """Assign (or on bins, paint with) the typed label; a new one loses surrounding spaces.

        A label that equals a known one except for case or inner spacing is still taken as
        typed, with a warning, since a near-twin category is usually a typo.
        """
        text = self.label_input.currentText()
        if not text.strip():
            self._notify("type or pick a label (use Clear to unlabel)")
            return 0
        if self.editor is not None:
            known = self._known_labels()
            if text not in known:
                text = text.strip()
                self.label_input.setEditText(text)
            twin = near_duplicate(text, known)
            if twin is not None:
                existing, how = twin
                self._notify(f"‘{text}’ differs from existing ‘{existing}’ only by {how}")
        return self.assign_to_selection(text)

    def _known_labels(self) -> list[str]:
        """The labels a typed label is compared with: the editor's, plus bin codes already named."""
        known = self.editor.categories() if self.editor is not None else []
        if self.sync is not None:
            known += [label for label in self.sync.categories if label not in known]
        return known

    def assign_hotkey(self, number: int) -> int:
        if self.editor is None:
            return 0
        categories = self.editor.categories()
        if not 1 <= number <= min(len(categories), 9):
            self._notify(f"no label on key {number}")
            return 0
        return self.assign_to_selection(categories[number - 1])

    def paint_with(self, label) -> int | None:
        """Bins: make `label` the brush's label (a new label gets the next code); None = eraser.

        Switches the layer to napari's paint mode unless it is already painting (brush, polygon
        or fill). Returns the label's code (0 for the eraser), None when the label is refused.
        """
        layer, sync = self.layer, self.sync
        if sync is None:
            return None
        try:
            label = normalise_label(label, self._known_labels())
        except ValueError as exc:
            self._notify(str(exc))
            return None
        self._activate(layer)
        if label is None:
            layer.mode = "erase"
            return 0
        code = sync.code_of(label)
        sync.refresh_colors()  # a new label shows in its palette colour from the first stroke
        layer.selected_label = code
        if layer.mode not in PAINTING_MODES:
            layer.mode = "paint"
            self.tool = "brush"
            self.tool_buttons["brush"].setChecked(True)
        return code

    def _on_label_picked(self, index: int) -> None:
        """A label chosen in the drop-down: on bins it is at once the brush's label."""
        if self.is_bins and index >= 0:
            self.paint_with(self.label_input.itemText(index))

    def _on_selected_label(self, event=None) -> None:
        """napari's label spinner changed: show the label that code paints."""
        sync, code = self.sync, int(self.layer.selected_label)
        if sync is None or code <= 0:
            return
        name = sync.categories[code - 1] if code <= len(sync.categories) else f"label {code}"
        if self.label_input.currentText() != name:
            self.label_input.setEditText(name)

    def undo(self) -> None:
        if self.editor is not None:
            self.editor.undo()

    def redo(self) -> None:
        if self.editor is not None:
            self.editor.redo()

    def _on_labels_changed(self, indices) -> None:
        categories = self.editor.categories() if self.editor is not None else []
        typed = self.label_input.currentText()
        self.label_input.blockSignals(True)
        self.label_input.clear()
        self.label_input.addItems(categories)
        self.label_input.setEditText(typed)
        self.label_input.blockSignals(False)
        chosen = self.select_label_combo.currentData()
        self.select_label_combo.clear()
        self.select_label_combo.addItem("(unlabelled)", None)
        for label in categories:
            self.select_label_combo.addItem(label, label)
        found = self.select_label_combo.findData(chosen)
        self.select_label_combo.setCurrentIndex(max(found, 0))
        self._show_key_hint(categories)
        self._update_state()

    def _show_key_hint(self, categories: list[str]) -> None:
        """One elided line "1 adipose tissue · 2 connective tissue · …"; every key in the tooltip."""
        keyed = list(enumerate(categories[:9], start=1))
        line = " · ".join(f"{k} {label}" for k, label in keyed)
        if self.is_bins:
            lines = [f"{k}: paint with {label}" for k, label in keyed] + ["0, Backspace, Delete: eraser"]
            empty = "Type a label and press Paint with, then paint bins"
        else:
            lines = [f"{k}: {label}" for k, label in keyed] + [
                "0, Backspace, Delete: clear the label",
                *(f"{key}: {TOOL_TITLES[tool]}" for tool, key in TOOL_KEYS.items()),
                "Esc: Pan/zoom and select none",
                "Ctrl+Z / Ctrl+Shift+Z: undo / redo",
            ]
            empty = "Keys 1-9 assign labels once the slide has some"
        tooltip = "Keys on the layer (the order stays fixed until the slide is reopened):\n" + "\n".join(lines)
        self.hotkey_help.set_full_text(line or empty, tooltip)

    def _update_selection_count(self, event=None) -> None:
        if self.is_bins:
            return
        n = len(self.layer.selected_data) if self.layer is not None else 0
        self.selection_count.setText(f"{n} selected")

    def _update_state(self) -> None:
        editor = self.editor
        enabled = editor is not None
        for widget in (self.assign_button, self.clear_button, self.save_button, self.save_as_button,
                       self.import_button, self.export_button, self.select_label_button, self.invert_button):
            widget.setEnabled(enabled)
        if self.sync is not None:  # no selection on bins
            self.select_label_button.setEnabled(False)
            self.invert_button.setEnabled(False)
        self.undo_button.setEnabled(enabled and editor.can_undo)
        self.redo_button.setEnabled(enabled and editor.can_redo)
        self.undo_button.setToolTip(f"Undo {editor.undo_description} (Ctrl+Z)" if enabled and editor.can_undo else "Ctrl+Z")
        self.redo_button.setToolTip(f"Redo {editor.redo_description} (Ctrl+Shift+Z)" if enabled and editor.can_redo else "Ctrl+Shift+Z")
        if editor is None:
            self.status.set_full_text("Open a slide to curate its labels")
            return
        target = editor.path.name if editor.path is not None else "(no file)"
        exists = editor.path is not None and editor.path.exists()
        if exists:
            text = f"{target}: {'● unsaved changes' if editor.dirty else 'saved'}"
        else:
            text = f"{target} (new file, not saved yet){': ● unsaved changes' if editor.dirty else ''}"
        self.status.set_full_text(text, f"{editor.path}\n{text}" if editor.path is not None else text)
        self.status.setStyleSheet("color: #e0a000;" if editor.dirty else "")

    # -- saving ----------------------------------------------------------------------------------
    def save(self, path: str | Path | None = None, force: bool = False, block: bool = False):
        """Save in the annotation format off the GUI thread; returns the worker (None when blocking)."""
        if self.editor is None:
            return None
        editor = self.editor
        job = editor.prepare_save(path, force=force)
        if block:
            self._save_done(editor, job, job.run())
            return None
        from napari.qt.threading import create_worker

        worker = create_worker(
            job.run,
            _start_thread=False,
            _connect={  # handing "errored" to the widget: a failed save is a question, not a crash
                "returned": lambda fingerprint: self._save_done(editor, job, fingerprint),
                "errored": lambda exc: self._save_failed(editor, job, exc),
            },
        )
        self._save_worker = worker
        self.save_button.setEnabled(False)
        worker.start()
        return worker

    def _save_done(self, editor, job, fingerprint) -> None:
        editor.finish_save(job, fingerprint)
        self._notify(f"saved {job.path}")
        self._update_state()

    def _save_failed(self, editor, job, exc) -> None:
        self._update_state()
        if isinstance(exc, AnnotationDeletedOnDisk):
            choice = self.ask(
                "File deleted on disk",
                f"{job.path} was deleted since it was loaded.\nCreate it again with your labels?",
                ("Re-create", "Save elsewhere…", "Cancel"),
            )
            if choice == "Save elsewhere…":
                self.save_as()
            elif choice == "Re-create":
                self.save(job.path, force=True)
            return
        if isinstance(exc, AnnotationChangedOnDisk):
            choice = self.ask(
                "File changed on disk",
                f"{job.path} was changed by something else since it was loaded.\n"
                "Save your labels to another file instead?",
                ("Save elsewhere…", "Overwrite", "Cancel"),
            )
            if choice == "Save elsewhere…":
                self.save_as()
            elif choice == "Overwrite":
                self.save(job.path, force=True)
            return
        self._notify(f"saving failed, the file on disk is unchanged: {exc}")

    def save_as(self):
        if self.editor is None:
            return None
        start = str(self.editor.path or "")
        path, _ = QFileDialog.getSaveFileName(self, "Save annotation as", start, "CSV (*.csv)")
        return self.save(path) if path else None

    def import_loupe_dialog(self) -> None:
        from ..io.loupe import import_loupe

        path, _ = QFileDialog.getOpenFileName(self, "Import Loupe category CSV", "", "CSV (*.csv)")
        if path and self.editor is not None:
            try:
                result = import_loupe(path, self.editor)
            except ValueError as exc:
                self._notify(str(exc))
                return
            extra = f"; {len(result.unmatched)} barcode(s) not on this slide" if result.unmatched else ""
            if result.empty:
                extra += f"; {len(result.empty)} row(s) with an empty category skipped (labels kept)"
            self._notify(f"imported {len(result.labels)} label(s) of '{result.category}' (one undo step){extra}")

    def export_loupe_dialog(self) -> None:
        from ..io.loupe import export_loupe

        path, _ = QFileDialog.getSaveFileName(self, "Export Loupe category CSV", "", "CSV (*.csv)")
        if path and self.editor is not None:
            try:
                n = export_loupe(self.editor, path)
            except ValueError as exc:  # SlideError: names the chosen file and why it cannot be written
                self._notify(str(exc))
                return
            self._notify(f"exported {n} labelled spot(s) to {path}")

    # -- recovery and closing --------------------------------------------------------------------
    def _queue_recovery_offer(self, editor) -> None:
        """Offer `editor`'s recovery once per session, after the slide is open.

        Binding happens while napari still adds the slide's layers inside its "Opening Files"
        progress, which runs the event loop: a question asked from there stacks up or hangs.
        """
        if editor in _RECOVERY_QUEUED:
            return
        _RECOVERY_QUEUED.add(editor)
        self._recovery_pending.append(weakref.ref(editor))
        self._recovery_wait = RECOVERY_WAIT_TICKS
        QTimer.singleShot(0, self._offer_queued_recovery)

    def _offer_queued_recovery(self) -> None:
        if _napari_progress_open() and self._recovery_wait > 0:
            self._recovery_wait -= 1
            QTimer.singleShot(RECOVERY_WAIT_MS, self._offer_queued_recovery)
            return
        pending, self._recovery_pending = self._recovery_pending, []
        for ref in pending:
            editor = ref()
            if editor is not None and self._editor_in_viewer(editor):
                self.offer_recovery(editor)

    def _editor_in_viewer(self, editor) -> bool:
        return any(editor_for_layer(layer, create=False) is editor for layer in self._target_layers())

    def offer_recovery(self, editor: LabelEditor | None = None) -> bool:
        """Ask whether to recover `editor`'s (default: the current one's) unsaved edits from disk."""
        editor = self.editor if editor is None else editor
        if editor is None or editor.dirty:
            return False
        recovery = editor.find_recovery()
        if recovery is None:
            return False
        choice = self.ask(
            "Recover unsaved labels?",
            f"Found {recovery.describe()}.\nRecover them (you can undo it), or discard them?",
            ("Recover", "Discard", "Later"),
        )
        if choice == "Recover":
            editor.apply_recovery(recovery)
            return True
        if choice == "Discard":
            editor.discard_recovery()
        return False

    def _on_layer_removing(self, event) -> None:
        layer = unwrap(self.viewer.layers[event.index]) if event.index is not None else None
        editor = editor_for_layer(layer, create=False) if layer is not None else None
        if editor is None or not editor.dirty or self._closing:
            return
        # napari cannot veto a removal: save now or leave the edits in the recovery file
        choice = self.ask(
            "Unsaved labels",
            f"{layer.name} has unsaved label edits. Save them before the layer closes?\n"
            "(Not saving keeps them in a recovery file offered when the slide is opened again.)",
            ("Save", "Don't save"),
        )
        if choice == "Save":
            self._save_blocking(editor)

    def _save_blocking(self, editor) -> bool:
        try:
            editor.save()
            return True
        except AnnotationChangedOnDisk:
            path, _ = QFileDialog.getSaveFileName(self, "The file changed on disk: save as", str(editor.path), "CSV (*.csv)")
            if path:
                editor.save(path)
                return True
        except (OSError, ValueError) as exc:
            self._notify(f"saving failed: {exc}")
        return False

    def confirm_discard_all(self) -> bool:
        """Before the viewer closes: True when closing may go on."""
        dirty = [layer for layer in self._target_layers() if (e := editor_for_layer(layer, create=False)) and e.dirty]
        if not dirty:
            self._closing = True
            return True
        names = ", ".join(layer.name for layer in dirty)
        choice = self.ask(
            "Unsaved labels",
            f"Unsaved label edits in {names}. Save before closing?",
            ("Save", "Don't save", "Cancel"),
        )
        if choice == "Cancel":
            return False
        if choice == "Save" and not all(self._save_blocking(editor_for_layer(layer)) for layer in dirty):
            return False
        self._closing = True
        return True

    def ask(self, title: str, text: str, choices: tuple[str, ...]) -> str:
        """A modal question; returns the chosen button's text (tests replace this method)."""
        box = QMessageBox(self)
        box.setWindowTitle(title)
        box.setText(text)
        buttons = {box.addButton(choice, QMessageBox.ButtonRole.AcceptRole): choice for choice in choices}
        box.exec()
        return buttons.get(box.clickedButton(), choices[-1])

    def _notify(self, message: str) -> None:
        from napari.utils.notifications import show_info

        show_info(message)
