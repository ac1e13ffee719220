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


ALT_DRAG_ZOOM = "drag_to_zoom"  # napari >= 0.5: Alt + drag in pan/zoom mode zooms to the dragged box


def suspend_alt_drag_zoom(viewer):
    """Take napari's Alt + drag zoom box off the viewer's drag callbacks; returns it (None if absent).

    The selection tools drag in pan/zoom mode and use Alt to remove from the selection: with
    napari's zoom box on, every Alt-drag would also zoom. `restore_alt_drag_zoom` puts it back.
    """
    callbacks = viewer.mouse_drag_callbacks
    found = next((cb for cb in callbacks if getattr(cb, "__name__", "") == ALT_DRAG_ZOOM), None)
    if found is not None:
        callbacks.remove(found)
    return found


def restore_alt_drag_zoom(viewer, callback) -> None:
    if callback is not None and callback not in viewer.mouse_drag_callbacks:
        viewer.mouse_drag_callbacks.append(callback)
