"""viewer/targets.py: spots and bins behind one interface, without a viewer or qtbot."""

import numpy as np
import pytest
from napari.layers import Image, Labels, Points

from napari_stimage import load_slide
from napari_stimage.viewer.layers import slide_layer_data, spots_layer_data
from napari_stimage.viewer.targets import BinsTarget, SpotsTarget, layer_kind, target_for


@pytest.fixture
def spots_layer(slide):
    data, meta, _ = spots_layer_data(slide)
    return Points(data, **meta)


@pytest.fixture
def bins_layer(hd_paths):
    data, meta, kind = slide_layer_data(load_slide(hd_paths.coord))[-1]
    assert kind == "labels"
    return Labels(data, **meta)


def test_kinds_of_layers(spots_layer, bins_layer):
    assert layer_kind(spots_layer) == "spots"
    assert layer_kind(bins_layer) == "bins"
    assert layer_kind(Points(np.zeros((3, 2)))) is None  # not a slide's
    assert layer_kind(Image(np.zeros((4, 4)))) is None
    with pytest.raises(ValueError, match="neither"):
        target_for(Image(np.zeros((4, 4))))


def test_spots_select_then_assign(spots_layer, slide):
    target = target_for(spots_layer)
    assert isinstance(target, SpotsTarget) and target.slide is slide and not target.paints
    target.set_selection([0, 1, 2])
    target.set_selection([2], "remove")
    target.set_selection([5], "add")
    assert target.selection.tolist() == [0, 1, 5]
    assert len(target.inverted_selection()) == len(spots_layer.data) - 3
    assert target.assign(target.selection, "Tumour") == 3
    assert list(spots_layer.features["label"].iloc[[0, 1, 5]]) == ["Tumour"] * 3
    assert target.default_brush_radius() == pytest.approx(1.5 * float(np.median(slide.spots["r"])))
    spots_layer.mode = "pan_zoom"
    assert target.help_text("lasso").startswith("Lasso:")
    spots_layer.mode = "add"
    assert target.help_text("lasso") is None  # napari's own mode: napari's own hint


def test_bins_select_by_shape_then_assign(bins_layer):
    target = target_for(bins_layer)
    assert isinstance(target, BinsTarget) and target.editor is target.sync.editor
    grid, ids = target.grid, target.slide.spots["spot_id"].to_numpy()
    world = bins_layer.data_to_world  # the layer's own placement: the path a user drags is in world units

    def corner(row, col):
        return np.asarray(world((row, col)))

    # a screen-aligned rectangle over raster rows 10..14, columns 20..29 (the fixture's lattice is square)
    picked = target.pick("rectangle", [corner(9.6, 19.6), corner(14.4, 29.4)], 0)
    expected = np.flatnonzero((grid.row >= 10) & (grid.row <= 14) & (grid.col >= 20) & (grid.col <= 29))
    assert picked.tolist() == expected.tolist() and expected.size > 20
    target.set_selection(picked)
    target.set_selection(expected[:3], "remove")
    assert target.selection.tolist() == expected[3:].tolist()
    # a click picks the bin under the pointer; moved by less than half a bin, it is still a click
    k = int(expected[5])
    assert target.pick("click", [corner(grid.row[k] + 0.2, grid.col[k]), corner(grid.row[k], grid.col[k] - 0.2)], 0).tolist() == [k]
    assert target.pick("click", [corner(-5, -5)] * 2, 0).size == 0  # off the grid
    # a brush of radius 1.2 bins (in image pixels) along row 40 covers rows 39..41
    stroke = [corner(40, 30), corner(40, 36)]
    brushed = target.pick("brush", stroke, 1.2 * grid.pitch)
    near = np.flatnonzero((abs(grid.row - 40) <= 1) & (grid.col >= 30) & (grid.col <= 36))
    assert set(brushed.tolist()) >= set(near.tolist()) and set(grid.row[brushed].tolist()) <= {39, 40, 41}
    # assigning labels the selected bins, through the editor the raster follows
    assert target.assign(target.selection, "Cortex") == expected.size - 3
    chosen = target.selection
    assert {target.editor.labels[i] for i in chosen} == {"Cortex"}
    code = target.sync.code_of("Cortex")
    assert set(bins_layer.data[grid.row[chosen], grid.col[chosen]].tolist()) == {code}
    assert target.editor.changes() == {ids[i]: "Cortex" for i in chosen}
    assert len(target.inverted_selection()) == target.slide.n_spots - chosen.size
    bins_layer.mode = "pan_zoom"
    assert target.help_text("lasso").startswith("Lasso:") and not target.is_painting()


def test_bins_selection_outlives_the_target(bins_layer):
    """The selection is the layer's: a widget that follows the layer again finds it."""
    first = target_for(bins_layer)
    first.set_selection([4, 5, 6])
    assert target_for(bins_layer).selection.tolist() == [4, 5, 6]


def test_bins_paint_with_a_label_and_erase_in_napari_modes(bins_layer):
    target = target_for(bins_layer)
    code = target.paint_with(target.normalise("  Cortex "))
    assert code > 0 and bins_layer.selected_label == code and bins_layer.mode == "paint"
    assert target.selected_label_name() == "Cortex" and "Cortex" in target.known_labels()
    assert target.is_painting() and "paints bins" in target.help_text("brush")
    bins_layer.mode = "fill"
    target.paint_with("Cortex")
    assert bins_layer.mode == "fill"  # a painting mode the user chose is kept
    assert target.paint_with(target.normalise(None)) == 0
    assert bins_layer.mode == "erase" and target.help_text("pan").startswith("Eraser")
    target.use_tool("lasso")
    assert bins_layer.mode == "pan_zoom" and not bins_layer.mouse_pan and not target.is_painting()
    target.use_tool("pan")
    assert bins_layer.mouse_pan
