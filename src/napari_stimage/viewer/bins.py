"""Bin grids in napari: the raster layers of a dense grid, a gene shown on them, and their link
to the label editor.

The model (`curation.bins`: `BinGrid`, `LabelRasterSync`) is Qt- and napari-free; this module
puts it on napari layers. The "{slide} bin labels" Labels layer is linked to the slide's
`curation.editor.LabelEditor` by `bind_bin_labels(layer)` (a `LabelsLayerSync`): every paint
stroke, fill or polygon becomes one `editor.assign` per label, Ctrl+Z / Ctrl+Shift+Z on the
layer go to the editor, and the editor's changes are drawn back into the raster in the label
palette's colours. The one way layers get bound is `watch_viewer(viewer)`.

How a widget drives bins (the colour widget's gene and label modes):

    grid = bin_grid_of(layer)                        # any bin layer -> its BinGrid (None: not bins)
    values = cache.get((genes, transform), lambda: GeneValues.of(coloring.values(slide)))
    layer = show_gene_on_bins(viewer, slide, grid, values, coloring)   # "{slide} gene" Image layer
    # label mode: hide/solo from the legend, then recolour the bin-labels layer
    editor.set_hidden_labels(hidden); bin_labels_sync(labels_layer).refresh_colors()

`coloring.GeneValuesCache` bounds the per-gene cache by bytes; `show_gene_on_bins` reuses one
layer per slide (new data, colormap and contrast limits; napari's colorbar follows them).
Hover on any bin layer shows "bin <id> · <label> · <gene>: <value>" in the status bar once
`watch_viewer` has run. Selecting bins uses the spot tools of `core.selection` on
`slide.positions` (bin centres): indices into the slide's spots, as for a Points layer.
"""

from __future__ import annotations

# napari is imported inside the functions that use it, so `import napari_stimage` stays light
import numpy as np

from ..coloring import GeneColoring, GeneValues, LabelPalette, image_coloring
from ..core.labels import is_unlabelled, label_categories
from ..core.selection import Selection
from ..curation.bins import BinGrid, LabelRasterSync
from ..curation.editor import LabelEditor
from .following import HELPER_KEY, contains_layer, placed_like, raise_to_top, unwrap
from .metadata import EDITOR_KEY, SLIDE_KEY, slide_of


class LabelsLayerSync(LabelRasterSync):
    """A `LabelRasterSync` shown on a napari Labels layer (in the label palette's colours)."""

    def __init__(self, grid: BinGrid, editor, categories: list[str] | None = None):
        super().__init__(grid, editor, categories)
        self.layer = None  # the Labels layer once bound
        self._empty_pixels: np.ndarray | None = None
        self._color_dict: dict | None = None

    # -- colours ---------------------------------------------------------------------------------
    def color_dict(self) -> dict:
        """Code -> colour from the shared label palette (`coloring.LabelPalette`), 0 transparent.

        The colour set is resolved over the labels in curation order plus the ones known to this
        raster, with the annotation file's remembered colours, as the label legend does, so a
        label has the same colour on bins as on spots and in the legend.
        Labels the editor hides (`LabelEditor.set_hidden_labels`, the legend's hide/solo) are
        transparent, as their spots are; call `refresh_colors()` after changing them.
        """
        in_use = [*self.editor.categories(), *label_categories(self.categories)]
        colors = LabelPalette().for_annotation(self.editor.path).colors(in_use)
        hidden = getattr(self.editor, "hidden_labels", frozenset())
        out = {None: "#808080", 0: "transparent"}  # None: a code napari made up before it is named
        out.update({k + 1: "transparent" if label in hidden else colors[label]
                    for k, label in enumerate(self.categories)})
        return out

    def refresh_colors(self, layer=None) -> bool:
        """Give the Labels layer the palette's colours when they changed; True when they did."""
        layer = layer if layer is not None else self.layer
        if layer is None:
            return False
        colors = self.color_dict()
        if colors == self._color_dict:
            return False
        from napari.utils.colormaps import DirectLabelColormap  # Qt-free

        layer.colormap = DirectLabelColormap(color_dict=colors)
        self._color_dict = colors
        return True

    # -- napari ----------------------------------------------------------------------------------
    def _clear_empty_pixels(self, layer) -> bool:
        """Pixels with no bin under them never hold a label (a brush paints them too)."""
        if self._empty_pixels is None:
            self._empty_pixels = np.flatnonzero(self.grid.spot_index_raster().reshape(-1) < 0)
        flat = np.asarray(layer.data).reshape(-1)
        if self._empty_pixels.size and flat[self._empty_pixels].any():
            flat[self._empty_pixels] = 0
            return True
        return False

    def bind(self, layer) -> None:
        """Connect a napari Labels layer whose data is `self.raster` (painting -> editor -> raster).

        Ctrl+Z / Ctrl+Shift+Z on the layer go to the editor: napari's own Labels undo would
        change the pixels behind the editor's back.
        """
        from app_model.types import KeyCode, KeyMod

        def view(indices):
            self.on_editor_change(indices)
            if layer.data is not self.raster:  # widened for more labels than its dtype holds
                layer.data = self.raster
            self.refresh_colors(layer)
            layer.refresh()

        def painted(event=None):
            try:
                if self.on_paint_atoms(getattr(event, "value", None)) is None:
                    self.on_painted(layer.data)
            except Exception:
                self.on_editor_change(None)  # show what the editor holds, never a label it refused
                layer.refresh()
                raise
            cleared = self._clear_empty_pixels(layer)
            if not self.refresh_colors(layer) and cleared:
                layer.refresh()

        self.layer = layer
        self.editor.add_view(view)
        # An emitter without callbacks is falsy, so test for the attribute, not its truth.
        if hasattr(layer.events, "paint"):
            layer.events.paint.connect(painted)
        else:
            layer.events.data.connect(lambda _event=None: self.on_painted(layer.data))
        layer.bind_key(KeyMod.CtrlCmd | KeyCode.KeyZ, lambda _layer: self.editor.undo(), overwrite=True)
        layer.bind_key(KeyMod.CtrlCmd | KeyMod.Shift | KeyCode.KeyZ, lambda _layer: self.editor.redo(), overwrite=True)
        self.refresh_colors(layer)


BINS_SUFFIX = " bins"
BIN_LABELS_SUFFIX = " bin labels"
GENE_SUFFIX = " gene"
GRID_KEY = "stimage_bin_grid"
GENE_VALUES_KEY = "stimage_gene_values"
COLORING_KEY = "stimage_gene_coloring"
CATEGORIES_KEY = "stimage_label_categories"
SYNC_KEY = "stimage_label_sync"
SELECTION_KEY = "stimage_bin_selection"
SELECTION_LAYER_KEY = "stimage_bin_selection_layer"
SELECTION_SUFFIX = " selection"
# magenta, as the selection tools' outline (no label colour is pink or purple); a ring of bins
# round each selected patch, so the labels' colours stay visible inside it
SELECTION_COLOR = "#ff00ff"
SELECTION_CONTOUR = 1
BIN_OPACITY = 0.85  # as spots (`layers.spots_layer_data`): the H&E shows a little through either


def bin_layer_data(slide, grid: BinGrid) -> list[tuple]:
    """napari layer-data tuples for a dense grid: total counts as an image, labels as Labels.

    Both carry the slide (`metadata["stimage_slide"]`) and the grid (`metadata["stimage_bin_grid"]`).
    To show a gene: `layer.data = grid.raster(slide.gene_values(gene))`. Label editing on bins
    needs `bind_bin_labels(labels_layer)`, which `watch_viewer` does for every viewer it watches.
    """
    placement = grid.layer_kwargs()
    meta = {SLIDE_KEY: slide, GRID_KEY: grid}
    values = np.log1p(np.nan_to_num(slide.total_counts, nan=0.0))
    counts = grid.raster(values)
    label_raster, categories = grid.label_raster(slide.labels)
    # a slide with labels opens coloured by them (`layers.initial_coloring`): the total counts
    # stay in the layer list, hidden, so nothing tints the labels' colours
    labelled = bool(categories)
    return [
        (
            counts,
            {"name": f"{slide.name}{BINS_SUFFIX}", "colormap": "viridis", "opacity": BIN_OPACITY,
             "visible": not labelled, "metadata": {**meta, "stimage_values": "log1p total_counts"}, **placement},
            "image",
        ),
        (
            label_raster,
            {"name": f"{slide.name}{BIN_LABELS_SUFFIX}", "opacity": BIN_OPACITY,
             "metadata": {**meta, CATEGORIES_KEY: categories}, **placement},
            "labels",
        ),
    ]


def is_bin_labels_layer(layer) -> bool:
    """A Labels layer of a slide's bins made by `bin_layer_data`."""
    from napari.layers import Labels  # Qt-free

    meta = getattr(layer, "metadata", None) or {}
    return (
        isinstance(layer, Labels)
        and isinstance(meta.get(GRID_KEY), BinGrid)
        and slide_of(layer) is not None
    )


def bin_labels_sync(layer) -> LabelsLayerSync | None:
    """The link `bind_bin_labels` made for this layer, or None while it is unbound."""
    sync = (getattr(layer, "metadata", None) or {}).get(SYNC_KEY)
    return sync if isinstance(sync, LabelsLayerSync) and sync.layer is layer else None


def bind_bin_labels(layer, editor=None) -> LabelsLayerSync:
    """Make a bin-labels Labels layer editable: painting bins assigns labels to their spots.

    Uses (or creates from the slide) the `curation.editor.LabelEditor`, stored in the layer's metadata
    under the editor key, so `viewer.editors.editor_for_layer(layer)` finds it (undo, save, autosave).
    Idempotent: a layer already bound returns its link. Bins painted before binding are kept
    (`LabelRasterSync.adopt_painting`).
    """
    bound = bin_labels_sync(layer)
    if bound is not None:
        return bound
    slide = slide_of(layer)
    grid = layer.metadata.get(GRID_KEY)
    if slide is None or grid is None:
        raise ValueError(f"layer {layer.name!r} is not a napari-stimage bin-labels layer")
    categories = layer.metadata.get(CATEGORIES_KEY)
    editor = editor or layer.metadata.get(EDITOR_KEY) or LabelEditor.from_slide(slide)
    sync = LabelsLayerSync(grid, editor, categories)
    painted = np.asarray(layer.data)
    if painted.shape == grid.shape:
        pristine, _ = grid.label_raster(slide.labels)  # what bin_layer_data drew, codes of `categories`
        sync.adopt_painting(painted, pristine)
    layer.data = sync.raster
    layer.metadata[EDITOR_KEY] = editor
    layer.metadata[SYNC_KEY] = sync
    sync.bind(layer)
    return sync


def _bind_inserted_layer(event) -> None:
    layer = getattr(event, "value", None)
    if is_bin_labels_layer(layer):
        bind_bin_labels(layer)


def bin_grid_of(layer) -> BinGrid | None:
    """The bin grid a layer of this plugin is drawn on, or None for spots and foreign layers."""
    grid = (getattr(layer, "metadata", None) or {}).get(GRID_KEY)
    return grid if isinstance(grid, BinGrid) else None


def _slide_layer(viewer, slide, name: str):
    """The layer `name` of `slide` (unwrapped: a docked widget's viewer hands out proxies)."""
    for layer in viewer.layers:
        layer = unwrap(layer)
        if layer.name == name and slide_of(layer) is unwrap(slide):
            return layer
    return None


def counts_layer_of(viewer, slide):
    """The slide's "{slide} bins" total-counts Image layer (unwrapped), None when removed."""
    return _slide_layer(viewer, slide, f"{unwrap(slide).name}{BINS_SUFFIX}")


def gene_layer_of(viewer, slide):
    """The slide's "{slide} gene" Image layer (unwrapped), None until a gene was shown."""
    return _slide_layer(viewer, slide, f"{unwrap(slide).name}{GENE_SUFFIX}")


def bin_selection(layer) -> Selection:
    """The bins selected on a bin-labels layer: spot indices, kept in the layer's metadata so
    the selection outlives the widgets that make it."""
    selection = layer.metadata.get(SELECTION_KEY)
    if not isinstance(selection, Selection):
        selection = layer.metadata[SELECTION_KEY] = Selection()
    return selection


def draw_bin_selection(viewer, layer) -> None:
    """Show the selected bins of a bin-labels layer on a helper Labels layer "{layer} selection"
    above it, outlined in magenta; no helper layer while nothing is selected.

    Bins have no selection highlight of their own (a Labels layer is a raster), so this is it.
    The caller makes the curated layer active again if adding this one took that away.
    """
    from napari.utils.colormaps import DirectLabelColormap

    indices = bin_selection(layer).indices
    shown = _selection_layer(viewer, layer)
    if indices.size == 0:
        hide_bin_selection(viewer, layer)
        return
    grid = bin_grid_of(layer)
    mask = np.zeros(grid.shape, dtype=np.uint8)
    mask.reshape(-1)[grid.flat_index[indices]] = 1
    if shown is not None:
        shown.data = mask
        raise_to_top(viewer, shown)
        return
    colors = DirectLabelColormap(color_dict={None: "transparent", 0: "transparent", 1: SELECTION_COLOR})
    shown = unwrap(viewer.add_labels(
        mask, name=f"{layer.name}{SELECTION_SUFFIX}", colormap=colors, opacity=1.0,
        metadata={HELPER_KEY: True}, **placed_like(layer),
    ))
    shown.contour = SELECTION_CONTOUR
    layer.metadata[SELECTION_LAYER_KEY] = shown


def hide_bin_selection(viewer, layer) -> None:
    """Remove the helper layer of `draw_bin_selection` (the selection itself is kept)."""
    shown = _selection_layer(viewer, layer)
    layer.metadata.pop(SELECTION_LAYER_KEY, None)
    if shown is not None:
        viewer.layers.remove(shown)


def _selection_layer(viewer, layer):
    shown = layer.metadata.get(SELECTION_LAYER_KEY)
    return shown if shown is not None and contains_layer(viewer.layers, shown) else None


def show_gene_on_bins(viewer, slide, grid: BinGrid, values: GeneValues, coloring: GeneColoring):
    """Show a gene (or gene-set score) on the bins: the slide's "{slide} gene" Image layer, made
    on first use and updated in place after (data, colormap, contrast limits), so a switch
    allocates one raster and no layer. Returns the layer.

    `values` are the coloring's per-spot values (`GeneValues.of(coloring.values(slide))`, or a
    `GeneValuesCache` hit); non-expressing and missing bins follow `coloring.image_coloring`.
    """
    slide, grid = unwrap(slide), unwrap(grid)
    shown = image_coloring(values, coloring)
    raster = grid.raster(shown.values)
    name = f"{slide.name}{GENE_SUFFIX}"
    layer = gene_layer_of(viewer, slide)
    meta = {GENE_VALUES_KEY: values, COLORING_KEY: coloring}
    if layer is None:
        layer = viewer.add_image(
            raster, name=name, colormap=shown.colormap, contrast_limits=shown.contrast_limits, opacity=BIN_OPACITY,
            metadata={SLIDE_KEY: slide, GRID_KEY: grid, **meta}, **grid.layer_kwargs(),
        )
    else:
        layer.metadata.update(meta)
        layer.data = raster
        layer.colormap = shown.colormap
        layer.contrast_limits = shown.contrast_limits
    return layer


def bin_status(layer, world_position) -> str | None:
    """Status-bar text for the bin under `world_position` on a bin layer: its id, its label (as
    the editor holds it) and, on a gene layer, the gene's value. None off the bins."""
    grid, slide = bin_grid_of(layer), slide_of(layer)
    if grid is None or slide is None or world_position is None:
        return None
    spot = int(grid.spots_at_world(world_position)[0])
    if spot < 0:
        return None
    editor = layer.metadata.get(EDITOR_KEY)
    label = (editor.labels if editor is not None else slide.labels)[spot]
    parts = [f"bin {slide.spots['spot_id'].iat[spot]}", "unlabelled" if is_unlabelled(label) else str(label)]
    values, coloring = layer.metadata.get(GENE_VALUES_KEY), layer.metadata.get(COLORING_KEY)
    if isinstance(values, GeneValues) and isinstance(coloring, GeneColoring):
        value = values.values[spot]
        parts.append(f"{coloring.title}: {'no counts' if np.isnan(value) else f'{value:.4g}'}")
    return " · ".join(parts)


class _BinHover:
    """After napari's own status update on a cursor move: describe the bin under the cursor."""

    def __init__(self, viewer):
        self.viewer = viewer

    def __call__(self, _event=None) -> None:
        layer = self.viewer.layers.selection.active
        text = bin_status(layer, self.viewer.cursor.position) if layer is not None and layer.visible else None
        if text is not None:
            self.viewer.status = f"{layer.name}: {text}"
            self.viewer.tooltip.text = text


def watch_viewer(viewer) -> None:
    """Bind every bin-labels layer of `viewer` to a label editor, now and whenever one is added,
    and describe the bin under the cursor in the status bar (`bin_status`).

    This is the one place bins become editable. `layers.add_slide_to_viewer` (the path of
    `napari-stimage open`/`demo`) and the Curate widget (any layer napari's reader added) call it;
    calling it again is harmless.
    """
    emitter = viewer.layers.events.inserted
    if _bind_inserted_layer not in emitter.callbacks:
        emitter.connect(_bind_inserted_layer)
    moved = viewer.cursor.events.position
    if not any(isinstance(callback, _BinHover) for callback in moved.callbacks):
        moved.connect(_BinHover(viewer))  # after napari's own handler, so this text is the one shown
    for layer in list(viewer.layers):
        if is_bin_labels_layer(layer):
            bind_bin_labels(layer)
