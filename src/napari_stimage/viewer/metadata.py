"""What napari-stimage keeps in a layer's metadata, and the way back from a layer to its slide."""

from __future__ import annotations

from ..core.slide import Slide

SLIDE_KEY = "stimage_slide"
EDITOR_KEY = "stimage_label_editor"
PREDICTIONS_KEY = "stimage_predictions"  # on a spots layer: the models' predictions placed on its slide
COMPARE_KEY = "stimage_compare"  # on a layer of the compare view: its role (measured, predicted, residual)


def slide_of(layer) -> Slide | None:
    """The slide a layer was opened from, or None for layers this plugin did not make."""
    meta = getattr(layer, "metadata", None) or {}
    slide = meta.get(SLIDE_KEY)
    return slide if isinstance(slide, Slide) else None


def slide_notes(slide: Slide) -> str:
    """What a widget header adds after a slide's name: the source's one-line summary (a HEST
    sample's technology, organ, species, µm/px) and whether its values are already normalised."""
    notes = [getattr(slide.source, "summary", "") or ""]
    if slide.expression is not None and getattr(slide.expression, "normalised", False):
        notes.append("values already normalised")
    return "; ".join(note for note in notes if note)
