"""File > Save Layers: a save to the slide's own file is a save, anywhere else an export copy."""

from napari.plugins.io import save_layers

from napari_stimage.io.stimage.annotation import read_annotation
from napari_stimage.viewer.editors import editor_for_layer
from napari_stimage.viewer.layers import add_slide_to_viewer


def test_export_elsewhere_does_not_redirect_the_slides_annotation(make_napari_viewer, slide, tmp_path):
    viewer = make_napari_viewer()
    layer = add_slide_to_viewer(viewer, slide)[-1]
    editor = editor_for_layer(layer)
    original = slide.paths.annotation.read_bytes()
    editor.assign([0], "GG1")

    copy = tmp_path / "export_for_colleague.csv"
    save_layers(str(copy), [layer], plugin="napari-stimage")
    spot = slide.spots["spot_id"][0]
    assert read_annotation(copy).first_labels()[spot] == "GG1"
    assert slide.paths.annotation.read_bytes() == original  # the dataset file is untouched ...
    assert editor.path == slide.paths.annotation and editor.dirty  # ... and still has unsaved edits
    assert editor.recovery_path is not None and editor.recovery_path.exists()

    editor.save()  # the curator's next save goes to the dataset file
    assert read_annotation(slide.paths.annotation).first_labels()[spot] == "GG1"


def test_save_layers_onto_the_slides_own_file_is_a_real_save(make_napari_viewer, slide):
    viewer = make_napari_viewer()
    layer = add_slide_to_viewer(viewer, slide)[-1]
    editor = editor_for_layer(layer)
    editor.assign([1], "Benign*")
    save_layers(str(slide.paths.annotation), [layer], plugin="napari-stimage")
    assert not editor.dirty
    assert read_annotation(slide.paths.annotation).first_labels()[slide.spots["spot_id"][1]] == "Benign*"
