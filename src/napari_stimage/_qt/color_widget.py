"""Dock widget: colour a slide's spots, or a VisiumHD slide's bins, by a gene / gene-set score or
by a categorical label.

A thin view over `viewer.layer_colors.SpotsColoring` / `BinsColoring` and `coloring.py` (which `napari-stimage
render` uses too), built from three panels: display controls, the gene picker (Gene tab) and
the legend (Label tab). Switching genes only sets the layer's face colours; the layer is never
rebuilt.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
from qtpy.QtWidgets import QTabWidget, QVBoxLayout

from .. import coloring as col
from ..viewer.canvas import text_overlay
from ..viewer.layer_colors import STATE_KEY, VALUE_COLUMN, BinsColoring, LayerColorState, SpotsColoring, coloring_for
from ..viewer.layers import initial_coloring
from ..viewer.metadata import slide_notes, slide_of
from .base import SlideLayerWidget
from .panels.display import DisplayPanel
from .panels.gene_picker import GENE_COLORMAPS, GenePickerPanel
from .panels.legend import LegendPanel

__all__ = ["GENE_COLORMAPS", "STATE_KEY", "VALUE_COLUMN", "ColorWidget", "LayerColorState"]

GENE_TAB, LABEL_TAB = 0, 1


class ColorWidget(SlideLayerWidget):
    layer_kinds = ("spots", "bins")
    min_visible_height = 260  # px kept visible when the dock is squeezed: the slide, the gene box and its candidates

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        self.palette = col.LabelPalette()
        self.coloring: SpotsColoring | BinsColoring | None = None
        self._searches: dict[int, tuple[weakref.ref, col.GeneSearch]] = {}
        self._values: col.GeneValues | None = None  # per-point values of the current gene coloring
        # (genes, transform) -> GeneValues for the followed layer's points or bins, bounded in bytes
        # (600,000 bins: ~5 MB a gene); cleared when they change
        self._value_cache = col.GeneValuesCache()
        self._syncing = False  # True while the UI is being filled from state (no re-colouring)
        # the coloring's label snapshot at the last look (spots: the label column, bins: the editor's
        # revision): an edit shows as a difference
        self._label_snapshot: np.ndarray | int | None = None
        layout = QVBoxLayout(self.content)
        self.display = DisplayPanel(self)
        self.gene_picker = GenePickerPanel(self)
        self.legend = LegendPanel(self)
        layout.addWidget(self.display)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.gene_picker, "Gene")
        self.tabs.addTab(self.legend, "Label")
        self.tabs.currentChanged.connect(self._on_tab_changed)
        layout.addWidget(self.tabs)
        # the panels' controls, by the names scripts and tests use
        for panel, names in ((self.display, ("slide_label", "style_combo", "opacity_slider")),
                             (self.gene_picker, ("gene_edit", "candidates", "candidate_info", "recent_combo",
                                                 "transform_combo", "colormap_combo", "range_slider",
                                                 "autoscale_button", "non_expressing_combo", "colorbar_check")),
                             (self.legend, ("column_combo", "legend_box", "legend_layout", "show_all_button"))):
            for name in names:
                setattr(self, name, getattr(panel, name))
        self.gene_picker.fill_recent()
        # the colorbar's title names the slide once several are open
        self.start_following()

    @property
    def legend_rows(self) -> dict:
        return self.legend.legend_rows

    @property
    def recent_genes(self) -> list[str]:
        return self.gene_picker.recent_genes

    @contextmanager
    def syncing(self):
        """The UI is filled from state: its signals colour nothing (nests)."""
        previous, self._syncing = self._syncing, True
        try:
            yield
        finally:
            self._syncing = previous

    # ------------------------------------------------------------------ which layer
    def layers_changed(self) -> None:
        self.show_colorbar()

    def follow_layer(self, layer):
        """Colour `layer` (unwrapped; the follower calls this when the followed layer changes)."""
        if self.layer is not None:
            self.coloring.disconnect(self._on_features_changed, self._on_points_changed)
            # one colorbar on the canvas: the title overlay only describes the followed layer
            self.coloring.set_colorbar_visible(False)
        self.layer = layer
        self.coloring = coloring_for(layer, self.viewer) if layer is not None else None
        self._values = None
        self._value_cache.clear()
        self._label_snapshot = None
        self.gene_picker.fill_recent()  # the recent genes this slide has
        if layer is None:  # the slide's layers are gone: nothing of it stays on show
            self.display.show_layer(None)
            self.gene_picker.clear()
            self.column_combo.clear()
            self._rebuild_legend()
            self._update_gene_controls()
            return
        self._label_snapshot = self.coloring.label_snapshot()
        self.coloring.connect(self._on_features_changed, self._on_points_changed)
        slide = slide_of(layer)
        notes = slide_notes(slide)
        self.slide_label.setText(f"Slide: {slide.name}" + (f" ({notes})" if notes else ""))
        if self.state().gene is None:  # a normalised AnnData X is shown as it is, not log1p'd again
            with self.syncing():
                self.transform_combo.setCurrentIndex(list(col.TRANSFORMS).index(col.default_transform(slide)))
        self._sync_ui_from_state()
        if self.state().mode is None:
            self._apply_initial_coloring()

    def _apply_initial_coloring(self):
        """A slide opens coloured: by its pathologist labels when it has any, else by its most variable gene."""
        mode, gene = initial_coloring(slide_of(self.layer), self.coloring.curated_labels())
        if mode == "label":
            with self.syncing():
                self.tabs.setCurrentIndex(LABEL_TAB)
            self.color_by_label()
        elif mode == "gene":
            with self.syncing():
                self.tabs.setCurrentIndex(GENE_TAB)
            self.apply_genes([gene])

    def state(self) -> LayerColorState | None:
        return self.coloring.state if self.coloring is not None else None

    def _sync_ui_from_state(self):
        state = self.state()
        with self.syncing():
            self.display.show_layer(self.layer, state.spot_style)
            self.display.show_opacity(self.coloring.shown_layer())
            self._fill_label_columns()
            self.gene_picker.show_coloring(state.gene)
            if state.gene is not None:
                self._values = self._gene_values(state.gene)
                self._set_slider(state.gene.contrast_limits)
            if state.mode == "label":
                self.tabs.setCurrentIndex(LABEL_TAB)
            elif state.mode == "gene":
                self.tabs.setCurrentIndex(GENE_TAB)
            self._rebuild_legend()  # never leave the previous slide's legend on show
            self._update_gene_controls()
        self.show_colorbar()

    # ------------------------------------------------------------------ genes
    def gene_search(self) -> col.GeneSearch | None:
        slide = slide_of(self.layer) if self.layer is not None else None
        if slide is None or slide.expression is None:
            return None
        cached = self._searches.get(id(slide))
        if cached is None or cached[0]() is not slide:  # ids are reused once a slide is gone
            cached = (weakref.ref(slide), col.GeneSearch.for_slide(slide))
            self._searches[id(slide)] = cached
        return cached[1]

    def _update_gene_controls(self):
        self.gene_picker.update_controls(self.layer is not None and self.state().gene is not None)

    def apply_recent(self, entry: str):
        self.gene_picker.apply_recent(entry)

    def apply_genes(self, genes: list[str]):
        """Colour the current layer by one gene or the mean score of several."""
        if self.layer is None or not genes:
            return
        state = self.state()
        coloring = self.gene_picker.coloring(genes)
        self._values = self._gene_values(coloring)
        state.gene = replace(coloring, contrast_limits=self._values.autoscale)  # = with_limits(values)
        self.gene_picker.remember_recent(", ".join(genes))
        with self.syncing():
            self.gene_picker.show_applied(genes, state.gene.contrast_limits, self._values.top)
            if self.tabs.currentIndex() != GENE_TAB:
                self.tabs.setCurrentIndex(GENE_TAB)
        self._color_by_gene()

    def _gene_values(self, coloring: col.GeneColoring) -> col.GeneValues:
        """The coloring's per-point values with their mask and autoscale, cached per gene set + transform."""
        return self._value_cache.get((coloring.genes, coloring.transform),
                                     lambda: col.GeneValues.of(self.coloring.per_point(coloring)))

    def _on_points_changed(self, event=None):
        # points added, deleted or moved: per-point values are matched again on the next colouring
        self._value_cache.clear()
        if self._values is not None and len(self._values.values) != len(self.layer.data):
            self._values = None

    def _set_slider(self, limits):
        self.gene_picker.set_slider(limits, self._values.top if self._values is not None else 1.0)

    def settings_changed(self, autoscale: bool = False):
        """Transform / colormap / range / non-expressing changed: recolour, never rebuild."""
        if self._syncing or self.layer is None or self.state().gene is None:
            return
        state, picker = self.state(), self.gene_picker
        transform = picker.transform_combo.currentData()
        if transform != state.gene.transform:
            autoscale = True
        new = replace(
            state.gene,
            transform=transform,
            colormap=picker.colormap_combo.currentText(),
            non_expressing=picker.non_expressing_combo.currentText(),
            contrast_limits=None if autoscale else tuple(float(v) for v in picker.range_slider.value()),
        )
        if self._values is None or transform != state.gene.transform:
            self._values = self._gene_values(new)
        state.gene = new if new.contrast_limits is not None else replace(new, contrast_limits=self._values.autoscale)
        if autoscale:
            with self.syncing():
                self._set_slider(state.gene.contrast_limits)
        self._color_by_gene()

    def _color_by_gene(self):
        self.coloring.show_gene(self._values)
        self.show_colorbar()
        self._show_opacity()

    def show_colorbar(self):
        if self.layer is None:
            return
        state = self.state()
        show = state.mode == "gene" and state.gene is not None and self.colorbar_check.isChecked()
        self.coloring.set_colorbar_visible(show)
        # napari's colorbar has no title; the canvas text overlay names gene and transform
        # (napari tiles canvas overlays that share a corner, so the title sits by the bar)
        overlay = text_overlay(self.viewer)
        title = self.colorbar_title() if show else ""
        if show and overlay.text != title:
            overlay.text = title
            overlay.position = "top_right"
        overlay.visible = show

    def colorbar_title(self) -> str:
        """'ERBB2 · log1p'; with several slides open, 'SLIDE · ERBB2 · log1p' (which layer it describes)."""
        gene = self.state().gene if self.layer is not None else None
        if gene is None:
            return ""
        slides = {id(slide_of(layer)) for layer in self.viewer.layers if self.accepts_layer(layer)}
        return f"{slide_of(self.layer).name} · {gene.title}" if len(slides) > 1 else gene.title

    # ------------------------------------------------------------------ display
    def set_opacity(self, value):
        """The opacity of the layer showing the current colouring (bins: the gene layer in gene
        mode, the bin-labels layer in label mode)."""
        if self.layer is not None and not self._syncing:
            self.coloring.shown_layer().opacity = float(value)

    def _show_opacity(self):
        """The slider shows the opacity of the layer it now acts on (the mode may have changed it)."""
        with self.syncing():
            self.display.show_opacity(self.coloring.shown_layer())

    def set_spot_style(self, style: str):
        if self._syncing or self.layer is None or not self.coloring.set_spot_style(style):
            return
        state = self.state()
        if state.mode == "label":
            self.coloring.apply_label_colors(self.palette)
        elif state.mode == "gene" and state.gene is not None:
            if self._values is None:
                self._values = self._gene_values(state.gene)
            self._color_by_gene()

    # ------------------------------------------------------------------ labels
    def _fill_label_columns(self):
        self.legend.fill_columns(self.coloring.label_columns(), self.state().label_column)

    def _on_tab_changed(self, index: int):
        if self._syncing or self.layer is None:
            return
        if index == LABEL_TAB:
            self.color_by_label()
        elif self.state().gene is not None:
            if self._values is None:
                self._values = self._gene_values(self.state().gene)
            self._color_by_gene()
        else:  # a Gene tab with no gene is meaningless: start from the slide's top variable gene
            slide = slide_of(self.layer)
            if slide.expression is not None and slide.default_genes:
                self.apply_genes([slide.default_genes[0]])
            else:
                self.candidate_info.setText("this slide has no count file")

    def choose_label_column(self, column: str):
        if self.layer is None:
            return
        state = self.state()
        state.label_column = column or "label"
        state.hidden_labels = set()
        self.color_by_label()

    def color_by_label(self):
        if self.layer is None:
            return
        self.coloring.show_labels(self.palette)
        self.show_colorbar()
        self._show_opacity()
        self._rebuild_legend()

    def _on_features_changed(self, event=None):
        # the curation widget edits labels and emits features(): keep colours and legend current
        if self.layer is None:
            return
        if self.coloring.spot_ids_editable:
            self._value_cache.clear()  # spot ids may have been edited: match points to spots again
        self._fill_label_columns()
        state = self.state()
        labels = self.coloring.label_snapshot()
        before, self._label_snapshot = self._label_snapshot, labels
        # array_equal compares both kinds of snapshot (arrays of any length, revisions)
        edited = labels is not None and (before is None or not np.array_equal(before, labels))
        if state.mode == "gene" and edited:
            # a curator labelling spots wants to see the labels, not the gene
            state.label_column = "label"
            self._fill_label_columns()
            with self.syncing():
                self.tabs.setCurrentIndex(LABEL_TAB)
            self.color_by_label()
            return
        if state.mode == "label":
            self.color_by_label()
            return
        if state.mode == "gene" and self._values is not None:
            self.coloring.set_value_column(self._values.values)  # a replaced table may lack or have moved it
        self._rebuild_legend()

    def legend_entries(self) -> list[col.LegendEntry]:
        return self.coloring.legend_entries(self.palette) if self.coloring is not None else []

    def _rebuild_legend(self):
        if self.coloring is None:
            self.legend.rebuild(None, set(), False)
            return
        hotkeys = self.coloring.legend_order() is not None  # keys 1-9 of the curation widget assign these
        self.legend.rebuild(self.legend_entries(), self.state().hidden_labels, hotkeys)

    def set_label_color(self, label: str, color: str):
        """Override a label's colour (kept across sessions) and recolour."""
        self.palette.set_color(label, color)
        self.color_by_label()

    def set_label_visible(self, label: str, visible: bool):
        hidden = self.state().hidden_labels
        (hidden.discard if visible else hidden.add)(label)
        if self.state().mode == "label":
            self.coloring.apply_label_colors(self.palette)

    def solo_label(self, label: str):
        self.state().hidden_labels = {e.label for e in self.legend_entries() if e.label != label}
        self.color_by_label()

    def show_all_labels(self):
        if self.layer is not None:
            self.state().hidden_labels = set()
            self.color_by_label()
