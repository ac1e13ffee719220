"""Dock widget "Browse slides": a dataset's catalogue as a filterable table; open, walk and compare slides.

A thin view over `io.catalogue` (which `napari-stimage slides` prints). Opening goes through
`loading.open_slide_in_viewer` (parsing off the GUI thread, with progress). Previous / next replace
the slide the browser opened, carrying its colour state (the colour widget's `LayerColorState` in the
spots layer's metadata) and the camera's place relative to the slide; the next slide of the filtered
list is loaded in the background meanwhile, which warms its expression cache.
"""

from __future__ import annotations

import contextlib
import copy
import html
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from qtpy.QtGui import QColor, QImage, QKeySequence, QPixmap, QShortcut
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from .. import coloring as col
from ..io.catalogue import Catalogue, load_catalogue, load_recent_roots, remember_recent_root
from ..viewer.canvas import camera
from ..viewer.following import unwrap
from ..viewer.metadata import EDITOR_KEY, SLIDE_KEY, slide_of
from ..viewer.side_by_side import MAX_SIDE_BY_SIDE, add_name_layer, arrange_in_grid, color_by_gene, grid_of
from .color_widget import STATE_KEY, LayerColorState  # the colour state is the seam between the widgets
from .parts import ask

# (header, catalogue column) of the table
TABLE_COLUMNS = (
    ("slide", "slide"), ("technology", "tech"), ("species", "species"), ("tissue", "tissue"),
    ("cancer?", "cancer"), ("spots", "spots"), ("genes", "genes"), ("annotated", "annotated"),
    ("on disk", "on_disk"), ("study title", "title"),
)
ANY = "any"
MISSING_COLOR = QColor(128, 128, 128)
PUBMED_URL = "https://pubmed.ncbi.nlm.nih.gov/{}/"
THUMBNAIL_SIZE = 240
STEP_KEYS = (("Alt+Right", 1), ("PgDown", 1), ("Alt+Left", -1), ("PgUp", -1))  # previous / next slide


class CatalogueModel(QAbstractTableModel):
    """The catalogue's rows shown through an index array: filtering swaps the array, nothing else.

    Cell texts are made once per column, so painting 1,229 rows costs a lookup per cell."""

    def __init__(self, catalogue: Catalogue | None = None):
        super().__init__()
        self.set_catalogue(catalogue)

    def set_catalogue(self, catalogue: Catalogue | None) -> None:
        self.beginResetModel()
        self.catalogue = catalogue
        table = catalogue.table if catalogue is not None else None
        self._text = [] if table is None else [self._texts(table[c]) for _, c in TABLE_COLUMNS]
        self._on_disk = np.zeros(0, bool) if table is None else table["on_disk"].to_numpy(bool)
        self._missing = [] if table is None else table["missing"].tolist()
        self.rows = np.arange(0 if table is None else len(table))
        self.endResetModel()

    @staticmethod
    def _texts(values) -> np.ndarray:
        if values.dtype == bool:
            return np.where(values.to_numpy(bool), "yes", "")
        return values.astype(object).where(values.notna(), "").astype(str).to_numpy()

    def show_rows(self, mask: np.ndarray) -> None:
        self.beginResetModel()
        self.rows = np.flatnonzero(mask)
        self.endResetModel()

    def slide_at(self, row: int) -> str:
        return self._text[0][self.rows[row]]

    def row_of(self, slide: str) -> int | None:
        hits = np.flatnonzero(self._text[0][self.rows] == slide) if self._text else ()
        return int(hits[0]) if len(hits) else None

    def rowCount(self, parent=QModelIndex()):  # noqa: N802, B008 (Qt API)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()):  # noqa: N802, B008 (Qt API)
        return 0 if parent.isValid() else len(TABLE_COLUMNS)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text[index.column()][row]
        if role == Qt.ItemDataRole.ForegroundRole and not self._on_disk[row]:
            return MISSING_COLOR
        if role == Qt.ItemDataRole.ToolTipRole and not self._on_disk[row]:
            return f"not on disk: missing {self._missing[row]}"
        return None

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802 (Qt API)
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return TABLE_COLUMNS[section][0]
        return None


class BrowseWidget(QWidget):
    thumbnail_ready = Signal(str, object)  # slide, (h, w, 3) array or None: from the thumbnail thread

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.catalogue: Catalogue | None = None
        self.current_slide: str | None = None  # the slide the browser opened last
        self.current_layers: list = []  # its layers (unwrapped)
        self.side_by_side_layers: list = []
        self.loading = None  # the worker opening a slide
        self.opening = False  # True from Open / Next until that slide is shown (or failed)
        self.prefetching: dict[str, threading.Thread] = {}
        self.prefetched: set[str] = set()
        self._build_ui()
        self.thumbnail_ready.connect(self._show_thumbnail)
        for keys, step in STEP_KEYS:
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(lambda step=step: self.step(step))
        self.table.installEventFilter(self)  # the table would take the keys for its own cursor otherwise
        recent = load_recent_roots()
        self.root_combo.addItems(recent)

    # ------------------------------------------------------------------ UI
    def _build_ui(self):
        layout = QVBoxLayout(self)
        roots = QHBoxLayout()
        self.root_combo = QComboBox()
        self.root_combo.setEditable(True)
        self.root_combo.setToolTip("dataset root (STimage-1K4M or HEST-1k); recent roots are remembered")
        self.root_combo.lineEdit().setPlaceholderText("dataset root folder")
        self.root_combo.activated.connect(lambda _: self.set_root(self.root_combo.currentText()))
        self.root_combo.lineEdit().returnPressed.connect(lambda: self.set_root(self.root_combo.currentText()))
        roots.addWidget(self.root_combo, 1)
        choose = QPushButton("Choose…")
        choose.clicked.connect(self.choose_root)
        roots.addWidget(choose)
        layout.addLayout(roots)

        filters = QFormLayout()
        self.tech_combo, self.species_combo, self.tissue_combo = QComboBox(), QComboBox(), QComboBox()
        self.cancer_combo = QComboBox()
        self.cancer_combo.addItems([ANY, "yes", "no"])
        self.cancer_combo.setToolTip("the meta table's involve_cancer: a text search for cancer/tumor/metastasis "
                                     "in title, abstract and keywords, not a diagnosis")
        for combo in (self.tech_combo, self.species_combo, self.tissue_combo, self.cancer_combo):
            combo.currentIndexChanged.connect(lambda _: self.apply_filters())
        filters.addRow("Technology", self.tech_combo)
        filters.addRow("Species", self.species_combo)
        filters.addRow("Tissue", self.tissue_combo)
        filters.addRow("Cancer (text-search guess)", self.cancer_combo)
        checks = QHBoxLayout()
        self.annotated_check = QCheckBox("has annotation")
        self.on_disk_check = QCheckBox("on disk")
        for check in (self.annotated_check, self.on_disk_check):
            check.toggled.connect(lambda _: self.apply_filters())
            checks.addWidget(check)
        filters.addRow(checks)
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("words in slide name, title, keywords, abstract")
        self.search_edit.textChanged.connect(lambda _: self.apply_filters())
        filters.addRow("Search", self.search_edit)
        layout.addLayout(filters)
        self.count_label = QLabel("no dataset")
        layout.addWidget(self.count_label)

        split = QSplitter(Qt.Orientation.Vertical)
        self.model = CatalogueModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.doubleClicked.connect(lambda index: self.open_slide(self.model.slide_at(index.row())))
        self.table.selectionModel().currentRowChanged.connect(lambda index, _: self._show_details(index.row()))
        split.addWidget(self.table)
        details = QWidget()
        d = QHBoxLayout(details)
        self.details_label = QLabel("")
        self.details_label.setWordWrap(True)
        self.details_label.setTextFormat(Qt.TextFormat.RichText)
        self.details_label.setOpenExternalLinks(True)
        self.details_label.setAlignment(Qt.AlignmentFlag.AlignTop)
        d.addWidget(self.details_label, 1)
        self.thumbnail_label = QLabel()
        self.thumbnail_label.setFixedWidth(THUMBNAIL_SIZE // 2)
        d.addWidget(self.thumbnail_label, 0, Qt.AlignmentFlag.AlignTop)
        split.addWidget(details)
        layout.addWidget(split, 1)

        walk = QHBoxLayout()
        self.open_button = QPushButton("Open")
        self.open_button.clicked.connect(lambda: self.open_slide(self.selected_slide()))
        self.previous_button = QPushButton("◀ Previous")
        self.previous_button.setToolTip("previous slide of the filtered list (Alt+Left, PageUp)")
        self.previous_button.clicked.connect(lambda: self.step(-1))
        self.next_button = QPushButton("Next ▶")
        self.next_button.setToolTip("next slide of the filtered list (Alt+Right, PageDown); "
                                    "gene, colours, hidden labels and view are kept")
        self.next_button.clicked.connect(lambda: self.step(1))
        for button in (self.open_button, self.previous_button, self.next_button):
            walk.addWidget(button)
        layout.addLayout(walk)

        side = QHBoxLayout()
        self.side_gene_edit = QLineEdit()
        self.side_gene_edit.setPlaceholderText("gene (default: the open slide's)")
        self.shared_range_check = QCheckBox("one colour range")
        self.shared_range_check.setChecked(True)
        self.shared_range_check.setToolTip("one range over all slides (same value, same colour); "
                                           "off: each slide its own 1-99% range")
        self.side_button = QPushButton("Side by side")
        self.side_button.setToolTip(f"open the selected slides (2-{MAX_SIDE_BY_SIDE}) in a grid, one gene")
        self.side_button.clicked.connect(lambda: self.open_side_by_side(self.selected_slides()))
        side.addWidget(self.side_gene_edit, 1)
        side.addWidget(self.shared_range_check)
        side.addWidget(self.side_button)
        layout.addLayout(side)

    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        from qtpy.QtCore import QEvent

        if obj is self.table and event.type() in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride):
            alt = bool(event.modifiers() & Qt.KeyboardModifier.AltModifier)
            step = {
                (Qt.Key.Key_Right, True): 1, (Qt.Key.Key_PageDown, False): 1,
                (Qt.Key.Key_Left, True): -1, (Qt.Key.Key_PageUp, False): -1,
            }.get((event.key(), alt))  # the STEP_KEYS
            if step is not None:
                if event.type() == QEvent.Type.KeyPress:
                    self.step(step)
                event.accept()
                return event.type() == QEvent.Type.KeyPress
        return super().eventFilter(obj, event)

    # ------------------------------------------------------------------ dataset
    def choose_root(self):
        folder = QFileDialog.getExistingDirectory(self, "Dataset root (STimage-1K4M or HEST-1k)",
                                                  self.root_combo.currentText())
        if folder:
            self.set_root(folder)

    def set_root(self, root: str | Path) -> bool:
        """Load the catalogue of `root`; errors are shown, the previous catalogue stays."""
        from napari.utils.notifications import show_error

        if not str(root).strip():
            return False
        try:
            catalogue = load_catalogue(root)
        except Exception as exc:  # a SlideError names the file; anything else must not break the viewer
            show_error(f"napari-stimage: cannot browse {root}: {exc}")
            return False
        self.catalogue = catalogue
        recent = remember_recent_root(catalogue.root)
        self.root_combo.blockSignals(True)
        self.root_combo.clear()
        self.root_combo.addItems(recent)
        self.root_combo.setCurrentIndex(0)
        self.root_combo.blockSignals(False)
        for combo, column in ((self.tech_combo, "tech"), (self.species_combo, "species"), (self.tissue_combo, "tissue")):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([ANY, *catalogue.choices(column)])
            combo.blockSignals(False)
        self.model.set_catalogue(catalogue)
        self.apply_filters()
        return True

    def criteria(self) -> dict:
        def chosen(combo):
            text = combo.currentText()
            return None if text in ("", ANY) else text

        cancer = {ANY: None, "yes": True, "no": False}[self.cancer_combo.currentText()]
        return {
            "tech": chosen(self.tech_combo), "species": chosen(self.species_combo), "tissue": chosen(self.tissue_combo),
            "cancer": cancer, "annotated": True if self.annotated_check.isChecked() else None,
            "on_disk": True if self.on_disk_check.isChecked() else None, "search": self.search_edit.text() or None,
        }

    def apply_filters(self):
        if self.catalogue is None:
            return
        self.model.show_rows(self.catalogue.filter_mask(**self.criteria()))
        self.count_label.setText(f"{self.model.rowCount()} of {len(self.catalogue)} slides")
        self._prefetch_next()

    def visible_slides(self) -> list[str]:
        return [self.model.slide_at(r) for r in range(self.model.rowCount())]

    def selected_slide(self) -> str | None:
        index = self.table.currentIndex()
        return self.model.slide_at(index.row()) if index.isValid() else None

    def selected_slides(self) -> list[str]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.model.slide_at(r) for r in rows]

    def select(self, slide: str) -> None:
        row = self.model.row_of(slide)
        if row is not None:
            self.table.selectRow(row)

    # ------------------------------------------------------------------ details
    def _show_details(self, row: int):
        if self.catalogue is None or row < 0 or row >= self.model.rowCount():
            self.details_label.clear()
            self.thumbnail_label.clear()
            return
        slide = self.model.slide_at(row)
        record = self.catalogue.table.iloc[self.model.rows[row]]
        pmids = [p.strip() for p in str(record["pmid"]).replace(";", ",").split(",") if p.strip()]
        links = ", ".join(f'<a href="{PUBMED_URL.format(html.escape(p))}">{html.escape(p)}</a>' for p in pmids)
        parts = [f"<b>{html.escape(slide)}</b>"]
        if not record["on_disk"]:
            parts.append(f"<i>not on disk: missing {html.escape(record['missing'])}</i>")
        for name, value in (("Title", record["title"]), ("Keywords", record["keywords"]),
                            ("Organ", record["organ"]), ("OncoTree", record["oncotree_code"])):
            if value:
                parts.append(f"<b>{name}:</b> {html.escape(str(value))}")
        if links:
            parts.append(f"<b>PubMed:</b> {links}")
        if record["abstract"]:
            parts.append(html.escape(str(record["abstract"])))
        self.details_label.setText("<br>".join(parts))
        self.thumbnail_label.clear()
        image = self.catalogue.image_path(slide)
        if image is not None:
            threading.Thread(target=self._make_thumbnail, args=(slide, image), daemon=True).start()

    def _make_thumbnail(self, slide: str, image: Path):
        from ..io.images import quick_thumbnail

        try:
            thumb = quick_thumbnail(image, THUMBNAIL_SIZE)
        except Exception:  # a damaged image has no thumbnail; opening the slide says what is wrong
            thumb = None
        with contextlib.suppress(RuntimeError):  # the widget was closed meanwhile
            self.thumbnail_ready.emit(slide, thumb)

    def _show_thumbnail(self, slide: str, thumb):
        if thumb is None or slide != self.selected_slide():
            return
        thumb = np.ascontiguousarray(thumb)
        h, w = thumb.shape[:2]
        image = QImage(thumb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        self.thumbnail_label.setPixmap(QPixmap.fromImage(image).scaledToWidth(
            self.thumbnail_label.width(), Qt.TransformationMode.SmoothTransformation))

    # ------------------------------------------------------------------ open, walk
    def step(self, delta: int):
        """Open the previous (-1) or next (+1) slide of the filtered list in place of the current one."""
        slides = self.visible_slides()
        if not slides:
            return None
        anchor = self.current_slide if self.current_slide in slides else self.selected_slide()
        k = slides.index(anchor) + delta if anchor in slides else (0 if delta > 0 else len(slides) - 1)
        if not 0 <= k < len(slides):
            return None
        return self.open_slide(slides[k])

    def open_slide(self, slide: str | None):
        """Open `slide`, replacing the slide the browser opened before (asking about unsaved labels).
        Returns the loading worker, or None when nothing is opened."""
        from napari.utils.notifications import show_info

        from .loading import open_slide_in_viewer

        if slide is None or self.catalogue is None or self.opening:
            return None  # one slide at a time: a second Next while one loads is ignored
        path = self.catalogue.slide_path(slide)
        if path is None:
            missing = self.catalogue.table.loc[self.catalogue.table["slide"] == slide, "missing"]
            show_info(f"{slide} is not on disk (missing {', '.join(missing)})")
            return None
        old = [layer for layer in self.current_layers + self.side_by_side_layers if self._in_viewer(layer)]
        if not self._guard_unsaved(old):
            return None
        carried = self._carried_state(old)
        view = self._relative_view(old)
        self.select(slide)

        def prepare(new_slide, layer_data):
            self._remove(old)
            grid_of(self.viewer).enabled = False
            spots_meta = next((meta for _, meta, kind in layer_data
                               if kind == "points" and SLIDE_KEY in meta.get("metadata", {})), None)
            if carried is not None and spots_meta is not None:
                state = self._state_for(carried, new_slide)
                if state is not None:
                    spots_meta["metadata"][STATE_KEY] = state

        def on_added(new_slide, layers):
            self.current_slide = new_slide.name
            self.current_layers = [unwrap(layer) for layer in layers]
            self.side_by_side_layers = []
            spots = self._spots_layer(self.current_layers)
            if spots is not None:
                self.viewer.layers.selection.active = spots
                self._apply_carried_colors(spots, carried)
            if view is not None:
                self._restore_view(view)
            self._prefetch_next()

        self.loading = open_slide_in_viewer(self.viewer, path, dock_widgets=not old, prepare=prepare, on_added=on_added)
        self.opening = True
        self.loading.finished.connect(self._opened)  # after on_added, or after an error was shown
        return self.loading

    def _opened(self):
        self.opening = False

    def _in_viewer(self, layer) -> bool:
        return any(unwrap(other) is layer for other in self.viewer.layers)

    def _remove(self, layers):
        # one batch: napari 0.9 cleans its scene graph (a full garbage collection) once, not per layer
        batch = getattr(self.viewer.layers, "batched_update", contextlib.nullcontext)
        with batch():
            for layer in layers:
                if self._in_viewer(layer):
                    self.viewer.layers.remove(layer)

    @staticmethod
    def _spots_layer(layers):
        from napari.layers import Points

        return next((layer for layer in layers if isinstance(layer, Points) and slide_of(layer) is not None), None)

    def ask(self, title: str, text: str, choices: tuple[str, ...]) -> str:
        """A modal question; returns the chosen button's text (tests replace this method)."""
        return ask(self, title, text, choices)

    def _guard_unsaved(self, layers) -> bool:
        """True when the layers may close: no unsaved label edits, or the user saved or set them aside."""
        from napari.utils.notifications import show_error

        from ..viewer.editors import editor_for_layer

        dirty = [(layer, e) for layer in layers if (e := editor_for_layer(layer, create=False)) is not None and e.dirty]
        if not dirty:
            return True
        names = ", ".join(layer.name for layer, _ in dirty)
        choice = self.ask(
            "Unsaved labels",
            f"{names} has unsaved label edits. Save them before the next slide opens?\n"
            "(Not saving keeps them in a recovery file offered when the slide is opened again.)",
            ("Save", "Don't save", "Cancel"),
        )
        if choice == "Cancel":
            return False
        for layer, editor in dirty:
            if choice == "Save":
                try:
                    editor.save()
                except Exception as exc:  # a changed or unwritable file: stay on this slide
                    show_error(f"saving labels of {layer.name} failed: {exc}")
                    return False
            else:
                # the edits stay in the recovery file; the curation widget need not ask again
                layer.metadata.pop(EDITOR_KEY, None)
        return True

    # ------------------------------------------------------------------ what carries over
    def _carried_state(self, layers):
        """The colour state of the slide being replaced, and whether its range was autoscaled."""
        spots = self._spots_layer(layers)
        state = spots.metadata.get(STATE_KEY) if spots is not None else None
        if state is None or state.mode is None:
            return None
        autoscaled = True
        if state.gene is not None:
            try:
                values = state.gene.values(slide_of(spots))
                auto = col.GeneValues.of(values).autoscale
                autoscaled = bool(np.allclose(auto, state.gene.contrast_limits))
            except KeyError:
                pass
        return state, autoscaled

    def _state_for(self, carried, slide):
        """A copy of the carried state for `slide`; None when the slide lacks the gene (it opens as usual)."""
        from napari.utils.notifications import show_info

        state, _ = carried
        new = copy.deepcopy(state)
        new.border_alpha = None  # per point of the old slide
        if state.gene is not None:
            search = col.GeneSearch.for_slide(slide) if slide.expression is not None else None
            if search is None or not all(search.is_gene(g) for g in state.gene.genes):
                show_info(f"{slide.name} has no {', '.join(state.gene.genes)}: it opens with its own colours")
                return None
            new.gene = replace(state.gene, genes=tuple(search.resolve(g) for g in state.gene.genes))
        return new

    def _apply_carried_colors(self, spots, carried):
        """Let the colour widget paint the carried state (it shows the state; painting is its job)."""
        if carried is None or spots.metadata.get(STATE_KEY) is None:
            return
        state = spots.metadata[STATE_KEY]
        _, color = self.viewer.window.add_plugin_dock_widget("napari-stimage", "Color spots")
        if getattr(color, "layer", None) is not spots:
            color.follower.follow(spots)
        if state.mode == "gene" and state.gene is not None:
            limits = state.gene.contrast_limits
            color.apply_genes(list(state.gene.genes))
            if not carried[1]:
                color.range_slider.setValue(tuple(float(v) for v in limits))  # a fixed range stays fixed
        elif state.mode == "label":
            color.color_by_label()

    def _slide_extent(self, layers) -> np.ndarray | None:
        """[[top, left], [bottom, right]] in world coordinates over a slide's layers."""
        extents = [np.asarray(layer.extent.world)[:, -2:] for layer in layers if self._in_viewer(layer)]
        if not extents:
            return None
        return np.array([np.min([e[0] for e in extents], axis=0), np.max([e[1] for e in extents], axis=0)])

    def _relative_view(self, layers):
        extent = self._slide_extent(layers)
        if extent is None:
            return None
        size = np.maximum(extent[1] - extent[0], 1e-9)
        center = np.asarray(camera(self.viewer).center, dtype=float)[-2:]
        return (center - extent[0]) / size, float(camera(self.viewer).zoom) * float(size.max())

    def _restore_view(self, view):
        from qtpy.QtCore import QTimer

        def restore():
            extent = self._slide_extent(self.current_layers)
            if extent is None:
                return
            relative_center, relative_zoom = view
            size = np.maximum(extent[1] - extent[0], 1e-9)
            center = extent[0] + relative_center * size
            current = tuple(camera(self.viewer).center)
            camera(self.viewer).center = tuple(current[:-2]) + tuple(float(c) for c in center)
            camera(self.viewer).zoom = relative_zoom / float(size.max())

        restore()
        QTimer.singleShot(0, restore)  # after napari's own fit of the first layer of an emptied viewer

    # ------------------------------------------------------------------ prefetch
    def _next_slide(self) -> str | None:
        slides = self.visible_slides()
        anchor = self.current_slide if self.current_slide in slides else self.selected_slide()
        if anchor not in slides:
            return None
        k = slides.index(anchor) + 1
        return slides[k] if k < len(slides) else None

    def _prefetch_next(self):
        """Load the next slide of the filtered list in the background: its expression cache is then
        ready when the user presses Next (the slide object itself is not kept)."""
        if self.current_slide is None:
            return
        slide = self._next_slide()
        path = self.catalogue.slide_path(slide) if slide is not None else None
        if path is None or slide in self.prefetched or slide in self.prefetching:
            return

        def work():
            from ..io.registry import load_slide

            try:
                load_slide(path)
                self.prefetched.add(slide)
            except Exception:  # opening it for real reports the problem
                pass
            finally:
                self.prefetching.pop(slide, None)

        thread = threading.Thread(target=work, daemon=True, name=f"prefetch {slide}")
        self.prefetching[slide] = thread
        thread.start()

    # ------------------------------------------------------------------ side by side
    def open_side_by_side(self, slides: list[str]):
        """Open 2-6 slides in napari's grid, one tile each, coloured by one gene with one range."""
        from napari.utils.notifications import show_info

        from .loading import open_slide_in_viewer

        slides = [s for s in slides if self.catalogue is not None and self.catalogue.slide_path(s) is not None]
        if not 2 <= len(slides) <= MAX_SIDE_BY_SIDE:
            show_info(f"select 2 to {MAX_SIDE_BY_SIDE} slides that are on disk for side by side")
            return []
        old = [layer for layer in self.current_layers + self.side_by_side_layers if self._in_viewer(layer)]
        if not self._guard_unsaved(old):
            return []
        carried = self._carried_state(old)
        self._remove(old)
        self.current_layers, self.side_by_side_layers, self.current_slide = [], [], None
        loaded: dict[str, list] = {}

        def on_added(slide, layers):
            name_layer = add_name_layer(self.viewer, slide)
            loaded[slide.name] = [unwrap(layer) for layer in layers] + [unwrap(name_layer)]
            if len(loaded) == len(slides):
                self._arrange_side_by_side([loaded[s] for s in slides if s in loaded], carried)

        return [open_slide_in_viewer(self.viewer, self.catalogue.slide_path(s), dock_widgets=False, on_added=on_added)
                for s in slides]

    def _arrange_side_by_side(self, groups, carried):
        from napari.utils.notifications import show_error, show_info

        self.side_by_side_layers = [layer for group in groups for layer in group]
        try:
            arrange_in_grid(self.viewer, groups)
        except ValueError as exc:
            show_error(str(exc))
        spots = [self._spots_layer(group) for group in groups]
        if any(layer is None for layer in spots):
            return
        gene = self._side_by_side_coloring(spots, carried)
        if gene is None:
            show_info("side by side: no gene common to these slides")
            return
        limits = color_by_gene(spots, gene, shared=self.shared_range_check.isChecked())
        for layer, lim in zip(spots, limits, strict=True):
            state = LayerColorState(mode="gene", gene=replace(gene, contrast_limits=lim))
            layer.metadata[STATE_KEY] = state  # the colour widget shows what each slide is coloured by
        self.viewer.reset_view()

    def _side_by_side_coloring(self, spots, carried) -> col.GeneColoring | None:
        typed = col.parse_gene_list(self.side_gene_edit.text())
        previous = carried[0].gene if carried is not None and carried[0].gene is not None else None
        genes = typed or (list(previous.genes) if previous is not None else [])
        slides = [slide_of(layer) for layer in spots]
        if not genes:
            first = slides[0]
            genes = list(first.default_genes[:1]) if first.expression is not None else []
        if not genes or any(s.expression is None for s in slides):
            return None
        searches = [col.GeneSearch.for_slide(s) for s in slides]
        if not all(search.is_gene(g) for search in searches for g in genes):
            return None
        genes = [searches[0].resolve(g) for g in genes]
        if previous is not None:
            return col.GeneColoring(tuple(genes), previous.transform, previous.colormap, None, previous.non_expressing)
        return col.GeneColoring(tuple(genes))

