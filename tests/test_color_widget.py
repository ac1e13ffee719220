import numpy as np
import pytest
from qtpy.QtCore import Qt

from napari_stimage import coloring as col
from napari_stimage._qt.color_widget import VALUE_COLUMN, ColorWidget
from napari_stimage.core.labels import UNLABELLED
from napari_stimage.viewer.canvas import camera, text_overlay
from napari_stimage.viewer.layers import add_slide_to_viewer


@pytest.fixture
def viewer_and_widget(slide_in_viewer, qtbot):
    viewer, layer = slide_in_viewer
    widget = ColorWidget(viewer)
    qtbot.addWidget(widget)
    return viewer, widget, layer


def _type_gene(qtbot, widget, text):
    widget.gene_edit.clear()
    qtbot.keyClicks(widget.gene_edit, text)
    qtbot.keyClick(widget.gene_edit, Qt.Key.Key_Return)


def test_picker_filters_as_you_type_and_applies_on_enter(viewer_and_widget, qtbot, slide):
    viewer, widget, layer = viewer_and_widget
    assert widget.layer is layer
    data_before = layer.data
    qtbot.keyClicks(widget.gene_edit, "erb")
    assert widget.candidates.item(0).text() == "ERBB2"
    n = int((slide.gene_values("ERBB2") > 0).sum())
    assert f"expressed in {n} spots" in widget.candidate_info.text()
    qtbot.keyClick(widget.gene_edit, Qt.Key.Key_Return)

    values = np.log1p(slide.gene_values("ERBB2"))
    coloring = col.GeneColoring(("ERBB2",)).with_limits(values)
    expected = col.gene_colors(values, coloring)
    assert np.allclose(layer.face_color, expected, atol=1e-6)
    assert layer.data is data_before  # recoloured, not rebuilt
    hot, cold = int(np.nanargmax(values)), int(np.flatnonzero(values == 0)[0])
    assert layer.face_color[hot, 3] == 1.0 and layer.face_color[cold, 3] == 0.0
    assert layer.face_colorbar.visible
    assert tuple(layer.face_contrast_limits) == pytest.approx(coloring.contrast_limits)
    assert "ERBB2" in text_overlay(viewer).text and "log1p" in text_overlay(viewer).text
    assert layer.features[VALUE_COLUMN].iloc[hot] == pytest.approx(values[hot])
    status = layer.get_status(tuple(slide.positions[hot]), world=True)["coordinates"]
    assert slide.spots["spot_id"].iloc[hot] in status and f"{VALUE_COLUMN}: " in status
    assert widget.recent_genes[0] == "ERBB2"

    widget.gene_edit.clear()
    qtbot.keyClicks(widget.gene_edit, "GENE000")
    assert widget.candidates.count() > 2
    qtbot.keyClick(widget.gene_edit, Qt.Key.Key_Down)
    second = widget.candidates.item(1).text()
    assert widget.candidates.currentItem().text() == second
    qtbot.keyClick(widget.gene_edit, Qt.Key.Key_Return)  # applies the highlighted candidate
    assert widget.state().gene.genes == (second,)

    _type_gene(qtbot, widget, "PTPRC")
    ptprc = np.log1p(slide.gene_values("PTPRC"))
    assert layer.face_color[int(np.nanargmax(ptprc)), 3] == 1.0
    assert not np.allclose(layer.face_color, expected)
    assert widget.recent_genes[:3] == ["PTPRC", second, "ERBB2"]


def test_transform_colormap_range_and_grey(viewer_and_widget, qtbot, slide):
    viewer, widget, layer = viewer_and_widget
    _type_gene(qtbot, widget, "ERBB2")
    widget.transform_combo.setCurrentIndex(list(col.TRANSFORMS).index("log1p_cp10k"))
    assert "counts per 10k" in text_overlay(viewer).text
    widget.colormap_combo.setCurrentText("magma")
    widget.non_expressing_combo.setCurrentText("grey")
    widget.range_slider.setValue((0.0, 0.5))
    state = widget.state()
    assert state.gene.transform == "log1p_cp10k" and state.gene.colormap == "magma"
    values = state.gene.values(slide)
    expected = col.gene_colors(values, col.GeneColoring(("ERBB2",), "log1p_cp10k", "magma", (0.0, 0.5), "grey"))
    assert np.allclose(layer.face_color, expected, atol=1e-6)
    cold = int(np.flatnonzero(values == 0)[0])
    assert np.allclose(layer.face_color[cold], col.NON_EXPRESSING_GREY)
    widget.autoscale_button.click()
    assert widget.state().gene.contrast_limits == pytest.approx(col.autoscale_limits(values))
    widget.opacity_slider.setValue(0.4)
    assert layer.opacity == pytest.approx(0.4)


def test_gene_set_score(viewer_and_widget, qtbot, slide):
    _, widget, layer = viewer_and_widget
    _type_gene(qtbot, widget, "erbb2, ptprc")
    assert widget.state().gene.genes == ("ERBB2", "PTPRC")
    score = (np.log1p(slide.gene_values("ERBB2")) + np.log1p(slide.gene_values("PTPRC"))) / 2
    assert np.allclose(layer.features[VALUE_COLUMN], score, equal_nan=True)


def test_label_mode_legend_toggle_solo_and_colour_edit(viewer_and_widget, qtbot, slide):
    viewer, widget, layer = viewer_and_widget
    _type_gene(qtbot, widget, "ERBB2")
    widget.tabs.setCurrentIndex(1)  # label mode
    assert not layer.face_colorbar.visible
    entries = widget.legend_entries()
    assert [e.label for e in entries][-1] == UNLABELLED
    shown = col.display_labels(slide.labels)
    cancer = int(np.flatnonzero(shown == "invasive cancer")[0])
    color = {e.label: e.color for e in entries}["invasive cancer"]
    assert col.rgba_to_hex(layer.face_color[cancer]) == color

    swatch, check, solo = widget.legend_rows["invasive cancer"]
    check.click()  # hide
    assert not layer.shown[cancer] and layer.shown.sum() == len(shown) - (shown == "invasive cancer").sum()
    check.click()  # show again
    assert layer.shown.all()
    widget.legend_rows["adipose tissue"][2].click()  # solo
    assert np.array_equal(layer.shown, shown == "adipose tissue")
    widget.show_all_button.click()
    assert layer.shown.all()

    widget.set_label_color("invasive cancer", "#ff0000")
    assert col.rgba_to_hex(layer.face_color[cancer]) == "#ff0000"
    assert col.LabelPalette().colors(["invasive cancer"])["invasive cancer"] == "#ff0000"  # persisted


def test_label_mode_follows_curation_edits(viewer_and_widget, slide):
    _, widget, layer = viewer_and_widget
    widget.tabs.setCurrentIndex(1)
    features = layer.features
    unlabelled = int(np.flatnonzero(col.display_labels(features["label"]) == UNLABELLED)[0])
    features.loc[unlabelled, "label"] = "TLS"  # what the curation widget does
    layer.events.features()
    assert "TLS" in widget.legend_rows
    tls = {e.label: e.color for e in widget.legend_entries()}["TLS"]
    assert col.rgba_to_hex(layer.face_color[unlabelled]) == tls


def test_follows_selected_layer_with_two_slides(make_napari_viewer, qtbot, tmp_path):
    from napari_stimage import load_slide
    from napari_stimage.synthetic import write_synthetic_slide

    viewer = make_napari_viewer()
    a = load_slide(write_synthetic_slide(tmp_path / "a", name="Slide_A_Visium").coord)
    b = load_slide(write_synthetic_slide(tmp_path / "b", name="Slide_B_Visium", seed=1).coord)
    layer_a = add_slide_to_viewer(viewer, a)[-1]
    widget = ColorWidget(viewer)
    qtbot.addWidget(widget)
    layer_b = add_slide_to_viewer(viewer, b)[-1]
    viewer.layers.selection.active = layer_b
    assert widget.layer is layer_b and "Slide_B" in widget.slide_label.text()
    _type_gene(qtbot, widget, "COL1A1")
    viewer.layers.selection.active = layer_a
    assert widget.layer is layer_a
    _type_gene(qtbot, widget, "ERBB2")
    assert layer_b.metadata["stimage_coloring"].gene.genes == ("COL1A1",)
    assert layer_a.metadata["stimage_coloring"].gene.genes == ("ERBB2",)
    viewer.layers.selection.active = layer_b
    assert widget.gene_edit.text() == "COL1A1"
    assert layer_b.face_colorbar.visible and not layer_a.face_colorbar.visible


def test_screenshot_shows_gene_colours(slide_in_shown_viewer, qtbot, slide):
    viewer, layer = slide_in_shown_viewer
    viewer.layers[0].visible = False  # the spots alone on the black canvas
    layer.border_width = 0
    layer.opacity = 1.0
    widget = ColorWidget(viewer)
    qtbot.addWidget(widget)
    widget.colorbar_check.setChecked(False)
    widget.non_expressing_combo.setCurrentText("colormap")
    widget.colormap_combo.setCurrentText("magma")
    _type_gene(qtbot, widget, "ERBB2")
    widget.opacity_slider.setValue(1.0)
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    values = np.log1p(slide.gene_values("ERBB2"))
    hot = int(np.flatnonzero(values >= widget.state().gene.contrast_limits[1])[0])
    cold = int(np.flatnonzero(values == 0)[0])

    def pixel(i):
        world = slide.positions[i]
        cam = camera(viewer)  # 2D view: canvas pixel = (world - centre) * zoom + half the canvas
        h, w = shot.shape[:2]
        row = (world[0] - cam.center[-2]) * cam.zoom + h / 2
        col_ = (world[1] - cam.center[-1]) * cam.zoom + w / 2
        return shot[int(row), int(col_), :3].astype(int)

    from napari.utils.colormaps import ensure_colormap

    top = (ensure_colormap("magma").map(np.array([1.0]))[0][:3] * 255).astype(int)
    assert np.abs(pixel(hot) - top).max() <= 12
    assert pixel(cold).sum() < pixel(hot).sum() / 3


def test_widget_and_render_give_the_same_colours(viewer_and_widget, qtbot, slide):
    from napari_stimage.render import render_scale, render_slide

    _, widget, layer = viewer_and_widget
    widget.colormap_combo.setCurrentText("plasma")
    widget.non_expressing_combo.setCurrentText("grey")
    _type_gene(qtbot, widget, "COL1A1")
    g = widget.state().gene
    width = 500
    image = render_slide(slide, list(g.genes), colormap=g.colormap, transform=g.transform,
                         contrast_limits=g.contrast_limits, non_expressing=g.non_expressing,
                         opacity=1.0, width=width)
    s = render_scale(slide, width)
    values = slide.gene_values("COL1A1")
    for i in [int(np.nanargmax(values)), int(np.flatnonzero(values == 0)[0]), int(np.flatnonzero((values > 0) & (values < np.nanmax(values) / 2))[0])]:
        y, x = slide.positions[i]
        pixel = image[int((y + 0.5) * s), int((x + 0.5) * s)].astype(int)
        assert np.abs(pixel - np.round(layer.face_color[i, :3] * 255)).max() <= 1


def test_widget_is_contributed_through_the_manifest(slide_in_viewer, slide):
    viewer, layer = slide_in_viewer
    _, widget = viewer.window.add_plugin_dock_widget("napari-stimage", "Color spots")
    assert isinstance(widget, ColorWidget)
    # napari hands plugins a public-only proxy of the viewer: colouring must work through it
    widget.apply_genes(["ERBB2"])
    hot = int(np.nanargmax(slide.gene_values("ERBB2")))
    assert layer.face_color[hot, 3] == 1.0 and layer.face_colorbar.visible
    widget.tabs.setCurrentIndex(1)
    assert "invasive cancer" in widget.legend_rows


def test_swatch_click_opens_colour_picker_and_recolours(viewer_and_widget, monkeypatch, slide):
    from qtpy.QtGui import QColor

    import napari_stimage._qt.panels.legend as module  # the legend panel opens the colour dialog

    _, widget, layer = viewer_and_widget
    widget.tabs.setCurrentIndex(1)
    asked = []

    def fake_get_color(initial, parent, title):
        asked.append((initial.name(), title))
        return QColor("#00ff00")

    monkeypatch.setattr(module.QColorDialog, "getColor", staticmethod(fake_get_color))
    widget.legend_rows["connective tissue"][0].click()
    assert asked and "connective tissue" in asked[0][1]
    i = int(np.flatnonzero(col.display_labels(slide.labels) == "connective tissue")[0])
    assert col.rgba_to_hex(layer.face_color[i]) == "#00ff00"
    assert "#00ff00" in widget.legend_rows["connective tissue"][0].styleSheet()


def test_recent_genes_survive_a_new_widget_and_apply(viewer_and_widget, qtbot, slide):
    viewer, widget, layer = viewer_and_widget
    _type_gene(qtbot, widget, "ADIPOQ")
    _type_gene(qtbot, widget, "PTPRC")
    again = ColorWidget(viewer)  # as in a new session: the list comes from the cache folder
    qtbot.addWidget(again)
    items = [again.recent_combo.itemText(i) for i in range(again.recent_combo.count())]
    assert items[:2] == ["PTPRC", "ADIPOQ"]
    again.recent_combo.activated.emit(1)
    assert again.state().gene.genes == ("ADIPOQ",)
    adipoq = np.log1p(slide.gene_values("ADIPOQ"))
    assert layer.face_color[int(np.nanargmax(adipoq)), 3] == 1.0


def test_slide_opens_coloured_by_its_labels(viewer_and_widget, slide):
    _, widget, layer = viewer_and_widget
    assert widget.state().mode == "label" and widget.tabs.currentIndex() == 1
    labels = layer.features["label"].to_numpy()
    expected = col.label_colors(labels, widget.palette)
    assert np.allclose(layer.face_color, expected, atol=1e-6)
    cancer = int(np.flatnonzero(labels == "invasive cancer")[0])
    adipose = int(np.flatnonzero(labels == "adipose tissue")[0])
    assert not np.allclose(layer.face_color[cancer], layer.face_color[adipose])


def test_slide_without_annotation_opens_coloured_by_its_top_gene(make_napari_viewer, qtbot, tmp_path):
    from napari_stimage import load_slide
    from napari_stimage.synthetic import write_synthetic_slide

    paths = write_synthetic_slide(tmp_path / "ds", with_annotation=False)
    slide = load_slide(paths.coord)
    viewer = make_napari_viewer()
    layer = add_slide_to_viewer(viewer, slide)[-1]
    widget = ColorWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.state().mode == "gene" and widget.tabs.currentIndex() == 0
    assert widget.state().gene.genes == (slide.default_genes[0],)
    values = np.log1p(slide.gene_values(slide.default_genes[0]))
    hot = int(np.nanargmax(values))
    assert layer.face_color[hot, 3] == 1.0


def test_gene_switch_sends_the_points_to_the_canvas_once_with_the_new_colours(viewer_and_widget, slide):
    """Pins the guarded use of napari's private `Points._face.events.colors` in set_face_colors."""
    viewer, widget, layer = viewer_and_widget
    widget.apply_genes(["ERBB2"])
    markers = viewer.window._qt_viewer.canvas.layer_to_visual[layer].node.points_markers
    uploads = []
    markers.events.data_updated.connect(lambda event: uploads.append(1))
    public_events = []
    layer.events.face_color.connect(lambda event: public_events.append(1))
    widget.apply_genes(["PTPRC"])
    assert len(uploads) == 1  # napari alone would send every point twice
    assert len(public_events) == 1  # other listeners still hear about the new colours
    assert np.allclose(markers._data["a_bg_color"], layer.face_color)
    values = np.log1p(slide.gene_values("PTPRC"))
    assert np.allclose(layer.face_color, col.gene_colors(values, col.GeneColoring(("PTPRC",)).with_limits(values)))


def test_set_face_colors_without_napari_internals_falls_back_to_the_public_setter():
    from types import SimpleNamespace

    from napari_stimage.viewer.layer_colors import set_face_colors

    layer = SimpleNamespace(face_color=None)
    rgba = np.zeros((3, 4), dtype=np.float32)
    set_face_colors(layer, rgba)
    assert layer.face_color is rgba


def test_switching_back_to_a_gene_reuses_its_values_and_restores_colours_bar_and_title(
        viewer_and_widget, monkeypatch, slide):
    viewer, widget, layer = viewer_and_widget
    read = []
    gene_values = slide.gene_values
    monkeypatch.setattr(slide, "gene_values", lambda gene: read.append(gene) or gene_values(gene))
    widget.apply_genes(["ERBB2"])
    first = (layer.face_color.copy(), tuple(layer.face_contrast_limits), text_overlay(viewer).text,
             layer.features[VALUE_COLUMN].to_numpy().copy())
    widget.apply_genes(["PTPRC"])
    assert text_overlay(viewer).text.startswith("PTPRC") and tuple(layer.face_contrast_limits) != first[1]
    read.clear()
    widget.apply_genes(["ERBB2"])
    assert read == []  # served from the widget's cache
    assert np.array_equal(layer.face_color, first[0])
    assert tuple(layer.face_contrast_limits) == first[1]
    assert text_overlay(viewer).text == first[2] and layer.face_colorbar.visible
    assert np.array_equal(layer.features[VALUE_COLUMN].to_numpy(), first[3], equal_nan=True)
    widget.transform_combo.setCurrentIndex(list(col.TRANSFORMS).index("raw"))  # another transform: new values
    assert read == ["ERBB2"] and text_overlay(viewer).text == "ERBB2 · raw counts"
    assert np.allclose(layer.features[VALUE_COLUMN], slide.gene_values("ERBB2"), equal_nan=True)


def test_value_cache_follows_deleted_points(viewer_and_widget, slide):
    _, widget, layer = viewer_and_widget
    widget.apply_genes(["ERBB2"])
    widget.apply_genes(["PTPRC"])
    layer.selected_data = {0}
    layer.remove_selected()
    widget.apply_genes(["ERBB2"])  # cached before the deletion: must be matched to the points again
    expected = np.log1p(slide.gene_values("ERBB2"))[1:]
    assert len(layer.face_color) == len(expected)
    assert np.allclose(layer.features[VALUE_COLUMN], expected, equal_nan=True)


def _canvas_pixel(viewer, shot, y, x):
    """Screenshot pixel under world point (y, x) in a 2D view (as tests/test_reader.py)."""
    cy, cx = camera(viewer).center[-2:]
    zoom = camera(viewer).zoom
    h, w = shot.shape[:2]
    return shot[int(round((y - cy) * zoom + h / 2)), int(round((x - cx) * zoom + w / 2)), :3].astype(int)


def test_hidden_label_is_not_drawn_on_the_canvas_nor_in_the_png(make_napari_viewer, qtbot, slide):
    from napari_stimage.render import render_scale, render_slide

    viewer = make_napari_viewer(show=True)
    layer = add_slide_to_viewer(viewer, slide)[-1]
    widget = ColorWidget(viewer)
    qtbot.addWidget(widget)
    widget.tabs.setCurrentIndex(1)
    widget.opacity_slider.setValue(1.0)
    viewer.reset_view()
    shown = col.display_labels(slide.labels)
    hidden, kept = "invasive cancer", "connective tissue"
    i, j = int(np.flatnonzero(shown == hidden)[0]), int(np.flatnonzero(shown == kept)[0])
    r = float(slide.spots["r"].iloc[0])

    layer.visible = False
    bare = viewer.screenshot(canvas_only=True, flash=False)  # the H&E alone
    layer.visible = True
    before = viewer.screenshot(canvas_only=True, flash=False)
    y, x = slide.positions[i]
    assert np.abs(_canvas_pixel(viewer, before, y, x) - _canvas_pixel(viewer, bare, y, x)).max() > 40  # drawn

    widget.legend_rows[hidden][1].click()  # the legend checkbox hides the label
    shot = viewer.screenshot(canvas_only=True, flash=False)
    for spot in np.flatnonzero(shown == hidden)[:5]:
        y, x = slide.positions[spot]
        for dx in (0.0, 0.97 * r):  # neither the disc nor its rim
            assert np.abs(_canvas_pixel(viewer, shot, y, x + dx) - _canvas_pixel(viewer, bare, y, x + dx)).max() <= 8
    y, x = slide.positions[j]
    kept_rgb = np.array([int(widget.legend_rows[kept][0].styleSheet().split("#")[1][k:k + 2], 16) for k in (0, 2, 4)])
    assert np.abs(_canvas_pixel(viewer, shot, y, x) - kept_rgb).max() <= 12  # other labels still drawn
    assert layer.face_color[i, 3] == 0 and layer.border_color[i, 3] == 0 and not layer.shown[i]

    # the PNG agrees: the hidden spot shows the image, the kept one its colour
    width = 500
    png = render_slide(slide, label=True, palette=widget.palette, opacity=1.0, hidden_labels=[hidden], width=width)
    plain = render_slide(slide, label=True, palette=widget.palette, opacity=0.0, width=width)
    s = render_scale(slide, width)

    def png_pixel(image, spot):
        yy, xx = slide.positions[spot]
        return image[int((yy + 0.5) * s), int((xx + 0.5) * s)].astype(int)

    assert np.array_equal(png_pixel(png, i), png_pixel(plain, i))
    assert np.abs(png_pixel(png, j) - kept_rgb).max() <= 2

    widget.legend_rows[hidden][1].click()  # shown again, rim included
    assert layer.face_color[i, 3] == 1 and layer.border_color[i, 3] == 1 and layer.shown.all()
    widget.legend_rows[kept][2].click()  # solo: every other label transparent
    assert np.array_equal(layer.face_color[:, 3] > 0, shown == kept)
    widget.apply_genes(["ERBB2"])  # gene mode shows every spot's rim again
    assert (layer.border_color[:, 3] == 1).all()


def test_curating_in_gene_mode_switches_to_labels_and_updates_the_legend(viewer_and_widget, slide):
    _, widget, layer = viewer_and_widget
    features_events = []
    layer.events.features.connect(lambda event: features_events.append(1))
    widget.apply_genes(["ERBB2"])
    widget.apply_genes(["PTPRC"])
    assert features_events == []  # switching genes never makes listeners redo their work
    assert widget.state().mode == "gene"

    features = layer.features
    unlabelled = int(np.flatnonzero(col.display_labels(features["label"]) == UNLABELLED)[0])
    features.loc[unlabelled, "label"] = "TLS"  # what the curation widget does, then it emits features
    layer.events.features()
    assert widget.state().mode == "label" and widget.tabs.currentIndex() == 1
    assert "TLS" in widget.legend_rows
    tls = {e.label: e.color for e in widget.legend_entries()}["TLS"]
    assert col.rgba_to_hex(layer.face_color[unlabelled]) == tls
    assert not layer.face_colorbar.visible

    # a features event that does not change labels (e.g. a gene column added) keeps gene mode
    widget.apply_genes(["ERBB2"])
    from napari_stimage.viewer.layers import add_gene_features

    add_gene_features(layer, "MALAT1-1")
    assert widget.state().mode == "gene"
    assert "MALAT1-1" in layer.features.columns


def test_legend_follows_the_curation_order_and_shows_hotkeys(viewer_and_widget, slide):
    from napari_stimage.core.labels import label_categories
    from napari_stimage.viewer.editors import editor_for_layer

    _, widget, layer = viewer_and_widget
    natural = label_categories(slide.labels)
    assert [e.label for e in widget.legend_entries()] == natural + [UNLABELLED]
    assert not widget.legend_rows[natural[0]][1].text().startswith("[")  # no editor, no hotkeys yet

    editor = editor_for_layer(layer)  # what the curation widget does on opening
    assert widget.legend_rows[natural[0]][1].text().startswith("[1] ")  # hotkeys show at once
    unlabelled = np.flatnonzero(col.display_labels(layer.features["label"]) == UNLABELLED)
    editor.assign(unlabelled[:3], "aaa new")  # sorts first by name, but hotkeys append it
    order = editor.categories()
    assert order[-1] == "aaa new"
    entries = widget.legend_entries()
    assert [e.label for e in entries] == order + [UNLABELLED]
    assert entries[-2].count == 3
    texts = [widget.legend_rows[label][1].text() for label in order]
    assert texts[0].startswith("[1] " + order[0]) and texts[len(order) - 1].startswith(f"[{len(order)}] aaa new")
    assert not widget.legend_rows[UNLABELLED][1].text().startswith("[")
    # the spots wear the legend's colours
    legend = {e.label: e.color for e in entries}
    assert col.rgba_to_hex(layer.face_color[unlabelled[0]]) == legend["aaa new"]


def test_legend_order_from_a_stub_editor(viewer_and_widget, slide):
    from napari_stimage.viewer.metadata import EDITOR_KEY

    _, widget, layer = viewer_and_widget

    class StubEditor:
        path = None  # no annotation file: no remembered colours

        def categories(self):
            return ["tumor-free", "invasive cancer", "adipose tissue"]  # the first: no spot holds it

        def set_hidden_labels(self, labels):
            pass

    layer.metadata[EDITOR_KEY] = StubEditor()
    widget.color_by_label()
    labels = [e.label for e in widget.legend_entries()]
    assert labels[:3] == ["tumor-free", "invasive cancer", "adipose tissue"]
    assert labels[-1] == UNLABELLED and widget.legend_entries()[0].count == 0
    assert widget.legend_rows["adipose tissue"][1].text().startswith("[3] adipose tissue")


def test_arrow_keys_choose_the_candidate_even_when_the_text_is_a_gene(viewer_and_widget, qtbot):
    _, widget, _ = viewer_and_widget
    widget.gene_edit.clear()
    qtbot.keyClicks(widget.gene_edit, "malat1")
    assert widget.candidates.item(0).text() == "MALAT1" and widget.candidates.item(1).text() == "MALAT1-1"
    qtbot.keyClick(widget.gene_edit, Qt.Key.Key_Down)
    qtbot.keyClick(widget.gene_edit, Qt.Key.Key_Return)
    assert widget.state().gene.genes == ("MALAT1-1",)

    _type_gene(qtbot, widget, "malat1")  # no arrow key: the exact gene
    assert widget.state().gene.genes == ("MALAT1",)

    widget.gene_edit.clear()
    qtbot.keyClicks(widget.gene_edit, "ERBB2, malat1")  # a gene set: the last name takes the highlight
    qtbot.keyClick(widget.gene_edit, Qt.Key.Key_Down)
    qtbot.keyClick(widget.gene_edit, Qt.Key.Key_Return)
    assert widget.state().gene.genes == ("ERBB2", "MALAT1-1")


def test_unknown_gene_says_so_and_leaves_no_stale_text(viewer_and_widget, qtbot):
    viewer, widget, layer = viewer_and_widget
    _type_gene(qtbot, widget, "ERBB2")
    colors = layer.face_color.copy()
    _type_gene(qtbot, widget, "zzz")
    assert "no gene 'zzz' on this slide" in widget.candidate_info.text()
    assert widget.gene_edit.text() == "ERBB2"  # the box names what the canvas shows
    assert text_overlay(viewer).text.startswith("ERBB2") and np.array_equal(layer.face_color, colors)
    _type_gene(qtbot, widget, "ERBB2, MALAT")  # resolves; and a misspelling gets suggestions
    _type_gene(qtbot, widget, "ERBX2")
    assert "did you mean ERBB2" in widget.candidate_info.text()
    assert widget.gene_edit.text() == "ERBB2, MALAT1"
    qtbot.keyClicks(widget.gene_edit, "x")  # typing again clears the warning colour
    assert widget.candidate_info.styleSheet() == ""


def test_gene_tab_without_a_gene_applies_the_top_variable_gene(viewer_and_widget, slide):
    _, widget, layer = viewer_and_widget
    assert widget.state().mode == "label" and widget.state().gene is None
    assert not widget.range_slider.isEnabled() and not widget.autoscale_button.isEnabled()
    widget.tabs.setCurrentIndex(0)
    gene = slide.default_genes[0]
    assert widget.state().mode == "gene" and widget.state().gene.genes == (gene,)
    assert widget.gene_edit.text() == gene
    assert widget.range_slider.isEnabled() and widget.autoscale_button.isEnabled()
    values = np.log1p(slide.gene_values(gene))
    assert tuple(widget.range_slider.value()) == pytest.approx(col.autoscale_limits(values), abs=0.01)
    expected = col.gene_colors(values, col.GeneColoring((gene,)).with_limits(values))
    assert np.allclose(layer.face_color, expected, atol=1e-6)


def test_colorbar_title_names_the_slide_when_several_are_open(make_napari_viewer, qtbot, tmp_path):
    from napari_stimage import load_slide
    from napari_stimage.synthetic import write_synthetic_slide

    viewer = make_napari_viewer()
    a = load_slide(write_synthetic_slide(tmp_path / "a", name="Slide_A_Visium").coord)
    layer_a = add_slide_to_viewer(viewer, a)[-1]
    widget = ColorWidget(viewer)
    qtbot.addWidget(widget)
    widget.apply_genes(["ERBB2"])
    assert text_overlay(viewer).text == "ERBB2 · log1p"  # one slide: no need to say which
    b = load_slide(write_synthetic_slide(tmp_path / "b", name="Slide_B_Visium", seed=1).coord)
    layer_b = add_slide_to_viewer(viewer, b)[-1]
    viewer.layers.selection.active = layer_b
    widget.apply_genes(["PTPRC"])
    assert text_overlay(viewer).text == "Slide_B_Visium · PTPRC · log1p"
    viewer.layers.selection.active = layer_a
    assert text_overlay(viewer).text == "Slide_A_Visium · ERBB2 · log1p"
    viewer.layers.remove(layer_b)
    assert text_overlay(viewer).text == "ERBB2 · log1p"


def test_hover_status_lists_id_label_and_value_first(viewer_and_widget, slide):
    _, widget, layer = viewer_and_widget
    # a label column re-added at the end (as an editor does when it is missing) must not push
    # the value behind fifty gene columns
    features = layer.features
    label = features.pop("label")
    features["label"] = label
    widget.apply_genes(["ERBB2"])
    columns = list(layer.features.columns)
    assert columns.index(VALUE_COLUMN) == columns.index("label") + 1
    assert columns.index("spot_id") < columns.index("label")
    assert all(g in columns for g in slide.default_genes)  # gene columns stay
    hot = int(np.nanargmax(slide.gene_values("ERBB2")))
    status = layer.get_status(tuple(slide.positions[hot]), world=True)["coordinates"]
    at = [status.index(f"{name}: ") for name in ("spot_id", "label", VALUE_COLUMN)]
    assert at == sorted(at) and at[2] < status.index(f"{slide.default_genes[0]}: ")
