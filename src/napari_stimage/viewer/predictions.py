"""Predictions in the viewer: models' predictions kept on a slide's spots layer, and the compare
view (measured log1p, predicted, residual side by side in napari's grid, one camera for all).

    >>> from napari_stimage import add_predictions
    >>> result = add_predictions(viewer.layers["SLIDE spots"], "pred_SLIDE.h5ad", barcodes="SLIDE.h5")
    >>> result.table.sort_values("pearson_r")           # per gene: pearson_r, r2, l2_error, mean_measured

The "Compare predictions" dock widget shows what is attached to the spots layer it follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from psygnal import SignalInstance

from .. import coloring as col
from ..io.predictions import Comparison, Predictions, compare, load_predictions
from .following import HELPER_KEY, contains_layer, unwrap
from .layer_colors import set_face_colors
from .layers import RIM_COLOR, RIM_WIDTH, image_layer_data
from .metadata import COMPARE_KEY, PREDICTIONS_KEY, slide_of

ROLES = ("measured", "predicted", "residual")


@dataclass(frozen=True, eq=False)
class ModelOnSlide:
    """One model's predictions placed on a slide, and how they compare with its counts."""

    predictions: Predictions
    comparison: Comparison

    @property
    def name(self) -> str:
        return self.comparison.model


def load_model(slide, path: str | Path, barcodes: str | Path | None = None, name: str | None = None) -> ModelOnSlide:
    """Read, place and judge a prediction file (Qt-free heavy work: run it off the GUI thread).
    Raises SlideError naming the file and what did not match."""
    predictions = load_predictions(slide, path, barcodes=barcodes, name=name)
    return ModelOnSlide(predictions, compare(slide, predictions))


# Emitted with the (unwrapped) spots layer after predictions were attached to it: the compare
# widget shows them whoever attached them (its button, a dropped file, a script).
attached = SignalInstance((object,), name="attached")


def models_of(layer) -> list[ModelOnSlide]:
    """The models attached to a spots layer, in the order they were loaded."""
    return list((getattr(layer, "metadata", None) or {}).get(PREDICTIONS_KEY, ()))


def attach_model(layer, model: ModelOnSlide) -> list[ModelOnSlide]:
    """Keep `model` on the spots layer (a file loaded again replaces its earlier copy); returns
    the layer's models."""
    layer = unwrap(layer)
    models = [m for m in models_of(layer) if m.predictions.source != model.predictions.source] + [model]
    layer.metadata[PREDICTIONS_KEY] = models
    attached.emit(layer)
    return models


def add_predictions(layer, path: str | Path, barcodes: str | Path | None = None,
                    name: str | None = None) -> Comparison:
    """Load a prediction `.h5ad` onto a slide's spots layer from a script; returns its comparison.

    Rows are placed as `io.predictions.load_predictions` says (barcodes file, spot-id obs_names,
    or the verified spot order); anything else raises SlideError naming the file. A docked
    "Compare predictions" widget following the layer lists the genes at once.
    """
    slide = slide_of(layer)
    if slide is None or slide.expression is None:
        raise ValueError(f"layer {layer.name!r} is not a napari-stimage spots layer with expression")
    model = load_model(slide, path, barcodes, name)
    attach_model(layer, model)
    return model.comparison


def compare_role(layer) -> str | None:
    """'measured', 'predicted' or 'residual' for a points layer of the compare view, else None."""
    role = (getattr(layer, "metadata", None) or {}).get(COMPARE_KEY)
    return role if role in ROLES else None


class CompareView:
    """Measured, predicted and residual of one gene as three tiles of napari's grid.

    Each tile holds the slide's image (its own layer over the same arrays: no copy) under a
    points layer coloured by `coloring.ComparisonColors`, with its colorbar and name on the tile.
    The tiles share napari's one camera, so they pan and zoom together. The view's layers go to
    the bottom of the layer list in tile order (grid stride 2: image + spots per tile); the
    slide's own layers and any other are hidden while it is shown and come back as they were
    on `close()`. Its layers are helper layers: the colour and curate widgets never follow them.
    Face colours go through `layer_colors.set_face_colors`, one canvas upload per change.
    """

    def __init__(self, viewer, spots_layer):
        self.viewer = viewer
        self.spots_layer = unwrap(spots_layer)
        self.slide = slide_of(self.spots_layer)
        self.points: dict[str, object] = {}
        self.images: list = []
        self.model: ModelOnSlide | None = None
        self.gene: str | None = None
        self.colors: col.ComparisonColors | None = None
        self._hidden: list = []
        self._grid_before: dict | None = None

    @property
    def is_shown(self) -> bool:
        return bool(self.points) and all(contains_layer(self.viewer.layers, layer) for layer in self.points.values())

    def show(self, model: ModelOnSlide, gene: str, colormap: str = "viridis") -> col.ComparisonColors:
        """Show `gene` of `model` (building the tiles on first use). KeyError for a gene not on both sides."""
        self.model = model
        if not self.is_shown:
            self._build()
        return self.set_gene(gene, colormap)

    def set_gene(self, gene: str, colormap: str | None = None) -> col.ComparisonColors:
        """Recolour the three tiles for `gene`: colours, colorbars and tile names, never new layers."""
        colormap = colormap or (self.colors.measured_coloring.colormap if self.colors else "viridis")
        measured = np.log1p(self.slide.gene_values(gene))  # KeyError when not measured
        predicted = self.model.predictions.gene_values(gene)  # KeyError when not predicted
        self.colors = colors = col.ComparisonColors.of(gene, measured, predicted, colormap)
        self.gene = gene
        titles = {
            "measured": f"{gene} measured · log1p",
            "predicted": f"{gene} predicted · {self.model.name}",
            "residual": f"{gene} residual (predicted - measured)",
        }
        codings = (colors.measured_coloring, colors.predicted_coloring, colors.residual_coloring)
        for role, rgba, coloring in zip(ROLES, colors.colors(), codings, strict=True):
            layer = self.points[role]
            set_face_colors(layer, rgba)
            # the colorbar reads the layer's colormap and limits (set only when they change:
            # each change re-lays out the bar)
            if layer.face_colormap.name != coloring.colormap:
                layer.face_colormap = coloring.colormap
            limits = tuple(float(v) for v in coloring.contrast_limits)
            if layer.face_contrast_limits is None or tuple(layer.face_contrast_limits) != limits:
                layer.face_contrast_limits = limits
            layer.name = titles[role]
        return colors

    def close(self) -> None:
        """Remove the tiles; the grid and the other layers' visibility come back as they were."""
        for layer in [*self.images, *self.points.values()]:
            if contains_layer(self.viewer.layers, layer):
                self.viewer.layers.remove(layer)
        self.points, self.images = {}, []
        for layer, visible in self._hidden:
            if contains_layer(self.viewer.layers, layer):
                layer.visible = visible
        self._hidden = []
        if self._grid_before is not None:
            self.viewer.canvas.grid.update(self._grid_before)
            self._grid_before = None

    def _build(self) -> None:
        from napari.layers import Image, Points

        self.close()
        image = image_layer_data(self.slide)
        ordered = []
        for role in ROLES:
            meta = {HELPER_KEY: True, COMPARE_KEY: role}
            if image is not None:
                data, kwargs, _ = image
                self.images.append(Image(data, **{**kwargs, "name": f"{self.slide.name} H&E ({role})",
                                                  "metadata": {HELPER_KEY: True, COMPARE_KEY: f"{role} image"}}))
                ordered.append(self.images[-1])
            points = Points(self.slide.positions, size=self.slide.diameters, name=role, metadata=meta,
                            border_color=RIM_COLOR, border_width=RIM_WIDTH, border_width_is_relative=True,
                            opacity=0.9, face_color="transparent")
            points.face_colorbar.update({"visible": True, "position": "bottom_right"})  # the tile's name is top left
            points.name_overlay.visible = True
            self.points[role] = points
            ordered.append(points)
        self._hidden = [(unwrap(layer), layer.visible) for layer in self.viewer.layers]
        for layer, _ in self._hidden:
            layer.visible = False
        for k, layer in enumerate(ordered):  # at the bottom, in tile order: stride groups start at 0
            self.viewer.layers.insert(k, layer)
        grid = self.viewer.canvas.grid
        self._grid_before = {"enabled": grid.enabled, "stride": grid.stride, "shape": grid.shape}
        grid.update({"stride": 2 if image is not None else 1, "shape": (1, len(ROLES)), "enabled": True})
