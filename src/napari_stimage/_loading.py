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

    from .layers import add_slide_to_viewer, slide_layer_data
    from .slide import load_slide

    def work():
        # load_slide reports progress through a callback on this thread; run it in a helper
        # thread so this generator can yield the progress to napari as it happens.
        import queue
        import threading

        updates: queue.Queue = queue.Queue()
        outcome: dict = {}

        def load():
            try:
                slide = load_slide(
                    path, progress=lambda done, total: updates.put(int(100 * done / max(total, 1))), decode_image=True
                )
                # build the feature table here too, not on the GUI thread
                outcome["result"] = (slide, slide_layer_data(slide))
            except BaseException as exc:  # handed to the worker's errored signal below
                outcome["error"] = exc

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        shown = 0
        while loader.is_alive() or not updates.empty():
            try:
                pct = updates.get(timeout=0.05)
            except queue.Empty:
                continue
            if pct > shown:
                yield pct - shown
                shown = pct
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    def on_returned(result):
        slide, layer_data = result
        add_slide_to_viewer(viewer, slide, layer_data)
        if slide.report:
            show_warning(slide.report.summary(slide.name))
        if dock_widgets:
            add_dock_widgets(viewer)

    # errored must be connected at creation, or the worker re-raises into the event loop
    return create_worker(
        work,
        _progress={"total": 100, "desc": f"Opening {Path(path).name}"},
        _connect={"returned": on_returned, "errored": lambda exc: show_error(str(exc))},
    )


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
