"""Open a slide in a viewer with parsing off the GUI thread and a progress bar in napari."""

from __future__ import annotations

from pathlib import Path


def open_slide_in_viewer(viewer, path: str | Path, dock_widgets: bool = True):
    """Start loading `path` in a worker thread; layers are added when it finishes.

    Errors are shown as napari notifications naming the file; the viewer keeps running.
    Returns the worker (tests can wait on it).
    """
    from napari.qt.threading import create_worker
    from napari.utils.notifications import show_error, show_warning

    from .layers import slide_layer_data
    from .slide import load_slide

    def work():
        last = 0
        queue = []

        def on_progress(done, total):
            queue.append(int(100 * done / max(total, 1)))

        slide = load_slide(path, progress=on_progress)
        for pct in queue:
            if pct > last:
                yield pct - last
                last = pct
        slide.image_levels  # decode the image here, not on the GUI thread
        return slide

    worker = create_worker(work, _progress={"total": 100, "desc": f"Opening {Path(path).name}"})

    def on_returned(slide):
        for data, meta, kind in slide_layer_data(slide):
            getattr(viewer, f"add_{kind}")(data, **meta)
        if slide.report:
            show_warning(slide.report.summary(slide.name))
        if dock_widgets:
            add_dock_widgets(viewer)

    worker.returned.connect(on_returned)
    worker.errored.connect(lambda exc: show_error(str(exc)))
    worker.start()
    return worker


def add_dock_widgets(viewer) -> None:
    """Dock the plugin's widgets (each only once)."""
    import npe2

    manifest = npe2.PluginManager.instance().get_manifest("napari-stimage")
    for widget in manifest.contributions.widgets or []:
        try:
            viewer.window.add_plugin_dock_widget("napari-stimage", widget.display_name)
        except Exception as exc:  # one broken widget must not keep the slide from opening
            from napari.utils.notifications import show_error

            show_error(f"napari-stimage: cannot dock {widget.display_name!r}: {exc}")
