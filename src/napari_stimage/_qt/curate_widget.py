"""Curation dock widget: select spots, assign labels, undo, save. A thin view over `editing.py`.

The layer chooser lists spots layers (Points) and bin-labels layers (VisiumHD rasters).

Spots layers: selection tools act on the chosen layer (they make it the active layer):
- Click: napari's own select mode (click, shift-click, drag a box).
- Rectangle / Lasso / Brush: drag on the canvas; hold Shift to add to the selection,
  Alt to remove from it. The brush radius is in image pixels.
Keys on the spots layer: 1-9 give the selection the first nine labels of `editor.categories()`
(an order fixed for the session: a new label is appended, never shifts the keys), 0 / Backspace /
Delete clear its labels (they never delete spots), Ctrl+Z undo, Ctrl+Shift+Z redo, L / B / R pick
Lasso / Brush / Rectangle, Escape = Pan/zoom and select none (napari's P, S, Z, A stay).
The widget follows the layer selected in the layer list when it is a spots or bin-labels layer.

Bin-labels layers (VisiumHD) are curated the same way: Click, Rectangle, Lasso and Brush select
bins (outlined in magenta on a helper layer, `bins.draw_bin_selection`), Assign and keys 1-9
label them, with the same keys. napari's own Labels tools in the layer controls (paint, fill,
polygon, erase) paint bins too: while one is on, a label chosen here (Assign / Enter, the
drop-down or keys 1-9) becomes the brush's label, and Clear picks the eraser. Every edit is an
edit of the same `LabelEditor` (see `bins.py`), so undo, saving, the unsaved flag, the close
guard and recovery work as for spots. The widget watches the viewer (`bins.watch_viewer`), so
bin layers added by napari's reader are editable from the moment they are inserted.
"""

from __future__ import annotations

import contextlib
import weakref
from pathlib import Path

import numpy as np
from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import QComboBox, QFileDialog, QLabel, QMainWindow, QVBoxLayout

from ..curation.editor import LabelEditor
from ..io.stimage.annotation import AnnotationChangedOnDisk
from ..viewer import bins
from ..viewer.editors import editor_for_layer
from ..viewer.following import unwrap
from ..viewer.targets import CLEAR_KEYS, BinsTarget, SpotsTarget, target_for
from .base import SlideLayerWidget
from .panels.files import FilesPanel
from .panels.labelling import LabellingPanel
from .panels.selection_tools import SelectionToolsPanel
from .parts import ElidedLabel, ask

RECOVERY_WAIT_MS = 100  # while napari shows a progress bar (the slide is still being added), ask later
RECOVERY_WAIT_TICKS = 300  # but never wait more than 30 s for a bar that is never closed
_RECOVERY_QUEUED: weakref.WeakSet = weakref.WeakSet()  # editors whose recovery was offered: once each


def _napari_progress_open() -> bool:
    """napari shows a progress bar (viewer.open adds a slide's layers inside one).

    Private use, guarded: napari keeps its open bars in the class attribute
    `progress._all_instances` (napari 0.4-0.9); without it, no bar is taken as open.
    """
    from napari.utils import progress

    return bool(len(getattr(progress, "_all_instances", ())))


class _CloseGuard(QObject):
    """Asks before the main window closes while the widget has unsaved edits."""

    def __init__(self, widget: CurateWidget):
        super().__init__(widget)
        self._widget = widget

    def eventFilter(self, obj, event):  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.Close and not self._widget.confirm_discard_all():
            event.ignore()
            return True
        return False


class CurateWidget(SlideLayerWidget):
    """Layer chooser and status, then three panels: selection tools, labelling, files."""

    layer_kinds = ("spots", "bins")

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.target: SpotsTarget | BinsTarget | None = None
        self._bound_keys: list = []
        self._closing = False  # the viewer is closing and the user already answered for all layers
        self._close_guard = _CloseGuard(self)
        self._guarded_windows = weakref.WeakSet()  # main windows whose close the guard watches (weak: no leak)
        self._recovery_pending: list[weakref.ref] = []  # editors whose recovery is asked once the slide is open
        self._recovery_wait = 0
        self._napari_help = ""  # the curated layer's own status-bar hint, given back when it is left
        self._build_ui()

        bins.watch_viewer(self.viewer)  # before the follower's inserted handler: layers arrive bound
        self.viewer.layers.events.removing.connect(self._on_layer_removing)
        self.start_following()

    def showEvent(self, event):  # noqa: N802 (Qt API)
        """Once docked and shown, guard the main window's close (no private napari attribute)."""
        super().showEvent(event)
        window = self.window()
        if isinstance(window, QMainWindow) and window not in self._guarded_windows:
            window.installEventFilter(self._close_guard)
            self._guarded_windows.add(window)

    def hideEvent(self, event):  # noqa: N802 (Qt API)
        """A closed (or tabbed-away) dock leaves no drawing tool on: the stroke layer goes and
        napari's own Alt + drag zoom comes back."""
        if self.tool != "pan" and self.target is not None:
            self.set_tool("pan")
        super().hideEvent(event)

    # -- ui --------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        root = QVBoxLayout(self.content)
        self.layer_combo = QComboBox()
        self.layer_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.layer_combo.setMinimumContentsLength(12)  # long slide names must not widen the dock
        self.layer_combo.currentIndexChanged.connect(self._on_layer_chosen)
        chooser_title = QLabel("Spots or bin-labels layer")
        chooser_title.setToolTip("Follows the layer selected in the layer list")
        root.addWidget(chooser_title)
        root.addWidget(self.layer_combo)
        # long slide names are cut in the middle, so "saved" / "● unsaved changes" stays visible
        self.status = ElidedLabel("no slide", elide=Qt.TextElideMode.ElideMiddle)
        root.addWidget(self.status)
        self.tools = self.tools_box = SelectionToolsPanel(self)
        self.labelling = LabellingPanel(self)
        self.files = FilesPanel(self)
        root.addWidget(self.tools)
        root.addWidget(self.labelling)
        root.addWidget(self.files)
        root.addStretch(1)
        # the panels' controls, by the names scripts and tests use
        for panel, names in ((self.tools, ("tool_buttons", "brush_radius", "select_label_combo", "select_label_button",
                                           "invert_button", "deselect_button", "selection_count")),
                             (self.labelling, ("assign_box", "label_input", "assign_button", "clear_button",
                                               "hotkey_help", "undo_button", "redo_button")),
                             (self.files, ("save_button", "save_as_button", "import_button", "export_button"))):
            for name in names:
                setattr(self, name, getattr(panel, name))
        self.update_state()

    # -- what the panels do, on the widget ---------------------------------------------------------
    @property
    def tool(self) -> str:
        return self.tools.tool

    @property
    def selection(self) -> np.ndarray:
        return self.tools.selection

    def set_tool(self, tool: str) -> None:
        self.tools.set_tool(tool)

    def set_selection(self, indices, mode: str = "replace") -> None:
        self.tools.set_selection(indices, mode)

    def select_none(self) -> None:
        self.tools.select_none()

    def pan_and_select_none(self) -> None:
        self.tools.pan_and_select_none()

    def select_label(self) -> None:
        self.tools.select_label()

    def invert_selection(self) -> None:
        self.tools.invert_selection()

    def assign_to_selection(self, label) -> int:
        return self.labelling.assign_to_selection(label)

    def assign_typed_label(self) -> int:
        return self.labelling.assign_typed_label()

    def assign_hotkey(self, number: int) -> int:
        return self.labelling.assign_hotkey(number)

    def paint_with(self, label) -> int | None:
        return self.labelling.paint_with(label)

    def undo(self) -> None:
        self.labelling.undo()

    def redo(self) -> None:
        self.labelling.redo()

    def save(self, path: str | Path | None = None, force: bool = False, block: bool = False):
        return self.files.save(path, force=force, block=block)

    def save_as(self):
        return self.files.save_as()

    # -- layers ----------------------------------------------------------------------------------
    @property
    def editor(self) -> LabelEditor | None:
        return self.target.editor if self.target is not None else None

    @property
    def sync(self) -> bins.LabelsLayerSync | None:
        """The bin raster's link to the editor while the chosen layer is a bin-labels layer."""
        return getattr(self.target, "sync", None)

    @property
    def is_bins(self) -> bool:
        """The chosen layer is a bin-labels raster, not spots."""
        return self.target is not None and self.target.kind == "bins"

    def layers_changed(self) -> None:
        layers = self.follower.candidates()
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        for layer in layers:
            self.layer_combo.addItem(layer.name)
        self.layer_combo.blockSignals(False)
        self._show_in_chooser(self.layer)

    def _show_in_chooser(self, layer) -> None:
        layers = self.follower.candidates()
        index = next((k for k, other in enumerate(layers) if other is layer), -1)
        if index >= 0 and self.layer_combo.currentIndex() != index:
            self.layer_combo.blockSignals(True)
            self.layer_combo.setCurrentIndex(index)
            self.layer_combo.blockSignals(False)

    def _on_layer_chosen(self, index: int) -> None:
        """A layer picked in the chooser is also selected in the layer list: the two never disagree."""
        layers = self.follower.candidates()
        if 0 <= index < len(layers):
            self.follower.follow(layers[index])
            self.activate(layers[index])

    def activate(self, layer) -> None:
        """Select `layer` in the layer list (drags and keys go to the active layer), unfollowed."""
        if layer is not None and self.follower.active() is not layer:
            with self.follower.quiet():
                self.viewer.layers.selection.active = layer

    def follow_layer(self, layer) -> None:
        """Work on `layer` (unwrapped; the follower calls this when the followed layer changes)."""
        old = self.target
        self.tools.detach(old)
        if old is not None:
            self._unbind_keys()
            self._restore_napari_help()
            old.unwatch_brush_label(self.labelling.on_selected_label)
            old.editor.remove_view(self._on_labels_changed)
        self.layer = layer
        self.target = target = target_for(layer) if layer is not None else None
        if target is not None:
            target.watch_brush_label(self.labelling.on_selected_label)
            target.editor.add_view(self._on_labels_changed)
        self.tools.attach(target)
        if target is not None:
            self._bind_keys(target)
            # after napari's own handler, which rewrites the layer's help on each mode change
            layer.events.mode.connect(self.show_help, position="last")
            self._queue_recovery_offer(target.editor)
        self.labelling.show_target(target)
        self._on_labels_changed(None)
        self._show_in_chooser(layer)
        if target is not None and self.tool != "pan":
            self.set_tool(self.tool)  # the chosen tool carries over to the newly curated layer
        self.show_help()

    def _bind_keys(self, target) -> None:
        def hotkey(n):
            return lambda _layer: self.assign_hotkey(n)

        bindings = {str(n): hotkey(n) for n in range(1, 10)}
        bindings.update({key: (lambda _layer: self.assign_to_selection(None)) for key in CLEAR_KEYS})
        bindings.update(target.extra_keys(self))
        for key, func in bindings.items():
            target.layer.bind_key(key, func, overwrite=True)
        self._bound_keys = list(bindings)

    def _unbind_keys(self) -> None:
        for key in self._bound_keys:
            with contextlib.suppress(KeyError, ValueError, TypeError):
                self.layer.bind_key(key, None)
        self._bound_keys = []

    # -- status bar hint -----------------------------------------------------------------------
    def show_help(self, event=None) -> None:
        """Our keys in the status bar: napari's Points/Labels hint names keys 1-9 for its own modes,
        which the widget rebinds to labels on the curated layer."""
        if self.target is None:
            return
        layer, text = self.layer, self.target.help_text(self.tool)
        if text is None:
            return
        if layer.help != text:
            self._napari_help = layer.help
            layer.help = text
        if self.follower.active() is layer:
            self.viewer.help = text

    def _restore_napari_help(self) -> None:
        layer = self.layer
        layer.events.mode.disconnect(self.show_help)
        if layer.help == self.target.help_text(self.tool):
            layer.help = self._napari_help
            if self.follower.active() is layer:
                self.viewer.help = layer.help

    # -- labels and state --------------------------------------------------------------------------
    def without_hidden(self, indices) -> np.ndarray:
        """`indices` less the spots whose label is hidden in the legend, saying how many were skipped."""
        shown, skipped = self.editor.split_hidden(indices)
        if skipped:
            element = self.target.element if self.target is not None else "spot"
            self._notify(f"{skipped} hidden {element}(s) skipped: show their label in the legend to select them")
        return shown

    def _on_labels_changed(self, indices) -> None:
        categories = self.editor.categories() if self.editor is not None else []
        self.labelling.fill_labels(categories, self.target)
        self.tools.fill_labels(categories)
        self.update_state()

    def update_state(self) -> None:
        editor = self.editor
        self.labelling.update_history(editor)
        self.files.set_enabled(editor is not None)
        self.tools.set_enabled_for(self.target)
        if editor is None:
            self.status.set_full_text("Open a slide to curate its labels")
            return
        target = editor.path.name if editor.path is not None else "(no file)"
        exists = editor.path is not None and editor.path.exists()
        if exists:
            text = f"{target}: {'● unsaved changes' if editor.dirty else 'saved'}"
        else:
            text = f"{target} (new file, not saved yet){': ● unsaved changes' if editor.dirty else ''}"
        self.status.set_full_text(text, f"{editor.path}\n{text}" if editor.path is not None else text)
        self.status.setStyleSheet("color: #e0a000;" if editor.dirty else "")

    # -- recovery and closing --------------------------------------------------------------------
    def _queue_recovery_offer(self, editor) -> None:
        """Offer `editor`'s recovery once per session, after the slide is open.

        Binding happens while napari still adds the slide's layers inside its "Opening Files"
        progress, which runs the event loop: a question asked from there stacks up or hangs.
        """
        if editor in _RECOVERY_QUEUED:
            return
        _RECOVERY_QUEUED.add(editor)
        self._recovery_pending.append(weakref.ref(editor))
        self._recovery_wait = RECOVERY_WAIT_TICKS
        QTimer.singleShot(0, self._offer_queued_recovery)

    def _offer_queued_recovery(self) -> None:
        if _napari_progress_open() and self._recovery_wait > 0:
            self._recovery_wait -= 1
            QTimer.singleShot(RECOVERY_WAIT_MS, self._offer_queued_recovery)
            return
        pending, self._recovery_pending = self._recovery_pending, []
        for ref in pending:
            editor = ref()
            if editor is not None and self._editor_in_viewer(editor):
                self.offer_recovery(editor)

    def _editor_in_viewer(self, editor) -> bool:
        return any(editor_for_layer(layer, create=False) is editor for layer in self.follower.candidates())

    def offer_recovery(self, editor: LabelEditor | None = None) -> bool:
        """Ask whether to recover `editor`'s (default: the current one's) unsaved edits from disk."""
        editor = self.editor if editor is None else editor
        if editor is None or editor.dirty:
            return False
        recovery = editor.find_recovery()
        if recovery is None:
            return False
        choice = self.ask(
            "Recover unsaved labels?",
            f"Found {recovery.describe()}.\nRecover them (you can undo it), or discard them?",
            ("Recover", "Discard", "Later"),
        )
        if choice == "Recover":
            editor.apply_recovery(recovery)
            return True
        if choice == "Discard":
            editor.discard_recovery()
        return False

    def _on_layer_removing(self, event) -> None:
        layer = unwrap(self.viewer.layers[event.index]) if event.index is not None else None
        editor = editor_for_layer(layer, create=False) if layer is not None else None
        if editor is None or not editor.dirty or self._closing:
            return
        # napari cannot veto a removal: save now or leave the edits in the recovery file
        choice = self.ask(
            "Unsaved labels",
            f"{layer.name} has unsaved label edits. Save them before the layer closes?\n"
            "(Not saving keeps them in a recovery file offered when the slide is opened again.)",
            ("Save", "Don't save"),
        )
        if choice == "Save":
            self._save_blocking(editor)

    def _save_blocking(self, editor) -> bool:
        try:
            editor.save()
            return True
        except AnnotationChangedOnDisk:
            path, _ = QFileDialog.getSaveFileName(self, "The file changed on disk: save as", str(editor.path), "CSV (*.csv)")
            if path:
                editor.save(path)
                return True
        except (OSError, ValueError) as exc:
            self._notify(f"saving failed: {exc}")
        return False

    def confirm_discard_all(self) -> bool:
        """Before the viewer closes: True when closing may go on."""
        dirty = [layer for layer in self.follower.candidates() if (e := editor_for_layer(layer, create=False)) and e.dirty]
        if not dirty:
            self._closing = True
            return True
        names = ", ".join(layer.name for layer in dirty)
        choice = self.ask(
            "Unsaved labels",
            f"Unsaved label edits in {names}. Save before closing?",
            ("Save", "Don't save", "Cancel"),
        )
        if choice == "Cancel":
            return False
        if choice == "Save" and not all(self._save_blocking(editor_for_layer(layer)) for layer in dirty):
            return False
        self._closing = True
        return True

    def ask(self, title: str, text: str, choices: tuple[str, ...]) -> str:
        """A modal question; returns the chosen button's text (tests replace this method)."""
        return ask(self, title, text, choices)

    def _notify(self, message: str) -> None:
        from napari.utils.notifications import show_info

        show_info(message)
