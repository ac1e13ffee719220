"""npe2 writers: File > Save Layers on a slide's spots layer writes its labels in the annotation format
(.csv), or the whole slide with its current labels as AnnData (.h5ad, `write_spots_anndata`).

It uses the same code as the curation widget (`LabelEditor`), so the saved file keeps the
original header, row order, repeated and unknown-spot rows, and refuses to overwrite an
annotation file that changed on disk since it was loaded. Saving to the slide's own annotation
file is a real save; saving anywhere else writes a copy and leaves the edits unsaved for the
slide's file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .core.slide import Slide
from .curation.editor import LabelEditor, normalise_label
from .viewer.metadata import EDITOR_KEY, SLIDE_KEY


def _slide_and_editor(path: str, attributes: dict, what: str) -> tuple[Slide, LabelEditor]:
    """The layer's slide and a label editor holding its current labels (the curation widget's when
    it has one, else the layer's `label` feature: the truth when no curation happened this session)."""
    metadata = attributes.get("metadata") or {}
    slide = metadata.get(SLIDE_KEY)
    if not isinstance(slide, Slide):
        raise ValueError(f"{path}: only spots layers opened by napari-stimage can be saved as {what}")
    editor = metadata.get(EDITOR_KEY)
    if not isinstance(editor, LabelEditor):
        editor = LabelEditor.from_slide(slide, autosave=False)
        features = attributes.get("features")
        if features is not None and "label" in features and len(features) == slide.n_spots:
            labels = np.array([normalise_label(v) for v in features["label"].tolist()], dtype=object)
            for label in {v for v in labels.tolist() if v is not None} | {None}:
                editor.assign(np.flatnonzero(np.equal(labels, label)), label)
    return slide, editor


def write_spots_annotation(path: str, data, attributes: dict) -> list[str]:
    _, editor = _slide_and_editor(path, attributes, "an annotation file")
    target = Path(path)
    if editor.path is not None and target.resolve() == editor.path.resolve():
        return [str(editor.save(target))]
    # An export elsewhere is a copy: the slide's own annotation file stays the widget's save target,
    # and the unsaved edits (and their recovery file) stay unsaved there.
    editor.prepare_save(target).run()
    return [str(target)]


def write_spots_anndata(path: str, data, attributes: dict) -> list[str]:
    """File > Save on a spots layer as .h5ad: the whole slide with its current (unsaved too) labels,
    in scanpy/squidpy conventions (`export.export_slide`). The slide's own label file is not touched."""
    from .export import export_slide

    slide, editor = _slide_and_editor(path, attributes, "AnnData")
    return [str(export_slide(slide, path, labels=editor.labels))]
