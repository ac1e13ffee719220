"""What a dock widget works on: a slide's spots (a Points layer) or its bins (a VisiumHD bin-labels layer).

Both are a *target*: a layer with its slide and label editor, the elements the selection tools
pick on it, its selection, keys and status-bar hints. Spots keep napari's own point selection;
bins, a raster, keep theirs in `bins.bin_selection` and show it on a helper layer. On bins,
napari's own Labels tools (paint, fill, polygon, erase in the layer controls) paint labels too:
while one of them is on, a label chosen in the widget becomes the brush's label. The curation
widget asks its target instead of branching on the layer's kind. napari only, no Qt.

`layer_kind` names bin-labels layers "bins"; a widget declaring `layer_kinds = ("spots", "bins")`
follows them ("Color spots" colours them through `layer_colors.BinsColoring`), and `target_for`
hands the curation widget a `BinsTarget`.
"""

from __future__ import annotations

import numpy as np

from ..core.selection import SpotIndex, points_in_polygon, points_in_rectangle
from ..curation.editor import LabelEditor, normalise_label
from . import bins
from .editors import editor_for_layer
from .metadata import slide_of

TOOLS = ("pan", "click", "rectangle", "lasso", "brush")
TOOL_TITLES = {"pan": "Pan/zoom", "click": "Click", "rectangle": "Rectangle", "lasso": "Lasso", "brush": "Brush"}
CLEAR_KEYS = ("0", "Backspace", "Delete")
# Keys on the curated layer that pick a tool; napari's own keys for its modes stay as they are.
TOOL_KEYS = {"lasso": "L", "brush": "B", "rectangle": "R"}
PAN_KEY = "Escape"  # back to pan/zoom and select none
SPOT_TOOL_TIPS = {
    "pan": "Pan and zoom the view (Esc on the spots layer; also selects none)",
    "click": "Click a spot; Shift-click adds; drag a box (napari's select mode, key S)",
    "rectangle": "Drag a rectangle; Shift adds to the selection, Alt removes (key R)",
    "lasso": "Draw a free-hand outline; Shift adds to the selection, Alt removes (key L)",
    "brush": "Paint over spots (radius below); Shift adds to the selection, Alt removes (key B)",
}
BIN_TOOL_TIPS = {
    "pan": "Pan and zoom the view (Esc on the bin-labels layer; also selects none)",
    "click": "Click a bin; Shift-click adds, Alt-click removes; drag a box",
    "rectangle": "Drag a rectangle; Shift adds to the selection, Alt removes (key R)",
    "lasso": "Draw a free-hand outline; Shift adds to the selection, Alt removes (key L)",
    "brush": "Paint over bins (radius below); Shift adds to the selection, Alt removes (key B)",
}
DRAWN_TOOLS = ("rectangle", "lasso", "brush")  # tools whose shape is drawn on the canvas while dragged
PAINTING_MODES = ("paint", "polygon", "fill", "erase")  # napari's Labels modes that paint bins
KEYS_TITLE = "Keys on the layer (the order stays fixed until the slide is reopened):\n"


def layer_kind(layer) -> str | None:
    """"spots" for a slide's Points layer, "bins" for a bin-labels layer, None for any other layer."""
    from napari.layers import Points

    if isinstance(layer, Points) and slide_of(layer) is not None:
        return "spots"
    if bins.is_bin_labels_layer(layer):
        return "bins"
    return None


def target_for(layer) -> SpotsTarget | BinsTarget:
    """The target over `layer` (unwrapped), binding its label editor on first use."""
    kind = layer_kind(layer)
    if kind == "spots":
        return SpotsTarget(layer)
    if kind == "bins":
        return BinsTarget(layer)
    raise ValueError(f"layer {getattr(layer, 'name', layer)!r} is neither a slide's spots nor its bin labels")


class _Target:
    """What spots and bins share: the tools select elements, a label is assigned to the selection.

    Subclasses say how their elements are picked by a drawn shape (`pick`), where the selection
    is kept and how it is shown.
    """

    kind: str
    element: str  # "spot" / "bin", for messages
    tool_tips: dict
    drag_tools: tuple[str, ...]  # tools handled by the widget's drag callback in pan_zoom mode
    paints = False  # napari's own tools paint labels on the layer (`paint_with`)
    tools_title: str
    clear_tip: str
    assign_title = "Label the selection"
    assign_text = "Assign"
    empty_key_hint = "Keys 1-9 assign labels once the slide has some"

    def __init__(self, layer, editor: LabelEditor):
        self.layer = layer
        self.slide = slide_of(layer)
        self.editor = editor

    def known_labels(self) -> list[str]:
        """The labels a typed label is compared with."""
        return self.editor.categories()

    def normalise(self, label) -> str | None:
        """The label as it will be assigned; raises ValueError for a label that is refused."""
        return normalise_label(label, self.known_labels())

    def is_painting(self) -> bool:
        """A napari painting mode is on: a chosen label goes to the brush, not to the selection."""
        return False

    def watch_brush_label(self, callback) -> None:
        """Call `callback` when napari's label spinner or painting mode changes (layers that paint)."""

    def unwatch_brush_label(self, callback) -> None:
        pass

    # -- where the layer's data is
    def to_data(self, world_points) -> np.ndarray:
        """(n, 2) positions in the layer's data coordinates of world positions (napari's order)."""
        world = np.atleast_2d(np.asarray(world_points, dtype=np.float64))
        return np.array([self.layer.world_to_data(point) for point in world], dtype=np.float64)[:, -2:]

    def rectangle(self, world_a, world_b) -> np.ndarray:
        """The 4 corners, in data coordinates, of the screen-aligned rectangle with corners a and b."""
        a, b = np.asarray(world_a, dtype=np.float64), np.asarray(world_b, dtype=np.float64)
        corners = np.repeat(a[None], 4, axis=0)
        corners[1, -1] = corners[2, -1] = b[-1]
        corners[2, -2] = corners[3, -2] = b[-2]
        return self.to_data(corners)

    def data_per_pixel(self) -> float:
        """Data units per image pixel (the brush radius is given in image pixels)."""
        return 1.0

    # -- selection
    def inverted_selection(self) -> np.ndarray:
        mask = np.ones(self.slide.n_spots, dtype=bool)
        mask[self.selection] = False
        return np.flatnonzero(mask)

    def assign(self, indices, label) -> int:
        return self.editor.assign(indices, label)

    def draw_selection(self, viewer) -> None:
        """Show the selection on the canvas where napari does not (bins)."""

    def hide_selection(self, viewer) -> None:
        """Take down what `draw_selection` showed (the selection itself is kept)."""

    # -- keys and hints
    def extra_keys(self, widget) -> dict:
        """Keys beyond 1-9 and clearing: tools and Escape."""
        def tool_key(tool):
            return lambda _layer: widget.set_tool(tool)

        bindings = {key: tool_key(tool) for tool, key in TOOL_KEYS.items()}
        bindings[PAN_KEY] = lambda _layer: widget.pan_and_select_none()
        return bindings

    @classmethod
    def key_lines(cls, keyed: list[tuple[int, str]]) -> list[str]:
        return [f"{k}: {label}" for k, label in keyed] + [
            "0, Backspace, Delete: clear the label",
            *(f"{key}: {TOOL_TITLES[tool]}" for tool, key in TOOL_KEYS.items()),
            "Esc: Pan/zoom and select none",
            "Ctrl+Z / Ctrl+Shift+Z: undo / redo",
        ]

    def _tool_help(self, tool: str) -> str:
        keys = ", ".join(f"{key} {TOOL_TITLES[t]}" for t, key in TOOL_KEYS.items())
        return (f"{TOOL_TITLES[tool]}: {self.tool_tips[tool]} · keys 1-9 assign the labels of Curate labels, "
                f"0 clears, {keys}, Esc Pan/zoom, Ctrl+Z undo")


class SpotsTarget(_Target):
    """Spots: napari's own point selection; Click is napari's select mode."""

    kind = "spots"
    element = "spot"
    tools_title = "Select spots"
    clear_tip = "Make the selected spots unlabelled (keys 0, Backspace, Delete)"
    tool_tips = SPOT_TOOL_TIPS
    drag_tools = DRAWN_TOOLS

    def __init__(self, layer):
        super().__init__(layer, editor_for_layer(layer))
        self._index: SpotIndex | None = None

    def default_brush_radius(self) -> float:
        radii = self.slide.spots["r"].to_numpy()
        return float(np.median(radii)) * 1.5 if len(radii) else 10.0

    def use_tool(self, tool: str) -> None:
        """The layer's mode for a tool: napari's select mode for Click, else pan/zoom, with the
        camera still while a shape is drawn."""
        if tool == "click":
            self.layer.mode = "select"
        else:
            self.layer.mode = "pan_zoom"
            self.layer.mouse_pan = tool == "pan"

    def pick(self, tool: str, world_path, brush_radius: float) -> np.ndarray:
        """The spots a drawn shape covers (`world_path`: press, moves, release)."""
        positions = np.asarray(self.layer.data, dtype=np.float64)[:, -2:]
        path = self.to_data(world_path)
        if tool == "rectangle":
            return points_in_rectangle(positions, path[0], path[-1])
        if tool == "lasso":
            return points_in_polygon(positions, path)
        if self._index is None or self._index.positions.shape != positions.shape:
            self._index = SpotIndex(positions)  # built on the first stroke, reused after
        return self._index.near_path(path, brush_radius * self.data_per_pixel())

    # -- selection: napari's
    @property
    def selection(self) -> np.ndarray:
        return np.array(sorted(self.layer.selected_data), dtype=np.int64)

    def set_selection(self, indices, mode: str = "replace") -> None:
        indices = set(np.asarray(indices, dtype=np.int64).tolist())
        current = set(self.layer.selected_data)
        if mode == "add":
            indices = current | indices
        elif mode == "remove":
            indices = current - indices
        self.layer.selected_data = indices

    def connect_selection(self, callback) -> None:
        self.layer.selected_data.events.items_changed.connect(callback)

    def disconnect_selection(self, callback) -> None:
        self.layer.selected_data.events.items_changed.disconnect(callback)

    def extra_keys(self, widget) -> dict:
        bindings = {"Control-Z": lambda _layer: widget.undo(), "Control-Shift-Z": lambda _layer: widget.redo()}
        bindings.update(super().extra_keys(widget))
        return bindings

    def help_text(self, tool: str) -> str | None:
        """The status bar's hint in the layer's mode; None for a napari mode of the layer controls."""
        mode = self.layer.mode
        if mode == "select":
            tool = "click"
        elif mode == "pan_zoom":
            tool = tool if tool != "click" else "pan"
        else:
            return None
        return self._tool_help(tool)


class BinsTarget(_Target):
    """Bins: the tools select bins (kept in `bins.bin_selection`, outlined on a helper layer).

    Every edit, assigned or painted with napari's Labels tools, is an edit of the slide's
    `LabelEditor` (`viewer.bins.LabelsLayerSync`), so undo, saving and recovery work as for spots.
    """

    kind = "bins"
    element = "bin"
    tools_title = "Select bins"
    clear_tip = ("Make the selected bins unlabelled (keys 0, Backspace, Delete); "
                 "in napari's paint mode, take the eraser")
    tool_tips = BIN_TOOL_TIPS
    drag_tools = ("click", *DRAWN_TOOLS)
    paints = True

    def __init__(self, layer):
        self.sync = bins.bind_bin_labels(layer)  # already bound by the viewer's watcher: returns its link
        super().__init__(layer, self.sync.editor)
        self.grid = self.sync.grid
        self._selection = bins.bin_selection(layer)

    def known_labels(self) -> list[str]:
        """The editor's labels, plus bin codes already named."""
        known = self.editor.categories()
        return known + [label for label in self.sync.categories if label not in known]

    def default_brush_radius(self) -> float:
        return 3.0 * self.grid.pitch  # a brush three bins wide each side

    def data_per_pixel(self) -> float:
        return 1.0 / self.grid.pitch

    def use_tool(self, tool: str) -> None:
        """Every tool works in pan/zoom mode, through the widget's drag callback."""
        self.layer.mode = "pan_zoom"
        self.layer.mouse_pan = tool == "pan"

    def pick(self, tool: str, world_path, brush_radius: float) -> np.ndarray:
        """The bins a drawn shape covers, found on the raster (`world_path`: press, moves, release).

        Click picks the bin under the release, or the box when the pointer was dragged.
        """
        grid = self.grid
        path = self.to_data(world_path)
        if tool == "click" and np.abs(path[-1] - path[0]).max() < 0.5:
            spot = grid.spot_at(path[-1])
            return np.array([spot] if spot >= 0 else [], dtype=np.int64)
        if tool in ("click", "rectangle"):
            return grid.spots_in_polygon(self.rectangle(world_path[0], world_path[-1]))
        if tool == "lasso":
            return grid.spots_in_polygon(path)
        return grid.spots_near_path(path, brush_radius * self.data_per_pixel())

    # -- selection: ours (a raster has none)
    @property
    def selection(self) -> np.ndarray:
        return self._selection.indices

    def set_selection(self, indices, mode: str = "replace") -> None:
        self._selection.set(indices, mode)

    def connect_selection(self, callback) -> None:
        self._selection.connect(callback)

    def disconnect_selection(self, callback) -> None:
        self._selection.disconnect(callback)

    def draw_selection(self, viewer) -> None:
        bins.draw_bin_selection(viewer, self.layer)

    def hide_selection(self, viewer) -> None:
        bins.hide_bin_selection(viewer, self.layer)

    # -- napari's painting tools
    def is_painting(self) -> bool:
        return self.layer.mode in PAINTING_MODES

    def paint_with(self, label: str | None) -> int:
        """Make `label` (normalised) the brush's label (a new label gets the next code); None = the
        eraser. Returns its code (0 for the eraser)."""
        if label is None:
            self.layer.mode = "erase"
            return 0
        code = self.sync.code_of(label)
        self.sync.refresh_colors()  # a new label shows in its palette colour from the first stroke
        self.layer.selected_label = code
        if self.layer.mode == "erase" or not self.is_painting():
            self.layer.mode = "paint"
        return code

    def watch_brush_label(self, callback) -> None:
        """napari's label spinner and the layer's mode: painting may begin with any brush label."""
        self.layer.events.selected_label.connect(callback)
        self.layer.events.mode.connect(callback)

    def unwatch_brush_label(self, callback) -> None:
        self.layer.events.selected_label.disconnect(callback)
        self.layer.events.mode.disconnect(callback)

    def selected_label_name(self) -> str | None:
        """The label napari's label spinner paints with (None for the background)."""
        code, categories = int(self.layer.selected_label), self.sync.categories
        if code <= 0:
            return None
        return categories[code - 1] if code <= len(categories) else f"label {code}"

    # -- keys and hints: Ctrl+Z is already the editor's (bins.LabelsLayerSync.bind)
    @classmethod
    def key_lines(cls, keyed: list[tuple[int, str]]) -> list[str]:
        return [*super().key_lines(keyed),
                "In napari's paint, fill or polygon mode, 1-9 pick the brush's label, 0 the eraser"]

    def help_text(self, tool: str) -> str | None:
        mode = self.layer.mode
        if mode == "pan_zoom":
            return self._tool_help(tool)
        if mode in PAINTING_MODES:
            what = "Eraser: painted bins become unlabelled" if mode == "erase" else f"napari's {mode} tool paints bins"
            return f"{what} · keys 1-9 pick the brush's label from Curate labels, 0 eraser, Ctrl+Z undo"
        return None
