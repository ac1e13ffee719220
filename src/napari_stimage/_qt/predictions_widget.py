"""Dock widget: a model's predicted expression next to the measured counts of the followed slide.

A thin view over `io.predictions` (placing rows, per-gene metrics) and `viewer.predictions`
(models kept on the spots layer, the three-tile compare view). Files are read and judged in a
worker thread; a file whose rows cannot be placed is refused with a notification naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from qtpy.QtCore import QAbstractTableModel, QSortFilterProxyModel, Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import SlideError
from ..io.predictions import comparison_table
from ..viewer import predictions as vp
from ..viewer.following import LayerFollower
from ..viewer.metadata import slide_of

METRIC_TITLES = {"pearson_r": "Pearson r", "r2": "R²", "l2_error": "L2 error", "mean_measured": "mean measured"}
TOOLTIP_GENES = 60  # genes named in the "only on one side" tooltip; the rest are counted


def _column_title(column: str) -> str:
    metric, _, model = column.partition(" [")
    return METRIC_TITLES.get(metric, metric) + (f" [{model}" if model else "")


class ComparisonTableModel(QAbstractTableModel):
    """`comparison_table` as rows: gene, then per model Pearson r, R², L2 error, then mean measured.
    Display text is rounded; `Qt.UserRole` holds the number itself (what sorting uses)."""

    def __init__(self):
        super().__init__()
        self.genes: list[str] = []
        self.columns: list[str] = []
        self.values = np.empty((0, 0))

    def set_table(self, table: pd.DataFrame) -> None:
        self.beginResetModel()
        columns = [c for c in table.columns if c != "mean_measured"] + ["mean_measured"]
        self.genes = [str(g) for g in table.index]
        self.columns = columns
        self.values = table[columns].to_numpy(np.float64)
        self.endResetModel()

    def rowCount(self, parent=None):  # noqa: N802 (Qt API)
        return 0 if parent is not None and parent.isValid() else len(self.genes)

    def columnCount(self, parent=None):  # noqa: N802 (Qt API)
        return 0 if parent is not None and parent.isValid() else 1 + len(self.columns)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802 (Qt API)
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return "gene" if section == 0 else _column_title(self.columns[section - 1])
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row, column = index.row(), index.column()
        if column == 0:
            return self.genes[row] if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.UserRole) else None
        value = float(self.values[row, column - 1])
        if role == Qt.ItemDataRole.UserRole:
            return value if np.isfinite(value) else -np.inf  # undefined r sorts below every r
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{value:.3f}" if np.isfinite(value) else "–"
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class PredictionsWidget(QWidget):
    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.layer = None
        self.view: vp.CompareView | None = None
        self.worker = None  # the load running, if any (tests wait on it)
        self._build_ui()
        vp.attached.connect(self._on_attached)
        self.destroyed.connect(lambda *_: vp.attached.disconnect(self._on_attached))
        self.follower = LayerFollower(self.viewer, self._is_spots, self._set_layer)
        self.follower.refresh()

    # ------------------------------------------------------------------ UI
    def _build_ui(self):
        layout = QVBoxLayout(self)
        self.slide_label = QLabel("Select a slide's spots layer")
        layout.addWidget(self.slide_label)
        form = QFormLayout()
        barcodes_row = QHBoxLayout()
        self.barcodes_edit = QLineEdit()
        self.barcodes_edit.setPlaceholderText("optional: the embeddings .h5 (its barcodes place the rows)")
        self.barcodes_button = QPushButton("…")
        self.barcodes_button.setToolTip("Choose the embeddings .h5 the prediction was made from")
        self.barcodes_button.clicked.connect(self._choose_barcodes)
        barcodes_row.addWidget(self.barcodes_edit, 1)
        barcodes_row.addWidget(self.barcodes_button)
        form.addRow("Barcodes .h5", barcodes_row)
        layout.addLayout(form)
        self.load_button = QPushButton("Load predictions…")
        self.load_button.setToolTip("A prediction .h5ad (e.g. STPath's) for the selected slide; "
                                    "load a second file to compare two models")
        self.load_button.clicked.connect(self._choose_predictions)
        layout.addWidget(self.load_button)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        layout.addWidget(self.summary_label)
        self.one_side_label = QLabel("")
        self.one_side_label.setWordWrap(True)
        layout.addWidget(self.one_side_label)
        model_row = QHBoxLayout()
        model_row.addWidget(QLabel("Shown model"))
        self.model_combo = QComboBox()
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        model_row.addWidget(self.model_combo, 1)
        layout.addLayout(model_row)
        self.table_model = ComparisonTableModel()
        self.sorted_model = QSortFilterProxyModel()
        self.sorted_model.setSourceModel(self.table_model)
        self.sorted_model.setSortRole(Qt.ItemDataRole.UserRole)
        self.table = QTableView()
        self.table.setModel(self.sorted_model)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(1, Qt.SortOrder.DescendingOrder)  # best predicted genes first
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.selectionModel().currentRowChanged.connect(self._on_row)
        layout.addWidget(self.table, 1)
        self.close_button = QPushButton("Close compare view")
        self.close_button.clicked.connect(self.close_compare_view)
        layout.addWidget(self.close_button)
        self._update_controls()

    def _update_controls(self):
        models = self.models()
        self.load_button.setEnabled(self.layer is not None and self.worker is None)
        self.model_combo.setEnabled(len(models) > 1)
        self.close_button.setEnabled(self.view is not None and self.view.is_shown)

    # ------------------------------------------------------------------ which layer
    def _is_spots(self, layer) -> bool:
        from napari.layers import Points

        return isinstance(layer, Points) and slide_of(layer) is not None

    def _set_layer(self, layer):
        if self.view is not None and (layer is None or slide_of(layer) is not self.view.slide):
            self.close_compare_view()
        self.layer = layer
        self.slide_label.setText(f"Slide: {slide_of(layer).name}" if layer is not None
                                 else "Select a slide's spots layer")
        self._show_models()

    def models(self) -> list[vp.ModelOnSlide]:
        return vp.models_of(self.layer) if self.layer is not None else []

    # ------------------------------------------------------------------ loading
    def _choose_predictions(self):
        path, _ = QFileDialog.getOpenFileName(self, "Load predictions", "", "AnnData (*.h5ad);;All files (*)")
        if path:
            self.load(path, self.barcodes_edit.text().strip() or None)

    def _choose_barcodes(self):
        path, _ = QFileDialog.getOpenFileName(self, "Embeddings .h5 with the barcodes", "", "HDF5 (*.h5 *.hdf5);;All files (*)")
        if path:
            self.barcodes_edit.setText(path)

    def load(self, path: str | Path, barcodes: str | Path | None = None):
        """Read, place and judge `path` in a worker thread, with a progress bar in napari's
        activity panel; the predictions are attached to the followed slide when done. Refusals
        (rows that cannot be placed, unreadable files) become an error notification naming the
        file. Returns the worker (None when no slide is followed)."""
        from napari.qt.threading import create_worker
        from napari.utils.notifications import show_error
        from napari.utils.progress import progress

        if self.layer is None:
            show_error(f"{Path(path).name}: select the slide's spots layer to load predictions onto")
            return None
        layer, slide = self.layer, slide_of(self.layer)
        bar = progress(total=0, desc=f"Loading {Path(path).name}")  # indeterminate: one read, one pass
        self.status_label.setText(f"Loading {Path(path).name} onto {slide.name}…")

        def on_returned(model):
            if self.layer is layer:
                self.status_label.setText(f"{model.name}: rows matched {model.predictions.matched_by}")
            vp.attach_model(layer, model)

        def on_errored(exc):
            self.status_label.setText(f"Not loaded: {Path(path).name}")
            # SlideError names the file and what did not match; anything else gets the file named too
            show_error(str(exc) if isinstance(exc, SlideError)
                       else f"{path}: cannot load these predictions ({type(exc).__name__}: {exc})")

        def on_finished():
            bar.close()
            self.worker = None
            self._update_controls()

        self.worker = create_worker(
            vp.load_model, slide, path, barcodes,
            _connect={"returned": on_returned, "errored": on_errored, "finished": on_finished},
        )
        self._update_controls()
        return self.worker

    def _on_attached(self, layer):
        if layer is self.layer:
            self._show_models(newest=True)

    # ------------------------------------------------------------------ table and summary
    def _show_models(self, newest: bool = False):
        """Fill the table and summary from the followed layer's models; `newest`: a model was
        just loaded, show it (its best gene)."""
        models = self.models()
        self.model_combo.blockSignals(True)
        current = self.model_combo.currentText()
        self.model_combo.clear()
        self.model_combo.addItems([m.name for m in models])
        if current in [m.name for m in models] and not newest:
            self.model_combo.setCurrentText(current)
        elif models:
            self.model_combo.setCurrentIndex(len(models) - 1)  # the one loaded last
        self.model_combo.blockSignals(False)
        if not models:
            self.table_model.set_table(pd.DataFrame(columns=["mean_measured"]))
            self.summary_label.setText("Load a prediction .h5ad for this slide." if self.layer is not None else "")
            self.one_side_label.setText("")
            self.one_side_label.setToolTip("")
            self._update_controls()
            return
        self.table_model.set_table(comparison_table([m.comparison for m in models]))
        self.summary_label.setText("\n".join(self.summary(m) for m in models))
        self._show_one_side(models)
        if newest:
            best = self.shown_model().comparison.table["pearson_r"].fillna(-np.inf).idxmax()
            self.show_gene(str(best))
        self._update_controls()

    @staticmethod
    def summary(model: vp.ModelOnSlide) -> str:
        """'MODEL: mean r 0.412 ± 0.130 over 2 genes (4 undefined) · 1,999 spots'."""
        c = model.comparison
        r = c.pearson
        stats = f"mean r {r.mean():.3f} ± {r.std():.3f}" if r.size else "r undefined"
        undefined = len(c.table) - r.size
        return (f"{c.model}: {stats} over {len(c.table):,} genes compared"
                + (f" ({undefined} with r undefined)" if undefined else "") + f" · {c.n_spots:,} spots")

    def _show_one_side(self, models):
        predicted = sorted({g for m in models for g in m.comparison.only_predicted})
        measured = sorted({g for m in models for g in m.comparison.only_measured})
        self.one_side_label.setText(f"Not compared: {len(predicted):,} genes only predicted, "
                                    f"{len(measured):,} only measured (hover for the list)")

        def listed(genes):
            head = ", ".join(genes[:TOOLTIP_GENES])
            return head + (f", … (+{len(genes) - TOOLTIP_GENES:,} more)" if len(genes) > TOOLTIP_GENES else "")

        self.one_side_label.setToolTip(f"Only predicted: {listed(predicted) or 'none'}\n\n"
                                       f"Only measured: {listed(measured) or 'none'}")

    def shown_model(self) -> vp.ModelOnSlide | None:
        models = self.models()
        k = self.model_combo.currentIndex()
        return models[k] if 0 <= k < len(models) else None

    def _on_model_changed(self, _index):
        if self.view is not None and self.view.gene is not None and self.shown_model() is not None:
            self.view.show(self.shown_model(), self.view.gene)

    def _on_row(self, current, _previous=None):
        if current.isValid():
            gene = self.sorted_model.data(self.sorted_model.index(current.row(), 0), Qt.ItemDataRole.UserRole)
            self.show_gene(gene)

    # ------------------------------------------------------------------ compare view
    def show_gene(self, gene: str):
        """Show `gene` in the compare view (built on first use) for the model chosen."""
        model = self.shown_model()
        if model is None or self.layer is None:
            return
        if self.view is None or self.view.slide is not slide_of(self.layer):
            self.view = vp.CompareView(self.viewer, self.layer)
        with self.follower.quiet():
            self.view.show(model, gene)
        r = model.comparison.table["pearson_r"].get(gene, np.nan)
        self.status_label.setText(f"{gene}: Pearson r = {r:.3f} ({model.name})" if np.isfinite(r)
                                  else f"{gene}: Pearson r undefined (a side is constant)")
        self._update_controls()

    def close_compare_view(self):
        if self.view is not None:
            with self.follower.quiet():
                self.view.close()
            self.view = None
        self._update_controls()
