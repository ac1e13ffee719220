"""viewer/targets.py: spots and bins behind one interface, without a viewer or qtbot."""

import numpy as np
import pytest
from napari.layers import Image, Labels, Points

from napari_stimage import load_slide
from napari_stimage.viewer.layers import slide_layer_data, spots_layer_data
from napari_stimage.viewer.targets import BIN_TOOL_MODES, TOOLS, BinsTarget, SpotsTarget, layer_kind, target_for


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
    assert isinstance(target, SpotsTarget) and target.selects and target.slide is slide
    assert all(target.applies(tool) for tool in TOOLS)
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


def test_bins_paint_with_a_label_and_erase(bins_layer):
    target = target_for(bins_layer)
    assert isinstance(target, BinsTarget) and not target.selects
    assert [tool for tool in TOOLS if target.applies(tool)] == [t for t in TOOLS if t in BIN_TOOL_MODES]
    code = target.paint_with(target.normalise("  Cortex "))
    assert code > 0 and bins_layer.selected_label == code
    assert target.selected_label_name() == "Cortex" and "Cortex" in target.known_labels()
    target.use_tool("brush")
    assert bins_layer.mode == "paint" and target.is_painting()
    assert target.help_text("brush").startswith("Brush:")
    assert target.paint_with(target.normalise(None)) == 0
    assert bins_layer.mode == "erase"
    assert target.editor is target.sync.editor
