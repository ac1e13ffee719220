"""Curate labels' selection tools: Pan/zoom, Click, Rectangle, Lasso, Brush; select by label, invert, none.

On spots the drawing tools drag on the canvas (Shift adds, Alt removes) and show their shape on
a helper Shapes layer while it is drawn; on bins the tools are napari's own Labels modes.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from ...core.selection import SpotIndex, points_in_polygon, points_in_rectangle
from ...viewer.canvas import camera
from ...viewer.following import HELPER_KEY, unwrap
from ...viewer.targets import SPOT_TOOL_TIPS, TOOL_TITLES, TOOLS

STROKE_LAYER_NAME = "selection stroke"
# the outline of a rectangle or lasso: magenta (no label colour is pink or purple) and as many
# screen pixels wide at every zoom; the brush shows its footprint, translucent, in image pixels
STROKE_COLOR = "#ff00ff"
STROKE_PIXELS = 3.0
BRUSH_COLOR = "#ff00ff59"  # alpha 0.35: the spots under the footprint stay visible


class SelectionToolsPanel(QGroupBox):
    """The tools box of `CurateWidget` (`host`); it selects on the host's target."""

    def __init__(self, host):
        super().__init__("Select spots")
        self.host = host
        self.tool = "pan"
        self._spot_index: SpotIndex | None = None
        self._stroke = None  # Shapes layer showing the lasso / rectangle / brush while it is drawn
        box = QVBoxLayout(self)
        grid = QGridLayout()
        self.tool_group = QButtonGroup(self)
        self.tool_buttons = {}
        for k, tool in enumerate(TOOLS):
            button = QPushButton(TOOL_TITLES[tool])
            button.setToolTip(SPOT_TOOL_TIPS[tool])
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

    # -- following the target
    def attach(self, target) -> None:
        """Work on `target` (None: no layer): its tools, tips and selection."""
        self._spot_index = None
        if target is not None and target.selects:
            target.layer.mouse_drag_callbacks.append(self._on_layer_drag)
            target.layer.selected_data.events.items_changed.connect(self.update_selection_count)
            self.brush_radius.setValue(target.default_brush_radius())
        selects = target is None or target.selects
        self.setTitle(target.tools_title if target is not None else "Select spots")
        for tool, button in self.tool_buttons.items():
            applies = target is None or target.applies(tool)
            button.setEnabled(applies)
            tips = target.tool_tips if target is not None else SPOT_TOOL_TIPS
            button.setToolTip(tips.get(tool, "Not for bins: paint them instead"))
        self.brush_radius.setEnabled(selects)
        for widget in (self.select_label_combo, self.select_label_button, self.invert_button, self.deselect_button):
            widget.setVisible(selects)
        if selects:
            self.update_selection_count()
        else:
            self.selection_count.setText("")
        if target is not None and not target.applies(self.tool):
            self.tool = "pan"
            self.tool_buttons["pan"].setChecked(True)

    def detach(self, target) -> None:
        self.remove_stroke_layer()
        if target is not None and target.selects:
            layer = target.layer
            if self._on_layer_drag in layer.mouse_drag_callbacks:
                layer.mouse_drag_callbacks.remove(self._on_layer_drag)
            layer.selected_data.events.items_changed.disconnect(self.update_selection_count)

    def fill_labels(self, categories: list[str]) -> None:
        chosen = self.select_label_combo.currentData()
        self.select_label_combo.clear()
        self.select_label_combo.addItem("(unlabelled)", None)
        for label in categories:
            self.select_label_combo.addItem(label, label)
        found = self.select_label_combo.findData(chosen)
        self.select_label_combo.setCurrentIndex(max(found, 0))

    def set_enabled_for(self, target) -> None:
        enabled = target is not None and target.selects
        self.select_label_button.setEnabled(enabled)
        self.invert_button.setEnabled(enabled)

    def _spots(self):
        """The host's target when it is spots (a selection applies), else None."""
        target = self.host.target
        return target if target is not None and target.selects else None

    # -- selection
    @property
    def selection(self) -> np.ndarray:
        target = self._spots()
        return target.selection if target is not None else np.empty(0, np.int64)

    def set_selection(self, indices, mode: str = "replace") -> None:
        target = self._spots()
        if target is None:
            return
        target.set_selection(indices, mode)
        self.update_selection_count()

    def update_selection_count(self, event=None) -> None:
        target = self._spots()
        if self.host.target is not None and target is None:
            return
        n = len(target.layer.selected_data) if target is not None else 0
        self.selection_count.setText(f"{n} selected")

    def select_none(self) -> None:
        self.set_selection(np.empty(0, np.int64))

    def pan_and_select_none(self) -> None:
        """Escape on the spots layer: leave the drawing tool and drop the selection."""
        self.set_tool("pan")
        self.select_none()

    def select_label(self) -> None:
        if self._spots() is None:
            return
        label = self.select_label_combo.itemData(self.select_label_combo.currentIndex())
        self.set_selection(self.host.without_hidden(self.host.editor.indices_with_label(label)))

    def invert_selection(self) -> None:
        target = self._spots()
        if target is not None:
            self.set_selection(self.host.without_hidden(target.inverted_selection()))

    # -- tools
    def set_tool(self, tool: str) -> None:
        """Choose a tool. Its layer changes (re-selecting the curated layer, adding or removing the
        stroke layer) happen unfollowed, so they can never rebind the widget and re-enter here."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; one of {TOOLS}")
        host, target = self.host, self.host.target
        if target is not None and not target.selects:
            if not target.applies(tool):
                self.tool_buttons[self.tool].setChecked(True)
                host._notify(f"{TOOL_TITLES[tool]} selects spots; paint bins with Brush or Lasso")
                return
            self.show_tool(tool)
            host.activate(target.layer)
            target.use_tool(tool)
            host.show_help()
            return
        self.show_tool(tool)
        if target is None:
            return
        layer = target.layer
        with host.follower.quiet():
            host.activate(layer)
            if tool in ("pan", "click"):
                self.remove_stroke_layer()  # the helper layer lives only while a drawing tool is on
            if tool == "click":
                layer.mode = "select"
            else:
                layer.mode = "pan_zoom"
                # drawing tools drag on the canvas: the camera must not pan meanwhile
                layer.mouse_pan = tool == "pan"
                if tool != "pan":
                    self._stroke_layer()
        host.show_help()

    def show_tool(self, tool: str) -> None:
        self.tool = tool
        self.tool_buttons[tool].setChecked(True)

    def _data_point(self, layer, event) -> np.ndarray:
        return np.asarray(layer.world_to_data(event.position), dtype=np.float64)[-2:]

    def _on_layer_drag(self, layer, event):
        """Drag callback of the spots layer: rectangle, lasso or brush selection."""
        tool = self.tool
        if tool not in ("rectangle", "lasso", "brush") or layer is not self.host.layer or layer.mode != "pan_zoom":
            return  # another mode picked in the layer controls wins over the drawing tool
        modifiers = {str(getattr(m, "name", m)).lower() for m in (event.modifiers or ())}
        mode = "add" if "shift" in modifiers else "remove" if "alt" in modifiers else "replace"
        path = [self._data_point(layer, event)]
        yield
        while event.type == "mouse_move":
            point = self._data_point(layer, event)
            if np.any(point != path[-1]):
                path.append(point)
                self._draw_stroke(tool, path)
            yield
        path.append(self._data_point(layer, event))  # the release position
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
        self.set_selection(self.host.without_hidden(picked), mode)

    # -- the stroke layer
    def _stroke_layer(self):
        """A Shapes layer that shows the shape while it is drawn.

        It exists only while a drawing tool is chosen (removed on Pan/zoom, Click or another
        layer) and is empty between drags, so it never hides or outlasts a selection. It is a
        helper layer (`HELPER_KEY`): no widget follows it.
        """
        host, stroke = self.host, self._stroke
        if stroke is None or stroke not in host.viewer.layers:
            with host.follower.quiet():
                stroke = unwrap(host.viewer.add_shapes(
                    name=STROKE_LAYER_NAME,
                    edge_color=STROKE_COLOR,
                    face_color="transparent",
                    scale=host.layer.scale,
                    translate=host.layer.translate,
                    metadata={HELPER_KEY: True},
                ))
                self._stroke = stroke
                host.activate(host.layer)  # drags go to the active layer
        return stroke

    def _clear_stroke(self) -> None:
        stroke = self._stroke
        if stroke is not None and stroke in self.host.viewer.layers and len(stroke.data):
            stroke.data = []

    def remove_stroke_layer(self) -> None:
        host = self.host
        stroke, self._stroke = self._stroke, None
        if stroke is None or stroke not in host.viewer.layers:
            return
        with host.follower.quiet():
            was_active = host.follower.active() is stroke
            host.viewer.layers.remove(stroke)
            if was_active and host.layer is not None and host.layer in host.viewer.layers:
                host.activate(host.layer)  # not whichever neighbour napari picks

    def _draw_stroke(self, tool: str, path: list) -> None:
        viewer = self.host.viewer
        if self._stroke is None or self._stroke not in viewer.layers:
            return
        stroke = self._stroke
        points = np.asarray(path)
        with stroke.events.blocker_all():
            stroke.data = []
        # data units per screen pixel: the camera zoom is screen pixels per world unit
        width = STROKE_PIXELS / (camera(viewer).zoom * abs(float(stroke.scale[-1])))
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
