"""npe2 reader: any file of a slide a registered reader knows (`io.registry`) opens the whole slide."""

from __future__ import annotations

from ._predictions_reader import get_prediction_reader
from .io.registry import load_slide, resolve
from .viewer.layers import show_scale_bar, slide_layer_data
from .viewer.report import show_opening_report


def get_reader(path):
    """Return a reader for dataset files, or for a prediction .h5ad dropped on a viewer holding a
    slide; None (never an exception) for anything else."""
    prediction_reader = get_prediction_reader(path)
    if prediction_reader is not None:
        return prediction_reader
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if resolve(path) is None:
        return None
    return read_slide


def read_slide(path):
    if isinstance(path, list):
        path = path[0]
    from napari.utils import progress

    with progress(total=100, desc="Reading slide") as bar:
        state = {"pct": 0}

        def on_progress(done, total):
            pct = int(100 * done / max(total, 1))
            if pct > state["pct"]:
                bar.update(pct - state["pct"])
                state["pct"] = pct

        slide = load_slide(path, progress=on_progress, decode_image=True)
    show_opening_report(slide)
    _point_to_widgets_once()
    layer_data = slide_layer_data(slide)
    from napari import current_viewer

    viewer = current_viewer()
    if viewer is not None:
        show_scale_bar(viewer, slide)
    if viewer is not None and any(kind == "labels" for *_, kind in layer_data):
        # VisiumHD bins: painting the bin-labels layer must reach the label editor from the
        # first stroke, even before the curation widget is opened
        from .viewer.bins import watch_viewer

        watch_viewer(viewer)
    return layer_data


_widgets_pointed_out = False


def _point_to_widgets_once() -> None:
    """File > Open does not dock the plugin's widgets; tell the user once per session where they are."""
    global _widgets_pointed_out
    if not _widgets_pointed_out:
        from napari.utils.notifications import show_info

        show_info("napari-stimage: colour and curate spots with Plugins > napari-stimage > Color spots / Curate labels")
        _widgets_pointed_out = True
