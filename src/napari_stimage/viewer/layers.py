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
from ..curation.editor import label_order_of
from .bins import bin_layer_data, watch_viewer
from .metadata import SLIDE_KEY, slide_of

SPOTS_SUFFIX = " spots"


def spots_layer_name(slide: Slide) -> str:
    return f"{slide.name}{SPOTS_SUFFIX}"


def layer_metadata(slide: Slide) -> dict:
    """What every layer of a slide keeps in `layer.metadata`: the slide, and the source's
    sample description when it has one (`source.sample_metadata`: organ, technology, ...)."""
    meta = {SLIDE_KEY: slide}
    sample = getattr(slide.source, "sample_metadata", None)
    if sample:
        meta["sample"] = dict(sample)
    return meta


def pixel_size_um(slide: Slide) -> float | None:
    """µm per full-resolution pixel when the source knows it (`source.pixel_size_um`), else None."""
    value = getattr(slide.source, "pixel_size_um", None)
    return float(value) if value else None


def in_microns(slide: Slide, meta: dict) -> dict:
    """Place a layer in µm when the slide has a pixel size: its data stays in full-res pixels,
    its scale (and translate or affine) is multiplied by the pixel size and its units are µm, so
    napari's scale bar shows true microns. Unchanged without a pixel size."""
    size = pixel_size_um(slide)
    if size is None:
        return meta
    meta = dict(meta)
    if "affine" in meta:
        meta["affine"] = np.diag([size, size, 1.0]) @ np.asarray(meta["affine"], dtype=np.float64)
    else:
        meta["scale"] = tuple(size * float(v) for v in meta.get("scale", (1.0, 1.0)))
        if "translate" in meta:
            meta["translate"] = tuple(size * float(v) for v in meta["translate"])
    meta["units"] = ("um", "um")
    return meta


def show_scale_bar(viewer, slide: Slide) -> None:
    """Turn napari's scale bar on for a slide placed in µm (`in_microns`)."""
    if pixel_size_um(slide) is not None:
        canvas = getattr(viewer, "canvas", None)  # napari >= 0.9; older versions: viewer.scale_bar
        bar = canvas.overlays.scale_bar if canvas is not None else viewer.scale_bar
        bar.visible = True


def image_layer_data(slide: Slide) -> tuple | None:
    levels = slide.image_levels
    if not levels:
        return None
    rgb = levels[0].ndim == 3 and levels[0].shape[-1] == 3
    meta = {"name": slide.name, "rgb": rgb, "metadata": layer_metadata(slide)}
    if slide.image_scale != 1.0:  # a downscaled image (Visium hires/lowres, a HEST thumbnail) under full-res spots
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
        path = slide.source.save_target.path
        return col.label_colors(labels, col.LabelPalette().for_annotation(path), order=label_order_of(path, labels))
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
        "metadata": layer_metadata(slide),
    }
    symbol = getattr(slide.source, "spot_symbol", "disc")
    if symbol != "disc":
        meta["symbol"] = symbol  # e.g. square pseudo-spots, `r` being half their side
    return (slide.positions, meta, "points")


def overlay_layer_data(slide: Slide) -> list[tuple]:
    """The source's optional overlays (`source.load_overlays`, e.g. HEST's tissue contours and
    CellViT cells): outlines as one Shapes layer, points as one Points layer coloured by class."""
    load = getattr(slide.source, "load_overlays", None)
    if load is None:
        return []
    layers = []
    for overlay in load(notes=slide.report.notes):
        name = f"{slide.name} {overlay.name}"
        # not the slide itself: the widgets take any Points layer carrying a slide for its spots
        meta = {"name": name, "metadata": {k: v for k, v in layer_metadata(slide).items() if k != SLIDE_KEY}}
        if overlay.kind == "outlines" and overlay.data:
            layers.append((overlay.data, {**meta, "shape_type": "polygon", "edge_color": overlay.color,
                                          "face_color": "transparent", "edge_width": 2.0}, "shapes"))
        elif overlay.kind == "points" and len(overlay.data):
            layers.append((overlay.data, {**meta, "size": overlay.size, "face_color": overlay.colors,
                                          "border_width": 0, "features": {"class": overlay.classes}}, "points"))
    return layers


def slide_layer_data(slide: Slide) -> list[tuple]:
    """Image (when the slide has one) then spots, as napari layer-data tuples.

    Dense bin grids (VisiumHD) get raster layers instead of Points: see `viewer/bins.py`.
    """
    layers = []
    image = image_layer_data(slide)
    if image is not None:
        layers.append(image)
    layers.extend(overlay_layer_data(slide))
    grid = bin_grid(slide)
    if grid is not None:
        layers.extend(bin_layer_data(slide, grid))
    else:
        layers.append(spots_layer_data(slide))
    return [(data, in_microns(slide, meta), kind) for data, meta, kind in layers]


def add_slide_to_viewer(viewer, slide: Slide, layer_data: list[tuple] | None = None) -> list:
    """Add a slide's layers to `viewer` (from `layer_data` when already built); returns them.

    Bin-labels layers come out bound to a label editor (painting bins edits the annotation).
    """
    watch_viewer(viewer)
    show_scale_bar(viewer, slide)
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
