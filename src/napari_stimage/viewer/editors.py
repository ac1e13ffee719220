"""Each slide layer's label editor, kept in its metadata, and the Points layer as a view of it."""

from __future__ import annotations

import numpy as np

from ..curation.editor import LabelEditor, View
from .bins import bind_bin_labels, is_bin_labels_layer
from .metadata import EDITOR_KEY, slide_of


def bind_points_layer(editor: LabelEditor, layer) -> View:
    """Keep `layer.features["label"]` in sync and emit `layer.events.features` after each edit."""
    n = len(layer.data)
    if n != len(editor.spot_ids):
        raise ValueError(f"layer {layer.name!r} has {n} points but the slide has {len(editor.spot_ids)} spots")

    def update_layer(indices):
        features = layer.features
        if len(features) != len(editor.spot_ids):
            return  # points were added/removed by hand: the editor, not the layer, holds the labels
        if indices is None or "label" not in features.columns or features["label"].dtype != object:
            features["label"] = editor.labels_for_layer()
        else:
            values = editor.labels_at(indices)
            values[np.equal(values, None)] = np.nan
            column = features.columns.get_loc("label")
            features.iloc[indices, column] = values
        layer.events.features()

    editor.add_view(update_layer)
    update_layer(None)
    return update_layer


def editor_for_layer(layer, create: bool = True) -> LabelEditor | None:
    """The label editor kept in `layer.metadata["stimage_label_editor"]` (made on first use).

    A spots Points layer is bound as a view; a bin-labels layer is bound by `viewer.bins.bind_bin_labels`.
    To share one editor between layers of a slide,
    put the same editor in each layer's metadata under `EDITOR_KEY`.
    """
    editor = layer.metadata.get(EDITOR_KEY)
    if editor is not None or not create:
        return editor
    if is_bin_labels_layer(layer):
        return bind_bin_labels(layer).editor  # the raster must follow the editor from its first edit
    slide = slide_of(layer)
    if slide is None:
        raise ValueError(f"layer {layer.name!r} is not a napari-stimage spots layer")
    editor = LabelEditor.from_slide(slide)
    features = getattr(layer, "features", None)
    layer.metadata[EDITOR_KEY] = editor
    if features is not None and len(features) == slide.n_spots:
        bind_points_layer(editor, layer)  # a spots Points layer; other layers (bin rasters) add their own view
        # views of the label column (the colour widget's legend) now follow the editor's order
        layer.events.features()
    return editor
