"""viewer/canvas.py: the camera and text overlay without napari 0.9's deprecated attributes."""

from types import SimpleNamespace

from napari.components import ViewerModel

from napari_stimage.viewer.canvas import camera, text_overlay


def test_napari_0_9_places_are_used_without_a_deprecation_warning():
    viewer = ViewerModel()  # warnings are errors: the deprecated attributes would fail this test
    assert camera(viewer) is viewer.scene.camera
    assert text_overlay(viewer) is viewer.canvas.overlays.text


def test_older_napari_attributes_are_the_fallback():
    old = SimpleNamespace(camera="the camera", text_overlay="the overlay")  # napari 0.5-0.8 shape
    assert camera(old) == "the camera" and text_overlay(old) == "the overlay"
