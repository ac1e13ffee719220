"""The viewer's camera and canvas text overlay, where the running napari keeps them.

napari 0.9 moved them (`viewer.scene.camera`, `viewer.canvas.overlays.text`) and deprecates the
old attributes; napari 0.5-0.8 only has `viewer.camera` and `viewer.text_overlay`.
"""

from __future__ import annotations


def camera(viewer):
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def text_overlay(viewer):
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)
    return overlays.text if overlays is not None and hasattr(overlays, "text") else viewer.text_overlay
