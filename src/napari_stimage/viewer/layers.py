"""napari layer data for a slide (no Qt here: layer-data tuples and layer helpers).

The spots layer carries its `Slide` in `layer.metadata["stimage_slide"]`; widgets and the
writer reach the slide through `slide_of(layer)`. Any gene becomes a point feature with
one call:

    >>> from napari_stimage import add_gene_features
    >>> add_gene_features(viewer.layers["SLIDE spots"], ["CD3E", "MS4A1"])
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .. import coloring as col
from ..core.labels import is_unlabelled
from ..core.slide import Slide
from ..curation.bins import bin_grid
from .bins import bin_layer_data, watch_viewer
from .metadata import SLIDE_KEY, slide_of

SPOTS_SUFFIX = " spots"


def spots_layer_name(slide: Slide) -> str:
    return f"{slide.name}{SPOTS_SUFFIX}"


def image_layer_data(slide: Slide) -> tuple | None:
    levels = slide.image_levels
    if not levels:
        return None
    rgb = levels[0].ndim == 3 and levels[0].shape[-1] == 3
    meta = {"name": slide.name, "rgb": rgb, "metadata": {SLIDE_KEY: slide}}
    if slide.image_scale != 1.0:  # a downscaled image (Visium hires/lowres) placed under full-res spots
        meta["scale"] = (slide.image_scale, slide.image_scale)
        # napari puts pixel centres at integer coordinates: image pixel k spans full-res [k*s, (k+1)*s)
        meta["translate"] = ((slide.image_scale - 1) / 2,) * 2
    if len(levels) > 1:
        return (levels, {**meta, "multiscale": True}, "image")
    return (levels[0], meta, "image")


def initial_coloring(slide: Slide, labels) -> tuple[str | None, str | None]:
    """What a slide opens coloured by: ("label", None) when it has any pathologist label, else
    ("gene", its most variable gene), else (None, None). The reader and the widget both follow it."""
    if any(not is_unlabelled(v) for v in labels):
        return "label", None
    if slide.default_genes:
        return "gene", slide.default_genes[0]
    return None, None


def initial_face_colors(slide: Slide, labels: np.ndarray) -> np.ndarray | str:
    """The colours of `initial_coloring`, computed as the "Color spots" widget does (its default
    transform for the slide, autoscaled)."""
    mode, gene = initial_coloring(slide, labels)
    if mode == "label":
        return col.label_colors(labels, col.LabelPalette())
    if mode == "gene":
        gene_coloring = col.GeneColoring((gene,), transform=col.default_transform(slide))
        values = gene_coloring.values(slide)
        return col.gene_colors(values, gene_coloring.with_limits(values))
    return "transparent"


RIM_COLOR = "#ffffff"
RIM_WIDTH = 0.05  # of the diameter: a faint rim keeps neighbouring spots apart without hiding the H&E
OUTLINE_WIDTH = 0.18  # outline-only spots: a ring wide enough to read its colour, the tissue inside


def spots_layer_data(slide: Slide) -> tuple:
    features = slide.features()
    meta = {
        "name": spots_layer_name(slide),
        "size": slide.diameters,
        "features": features,
        "face_color": initial_face_colors(slide, features["label"].to_numpy()),
        "border_color": RIM_COLOR,
        "border_width": RIM_WIDTH,
        "border_width_is_relative": True,
        "opacity": 0.85,
        "metadata": {SLIDE_KEY: slide},
    }
    return (slide.positions, meta, "points")


def slide_layer_data(slide: Slide) -> list[tuple]:
    """Image (when the slide has one) then spots, as napari layer-data tuples.

    Dense bin grids (VisiumHD) get raster layers instead of Points: see `viewer/bins.py`.
    """
    layers = []
    image = image_layer_data(slide)
    if image is not None:
        layers.append(image)
    grid = bin_grid(slide)
    if grid is not None:
        layers.extend(bin_layer_data(slide, grid))
    else:
        layers.append(spots_layer_data(slide))
    return layers


def add_slide_to_viewer(viewer, slide: Slide, layer_data: list[tuple] | None = None) -> list:
    """Add a slide's layers to `viewer` (from `layer_data` when already built); returns them.

    Bin-labels layers come out bound to a label editor (painting bins edits the annotation).
    """
    watch_viewer(viewer)
    layer_data = slide_layer_data(slide) if layer_data is None else layer_data
    return [getattr(viewer, f"add_{kind}")(data, **meta) for data, meta, kind in layer_data]


def add_gene_features(layer, genes: str | Iterable[str]) -> list[str]:
    """Add genes as feature columns of a slide's spots layer; returns the column names added.

    Genes already present are left as they are. Unknown genes raise KeyError naming the gene.
    """
    slide = slide_of(layer)
    if slide is None or slide.expression is None:
        raise ValueError(f"layer {layer.name!r} is not a napari-stimage spots layer with expression")
    genes = [genes] if isinstance(genes, str) else list(genes)
    features = layer.features
    added = []
    for gene in genes:
        column = slide.expression.gene_names[slide.expression.gene_index(gene)]
        if column not in features.columns:
            features[column] = slide.gene_values(column)
            added.append(column)
    if added:
        layer.features = features  # reassign so napari emits its features event
    return added
