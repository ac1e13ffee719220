"""viewer/layer_colors.py: a spots layer's colour state and the layer updates that show it.
napari layers without a viewer, no qtbot."""

from dataclasses import replace

import numpy as np
import pytest
from napari.layers import Points

from napari_stimage import coloring as col
from napari_stimage.core.labels import UNLABELLED
from napari_stimage.viewer.editors import editor_for_layer
from napari_stimage.viewer.layer_colors import (
    STATE_KEY,
    VALUE_COLUMN,
    LayerColorState,
    SpotsColoring,
    set_face_colors,
)
from napari_stimage.viewer.layers import OUTLINE_WIDTH, RIM_WIDTH, spots_layer_data


@pytest.fixture
def spots(slide):
    data, meta, _ = spots_layer_data(slide)
    return SpotsColoring(Points(data, **meta))


def test_state_lives_in_the_layer_metadata_under_its_key(spots):
    state = spots.state
    assert isinstance(state, LayerColorState) and state.mode is None
    assert spots.layer.metadata[STATE_KEY] is state  # the seam other code reads
    assert SpotsColoring(spots.layer).state is state  # a new view of the same layer remembers


def test_gene_colours_are_the_colour_maths_of_the_slide(spots, slide):
    gene = col.GeneColoring(("ERBB2",), transform="log1p")
    values = col.GeneValues.of(spots.per_point(gene))
    spots.state.gene = replace(gene, contrast_limits=values.autoscale)
    spots.show_gene(values)
    expected = col.gene_colors(gene.values(slide), spots.state.gene)
    assert spots.state.mode == "gene"
    assert np.allclose(spots.layer.face_color, expected, atol=1e-6)
    assert tuple(spots.layer.face_contrast_limits) == pytest.approx(values.autoscale)
    assert list(spots.layer.features.columns[:3]) == ["spot_id", "label", VALUE_COLUMN]
    assert np.array_equal(spots.layer.features[VALUE_COLUMN], values.values, equal_nan=True)


def test_per_point_values_follow_spot_ids_once_points_are_deleted(spots, slide):
    gene = col.GeneColoring(("ERBB2",), transform="raw")
    full = gene.values(slide)
    spots.layer.selected_data = {0}
    spots.layer.remove_selected()
    assert np.array_equal(spots.per_point(gene), full[1:], equal_nan=True)


def test_hidden_labels_are_transparent_unshown_and_protected_in_the_editor(spots):
    editor = editor_for_layer(spots.layer)
    labels = spots.label_values()
    hidden = next(label for label in col.display_labels(labels) if label != UNLABELLED)
    spots.state.hidden_labels = {hidden}
    spots.show_labels(col.LabelPalette())
    is_hidden = col.display_labels(labels) == hidden
    face = np.asarray(spots.layer.face_color)
    assert is_hidden.any() and np.all(face[is_hidden, 3] == 0) and np.all(face[~is_hidden, 3] > 0)
    assert np.array_equal(spots.layer.shown, ~is_hidden)
    assert np.all(np.asarray(spots.layer.border_color)[is_hidden, 3] == 0)  # the rim goes too
    assert editor.split_hidden(np.flatnonzero(is_hidden))[1] == is_hidden.sum()
    spots.state.hidden_labels = set()
    spots.apply_label_colors(col.LabelPalette())
    assert np.asarray(spots.layer.border_color)[:, 3].min() > 0  # the rims come back
    assert spots.state.border_alpha is None


def test_legend_follows_the_curation_order(spots):
    editor = editor_for_layer(spots.layer)
    entries = spots.legend_entries(col.LabelPalette())
    curated = [e.label for e in entries if not e.unlabelled]
    assert curated == [c for c in editor.categories() if c in curated]
    assert spots.legend_order() == list(editor.categories())
    spots.state.label_column = "spot_id"
    assert spots.legend_order() is None  # another column has no hotkeys


def test_outline_style_draws_colour_on_the_rim_and_back(spots):
    rgba = np.tile(np.array([[1.0, 0.0, 0.0, 1.0]], np.float32), (len(spots.layer.data), 1))
    assert spots.set_spot_style("outline")
    assert not spots.set_spot_style("outline")  # unchanged: nothing to redraw
    spots.paint(rgba)
    assert np.all(np.asarray(spots.layer.face_color)[:, 3] == 0)
    assert np.allclose(spots.layer.border_color, rgba)
    assert np.allclose(spots.layer.border_width, OUTLINE_WIDTH)
    assert spots.set_spot_style("filled")
    spots.paint(rgba)
    assert np.allclose(spots.layer.face_color, rgba)
    assert np.allclose(spots.layer.border_width, RIM_WIDTH)
    with pytest.raises(ValueError, match="spot style"):
        spots.set_spot_style("hatched")


def test_set_face_colors_sets_the_public_colours(spots):
    rgba = np.zeros((len(spots.layer.data), 4), np.float32)
    rgba[:, 1] = rgba[:, 3] = 1.0
    seen = []
    spots.layer.events.face_color.connect(lambda event: seen.append(1))
    set_face_colors(spots.layer, rgba)
    assert np.allclose(spots.layer.face_color, rgba) and seen
