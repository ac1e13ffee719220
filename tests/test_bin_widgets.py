"""VisiumHD bins through the widgets docked from the Plugins menu: "Color spots" colours the bin
raster by a typed gene and by labels (legend hide/solo), on a shown viewer with pixel checks."""

import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_stimage import load_slide
from napari_stimage.viewer.canvas import camera, text_overlay
from napari_stimage.viewer.editors import editor_for_layer
from napari_stimage.viewer.following import unwrap

pytestmark = pytest.mark.timeout(120)


def _type_gene(qtbot, widget, text):
    widget.gene_edit.clear()
    qtbot.keyClicks(widget.gene_edit, text)
    qtbot.keyClick(widget.gene_edit, Qt.Key.Key_Return)


def _pixel(viewer, shot, world):
    cy, cx = camera(viewer).center[-2:]
    zoom = camera(viewer).zoom
    h, w = shot.shape[:2]
    return shot[int(round((world[0] - cy) * zoom + h / 2)), int(round((world[1] - cx) * zoom + w / 2)), :3].astype(int)


@pytest.fixture
def hd_viewer(hd_lattice_paths, make_napari_viewer):
    """A shown viewer with the slide opened through the plugin and "Color spots" docked."""
    viewer = make_napari_viewer(show=True)
    viewer.open(str(hd_lattice_paths.coord), plugin="napari-stimage")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stimage", "Color spots")
    return viewer, widget, load_slide(hd_lattice_paths.coord)


def _only_visible(viewer, name):
    for layer in viewer.layers:
        layer.visible = layer.name == name
    viewer.layers[name].opacity = 1.0


def test_color_spots_shows_a_typed_gene_on_the_bins(hd_viewer, qtbot, hd_lattice_paths):
    viewer, widget, slide = hd_viewer
    labels_layer = viewer.layers[f"{hd_lattice_paths.name} bin labels"]
    assert widget.layer is unwrap(labels_layer)  # the widget follows the bins
    assert not widget.style_combo.isEnabled()  # filled / outline is for spots
    widget.non_expressing_combo.setCurrentText("colormap")
    widget.colormap_combo.setCurrentText("magma")
    _type_gene(qtbot, widget, "col1a1")  # typed in lower case, Enter picks the gene
    gene_layer = viewer.layers[f"{hd_lattice_paths.name} gene"]
    values = np.log1p(slide.gene_values("COL1A1"))
    state = widget.state()
    assert state.mode == "gene" and state.gene.genes == ("COL1A1",)
    assert gene_layer.colormap.name == "magma"
    assert tuple(gene_layer.contrast_limits) == pytest.approx(state.gene.contrast_limits)
    # the colorbar is the gene layer's own, titled by the canvas overlay
    assert gene_layer.colorbar.visible and text_overlay(viewer).visible
    assert text_overlay(viewer).text == state.gene.title
    widget.colorbar_check.setChecked(False)
    assert not gene_layer.colorbar.visible

    _only_visible(viewer, gene_layer.name)
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    hot = int(np.flatnonzero(values >= state.gene.contrast_limits[1])[0])
    cold = int(np.flatnonzero(values == 0)[0])
    from napari.utils.colormaps import ensure_colormap

    top = (ensure_colormap("magma").map(np.array([1.0]))[0][:3] * 255).astype(int)
    assert np.abs(_pixel(viewer, shot, slide.positions[hot]) - top).max() <= 12
    assert _pixel(viewer, shot, slide.positions[cold]).sum() < _pixel(viewer, shot, slide.positions[hot]).sum() / 3
    missing = np.flatnonzero(slide.expression_rows < 0)
    assert missing.size >= 6
    for spot in missing:  # no counts: transparent even when non-expressing bins take the colormap
        assert _pixel(viewer, shot, slide.positions[spot]).sum() == 0

    # non-expressing bins transparent: the cold bin shows the black canvas
    widget.non_expressing_combo.setCurrentText("transparent")
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert _pixel(viewer, shot, slide.positions[cold]).sum() == 0
    assert np.abs(_pixel(viewer, shot, slide.positions[hot]) - top).max() <= 12

    # a transform autoscales; a narrower range moves the contrast limits of the same layer
    widget.transform_combo.setCurrentIndex(widget.transform_combo.findData("raw"))
    raw = slide.gene_values("COL1A1")
    assert widget.state().gene.transform == "raw"
    assert gene_layer.contrast_limits[1] == pytest.approx(widget.state().gene.contrast_limits[1])
    assert widget.state().gene.contrast_limits[1] <= np.nanmax(raw)
    low, high = widget.range_slider.value()
    widget.range_slider.setValue((low, high / 2))
    assert gene_layer.contrast_limits[1] == pytest.approx(high / 2, rel=1e-3)
    widget.autoscale_button.click()
    assert gene_layer.contrast_limits[1] == pytest.approx(high, rel=1e-3)

    # a gene set: the mean score, still one gene layer
    _type_gene(qtbot, widget, "COL1A1, PTPRC")
    assert widget.state().gene.genes == ("COL1A1", "PTPRC")
    assert [layer.name for layer in viewer.layers].count(gene_layer.name) == 1
    np.testing.assert_allclose(gene_layer.metadata["stimage_gene_values"].values,
                               widget.state().gene.values(slide), equal_nan=True)

    # hover names the bin, its label and the value
    viewer.layers.selection.active = gene_layer
    viewer.cursor.position = tuple(slide.positions[hot])
    assert f"bin {slide.spots['spot_id'].iat[hot]}" in viewer.status


def test_color_spots_label_mode_hides_and_solos_labels_on_the_bins(hd_viewer, qtbot, hd_lattice_paths):
    viewer, widget, slide = hd_viewer
    labels_layer = viewer.layers[f"{hd_lattice_paths.name} bin labels"]
    _type_gene(qtbot, widget, "COL1A1")  # gene first: the label tab must put the labels back on top
    widget.tabs.setCurrentIndex(1)
    assert widget.state().mode == "label"
    assert not viewer.layers[f"{hd_lattice_paths.name} gene"].visible
    _only_visible(viewer, labels_layer.name)
    viewer.reset_view()
    labels = slide.labels
    hidden, kept = "invasive cancer", "adipose tissue"
    at_hidden = int(np.flatnonzero(labels == hidden)[0])
    at_kept = int(np.flatnonzero(labels == kept)[0])
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert _pixel(viewer, shot, slide.positions[at_hidden]).sum() > 0
    assert _pixel(viewer, shot, slide.positions[at_kept]).sum() > 0

    widget.legend_rows[hidden][1].click()  # the legend checkbox hides the label
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert _pixel(viewer, shot, slide.positions[at_hidden]).sum() == 0
    assert _pixel(viewer, shot, slide.positions[at_kept]).sum() > 0
    editor = editor_for_layer(unwrap(labels_layer))
    assert hidden in editor.hidden_labels  # hidden = protected from edits

    widget.legend_rows[hidden][1].click()  # shown again
    widget.legend_rows[kept][2].click()  # solo
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert _pixel(viewer, shot, slide.positions[at_hidden]).sum() == 0
    assert _pixel(viewer, shot, slide.positions[at_kept]).sum() > 0
    widget.show_all_button.click()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert _pixel(viewer, shot, slide.positions[at_hidden]).sum() > 0
    assert not editor.hidden_labels

    # a label edit (a paint stroke through the editor) updates the legend's counts
    before = {e.label: e.count for e in widget.legend_entries()}
    editor.assign([at_kept], hidden)
    after = {e.label: e.count for e in widget.legend_entries()}
    assert after[hidden] == before[hidden] + 1 and after[kept] == before[kept] - 1


def test_painting_bins_in_gene_mode_shows_the_labels_with_the_editors_counts(hd_viewer, qtbot, hd_lattice_paths, monkeypatch):
    """A paint stroke on the bin labels in gene mode: the widget switches to the labels and its
    legend counts the stroke, from the editor's counts, without a pass over every bin's label."""
    from napari_stimage import coloring as col
    from napari_stimage.viewer.bins import bin_labels_sync

    viewer, widget, slide = hd_viewer
    labels_layer = unwrap(viewer.layers[f"{hd_lattice_paths.name} bin labels"])
    editor, sync = editor_for_layer(labels_layer), bin_labels_sync(labels_layer)
    _type_gene(qtbot, widget, "COL1A1")
    assert widget.state().mode == "gene" and widget.tabs.currentIndex() == 0
    before = {e.label: e.count for e in widget.legend_entries()}
    shown = col.display_labels(editor.labels)
    target = "adipose tissue"
    spot = int(np.flatnonzero(shown == "invasive cancer")[0])

    def every_bin(*_args, **_kwargs):
        raise AssertionError("the widget walked the labels of every bin after an edit")

    monkeypatch.setattr(col, "legend_entries", every_bin)
    monkeypatch.setattr(col, "display_labels", every_bin)
    labels_layer.brush_size = 1
    labels_layer.paint((int(sync.grid.row[spot]), int(sync.grid.col[spot])), sync.categories.index(target) + 1)
    monkeypatch.undo()

    assert editor.label_of(spot) == target  # the stroke reached the editor
    assert widget.state().mode == "label" and widget.tabs.currentIndex() == 1
    after = {e.label: e.count for e in widget.legend_entries()}
    assert after[target] == before[target] + 1 and after["invasive cancer"] == before["invasive cancer"] - 1
    recount = col.with_unlabelled_not_drawn(col.legend_entries(editor.labels, widget.palette, editor.categories()))
    assert widget.legend_entries() == recount
    editor.undo()
    assert {e.label: e.count for e in widget.legend_entries()} == before


def test_opacity_slider_acts_on_the_layer_on_show(hd_viewer, qtbot, hd_lattice_paths, tmp_path):
    """Gene mode shows the gene layer, label mode the bin labels: the slider sets and shows the
    opacity of the one on show, across tab switches and a change of the followed slide."""
    viewer, widget, slide = hd_viewer
    labels_layer = viewer.layers[f"{hd_lattice_paths.name} bin labels"]
    widget.tabs.setCurrentIndex(1)
    assert widget.state().mode == "label"
    assert widget.opacity_slider.value() == pytest.approx(labels_layer.opacity)
    widget.opacity_slider.setValue(0.3)
    assert labels_layer.opacity == pytest.approx(0.3)

    _type_gene(qtbot, widget, "COL1A1")
    gene_layer = viewer.layers[f"{hd_lattice_paths.name} gene"]
    assert widget.opacity_slider.value() == pytest.approx(gene_layer.opacity)
    assert gene_layer.opacity != pytest.approx(0.3)
    widget.opacity_slider.setValue(0.6)
    assert gene_layer.opacity == pytest.approx(0.6) and labels_layer.opacity == pytest.approx(0.3)

    widget.tabs.setCurrentIndex(1)  # labels: the slider shows and sets the bin labels' opacity
    assert widget.opacity_slider.value() == pytest.approx(0.3)
    widget.opacity_slider.setValue(0.8)
    assert labels_layer.opacity == pytest.approx(0.8) and gene_layer.opacity == pytest.approx(0.6)
    widget.tabs.setCurrentIndex(0)
    assert widget.opacity_slider.value() == pytest.approx(0.6)

    # another slide followed, then this one again (in gene mode): its gene layer's opacity is shown
    from napari_stimage.synthetic import write_synthetic_slide

    other = write_synthetic_slide(tmp_path / "other", name="Other_Visium")
    viewer.open(str(other.coord), plugin="napari-stimage")
    spots = next(layer for layer in viewer.layers if layer.name.startswith("Other_Visium")
                 and layer.__class__.__name__ == "Points")
    viewer.layers.selection.active = labels_layer
    spots.opacity = 0.45
    viewer.layers.selection.active = spots
    assert widget.slide_label.text().startswith("Slide: Other_Visium")
    assert widget.opacity_slider.value() == pytest.approx(0.45)
    widget.opacity_slider.setValue(0.55)
    assert spots.opacity == pytest.approx(0.55) and gene_layer.opacity == pytest.approx(0.6)
    viewer.layers.selection.active = labels_layer
    assert widget.state().mode == "gene"
    assert widget.opacity_slider.value() == pytest.approx(0.6)
    widget.opacity_slider.setValue(0.2)
    assert gene_layer.opacity == pytest.approx(0.2) and labels_layer.opacity == pytest.approx(0.8)
