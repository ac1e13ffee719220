"""Open a slide in a viewer with parsing off the GUI thread and a progress bar in napari."""

from __future__ import annotations

from pathlib import Path


def open_slide_in_viewer(viewer, path: str | Path, dock_widgets: bool = True, prepare=None, on_added=None):
    """Start loading `path` in a worker thread; layers are added when it finishes.

    `prepare(slide, layer_data)` runs on the GUI thread just before the layers are added (it may
    edit their metadata); `on_added(slide, layers)` just after (the slide browser uses both to
    carry one slide's view over to the next).

    Progress shows in napari's activity panel with a Cancel button (`worker.progress_bar`).
    Errors are shown as napari notifications naming the file; the viewer keeps running.
    Returns the worker (tests can wait on it).
    """
    import queue
    import threading

    from napari.qt.threading import create_worker
    from napari.utils.notifications import show_error, show_info
    from napari.utils.progress import cancelable_progress

    from ..core.progress import Cancelled
    from ..io.registry import load_slide
    from ..viewer.layers import add_slide_to_viewer, slide_layer_data
    from ..viewer.report import show_opening_report

    def work():
        # load_slide reports progress through a callback on its own thread; this generator
        # passes it on to the GUI thread as it happens.
        updates: queue.Queue = queue.Queue()
        outcome: dict = {}

        def load():
            try:
                slide = load_slide(
                    path,
                    progress=lambda done, total: updates.put(int(100 * done / max(total, 1))),
                    decode_image=True,
                    cancel=lambda: bar.is_canceled,  # set by the activity panel's Cancel button
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

    bar = cancelable_progress(total=100, desc=f"Opening {Path(path).name}")

    def on_returned(result):
        slide, layer_data = result
        if prepare is not None:
            prepare(slide, layer_data)
        layers = add_slide_to_viewer(viewer, slide, layer_data)
        show_opening_report(slide)
        if dock_widgets:
            add_dock_widgets(viewer)
            # the docks narrow the canvas once Qt lays them out: fit the slide to that canvas
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, viewer.reset_view)
        if on_added is not None:
            on_added(slide, layers)

    def on_errored(exc):
        if isinstance(exc, Cancelled):
            show_info(f"Opening {Path(path).name} was cancelled; nothing was kept half-done.")
        else:
            show_error(str(exc))

    # errored must be connected at creation, or the worker re-raises into the event loop
    worker = create_worker(
        work,
        _connect={"yielded": bar.update, "returned": on_returned, "errored": on_errored, "finished": bar.close},
    )
    worker.progress_bar = bar
    return worker


# Docked only when asked for, not with every slide (two docks already share the window's height):
# the prediction comparison docks itself for a prediction file, the dataset browser opens slides
# rather than working on one (Plugins menu or `napari-stimage browse`).
DOCKED_ON_DEMAND = frozenset({"Compare predictions", "Browse slides"})


def add_dock_widgets(viewer) -> None:
    """Dock the plugin's widgets for working on a slide (each only once)."""
    import npe2

    manifest = npe2.PluginManager.instance().get_manifest("napari-stimage")
    for widget in manifest.contributions.widgets or []:
        if widget.display_name in DOCKED_ON_DEMAND:
            continue
        try:
            viewer.window.add_plugin_dock_widget("napari-stimage", widget.display_name)
        except Exception as exc:  # one broken widget must not keep the slide from opening
            from napari.utils.notifications import show_error

            show_error(f"napari-stimage: cannot dock {widget.display_name!r}: {exc}")
