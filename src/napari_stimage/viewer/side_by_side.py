"""Several slides side by side in napari's grid: one tile per slide, one gene, one colour range.

napari's grid mode places `stride` consecutive layers in each tile, so each slide's layers are
moved next to each other (image, spots, name) and the stride is the number of layers per slide.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import coloring as col
from .following import HELPER_KEY, unwrap
from .metadata import slide_of

MAX_SIDE_BY_SIDE = 6
NAME_TEXT_SIZE = 12


def grid_of(viewer):
    """napari's grid settings: `viewer.canvas.grid` since napari 0.9, `viewer.grid` before."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


def add_name_layer(viewer, slide, at: tuple[float, float] = (0.0, 0.0)):
    """A text label with the slide's name in the top-left corner of its tile."""
    return viewer.add_points(
        np.array([at]), name=f"{slide.name} name", size=1, face_color="transparent", border_width=0,
        text={"string": [slide.name], "color": "white", "size": NAME_TEXT_SIZE, "anchor": "upper_left"},
        metadata={HELPER_KEY: True}, blending="translucent_no_depth",
    )


def arrange_in_grid(viewer, groups: Sequence[Sequence]) -> None:
    """Put each group of layers (one slide's) in its own grid tile, in the order given.

    Raises ValueError when the groups differ in size: napari's grid stride is one number.
    """
    sizes = {len(g) for g in groups}
    if len(sizes) != 1:
        raise ValueError("side by side needs the same layers for every slide (one has no image?)")
    ordered = [unwrap(layer) for group in groups for layer in group]
    for target, layer in enumerate(ordered):
        current = next(i for i, other in enumerate(viewer.layers) if unwrap(other) is layer)
        if current != target:
            viewer.layers.move(current, target)
    grid = grid_of(viewer)
    grid.stride = sizes.pop()
    grid.shape = (-1, -1)
    grid.enabled = True


def color_by_gene(spots_layers: Sequence, coloring: col.GeneColoring, shared: bool = True) -> list[tuple[float, float]]:
    """Colour every slide's spots by `coloring`'s genes with one shared range (or each its own);
    returns the limits used per layer. Only the last layer shows napari's colorbar when shared."""
    values = [coloring.values(slide_of(layer)) for layer in spots_layers]
    limits = col.side_by_side_limits(values, shared)
    for k, (layer, v, lim) in enumerate(zip(spots_layers, values, limits, strict=True)):
        fixed = col.GeneColoring(coloring.genes, coloring.transform, coloring.colormap, lim, coloring.non_expressing)
        layer.face_color = col.gene_colors(v, fixed)
        layer.face_colormap = coloring.colormap
        layer.face_contrast_limits = lim
        layer.face_colorbar.visible = (k == len(spots_layers) - 1) or not shared
    return limits
