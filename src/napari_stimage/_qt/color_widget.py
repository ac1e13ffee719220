"""Dock widget: colour a slide's spots by a gene / gene-set score or by a categorical label.

A thin view over `coloring.py` (which `napari-stimage render` uses too). Switching genes only
sets the layer's face colours; the layer is never rebuilt.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass, field, replace

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleRangeSlider, QLabeledDoubleSlider

from .. import coloring as col
from ..viewer.following import LayerFollower
from ..viewer.layers import OUTLINE_WIDTH, RIM_COLOR, RIM_WIDTH, initial_coloring
from ..viewer.metadata import slide_of
from .curate_widget import _ScrollArea

STATE_KEY = "stimage_coloring"
VALUE_COLUMN = "color value"  # a feature column so hovering a spot shows the value it is coloured by
GENE_COLORMAPS = ("viridis", "magma", "inferno", "plasma", "turbo", "fire", "gray", "red", "blue", "PiYG")
SPOT_STYLES = ("filled", "outline")  # outline: coloured rings, the tissue visible inside each spot
MIN_VISIBLE_HEIGHT = 260  # px kept visible when the dock is squeezed: the slide, the gene box and its candidates
VALUE_CACHE_SIZE = 32  # genes / gene sets whose per-point values are kept (100,000 spots: ~0.9 MB each)


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


class _WrappingCheckBox(QWidget):
    """A checkbox whose text wraps onto more lines (QCheckBox's cannot), so a long label never
    pushes the legend's solo button out of the dock. Clicking the text toggles it, as usual."""

    def __init__(self, text: str):
        super().__init__()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.box = QCheckBox()
        self.text_label = QLabel(text)
        self.text_label.setWordWrap(True)
        # a word longer than the dock is cut rather than widening the row
        self.text_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.text_label.setMinimumWidth(40)
        layout.addWidget(self.box)
        layout.addWidget(self.text_label, 1)
        self.toggled = self.box.toggled

    def text(self) -> str:
        return self.text_label.text()

    def click(self) -> None:
        self.box.click()

    def isChecked(self) -> bool:  # noqa: N802 (Qt naming)
        return self.box.isChecked()

    def setChecked(self, checked: bool) -> None:  # noqa: N802 (Qt naming)
        self.box.setChecked(checked)

    def mouseReleaseEvent(self, event):  # noqa: N802 (Qt API): a click on the text
        if event.button() == Qt.MouseButton.LeftButton:
            self.box.click()
        super().mouseReleaseEvent(event)


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


class ColorWidget(QWidget):
    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.layer = None
        self.palette = col.LabelPalette()
        self.recent_genes: list[str] = col.load_recent_genes()
        self._searches: dict[int, tuple[weakref.ref, col.GeneSearch]] = {}
        self._values: col.GeneValues | None = None  # per-point values of the current gene coloring
        # (genes, transform) -> GeneValues for the followed layer's points; cleared when they change
        self._value_cache: OrderedDict[tuple[tuple[str, ...], str], col.GeneValues] = OrderedDict()
        self._syncing = False  # True while the UI is being filled from state (no re-colouring)
        self._filling_candidates = False  # True while the candidate list is refilled after typing
        self._navigated = False  # the user moved through the candidates since the last keystroke
        self._label_snapshot: np.ndarray | None = None  # the label column at the last look: edits show as a difference
        self.legend_rows: dict[str, tuple[QPushButton, _WrappingCheckBox, QToolButton]] = {}
        self._build_ui()
        # the colorbar's title names the slide once several are open
        self.follower = LayerFollower(self.viewer, self._is_spots, self._set_layer, self._show_colorbar)
        self.follower.refresh()

    # ------------------------------------------------------------------ UI
    def _build_ui(self):
        # the content scrolls when the dock is short, so two docks fit a 1080-pixel-high screen
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.scroll_area = _ScrollArea(MIN_VISIBLE_HEIGHT)
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        content = QWidget()
        self.scroll_area.setWidget(content)
        outer.addWidget(self.scroll_area)
        layout = QVBoxLayout(content)
        self.slide_label = QLabel("Select a slide's spots layer")
        self.slide_label.setWordWrap(True)
        layout.addWidget(self.slide_label)
        looks = QHBoxLayout()  # one row: the dock stays short enough for two docks on a 1080-pixel screen
        self.style_combo = QComboBox()
        self.style_combo.addItems(SPOT_STYLES)
        self.style_combo.setToolTip("outline: coloured rings, so the tissue shows inside each spot")
        self.style_combo.currentTextChanged.connect(self._on_spot_style)
        looks.addWidget(QLabel("Spots"))
        looks.addWidget(self.style_combo)
        self.opacity_slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0.0, 1.0)
        self.opacity_slider.setValue(0.9)
        self.opacity_slider.setToolTip("Spot opacity: lower it to see the tissue through the spots")
        self.opacity_slider.valueChanged.connect(self._on_opacity)
        looks.addWidget(QLabel("Opacity"))
        looks.addWidget(self.opacity_slider, 1)
        layout.addLayout(looks)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_gene_page(), "Gene")
        self.tabs.addTab(self._build_label_page(), "Label")
        self.tabs.currentChanged.connect(self._on_tab_changed)
        layout.addWidget(self.tabs)

    def _build_gene_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.gene_edit = QLineEdit()
        self.gene_edit.setPlaceholderText("gene, or several for a mean score; Enter applies")
        self.gene_edit.textEdited.connect(self._update_candidates)
        self.gene_edit.returnPressed.connect(self.apply_gene_text)
        self.gene_edit.installEventFilter(self)  # Up/Down walk the candidates while typing
        form.addRow("Gene", self.gene_edit)
        self.candidates = QListWidget()
        self.candidates.setMaximumHeight(110)
        self.candidates.currentItemChanged.connect(self._show_candidate)
        self.candidates.itemActivated.connect(self._candidate_activated)
        form.addRow(self.candidates)
        self.candidate_info = QLabel("")
        self.candidate_info.setWordWrap(True)
        form.addRow(self.candidate_info)
        self.recent_combo = QComboBox()
        self.recent_combo.setPlaceholderText("recent genes")
        self.recent_combo.activated.connect(lambda i: self.apply_recent(self.recent_combo.itemText(i)))
        form.addRow("Recent", self.recent_combo)
        self._fill_recent()
        self.transform_combo = QComboBox()
        for key, text in col.TRANSFORMS.items():
            self.transform_combo.addItem(text, key)
        self.transform_combo.setCurrentIndex(list(col.TRANSFORMS).index(col.DEFAULT_TRANSFORM))
        self.transform_combo.currentIndexChanged.connect(lambda _: self._settings_changed(autoscale=True))
        form.addRow("Transform", self.transform_combo)
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(GENE_COLORMAPS)
        self.colormap_combo.currentIndexChanged.connect(lambda _: self._settings_changed())
        form.addRow("Colormap", self.colormap_combo)
        self.range_slider = QLabeledDoubleRangeSlider(Qt.Orientation.Horizontal)
        self.range_slider.setDecimals(2)
        self.range_slider.valueChanged.connect(lambda _: self._settings_changed())
        self.autoscale_button = QPushButton("Autoscale (1–99%)")
        self.autoscale_button.setToolTip("1st–99th percentile of the spots that express it")
        self.autoscale_button.clicked.connect(lambda: self._settings_changed(autoscale=True))
        form.addRow("Range", self.range_slider)
        form.addRow(self.autoscale_button)
        self.range_slider.setEnabled(False)  # enabled once a gene is applied
        self.autoscale_button.setEnabled(False)
        self.non_expressing_combo = QComboBox()
        self.non_expressing_combo.addItems(col.NON_EXPRESSING_MODES)
        self.non_expressing_combo.currentIndexChanged.connect(lambda _: self._settings_changed())
        form.addRow("Not expressing", self.non_expressing_combo)
        self.colorbar_check = QCheckBox("Colorbar on canvas")
        self.colorbar_check.setChecked(True)
        self.colorbar_check.toggled.connect(lambda _: self._show_colorbar())
        form.addRow(self.colorbar_check)
        return page

    def _build_label_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        row = QHBoxLayout()
        row.addWidget(QLabel("Colour by"))
        self.column_combo = QComboBox()
        self.column_combo.activated.connect(lambda _: self._on_label_column())
        row.addWidget(self.column_combo, 1)
        layout.addLayout(row)
        self.legend_box = QWidget()
        self.legend_layout = QVBoxLayout(self.legend_box)
        self.legend_layout.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.legend_box)
        layout.addWidget(scroll, 1)
        self.show_all_button = QPushButton("Show all")
        self.show_all_button.clicked.connect(self.show_all_labels)
        layout.addWidget(self.show_all_button)
        hint = QLabel("Click a swatch to change its colour, a label to hide/show its spots.")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        return page

    def eventFilter(self, obj, event):
        from qtpy.QtCore import QEvent

        if obj is self.gene_edit and event.type() == QEvent.Type.KeyPress:
            step = {Qt.Key.Key_Down: 1, Qt.Key.Key_Up: -1}.get(event.key())
            if step and self.candidates.count():
                row = min(max(self.candidates.currentRow() + step, 0), self.candidates.count() - 1)
                self.candidates.setCurrentRow(row)
                self._navigated = True  # even when the row did not move: the user chose the highlighted one
                return True
        return super().eventFilter(obj, event)

    # ------------------------------------------------------------------ which layer
    def _is_spots(self, layer) -> bool:
        from napari.layers import Points

        return isinstance(layer, Points) and slide_of(layer) is not None

    def _set_layer(self, layer):
        """Colour `layer` (unwrapped; the follower calls this when the followed layer changes)."""
        if self.layer is not None:
            self.layer.events.features.disconnect(self._on_features_changed)
            self.layer.events.data.disconnect(self._on_points_changed)
            # one colorbar on the canvas: the title overlay only describes the followed layer
            self.layer.face_colorbar.visible = False
        self.layer = layer
        self._values = None
        self._value_cache.clear()
        self._label_snapshot = None
        self._fill_recent()  # the recent genes this slide has
        if layer is None:  # the slide's layers are gone: nothing of it stays on show
            self.slide_label.setText("Select a slide's spots layer")
            self.gene_edit.clear()
            self.candidates.clear()
            self.candidate_info.clear()
            self.column_combo.clear()
            self._rebuild_legend()
            self._update_gene_controls()
            return
        self._label_snapshot = self._edited_labels()
        layer.events.features.connect(self._on_features_changed)
        layer.events.data.connect(self._on_points_changed)
        slide = slide_of(layer)
        normalised = slide.expression is not None and slide.expression.normalised
        self.slide_label.setText(f"Slide: {slide.name}" + (" (values already normalised)" if normalised else ""))
        if self.state().gene is None:  # a normalised AnnData X is shown as it is, not log1p'd again
            self._syncing = True
            self.transform_combo.setCurrentIndex(list(col.TRANSFORMS).index(col.default_transform(slide)))
            self._syncing = False
        self._sync_ui_from_state()
        if self.state().mode is None:
            self._apply_initial_coloring()

    def _apply_initial_coloring(self):
        """A slide opens coloured: by its pathologist labels when it has any, else by its most variable gene."""
        features = self.layer.features
        labels = features["label"].to_numpy() if "label" in features.columns else ()
        mode, gene = initial_coloring(slide_of(self.layer), labels)
        if mode == "label":
            self._syncing = True
            self.tabs.setCurrentIndex(1)
            self._syncing = False
            self.color_by_label()
        elif mode == "gene":
            self._syncing = True
            self.tabs.setCurrentIndex(0)
            self._syncing = False
            self.apply_genes([gene])

    def state(self) -> LayerColorState | None:
        if self.layer is None:
            return None
        return self.layer.metadata.setdefault(STATE_KEY, LayerColorState())

    def _sync_ui_from_state(self):
        state = self.state()
        self._syncing = True
        try:
            self.opacity_slider.setValue(float(self.layer.opacity))
            self.style_combo.setCurrentText(state.spot_style)
            self._fill_label_columns()
            if state.gene is None:
                self.gene_edit.clear()
                self.candidates.clear()
                self.candidate_info.clear()
            else:
                g = state.gene
                self.gene_edit.setText(", ".join(g.genes))
                self.transform_combo.setCurrentIndex(list(col.TRANSFORMS).index(g.transform))
                self.colormap_combo.setCurrentText(g.colormap)
                self.non_expressing_combo.setCurrentText(g.non_expressing)
                self._values = self._gene_values(g)
                self._set_slider(g.contrast_limits)
            if state.mode == "label":
                self.tabs.setCurrentIndex(1)
            elif state.mode == "gene":
                self.tabs.setCurrentIndex(0)
            self._rebuild_legend()  # never leave the previous slide's legend on show
            self._update_gene_controls()
        finally:
            self._syncing = False
        self._show_colorbar()

    # ------------------------------------------------------------------ gene search
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
        """The range controls mean nothing until a gene is applied."""
        has_gene = self.layer is not None and self.state().gene is not None
        self.range_slider.setEnabled(has_gene)
        self.autoscale_button.setEnabled(has_gene)

    def _update_candidates(self, text: str):
        search = self.gene_search()
        self._navigated = False
        self._set_invalid(False)
        self._filling_candidates = True
        try:
            self._fill_candidates(search, text)
        finally:
            self._filling_candidates = False

    def _fill_candidates(self, search, text: str):
        self.candidates.clear()
        tokens = col.parse_gene_list(text)
        if search is None:
            self.candidate_info.setText("this slide has no count file" if self.layer is not None else "")
            return
        if not tokens or text.endswith((",", ";", " ")):  # starting the next gene
            self.candidate_info.setText("")
            return
        for name in search.search(tokens[-1]):
            item = QListWidgetItem(name)
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.candidates.addItem(item)
        if self.candidates.count():
            self.candidates.setCurrentRow(0)
        else:
            self.candidate_info.setText(f"no gene matches {tokens[-1]!r}")

    def _show_candidate(self, item, _previous=None):
        search = self.gene_search()
        if item is None or search is None:
            return
        if not self._filling_candidates:
            self._navigated = True  # clicked or arrowed to: Enter applies this one
        c = search.candidate(item.text())
        self.candidate_info.setText(f"{c.name}: expressed in {c.n_expressing} spots, max {c.maximum:g}")

    def _candidate_activated(self, item):
        tokens = col.parse_gene_list(self.gene_edit.text())[:-1] + [item.text()]
        self.gene_edit.setText(", ".join(tokens))
        self.apply_gene_text()

    def apply_gene_text(self):
        """Enter in the picker: each typed name resolves to the exact gene, else the best match.

        The last name takes the highlighted candidate when the user moved through the list
        (even if what they typed is itself a gene: "malat1", Down, Enter means MALAT1-1), or
        when the typed text is not a gene. A name matching no gene applies nothing: the box
        returns to the applied gene and says what was not found.
        """
        search = self.gene_search()
        tokens = col.parse_gene_list(self.gene_edit.text())
        if search is None or not tokens:
            return
        current = self.candidates.currentItem()
        genes = []
        for k, token in enumerate(tokens):
            last = k == len(tokens) - 1
            if last and current is not None and (
                    self._navigated or (not search.is_gene(token) and token.lower() in current.text().lower())):
                genes.append(current.text())
                continue
            resolved = search.resolve(token)
            if resolved is None:
                self._reject_gene(search, token)
                return
            genes.append(resolved)
        self.apply_genes(genes)

    def _reject_gene(self, search: col.GeneSearch, token: str):
        close = search.suggestions(token)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        applied = self.state().gene if self.layer is not None else None
        self._syncing = True
        try:
            self.gene_edit.setText(", ".join(applied.genes) if applied is not None else "")
            self.candidates.clear()
        finally:
            self._syncing = False
        self._navigated = False
        self.candidate_info.setText(f"no gene {token!r} on this slide{hint}")
        self._set_invalid(True)

    def _set_invalid(self, invalid: bool):
        self.candidate_info.setStyleSheet("color: #ff6b6b;" if invalid else "")

    def apply_genes(self, genes: list[str]):
        """Colour the current layer by one gene or the mean score of several."""
        if self.layer is None or not genes:
            return
        state = self.state()
        coloring = col.GeneColoring(
            genes=tuple(genes),
            transform=self.transform_combo.currentData(),
            colormap=self.colormap_combo.currentText(),
            contrast_limits=None,
            non_expressing=self.non_expressing_combo.currentText(),
        )
        self._values = self._gene_values(coloring)
        state.gene = replace(coloring, contrast_limits=self._values.autoscale)  # = with_limits(values)
        self._remember_recent(", ".join(genes))
        self._syncing = True
        try:
            self.gene_edit.setText(", ".join(genes))
            self._navigated = False
            self._set_invalid(False)
            self._set_slider(state.gene.contrast_limits)
            self._update_gene_controls()
            if self.tabs.currentIndex() != 0:
                self.tabs.setCurrentIndex(0)
        finally:
            self._syncing = False
        self._color_by_gene()

    def _gene_values(self, coloring: col.GeneColoring) -> col.GeneValues:
        """The coloring's per-point values with their mask and autoscale, cached per gene set + transform."""
        key = (coloring.genes, coloring.transform)
        cached = self._value_cache.get(key)
        if cached is None:
            cached = col.GeneValues.of(self._per_point(coloring))
            self._value_cache[key] = cached
            while len(self._value_cache) > VALUE_CACHE_SIZE:
                self._value_cache.popitem(last=False)
        else:
            self._value_cache.move_to_end(key)
        return cached

    def _on_points_changed(self, event=None):
        # points added, deleted or moved: per-point values are matched again on the next colouring
        self._value_cache.clear()
        if self._values is not None and len(self._values.values) != len(self.layer.data):
            self._values = None

    def _per_point(self, coloring: col.GeneColoring) -> np.ndarray:
        """The coloring's values per point of the layer (NaN for points that are not spots).

        Points follow the slide's spot order until someone adds or deletes points; then they
        are matched by spot id rather than by position.
        """
        slide = slide_of(self.layer)
        values = coloring.values(slide)
        n_points = len(self.layer.data)
        ids = self.layer.features.get("spot_id")
        if n_points == slide.n_spots and (ids is None or np.array_equal(ids.to_numpy(), slide.spots["spot_id"].to_numpy())):
            return values
        import pandas as pd

        by_id = pd.Series(values, index=slide.spots["spot_id"].to_numpy())
        by_id = by_id[~by_id.index.duplicated()]
        if ids is None:
            return np.full(n_points, np.nan)
        return by_id.reindex(ids.to_numpy()).to_numpy(np.float64)

    def _remember_recent(self, entry: str):
        if self.recent_genes[:1] == [entry]:
            return  # already first: no file write, no combo refill
        self.recent_genes = col.remember_recent_gene(entry)
        self._fill_recent()

    def apply_recent(self, entry: str):
        """A recent gene (or gene set) picked: applied when this slide has it, else the same
        message as for a typed name the slide lacks."""
        search = self.gene_search()
        if search is None:
            self.candidate_info.setText("this slide has no count file" if self.layer is not None else "")
            return
        genes = col.parse_gene_list(entry)
        for gene in genes:
            if not search.is_gene(gene):
                self._reject_gene(search, gene)
                return
        self.apply_genes([search.resolve(gene) for gene in genes])

    def _fill_recent(self):
        """The recent list, kept across sessions and slides, offers what the followed slide has:
        recent genes of another gene list (another technology or panel) stay out of the way."""
        search = self.gene_search() if self.layer is not None else None
        entries = [entry for entry in self.recent_genes
                   if search is None or all(search.is_gene(g) for g in col.parse_gene_list(entry))]
        self.recent_combo.blockSignals(True)
        self.recent_combo.clear()
        self.recent_combo.addItems(entries)
        self.recent_combo.setCurrentIndex(-1)
        self.recent_combo.blockSignals(False)

    def _set_slider(self, limits):
        top = self._values.top if self._values is not None else 1.0
        lo, hi = limits
        self.range_slider.setRange(min(0.0, float(lo)), max(top, float(hi), 1e-6))
        self.range_slider.setValue((float(lo), float(hi)))

    def _settings_changed(self, autoscale: bool = False):
        """Transform / colormap / range / non-expressing changed: recolour, never rebuild."""
        if self._syncing or self.layer is None or self.state().gene is None:
            return
        state = self.state()
        transform = self.transform_combo.currentData()
        if transform != state.gene.transform:
            autoscale = True
        new = replace(
            state.gene,
            transform=transform,
            colormap=self.colormap_combo.currentText(),
            non_expressing=self.non_expressing_combo.currentText(),
            contrast_limits=None if autoscale else tuple(float(v) for v in self.range_slider.value()),
        )
        if self._values is None or transform != state.gene.transform:
            self._values = self._gene_values(new)
        state.gene = new if new.contrast_limits is not None else replace(new, contrast_limits=self._values.autoscale)
        if autoscale:
            self._syncing = True
            try:
                self._set_slider(state.gene.contrast_limits)
            finally:
                self._syncing = False
        self._color_by_gene()

    def _color_by_gene(self):
        layer, state = self.layer, self.state()
        state.mode = "gene"
        rgba = self._values.colors(state.gene)
        if not layer.shown.all():  # a label was hidden; setting shown costs a full refresh
            layer.shown = np.ones(len(layer.data), dtype=bool)
        self._restore_borders()
        self._protect_hidden(())  # in gene mode every spot is drawn
        self._paint(rgba)
        # napari's own face colorbar reads the colormap and limits even with direct colours;
        # each change re-lays out its ticks and box, so set them only when they differ
        if layer.face_colormap.name != state.gene.colormap:
            layer.face_colormap = state.gene.colormap
        limits = tuple(float(v) for v in state.gene.contrast_limits)
        if layer.face_contrast_limits is None or tuple(layer.face_contrast_limits) != limits:
            layer.face_contrast_limits = limits
        self._set_value_column(self._values.values)
        self._show_colorbar()

    def _show_colorbar(self):
        if self.layer is None:
            return
        state = self.state()
        show = state.mode == "gene" and state.gene is not None and self.colorbar_check.isChecked()
        self.layer.face_colorbar.visible = show
        # napari's colorbar has no title; the canvas text overlay names gene and transform
        # (napari tiles canvas overlays that share a corner, so the title sits by the bar)
        overlay = self.viewer.text_overlay
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
        slides = {id(slide_of(layer)) for layer in self.viewer.layers if self._is_spots(layer)}
        return f"{slide_of(self.layer).name} · {gene.title}" if len(slides) > 1 else gene.title

    def _on_opacity(self, value):
        if self.layer is not None and not self._syncing:
            self.layer.opacity = float(value)

    def _set_value_column(self, values):
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

    # ------------------------------------------------------------------ label mode
    def _fill_label_columns(self):
        columns = [c for c in col.categorical_columns(self.layer.features) if c != VALUE_COLUMN]
        self.column_combo.blockSignals(True)
        self.column_combo.clear()
        self.column_combo.addItems(columns)
        wanted = self.state().label_column
        if wanted in columns:
            self.column_combo.setCurrentText(wanted)
        self.column_combo.blockSignals(False)

    def _on_tab_changed(self, index: int):
        if self._syncing or self.layer is None:
            return
        if index == 1:
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

    def _on_label_column(self):
        if self.layer is None:
            return
        state = self.state()
        state.label_column = self.column_combo.currentText() or "label"
        state.hidden_labels = set()
        self.color_by_label()

    def _label_values(self) -> np.ndarray:
        column = self.state().label_column
        features = self.layer.features
        if column not in features.columns:
            column = "label"
        return features[column].to_numpy()

    def _legend_order(self) -> list[str] | None:
        """The curation order (hotkeys 1-9 follow it) when the layer has a label editor."""
        if self.state().label_column != "label":
            return None
        from ..viewer.editors import editor_for_layer

        editor = editor_for_layer(self.layer, create=False)
        return list(editor.categories()) if editor is not None else None

    def color_by_label(self):
        if self.layer is None:
            return
        state = self.state()
        state.mode = "label"
        self._apply_label_colors()
        if VALUE_COLUMN in self.layer.features.columns:
            self.layer.features[VALUE_COLUMN] = np.nan  # hover shows the label itself
        self._show_colorbar()
        self._rebuild_legend()

    def _apply_label_colors(self):
        """Label colours, with hidden labels' spots transparent (face and rim): napari 0.9 draws
        points whatever `shown` says when all dimensions are displayed, so alpha does the hiding.
        `shown` is set too, so that napari's own tools skip hidden spots where they honour it."""
        layer, state = self.layer, self.state()
        values = self._label_values()
        self._paint(col.label_colors(values, self.palette, state.hidden_labels, self._legend_order()))
        visible = col.visible_mask(values, state.hidden_labels)
        if not np.array_equal(layer.shown, visible):
            layer.shown = visible
        if state.spot_style == "filled":  # outline rings already take the hidden spots' alpha 0
            self._show_borders(visible)
        self._protect_hidden(state.hidden_labels if state.label_column == "label" else ())

    def _protect_hidden(self, hidden_labels) -> None:
        """Hidden means protected: the slide's label editor (shared with the curation widget)
        keeps the hidden curated labels, so no selection or assignment touches their spots."""
        from ..viewer.editors import editor_for_layer

        editor = editor_for_layer(self.layer, create=False)
        if editor is not None:
            editor.set_hidden_labels(hidden_labels)

    def _paint(self, rgba: np.ndarray):
        """Show per-spot colours as filled discs, or as rings with the tissue visible inside."""
        if self.state().spot_style == "filled":
            set_face_colors(self.layer, rgba)
            return
        set_face_colors(self.layer, np.zeros_like(rgba))
        self.layer.border_color = rgba

    def _on_spot_style(self, style: str):
        if self._syncing or self.layer is None or self.state().spot_style == style:
            return
        layer, state = self.layer, self.state()
        state.spot_style = style
        state.border_alpha = None  # the rims are set afresh below
        layer.border_width = OUTLINE_WIDTH if style == "outline" else RIM_WIDTH
        if style == "filled":
            layer.border_color = RIM_COLOR
        if state.mode == "label":
            self._apply_label_colors()
        elif state.mode == "gene" and state.gene is not None:
            if self._values is None:
                self._values = self._gene_values(state.gene)
            self._color_by_gene()

    def _show_borders(self, visible: np.ndarray):
        layer, state = self.layer, self.state()
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

    def _restore_borders(self):
        if self.state().spot_style == "filled" and self.state().border_alpha is not None:
            self._show_borders(np.ones(len(self.layer.data), dtype=bool))

    def _edited_labels(self) -> np.ndarray | None:
        """The label column as shown (the curation widget edits this one), to notice edits."""
        features = self.layer.features
        return col.display_labels(features["label"].to_numpy()) if "label" in features.columns else None

    def _on_features_changed(self, event=None):
        # the curation widget edits labels and emits features(): keep colours and legend current
        if self.layer is None:
            return
        self._value_cache.clear()  # spot ids may have been edited: match points to spots again
        self._fill_label_columns()
        state = self.state()
        labels = self._edited_labels()
        before, self._label_snapshot = self._label_snapshot, labels
        edited = labels is not None and (before is None or len(before) != len(labels)
                                         or not np.array_equal(before, labels))
        if state.mode == "gene" and edited:
            # a curator labelling spots wants to see the labels, not the gene
            state.label_column = "label"
            self._fill_label_columns()
            self._syncing = True
            try:
                self.tabs.setCurrentIndex(1)
            finally:
                self._syncing = False
            self.color_by_label()
            return
        if state.mode == "label":
            self.color_by_label()
            return
        if state.mode == "gene" and self._values is not None:
            self._set_value_column(self._values.values)  # a replaced table may lack or have moved it
        self._rebuild_legend()

    def legend_entries(self) -> list[col.LegendEntry]:
        if self.layer is None:
            return []
        return col.legend_entries(self._label_values(), self.palette, self._legend_order())

    def _rebuild_legend(self):
        while self.legend_layout.count():
            item = self.legend_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.legend_rows = {}
        if self.layer is None:
            return
        hidden = self.state().hidden_labels
        hotkeys = self._legend_order() is not None  # keys 1-9 of the curation widget assign these
        for k, entry in enumerate(self.legend_entries()):
            row = QWidget()
            h = QHBoxLayout(row)
            h.setContentsMargins(0, 0, 0, 0)
            swatch = QPushButton()
            swatch.setFixedSize(22, 18)
            swatch.setStyleSheet(f"background-color: {entry.color}; border: 1px solid #444;")
            swatch.setToolTip("change colour")
            swatch.clicked.connect(lambda _=False, lab=entry.label: self._pick_color(lab))
            key = f"[{k + 1}] " if hotkeys and k < 9 and not entry.unlabelled else ""
            check = _WrappingCheckBox(f"{key}{entry.label}  ({entry.count})")
            if key:
                check.setToolTip(f"key {k + 1} on the spots layer assigns this label (Curate labels)")
            check.setChecked(entry.label not in hidden)
            check.toggled.connect(lambda on, lab=entry.label: self.set_label_visible(lab, on))
            solo = QToolButton()
            solo.setText("solo")
            solo.setToolTip("show only this label")
            solo.clicked.connect(lambda _=False, lab=entry.label: self.solo_label(lab))
            h.addWidget(swatch, 0, Qt.AlignmentFlag.AlignTop)
            h.addWidget(check, 1)
            h.addWidget(solo, 0, Qt.AlignmentFlag.AlignTop)
            self.legend_layout.addWidget(row)
            self.legend_rows[entry.label] = (swatch, check, solo)
        self.legend_layout.addStretch(1)

    def _pick_color(self, label: str):
        current = {e.label: e.color for e in self.legend_entries()}.get(label, "#ffffff")
        chosen = QColorDialog.getColor(QColor(current), self, f"Colour of {label}")
        if chosen.isValid():
            self.set_label_color(label, chosen.name())

    def set_label_color(self, label: str, color: str):
        """Override a label's colour (kept across sessions) and recolour."""
        self.palette.set_color(label, color)
        self.color_by_label()

    def set_label_visible(self, label: str, visible: bool):
        hidden = self.state().hidden_labels
        (hidden.discard if visible else hidden.add)(label)
        if self.state().mode == "label":
            self._apply_label_colors()

    def solo_label(self, label: str):
        self.state().hidden_labels = {e.label for e in self.legend_entries() if e.label != label}
        self.color_by_label()

    def show_all_labels(self):
        if self.layer is not None:
            self.state().hidden_labels = set()
            self.color_by_label()
