"""Color spots' Gene page: type or pick genes (candidates, recent genes) and how they are coloured
(transform, colormap, range, non-expressing spots, colorbar)."""

from __future__ import annotations

from qtpy.QtCore import QEvent, Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QWidget,
)
from superqt import QLabeledDoubleRangeSlider

from ... import coloring as col

GENE_COLORMAPS = ("viridis", "magma", "inferno", "plasma", "turbo", "fire", "gray", "red", "blue", "PiYG")


class GenePickerPanel(QWidget):
    """The gene picker of `host` (a `ColorWidget`): resolves what is typed to genes and hands
    them to `host.apply_genes`; setting changes go to `host.settings_changed`."""

    def __init__(self, host):
        super().__init__()
        self.host = host
        self.recent_genes: list[str] = col.load_recent_genes()
        self.filling_candidates = False  # True while the candidate list is refilled after typing
        self.navigated = False  # the user moved through the candidates since the last keystroke
        form = QFormLayout(self)
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
        self.transform_combo = QComboBox()
        for key, text in col.TRANSFORMS.items():
            self.transform_combo.addItem(text, key)
        self.transform_combo.setCurrentIndex(list(col.TRANSFORMS).index(col.DEFAULT_TRANSFORM))
        self.transform_combo.currentIndexChanged.connect(lambda _: host.settings_changed(autoscale=True))
        form.addRow("Transform", self.transform_combo)
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(GENE_COLORMAPS)
        self.colormap_combo.currentIndexChanged.connect(lambda _: host.settings_changed())
        form.addRow("Colormap", self.colormap_combo)
        self.range_slider = QLabeledDoubleRangeSlider(Qt.Orientation.Horizontal)
        self.range_slider.setDecimals(2)
        self.range_slider.valueChanged.connect(lambda _: host.settings_changed())
        self.autoscale_button = QPushButton("Autoscale (1–99%)")
        self.autoscale_button.setToolTip("1st–99th percentile of the spots that express it")
        self.autoscale_button.clicked.connect(lambda: host.settings_changed(autoscale=True))
        form.addRow("Range", self.range_slider)
        form.addRow(self.autoscale_button)
        self.range_slider.setEnabled(False)  # enabled once a gene is applied
        self.autoscale_button.setEnabled(False)
        self.non_expressing_combo = QComboBox()
        self.non_expressing_combo.addItems(col.NON_EXPRESSING_MODES)
        self.non_expressing_combo.currentIndexChanged.connect(lambda _: host.settings_changed())
        form.addRow("Not expressing", self.non_expressing_combo)
        self.colorbar_check = QCheckBox("Colorbar on canvas")
        self.colorbar_check.setChecked(True)
        self.colorbar_check.toggled.connect(lambda _: host.show_colorbar())
        # predictions of this slide's expression (e.g. STPath's) next to the measured values
        self.compare_button = QPushButton("Compare with predictions…")
        self.compare_button.setToolTip("Load a prediction .h5ad for this slide into the Compare predictions dock")
        self.compare_button.clicked.connect(self.compare_with_predictions)
        row = QHBoxLayout()  # one row: the dock stays short enough for two docks on a 1080-pixel screen
        row.addWidget(self.colorbar_check)
        row.addWidget(self.compare_button)
        form.addRow(row)

    def compare_with_predictions(self) -> None:
        """Dock (or raise) "Compare predictions" on this slide and ask for the prediction file."""
        _, widget = self.host.viewer.window.add_plugin_dock_widget("napari-stimage", "Compare predictions")
        if self.host.layer is not None:
            widget.follower.follow(self.host.layer)
        widget.load_button.click()

    def coloring(self, genes) -> col.GeneColoring:
        """A colouring of `genes` with the page's settings, its range still to be autoscaled."""
        return col.GeneColoring(
            genes=tuple(genes),
            transform=self.transform_combo.currentData(),
            colormap=self.colormap_combo.currentText(),
            contrast_limits=None,
            non_expressing=self.non_expressing_combo.currentText(),
        )

    def show_coloring(self, gene: col.GeneColoring | None) -> None:
        """Fill the page from a layer's applied colouring (None: no gene applied)."""
        if gene is None:
            self.clear()
            return
        self.gene_edit.setText(", ".join(gene.genes))
        self.transform_combo.setCurrentIndex(list(col.TRANSFORMS).index(gene.transform))
        self.colormap_combo.setCurrentText(gene.colormap)
        self.non_expressing_combo.setCurrentText(gene.non_expressing)

    def clear(self) -> None:
        self.gene_edit.clear()
        self.candidates.clear()
        self.candidate_info.clear()

    def show_applied(self, genes, limits, top: float) -> None:
        """`genes` were applied with the range `limits` (values up to `top`)."""
        self.gene_edit.setText(", ".join(genes))
        self.navigated = False
        self.set_invalid(False)
        self.set_slider(limits, top)
        self.update_controls(True)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        if obj is self.gene_edit and event.type() == QEvent.Type.KeyPress:
            step = {Qt.Key.Key_Down: 1, Qt.Key.Key_Up: -1}.get(event.key())
            if step and self.candidates.count():
                row = min(max(self.candidates.currentRow() + step, 0), self.candidates.count() - 1)
                self.candidates.setCurrentRow(row)
                self.navigated = True  # even when the row did not move: the user chose the highlighted one
                return True
        return super().eventFilter(obj, event)

    def update_controls(self, has_gene: bool) -> None:
        """The range controls mean nothing until a gene is applied."""
        self.range_slider.setEnabled(has_gene)
        self.autoscale_button.setEnabled(has_gene)

    def set_slider(self, limits, top: float) -> None:
        lo, hi = limits
        self.range_slider.setRange(min(0.0, float(lo)), max(top, float(hi), 1e-6))
        self.range_slider.setValue((float(lo), float(hi)))

    # -- typing
    def _update_candidates(self, text: str) -> None:
        search = self.host.gene_search()
        self.navigated = False
        self.set_invalid(False)
        self.filling_candidates = True
        try:
            self._fill_candidates(search, text)
        finally:
            self.filling_candidates = False

    def _fill_candidates(self, search, text: str) -> None:
        self.candidates.clear()
        tokens = col.parse_gene_list(text)
        if search is None:
            self.candidate_info.setText("this slide has no count file" if self.host.layer is not None else "")
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

    def _show_candidate(self, item, _previous=None) -> None:
        search = self.host.gene_search()
        if item is None or search is None:
            return
        if not self.filling_candidates:
            self.navigated = True  # clicked or arrowed to: Enter applies this one
        c = search.candidate(item.text())
        self.candidate_info.setText(f"{c.name}: expressed in {c.n_expressing} spots, max {c.maximum:g}")

    def _candidate_activated(self, item) -> None:
        tokens = col.parse_gene_list(self.gene_edit.text())[:-1] + [item.text()]
        self.gene_edit.setText(", ".join(tokens))
        self.apply_gene_text()

    def apply_gene_text(self) -> None:
        """Enter in the picker: each typed name resolves to the exact gene, else the best match.

        The last name takes the highlighted candidate when the user moved through the list
        (even if what they typed is itself a gene: "malat1", Down, Enter means MALAT1-1), or
        when the typed text is not a gene. A name matching no gene applies nothing: the box
        returns to the applied gene and says what was not found.
        """
        search = self.host.gene_search()
        tokens = col.parse_gene_list(self.gene_edit.text())
        if search is None or not tokens:
            return
        current = self.candidates.currentItem()
        genes = []
        for k, token in enumerate(tokens):
            last = k == len(tokens) - 1
            if last and current is not None and (
                    self.navigated or (not search.is_gene(token) and token.lower() in current.text().lower())):
                genes.append(current.text())
                continue
            resolved = search.resolve(token)
            if resolved is None:
                self._reject_gene(search, token)
                return
            genes.append(resolved)
        self.host.apply_genes(genes)

    def _reject_gene(self, search: col.GeneSearch, token: str) -> None:
        close = search.suggestions(token)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        applied = self.host.state().gene if self.host.layer is not None else None
        with self.host.syncing():
            self.gene_edit.setText(", ".join(applied.genes) if applied is not None else "")
            self.candidates.clear()
        self.navigated = False
        self.candidate_info.setText(f"no gene {token!r} on this slide{hint}")
        self.set_invalid(True)

    def set_invalid(self, invalid: bool) -> None:
        self.candidate_info.setStyleSheet("color: #ff6b6b;" if invalid else "")

    # -- recent genes
    def remember_recent(self, entry: str) -> None:
        if self.recent_genes[:1] == [entry]:
            return  # already first: no file write, no combo refill
        self.recent_genes = col.remember_recent_gene(entry)
        self.fill_recent()

    def apply_recent(self, entry: str) -> None:
        """A recent gene (or gene set) picked: applied when this slide has it, else the same
        message as for a typed name the slide lacks."""
        search = self.host.gene_search()
        if search is None:
            self.candidate_info.setText("this slide has no count file" if self.host.layer is not None else "")
            return
        genes = col.parse_gene_list(entry)
        for gene in genes:
            if not search.is_gene(gene):
                self._reject_gene(search, gene)
                return
        self.host.apply_genes([search.resolve(gene) for gene in genes])

    def fill_recent(self) -> None:
        """The recent list, kept across sessions and slides, offers what the followed slide has:
        recent genes of another gene list (another technology or panel) stay out of the way."""
        search = self.host.gene_search() if self.host.layer is not None else None
        entries = [entry for entry in self.recent_genes
                   if search is None or all(search.is_gene(g) for g in col.parse_gene_list(entry))]
        self.recent_combo.blockSignals(True)
        self.recent_combo.clear()
        self.recent_combo.addItems(entries)
        self.recent_combo.setCurrentIndex(-1)
        self.recent_combo.blockSignals(False)
