"""Curate labels' selection tools: Pan/zoom, Click, Rectangle, Lasso, Brush; select by label, invert, none.

The drawing tools drag on the canvas (Shift adds, Alt removes) and show their shape on a helper
Shapes layer while it is drawn; which elements a shape picks is the target's business (spots by
their centres, bins on their raster). Spots show their selection as napari does; bins on the
target's helper layer.
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

from ...viewer.canvas import camera, restore_alt_drag_zoom, suspend_alt_drag_zoom
from ...viewer.following import HELPER_KEY, placed_like, raise_to_top, unwrap
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
        self._alt_zoom = None  # napari's Alt + drag zoom, off while a tool that drags is chosen
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
        tips = target.tool_tips if target is not None else SPOT_TOOL_TIPS
        self.setTitle(target.tools_title if target is not None else "Select spots")
        for tool, button in self.tool_buttons.items():
            button.setToolTip(tips[tool])
        self.deselect_button.setToolTip(f"Select no {target.element if target is not None else 'spot'} (Esc on the layer)")
        if target is not None:
            target.layer.mouse_drag_callbacks.append(self._on_layer_drag)
            target.connect_selection(self._on_selection_changed)
            self.brush_radius.setValue(target.default_brush_radius())
            self._show_selection(target)
        self.update_selection_count()

    def detach(self, target) -> None:
        self.remove_stroke_layer()
        if target is None:
            return
        layer = target.layer
        if self._on_layer_drag in layer.mouse_drag_callbacks:
            layer.mouse_drag_callbacks.remove(self._on_layer_drag)
        target.disconnect_selection(self._on_selection_changed)
        with self.host.follower.quiet():
            target.hide_selection(self.host.viewer)

    def fill_labels(self, categories: list[str]) -> None:
        chosen = self.select_label_combo.currentData()
        self.select_label_combo.clear()
        self.select_label_combo.addItem("(unlabelled)", None)
        for label in categories:
            self.select_label_combo.addItem(label, label)
        found = self.select_label_combo.findData(chosen)
        self.select_label_combo.setCurrentIndex(max(found, 0))

    def set_enabled_for(self, target) -> None:
        enabled = target is not None
        self.select_label_button.setEnabled(enabled)
        self.invert_button.setEnabled(enabled)

    # -- selection
    @property
    def selection(self) -> np.ndarray:
        target = self.host.target
        return target.selection if target is not None else np.empty(0, np.int64)

    def set_selection(self, indices, mode: str = "replace") -> None:
        """Select on the target; its selection event updates the count and the outline."""
        target = self.host.target
        if target is not None:
            target.set_selection(indices, mode)

    def _on_selection_changed(self, event=None) -> None:
        self.update_selection_count()
        target = self.host.target
        if target is not None:
            self._show_selection(target)

    def _show_selection(self, target) -> None:
        """Draw the selection where napari does not (bins), keeping the curated layer active."""
        host = self.host
        with host.follower.quiet():
            target.draw_selection(host.viewer)
            host.activate(target.layer)

    def update_selection_count(self, event=None) -> None:
        target = self.host.target
        self.selection_count.setText(f"{len(target.selection) if target is not None else 0} selected")

    def select_none(self) -> None:
        self.set_selection(np.empty(0, np.int64))

    def pan_and_select_none(self) -> None:
        """Escape on the curated layer: leave the drawing tool and drop the selection."""
        self.set_tool("pan")
        self.select_none()

    def select_label(self) -> None:
        if self.host.target is None:
            return
        label = self.select_label_combo.itemData(self.select_label_combo.currentIndex())
        self.set_selection(self.host.without_hidden(self.host.editor.indices_with_label(label)))

    def invert_selection(self) -> None:
        target = self.host.target
        if target is not None:
            self.set_selection(self.host.without_hidden(target.inverted_selection()))

    # -- tools
    def set_tool(self, tool: str) -> None:
        """Choose a tool. Its layer changes (re-selecting the curated layer, adding or removing the
        stroke layer) happen unfollowed, so they can never rebind the widget and re-enter here."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; one of {TOOLS}")
        host, target = self.host, self.host.target
        self.show_tool(tool)
        if target is None:
            return
        with host.follower.quiet():
            host.activate(target.layer)
            target.use_tool(tool)
            if tool in target.drag_tools:
                self._stroke_layer()
                if self._alt_zoom is None:  # Alt removes from the selection: it must not also zoom
                    self._alt_zoom = suspend_alt_drag_zoom(unwrap(host.viewer))
            else:
                self.remove_stroke_layer()  # the helper layer lives only while a drawing tool is on
        host.show_help()

    def show_tool(self, tool: str) -> None:
        self.tool = tool
        self.tool_buttons[tool].setChecked(True)

    def _on_layer_drag(self, layer, event):
        """Drag callback of the curated layer: the drawing tools (and Click on bins) select."""
        tool, target = self.tool, self.host.target
        if target is None or tool not in target.drag_tools or layer is not target.layer or layer.mode != "pan_zoom":
            return  # another mode picked in the layer controls wins over the drawing tool
        if self._stroke is not None:
            with self.host.follower.quiet():
                raise_to_top(self.host.viewer, self._stroke)  # above a layer added since the tool was chosen
        modifiers = {str(getattr(m, "name", m)).lower() for m in (event.modifiers or ())}
        mode = "add" if "shift" in modifiers else "remove" if "alt" in modifiers else "replace"
        path = [np.asarray(event.position, dtype=np.float64)]
        yield
        while event.type == "mouse_move":
            point = np.asarray(event.position, dtype=np.float64)
            if np.any(point != path[-1]):
                path.append(point)
                self._draw_stroke(target, tool, path)
            yield
        path.append(np.asarray(event.position, dtype=np.float64))  # the release position
        self._clear_stroke()  # the outline is gone once the selection is made
        picked = target.pick(tool, np.asarray(path), self.brush_radius.value())
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
                    metadata={HELPER_KEY: True},
                    **placed_like(host.layer),  # drawn in the curated layer's data coordinates
                ))
                self._stroke = stroke
                host.activate(host.layer)  # drags go to the active layer
        return stroke

    def _clear_stroke(self) -> None:
        stroke = self._stroke
        if stroke is not None and stroke in self.host.viewer.layers and len(stroke.data):
            stroke.data = []

    def remove_stroke_layer(self) -> None:
        """Leave drawing: the stroke layer goes, napari's Alt + drag zoom comes back."""
        host = self.host
        restore_alt_drag_zoom(unwrap(host.viewer), self._alt_zoom)
        self._alt_zoom = None
        stroke, self._stroke = self._stroke, None
        if stroke is None or stroke not in host.viewer.layers:
            return
        with host.follower.quiet():
            was_active = host.follower.active() is stroke
            host.viewer.layers.remove(stroke)
            if was_active and host.layer is not None and host.layer in host.viewer.layers:
                host.activate(host.layer)  # not whichever neighbour napari picks

    def _draw_stroke(self, target, tool: str, path: list) -> None:
        viewer = self.host.viewer
        if self._stroke is None or self._stroke not in viewer.layers:
            return
        stroke = self._stroke
        with stroke.events.blocker_all():
            stroke.data = []
        # as many screen pixels wide at every zoom: the camera zoom is screen pixels per world unit
        unit_step = np.zeros((2, len(path[0])))
        unit_step[1, -1] = 1.0
        data_per_world = float(np.linalg.norm(np.diff(target.to_data(unit_step), axis=0)))
        width = STROKE_PIXELS * data_per_world / camera(viewer).zoom
        # outlines are closed paths: a polygon would triangulate its (transparent) face on every
        # mouse move, 17x slower for a 120-point lasso
        if tool in ("rectangle", "click"):
            corners = target.rectangle(path[0], path[-1])
            stroke.add_paths([np.vstack([corners, corners[:1]])], edge_width=width, edge_color=STROKE_COLOR)
        elif tool == "lasso" and len(path) >= 3:
            outline = target.to_data(path)
            stroke.add_paths([np.vstack([outline, outline[:1]])], edge_width=width, edge_color=STROKE_COLOR)
        elif tool == "brush":
            points = target.to_data(path)
            line = points if len(points) > 1 else np.vstack([points, points + 1e-3])
            radius = self.brush_radius.value() * target.data_per_pixel()
            stroke.add_paths([line], edge_width=2 * radius, edge_color=BRUSH_COLOR)
        stroke.refresh()
