"""npe2 reader path for a prediction `.h5ad` dropped on a viewer holding a slide.

A prediction file (STPath's, formats.md section 3) has `obsm/coordinates` and no `obsm/spatial`
(an AnnData slide has `spatial`: another reader opens it). It carries no image and no spot
positions of its own, so it is placed on the slide already open: the selected spots layer, else
the only slide of the viewer. Reading happens in the "Compare predictions" widget's worker (docked
or raised here), which shows refusals as notifications; the reader itself returns napari's
"nothing to add" sentinel.
"""

from __future__ import annotations

from pathlib import Path


def is_prediction_file(path) -> bool:
    """Cheap check, never raising: an HDF5 `.h5ad` with `obsm/coordinates` and no `obsm/spatial`."""
    if not isinstance(path, (str, Path)) or not str(path).lower().endswith(".h5ad"):
        return False
    try:
        import h5py

        with h5py.File(path, "r") as f:
            obsm = f.get("obsm")
            return obsm is not None and "coordinates" in obsm and "spatial" not in obsm
    except Exception:  # not HDF5, unreadable, a directory: not ours to open
        return False


def target_spots_layer(viewer):
    """The spots layer predictions dropped on `viewer` go to: the selected one, else the only
    slide's; None when there is no slide or several and none selected."""
    from .viewer.following import unwrap
    from .viewer.predictions import compare_role

    def is_spots(layer):
        from napari.layers import Points

        from .viewer.metadata import slide_of

        return isinstance(layer, Points) and slide_of(layer) is not None and compare_role(layer) is None

    active = unwrap(viewer.layers.selection.active)
    if active is not None and is_spots(active):
        return active
    spots = [unwrap(layer) for layer in viewer.layers if is_spots(layer)]
    return spots[0] if len(spots) == 1 else None


def get_prediction_reader(path):
    """For a prediction file: a reader that puts it on the viewer's slide, or, when there is no
    slide to put it on, one that says so (a prediction file has no positions of its own, and the
    AnnData reader would only say it lacks obsm['spatial']). None for any other file."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if not is_prediction_file(path):
        return None
    try:
        from napari import current_viewer

        viewer = current_viewer()
        if viewer is None or target_spots_layer(viewer) is None:
            return refuse_without_a_slide
    except Exception:  # deciding must never raise
        return refuse_without_a_slide
    return read_predictions


def refuse_without_a_slide(path):
    from .core.errors import SlideError

    if isinstance(path, list):
        path = path[0]
    raise SlideError(path, "a prediction file has no spot positions of its own: open its slide first "
                           "(or select its spots layer), then drop the file onto the viewer")


def read_predictions(path):
    """Load the predictions onto the slide through the docked "Compare predictions" widget."""
    if isinstance(path, list):
        path = path[0]
    from napari import current_viewer

    viewer = current_viewer()
    layer = target_spots_layer(viewer)
    _, widget = viewer.window.add_plugin_dock_widget("napari-stimage", "Compare predictions")
    widget.follower.follow(layer)
    widget.load(path, widget.barcodes_edit.text().strip() or None)
    return [(None,)]  # napari's sentinel: read, nothing to add (the widget adds the compare view)
