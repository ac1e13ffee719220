"""Colouring a slide's spots layer: what it is coloured by (kept in its metadata) and the layer
updates that show it. napari only, no Qt: the colour widget is a view over `SpotsColoring`.

Switching genes only sets the layer's face colours; the layer is never rebuilt. Each layer's
`LayerColorState` lives in `layer.metadata[STATE_KEY]`, so each slide remembers its colouring.

`BinsColoring` colours a VisiumHD slide's bins with the same methods (`state`, `per_point`,
`show_gene`, `show_labels`, `legend_entries`, `label_snapshot`, `shown_layer`, `set_spot_style`,
`set_colorbar_visible`, `connect`): a gene goes to the slide's "{slide} gene" Image layer, labels
to its bin-labels layer; its legend counts are the label editor's, kept per edit.
`coloring_for(layer, viewer)` picks one by `viewer.targets.layer_kind`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import coloring as col
from . import bins
from .editors import editor_for_layer
from .layers import OUTLINE_WIDTH, RIM_COLOR, RIM_WIDTH
from .metadata import slide_of

STATE_KEY = "stimage_coloring"
VALUE_COLUMN = "color value"  # a feature column so hovering a spot shows the value it is coloured by
SPOT_STYLES = ("filled", "outline")  # outline: coloured rings, the tissue visible inside each spot


@dataclass
class LayerColorState:
    """What one spots layer is coloured by; kept in the layer's metadata so each slide remembers."""

    mode: str | None = None  # "gene", "label" or None (untouched)
    gene: col.GeneColoring | None = None
    label_column: str = "label"
    hidden_labels: set[str] = field(default_factory=set)
    spot_style: str = "filled"  # one of SPOT_STYLES
    # per-point border alpha from before a label was hidden, to give the rims back (None: none hidden)
    border_alpha: np.ndarray | None = None


def set_face_colors(layer, rgba: np.ndarray) -> None:
    """`layer.face_color = rgba`, with napari's vispy layer re-sending the points once, not twice.

    napari's setter emits the colour manager's `colors` event and then the layer's `face_color`
    event; its vispy layer listens to both and re-uploads every point (positions, sizes, the
    symbols as strings) on each, about 35 ms at 100,000 spots. The first event is private
    (`Points._face.events.colors`, nothing else listens to it in napari 0.9), so it is blocked
    only when it exists; the public `face_color` event still reaches every listener and redraws.
    tests/test_color_widget.py pins that the canvas still shows the new colours.
    """
    colors_event = getattr(getattr(getattr(layer, "_face", None), "events", None), "colors", None)
    if not callable(getattr(colors_event, "blocker", None)):
        layer.face_color = rgba
        return
    with colors_event.blocker():
        layer.face_color = rgba


class SpotsColoring:
    """The colouring of one spots Points layer (unwrapped)."""

    spot_ids_editable = True  # the feature table holds the spot ids: an edit may re-match gene values

    def __init__(self, layer):
        self.layer = layer
        self.slide = slide_of(layer)

    @property
    def state(self) -> LayerColorState:
        return self.layer.metadata.setdefault(STATE_KEY, LayerColorState())

    # -- what the colour widget listens to and shows
    def connect(self, labels_changed, elements_changed) -> None:
        """Call `labels_changed` when the feature table (labels) changes, `elements_changed` when points do."""
        self.layer.events.features.connect(labels_changed)
        self.layer.events.data.connect(elements_changed)

    def disconnect(self, labels_changed, elements_changed) -> None:
        self.layer.events.features.disconnect(labels_changed)
        self.layer.events.data.disconnect(elements_changed)

    def set_colorbar_visible(self, visible: bool) -> None:
        self.layer.face_colorbar.visible = visible

    def shown_layer(self):
        """The layer that shows the current colouring (its opacity is the widget's): the spots."""
        return self.layer

    # -- values per point
    def per_point(self, coloring: col.GeneColoring) -> np.ndarray:
        """The coloring's values per point of the layer (NaN for points that are not spots).

        Points follow the slide's spot order until someone adds or deletes points; then they
        are matched by spot id rather than by position.
        """
        slide, layer = self.slide, self.layer
        values = coloring.values(slide)
        n_points = len(layer.data)
        ids = layer.features.get("spot_id")
        if n_points == slide.n_spots and (ids is None or np.array_equal(ids.to_numpy(), slide.spots["spot_id"].to_numpy())):
            return values
        by_id = pd.Series(values, index=slide.spots["spot_id"].to_numpy())
        by_id = by_id[~by_id.index.duplicated()]
        if ids is None:
            return np.full(n_points, np.nan)
        return by_id.reindex(ids.to_numpy()).to_numpy(np.float64)

    def set_value_column(self, values) -> None:
        """Keep the hover value in the feature table, with spot id, label and value as its first
        columns: napari's status line lists the columns in table order and gets cut short.

        Edited in place: the table is the layer's own, and a features event would make every
        listener (curation, legend) redo its work on each gene switch.
        """
        features = self.layer.features
        values = np.array(values, dtype=np.float64)  # the table's own copy: cached values are read-only
        front = [c for c in ("spot_id", "label") if c in features.columns] + [VALUE_COLUMN]
        if list(features.columns[:len(front)]) == front:
            features[VALUE_COLUMN] = values
            return
        # first use, or a column was moved (e.g. a label column added at the end): reorder in place
        for position, name in enumerate(front):
            column = features.pop(name) if name in features.columns else None
            features.insert(position, name, values if name == VALUE_COLUMN else column)

    # -- gene
    def show_gene(self, values: col.GeneValues) -> None:
        """Colour every spot by `values` under the state's gene colouring; napari's face colorbar
        gets its colormap and limits."""
        layer, state = self.layer, self.state
        state.mode = "gene"
        rgba = values.colors(state.gene)
        if not layer.shown.all():  # a label was hidden; setting shown costs a full refresh
            layer.shown = np.ones(len(layer.data), dtype=bool)
        self._restore_borders()
        self.protect_hidden(())  # in gene mode every spot is drawn
        self.paint(rgba)
        # napari's own face colorbar reads the colormap and limits even with direct colours;
        # each change re-lays out its ticks and box, so set them only when they differ
        if layer.face_colormap.name != state.gene.colormap:
            layer.face_colormap = state.gene.colormap
        limits = tuple(float(v) for v in state.gene.contrast_limits)
        if layer.face_contrast_limits is None or tuple(layer.face_contrast_limits) != limits:
            layer.face_contrast_limits = limits
        self.set_value_column(values.values)

    # -- labels
    def label_columns(self) -> list[str]:
        return [c for c in col.categorical_columns(self.layer.features) if c != VALUE_COLUMN]

    def label_values(self) -> np.ndarray:
        column = self.state.label_column
        features = self.layer.features
        if column not in features.columns:
            column = "label"
        return features[column].to_numpy()

    def legend_order(self) -> list[str] | None:
        """The curation order (hotkeys 1-9 follow it) when the layer has a label editor."""
        if self.state.label_column != "label":
            return None
        editor = editor_for_layer(self.layer, create=False)
        return list(editor.categories()) if editor is not None else None

    def label_palette(self, palette: col.LabelPalette) -> col.LabelPalette:
        """`palette` remembering the colours of the curated labels' file (`LabelColorMemory`), so a
        label keeps its colour while labels come and go; other label columns use it as it is."""
        editor = editor_for_layer(self.layer, create=False) if self.state.label_column == "label" else None
        return palette.for_annotation(editor.path) if editor is not None else palette

    def legend_entries(self, palette: col.LabelPalette) -> list[col.LegendEntry]:
        return col.legend_entries(self.label_values(), self.label_palette(palette), self.legend_order())

    def label_snapshot(self) -> np.ndarray | None:
        """What differs after a label edit (`np.array_equal` compares two): the curated label
        column as shown. Points features can be edited by hand, past the editor, so the column
        itself is compared; None when the layer has no label column."""
        features = self.layer.features
        return col.display_labels(features["label"].to_numpy()) if "label" in features.columns else None

    def curated_labels(self) -> list[str]:
        """The curated labels (column "label") some spot holds, in natural order."""
        features = self.layer.features
        return col.label_categories(features["label"].to_numpy()) if "label" in features.columns else []

    def show_labels(self, palette: col.LabelPalette) -> None:
        """Colour by the state's label column, hover showing the label itself."""
        self.state.mode = "label"
        self.apply_label_colors(palette)
        if VALUE_COLUMN in self.layer.features.columns:
            self.layer.features[VALUE_COLUMN] = np.nan

    def apply_label_colors(self, palette: col.LabelPalette) -> None:
        """Label colours, with hidden labels' spots transparent (face and rim): napari 0.9 draws
        points whatever `shown` says when all dimensions are displayed, so alpha does the hiding.
        `shown` is set too, so that napari's own tools skip hidden spots where they honour it."""
        layer, state = self.layer, self.state
        values = self.label_values()
        self.paint(col.label_colors(values, self.label_palette(palette), state.hidden_labels, self.legend_order()))
        visible = col.visible_mask(values, state.hidden_labels)
        if not np.array_equal(layer.shown, visible):
            layer.shown = visible
        if state.spot_style == "filled":  # outline rings already take the hidden spots' alpha 0
            self._show_borders(visible)
        self.protect_hidden(state.hidden_labels if state.label_column == "label" else ())

    def protect_hidden(self, hidden_labels) -> None:
        """Hidden means protected: the slide's label editor (shared with the curation widget)
        keeps the hidden curated labels, so no selection or assignment touches their spots."""
        editor = editor_for_layer(self.layer, create=False)
        if editor is not None:
            editor.set_hidden_labels(hidden_labels)

    # -- how spots are drawn
    def paint(self, rgba: np.ndarray) -> None:
        """Show per-spot colours as filled discs, or as rings with the tissue visible inside."""
        if self.state.spot_style == "filled":
            set_face_colors(self.layer, rgba)
            return
        set_face_colors(self.layer, np.zeros_like(rgba))
        self.layer.border_color = rgba

    def set_spot_style(self, style: str) -> bool:
        """Filled discs or outline rings; True when the colours must be shown again."""
        layer, state = self.layer, self.state
        if style not in SPOT_STYLES:
            raise ValueError(f"unknown spot style {style!r}; one of {SPOT_STYLES}")
        if state.spot_style == style:
            return False
        state.spot_style = style
        state.border_alpha = None  # the rims are set afresh by the next colouring
        layer.border_width = OUTLINE_WIDTH if style == "outline" else RIM_WIDTH
        if style == "filled":
            layer.border_color = RIM_COLOR
        return True

    def _show_borders(self, visible: np.ndarray) -> None:
        layer, state = self.layer, self.state
        n = len(layer.data)
        if state.border_alpha is not None and len(state.border_alpha) != n:
            state.border_alpha = None  # points were added or deleted: the saved rims no longer fit
        if state.border_alpha is None:
            if visible.all():
                return  # nothing hidden, nothing to give back: the common case costs nothing
            state.border_alpha = np.array(layer.border_color, dtype=np.float32)[:, 3].copy()
        border = np.array(layer.border_color, dtype=np.float32)
        alpha = np.where(visible, state.border_alpha, 0.0).astype(np.float32)
        if not np.array_equal(border[:, 3], alpha):
            border[:, 3] = alpha
            layer.border_color = border
        if visible.all():
            state.border_alpha = None

    def _restore_borders(self) -> None:
        if self.state.spot_style == "filled" and self.state.border_alpha is not None:
            self._show_borders(np.ones(len(self.layer.data), dtype=bool))


class BinsColoring:
    """The colouring of a VisiumHD slide's bins, followed through its bin-labels layer (unwrapped).

    A gene is shown on the slide's "{slide} gene" Image layer (`bins.show_gene_on_bins`, napari's
    colorbar is that layer's own); labels on the bin-labels layer, in the label palette's colours,
    hidden labels transparent and protected in the slide's label editor.
    """

    spot_ids_editable = False  # a label edit never changes which bin is which

    def __init__(self, layer, viewer):
        self.layer = layer
        self.viewer = viewer
        self.slide = slide_of(layer)
        self.grid = bins.bin_grid_of(layer)
        self.sync = bins.bind_bin_labels(layer)  # already bound by the viewer's watcher: returns its link
        self.editor = self.sync.editor
        self._listeners: dict = {}

    @property
    def state(self) -> LayerColorState:
        return self.layer.metadata.setdefault(STATE_KEY, LayerColorState())

    def gene_layer(self):
        return bins.gene_layer_of(self.viewer, self.slide)

    # -- what the colour widget listens to and shows
    def connect(self, labels_changed, elements_changed) -> None:
        """Call `labels_changed` after each label edit (bins never change)."""
        def view(_indices):
            labels_changed()

        self._listeners[labels_changed] = view
        self.editor.add_view(view)

    def disconnect(self, labels_changed, elements_changed) -> None:
        view = self._listeners.pop(labels_changed, None)
        if view is not None:
            self.editor.remove_view(view)

    def set_colorbar_visible(self, visible: bool) -> None:
        layer = self.gene_layer()
        if layer is not None:
            layer.colorbar.visible = visible

    def shown_layer(self):
        """The layer that shows the current colouring (its opacity is the widget's): the gene
        layer in gene mode, else the bin-labels layer."""
        gene_layer = self.gene_layer() if self.state.mode == "gene" else None
        return gene_layer if gene_layer is not None else self.layer

    # -- gene
    def per_point(self, coloring: col.GeneColoring) -> np.ndarray:
        return coloring.values(self.slide)

    def set_value_column(self, values) -> None:
        """Hover reads the gene layer's values (`bins.bin_status`): nothing to keep here."""

    def _show_only(self, shown) -> None:
        """`shown` visible, the slide's other colourings of its bins hidden: each mode shows what its
        legend or colorbar describes, and no other raster tints it (the H&E stays, below)."""
        for layer in (self.gene_layer(), bins.counts_layer_of(self.viewer, self.slide), self.layer):
            if layer is not None and layer is not shown and layer.visible:
                layer.visible = False
        if not shown.visible:
            shown.visible = True

    def show_gene(self, values: col.GeneValues) -> None:
        self.state.mode = "gene"
        self.protect_hidden(())  # in gene mode every bin is drawn
        layer = bins.show_gene_on_bins(self.viewer, self.slide, self.grid, values, self.state.gene)
        self._show_only(layer)

    # -- labels
    def label_columns(self) -> list[str]:
        return ["label"]

    def legend_order(self) -> list[str] | None:
        return list(self.editor.categories())

    def legend_entries(self, palette: col.LabelPalette) -> list[col.LegendEntry]:
        """From the editor's label counts, kept per edit: no pass over the bins. Unlabelled bins are
        not painted (`coloring.with_unlabelled_not_drawn`)."""
        entries = col.legend_entries_from_counts(self.editor.label_counts(), palette.for_annotation(self.editor.path),
                                                 self.legend_order())
        return col.with_unlabelled_not_drawn(entries)

    def label_snapshot(self) -> int:
        """What differs after a label edit: the editor's revision (bins are labelled through the
        editor only), so noticing an edit costs nothing at 600,000 bins."""
        return self.editor.revision

    def curated_labels(self) -> list[str]:
        """The curated labels some bin holds, in natural order (from the editor's counts)."""
        return col.label_categories(self.editor.label_counts())

    def show_labels(self, palette: col.LabelPalette) -> None:
        """Labels on the bin-labels layer, the gene and total-counts layers out of the way."""
        self.state.mode = "label"
        self._show_only(self.layer)
        self.apply_label_colors(palette)

    def apply_label_colors(self, palette: col.LabelPalette) -> None:
        self.protect_hidden(self.state.hidden_labels)
        self.sync.refresh_colors()

    def protect_hidden(self, hidden_labels) -> None:
        self.editor.set_hidden_labels(hidden_labels)

    def set_spot_style(self, style: str) -> bool:
        """Bins are squares of the raster: filled only."""
        if style not in SPOT_STYLES:
            raise ValueError(f"unknown spot style {style!r}; one of {SPOT_STYLES}")
        return False


def coloring_for(layer, viewer) -> SpotsColoring | BinsColoring:
    """The colouring of a slide layer (unwrapped): its spots, or its bins through the bin-labels layer."""
    return BinsColoring(layer, viewer) if bins.is_bin_labels_layer(layer) else SpotsColoring(layer)
