"""Curate labels' files: Save (off the GUI thread), Save as, Loupe CSV import and export."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QFileDialog, QGridLayout, QPushButton, QWidget

from ...io.stimage.annotation import AnnotationChangedOnDisk, AnnotationDeletedOnDisk


class FilesPanel(QWidget):
    """The file buttons of `CurateWidget` (`host`); questions go through `host.ask`."""

    def __init__(self, host):
        super().__init__()
        self.host = host
        self._save_worker = None
        files = QGridLayout(self)
        files.setContentsMargins(0, 0, 0, 0)
        self.save_button = QPushButton("Save")
        self.save_button.clicked.connect(lambda: self.save())
        self.save_as_button = QPushButton("Save as…")
        self.save_as_button.clicked.connect(self.save_as)
        self.import_button = QPushButton("Import Loupe CSV…")
        self.import_button.setToolTip("Import a Loupe Browser category CSV (Barcode,<Category>) as labels")
        self.import_button.clicked.connect(self.import_loupe_dialog)
        self.export_button = QPushButton("Export Loupe CSV…")
        self.export_button.setToolTip("Export the labels as a Loupe Browser category CSV")
        self.export_button.clicked.connect(self.export_loupe_dialog)
        files.addWidget(self.save_button, 0, 0)
        files.addWidget(self.save_as_button, 0, 1)
        files.addWidget(self.import_button, 1, 0)
        files.addWidget(self.export_button, 1, 1)

    def set_enabled(self, enabled: bool) -> None:
        for button in (self.save_button, self.save_as_button, self.import_button, self.export_button):
            button.setEnabled(enabled)

    def save(self, path: str | Path | None = None, force: bool = False, block: bool = False):
        """Save in the annotation format off the GUI thread; returns the worker (None when blocking)."""
        editor = self.host.editor
        if editor is None:
            return None
        job = editor.prepare_save(path, force=force)
        if block:
            self._save_done(editor, job, job.run())
            return None
        from napari.qt.threading import create_worker

        worker = create_worker(
            job.run,
            _start_thread=False,
            _connect={  # handing "errored" to the widget: a failed save is a question, not a crash
                "returned": lambda fingerprint: self._save_done(editor, job, fingerprint),
                "errored": lambda exc: self._save_failed(editor, job, exc),
            },
        )
        self._save_worker = worker
        self.save_button.setEnabled(False)
        worker.start()
        return worker

    def _save_done(self, editor, job, fingerprint) -> None:
        editor.finish_save(job, fingerprint)
        self.host._notify(f"saved {job.path}")
        self.host.update_state()

    def _save_failed(self, editor, job, exc) -> None:
        host = self.host
        host.update_state()
        if isinstance(exc, AnnotationDeletedOnDisk):
            choice = host.ask(
                "File deleted on disk",
                f"{job.path} was deleted since it was loaded.\nCreate it again with your labels?",
                ("Re-create", "Save elsewhere…", "Cancel"),
            )
            if choice == "Save elsewhere…":
                host.save_as()
            elif choice == "Re-create":
                host.save(job.path, force=True)
            return
        if isinstance(exc, AnnotationChangedOnDisk):
            choice = host.ask(
                "File changed on disk",
                f"{job.path} was changed by something else since it was loaded.\n"
                "Save your labels to another file instead?",
                ("Save elsewhere…", "Overwrite", "Cancel"),
            )
            if choice == "Save elsewhere…":
                host.save_as()
            elif choice == "Overwrite":
                host.save(job.path, force=True)
            return
        host._notify(f"saving failed, the file on disk is unchanged: {exc}")

    def save_as(self):
        editor = self.host.editor
        if editor is None:
            return None
        start = str(editor.path or "")
        path, _ = QFileDialog.getSaveFileName(self.host, "Save annotation as", start, "CSV (*.csv)")
        return self.host.save(path) if path else None

    def import_loupe_dialog(self) -> None:
        from ...io.loupe import import_loupe

        path, _ = QFileDialog.getOpenFileName(self.host, "Import Loupe category CSV", "", "CSV (*.csv)")
        editor = self.host.editor
        if path and editor is not None:
            try:
                result = import_loupe(path, editor)
            except ValueError as exc:
                self.host._notify(str(exc))
                return
            extra = f"; {len(result.unmatched)} barcode(s) not on this slide" if result.unmatched else ""
            if result.empty:
                extra += f"; {len(result.empty)} row(s) with an empty category skipped (labels kept)"
            self.host._notify(f"imported {len(result.labels)} label(s) of '{result.category}' (one undo step){extra}")

    def export_loupe_dialog(self) -> None:
        from ...io.loupe import export_loupe

        path, _ = QFileDialog.getSaveFileName(self.host, "Export Loupe category CSV", "", "CSV (*.csv)")
        editor = self.host.editor
        if path and editor is not None:
            try:
                n = export_loupe(editor, path)
            except ValueError as exc:  # SlideError: names the chosen file and why it cannot be written
                self.host._notify(str(exc))
                return
            self.host._notify(f"exported {n} labelled spot(s) to {path}")
