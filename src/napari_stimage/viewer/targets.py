"""What a dock widget works on: a slide's spots (a Points layer) or its bins (a VisiumHD bin-labels layer).

Both are a *target*: a layer with its slide and label editor, the curation tools that apply to it,
how a label is given (spots: assigned to the selection; bins: painted with napari's Labels tools),
its keys and status-bar hints. The curation widget asks its target instead of branching on the
layer's kind. napari only, no Qt.

`layer_kind` names bin-labels layers "bins"; a widget declaring `layer_kinds = ("spots", "bins")`
follows them ("Color spots" colours them through `layer_colors.BinsColoring`), and `target_for`
hands the curation widget a `BinsTarget`.
"""

from __future__ import annotations

import numpy as np

from ..curation.editor import LabelEditor, normalise_label
from . import bins
from .editors import editor_for_layer
from .metadata import slide_of

TOOLS = ("pan", "click", "rectangle", "lasso", "brush")
TOOL_TITLES = {"pan": "Pan/zoom", "click": "Click", "rectangle": "Rectangle", "lasso": "Lasso", "brush": "Brush"}
CLEAR_KEYS = ("0", "Backspace", "Delete")
# Keys on the spots layer that pick a tool; napari's own Points keys (P, S, Z, A, V) stay as they are.
TOOL_KEYS = {"lasso": "L", "brush": "B", "rectangle": "R"}
PAN_KEY = "Escape"  # back to pan/zoom and select none
SPOT_TOOL_TIPS = {
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


class SpotsTarget:
    """Spots: the tools select points, a label is assigned to the selection."""

    kind = "spots"
    selects = True  # the user selects elements, then labels them
    tools_title = "Select spots"
    assign_title = "Label the selection"
    assign_text = "Assign"
    clear_tip = "Make the selected spots unlabelled (keys 0, Backspace, Delete)"
    tool_tips = SPOT_TOOL_TIPS
    empty_key_hint = "Keys 1-9 assign labels once the slide has some"

    def __init__(self, layer):
        self.layer = layer
        self.slide = slide_of(layer)
        self.editor: LabelEditor = editor_for_layer(layer)

    def applies(self, tool: str) -> bool:
        return tool in TOOLS

    def known_labels(self) -> list[str]:
        """The labels a typed label is compared with."""
        return self.editor.categories()

    def default_brush_radius(self) -> float:
        radii = self.slide.spots["r"].to_numpy()
        return float(np.median(radii)) * 1.5 if len(radii) else 10.0

    # -- selection
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

    def inverted_selection(self) -> np.ndarray:
        mask = np.ones(len(self.layer.data), dtype=bool)
        mask[self.selection] = False
        return np.flatnonzero(mask)

    def assign(self, indices, label) -> int:
        return self.editor.assign(indices, label)

    # -- keys and hints
    def extra_keys(self, widget) -> dict:
        """Keys beyond 1-9 and clearing: undo/redo, tools, Escape."""
        def tool_key(tool):
            return lambda _layer: widget.set_tool(tool)

        bindings = {"Control-Z": lambda _layer: widget.undo(), "Control-Shift-Z": lambda _layer: widget.redo()}
        bindings.update({key: tool_key(tool) for tool, key in TOOL_KEYS.items()})
        bindings[PAN_KEY] = lambda _layer: widget.pan_and_select_none()
        return bindings

    @staticmethod
    def key_lines(keyed: list[tuple[int, str]]) -> list[str]:
        return [f"{k}: {label}" for k, label in keyed] + [
            "0, Backspace, Delete: clear the label",
            *(f"{key}: {TOOL_TITLES[tool]}" for tool, key in TOOL_KEYS.items()),
            "Esc: Pan/zoom and select none",
            "Ctrl+Z / Ctrl+Shift+Z: undo / redo",
        ]

    def help_text(self, tool: str) -> str | None:
        """The status bar's hint in the layer's mode; None for a napari mode of the layer controls."""
        mode = self.layer.mode
        if mode == "select":
            tool = "click"
        elif mode == "pan_zoom":
            tool = tool if tool != "click" else "pan"
        else:
            return None
        keys = ", ".join(f"{key} {TOOL_TITLES[t]}" for t, key in TOOL_KEYS.items())
        return (f"{TOOL_TITLES[tool]}: {SPOT_TOOL_TIPS[tool]} · keys 1-9 assign the labels of Curate labels, "
                f"0 clears, {keys}, Esc Pan/zoom, Ctrl+Z undo")


class BinsTarget:
    """Bins: napari's Labels tools paint them; choosing a label makes it the brush's label.

    Every stroke is an edit of the slide's `LabelEditor` (`viewer.bins.LabelsLayerSync`), so
    undo, saving and recovery work as for spots.
    """

    kind = "bins"
    selects = False
    tools_title = "Paint bins"
    assign_title = "Label to paint with"
    assign_text = "Paint with"
    clear_tip = "Erase: painted bins become unlabelled (keys 0, Backspace, Delete)"
    tool_tips = BIN_TOOL_TIPS
    empty_key_hint = "Type a label and press Paint with, then paint bins"

    def __init__(self, layer):
        self.layer = layer
        self.sync = bins.bind_bin_labels(layer)  # already bound by the viewer's watcher: returns its link
        self.editor: LabelEditor = self.sync.editor
        self.slide = slide_of(layer)

    def applies(self, tool: str) -> bool:
        return tool in BIN_TOOL_MODES

    def known_labels(self) -> list[str]:
        """The editor's labels, plus bin codes already named."""
        known = self.editor.categories()
        return known + [label for label in self.sync.categories if label not in known]

    def use_tool(self, tool: str) -> None:
        self.layer.mode = BIN_TOOL_MODES[tool]

    def normalise(self, label) -> str | None:
        """The label as it will be painted; raises ValueError for a label that is refused."""
        return normalise_label(label, self.known_labels())

    def paint_with(self, label: str | None) -> int:
        """Make `label` (normalised) the brush's label (a new label gets the next code); None = the
        eraser. Returns its code (0 for the eraser)."""
        if label is None:
            self.layer.mode = "erase"
            return 0
        code = self.sync.code_of(label)
        self.sync.refresh_colors()  # a new label shows in its palette colour from the first stroke
        self.layer.selected_label = code
        return code

    def is_painting(self) -> bool:
        return self.layer.mode in PAINTING_MODES

    def selected_label_name(self) -> str | None:
        """The label napari's label spinner paints with (None for the background)."""
        code, categories = int(self.layer.selected_label), self.sync.categories
        if code <= 0:
            return None
        return categories[code - 1] if code <= len(categories) else f"label {code}"

    # -- keys and hints
    def extra_keys(self, widget) -> dict:
        return {}  # the bound layer already sends Ctrl+Z to the editor (bins.LabelsLayerSync.bind)

    @staticmethod
    def key_lines(keyed: list[tuple[int, str]]) -> list[str]:
        return [f"{k}: paint with {label}" for k, label in keyed] + ["0, Backspace, Delete: eraser"]

    def help_text(self, tool: str) -> str | None:
        mode = self.layer.mode
        tool = next((t for t, m in BIN_TOOL_MODES.items() if m == mode), None)
        if mode == "erase":
            text = "Eraser: painted bins become unlabelled"
        elif tool is None:
            return None
        else:
            text = f"{TOOL_TITLES[tool]}: {BIN_TOOL_TIPS[tool]}"
        return f"{text} · keys 1-9 paint with the labels of Curate labels, 0 eraser, Ctrl+Z undo"
