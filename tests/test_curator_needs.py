"""What a curator needs while labelling: hidden labels are protected, hotkeys keep their meaning
across save and reopen, label text that would read back as missing is refused, the tissue stays
visible under the spots, "no data" is not "zero", and the palette stays distinguishable."""

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt

from napari_stimage import coloring as col
from napari_stimage import load_slide
from napari_stimage._qt.color_widget import ColorWidget
from napari_stimage._qt.curate_widget import CurateWidget
from napari_stimage.core.labels import UNLABELLED
from napari_stimage.curation.editor import LabelEditor, normalise_label
from napari_stimage.viewer.canvas import camera
from napari_stimage.viewer.layers import add_slide_to_viewer
from test_curate_widget import _drag

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def docked(slide_in_shown_viewer, slide, qtbot):
    """A shown viewer with the slide, the colour widget and the curation widget docked."""
    viewer, layer = slide_in_shown_viewer
    color = ColorWidget(viewer)
    curate = CurateWidget(viewer)
    curate.ask = lambda title, text, choices: "Don't save"
    viewer.window.add_dock_widget(color)
    viewer.window.add_dock_widget(curate)
    curate.notes = []
    curate._notify = curate.notes.append
    viewer.reset_view()
    return viewer, color, curate, layer


# -- hidden means protected ------------------------------------------------------------------------

def test_split_hidden_leaves_out_spots_of_hidden_labels():
    editor = LabelEditor([f"s{k}" for k in range(6)], annotation_path=None, autosave=False)
    editor.assign([0, 1], "TLS")
    editor.assign([2], "NO_TLS")
    assert editor.split_hidden([5, 0, 2, 2]) == (pytest.approx([0, 2, 5]), 0)
    editor.set_hidden_labels({"TLS", UNLABELLED})
    kept, skipped = editor.split_hidden(np.arange(6))
    assert kept.tolist() == [2] and skipped == 5


def test_hidden_labels_are_never_selected_nor_relabelled(docked, qtbot, slide):
    viewer, color, curate, layer = docked
    labels = layer.features["label"].to_numpy().copy()
    hidden = np.flatnonzero(labels == "invasive cancer")
    assert hidden.size > 10 and color.state().mode == "label"
    color.legend_rows["invasive cancer"][1].click()  # the legend checkbox hides the label
    assert curate.editor.hidden_labels == {"invasive cancer"}

    lo, hi = slide.positions.min(axis=0) - 20, slide.positions.max(axis=0) + 20
    for tool, path in (("rectangle", [lo, (lo + hi) / 2, hi]),
                       ("lasso", [lo, (lo[0], hi[1]), hi, (hi[0], lo[1]), lo]),
                       ("brush", [lo + (hi - lo) * t for t in np.linspace(0, 1, 60)])):
        curate.select_none()
        curate.notes.clear()
        curate.tool_buttons[tool].click()
        if tool == "brush":
            curate.brush_radius.setValue(float(np.max(hi - lo)))
        _drag(viewer, path, qtbot)
        assert curate.selection.size > 0, tool
        assert not set(curate.selection.tolist()) & set(hidden.tolist()), tool
        skipped = f"{hidden.size} hidden spot(s) skipped: show their label in the legend to select them"
        assert curate.notes == [skipped], tool
    curate.tool_buttons["pan"].click()

    curate.select_none()
    curate.invert_button.click()
    assert curate.selection.size == slide.n_spots - hidden.size
    curate.select_label_combo.setCurrentIndex(curate.select_label_combo.findData("invasive cancer"))
    curate.select_label_button.click()
    assert curate.selection.size == 0

    layer.selected_data = set(range(slide.n_spots))  # napari's own select-all knows nothing of hiding
    curate.label_input.setEditText("stroma")
    curate.assign_button.click()
    after = layer.features["label"].to_numpy()
    assert (after[hidden] == "invasive cancer").all()
    assert (np.delete(after, hidden) == "stroma").all()

    color.legend_rows["invasive cancer"][1].click()  # shown again: selectable again
    assert curate.editor.hidden_labels == frozenset()
    curate.select_label_combo.setCurrentIndex(curate.select_label_combo.findData("invasive cancer"))
    curate.select_label_button.click()
    assert curate.selection.tolist() == hidden.tolist()


def test_labels_hidden_before_the_curation_widget_opens_are_protected(slide_in_viewer, slide, qtbot):
    viewer, layer = slide_in_viewer
    color = ColorWidget(viewer)
    qtbot.addWidget(color)
    color.legend_rows["invasive cancer"][1].click()
    curate = CurateWidget(viewer)  # docked later: the slide's editor is made now
    qtbot.addWidget(curate)
    curate.ask = lambda title, text, choices: "Don't save"
    assert curate.editor.hidden_labels == {"invasive cancer"}
    curate.invert_selection()
    hidden = np.flatnonzero(layer.features["label"].to_numpy() == "invasive cancer")
    assert curate.selection.size == slide.n_spots - hidden.size


def test_gene_colouring_draws_every_spot_so_nothing_is_protected(docked):
    _, color, curate, _ = docked
    color.solo_label("adipose tissue")
    assert "invasive cancer" in curate.editor.hidden_labels
    color.tabs.setCurrentIndex(0)  # the Gene tab colours every spot
    assert color.state().mode == "gene" and curate.editor.hidden_labels == frozenset()


# -- stable hotkeys --------------------------------------------------------------------------------

def test_hotkey_order_survives_save_and_reopen(make_napari_viewer, slide_paths, qtbot):
    viewer = make_napari_viewer(show=True)
    slide = load_slide(slide_paths.coord)
    layer = add_slide_to_viewer(viewer, slide)[-1]
    color, curate = ColorWidget(viewer), CurateWidget(viewer)
    curate.ask = lambda title, text, choices: "Don't save"
    viewer.window.add_dock_widget(color)
    viewer.window.add_dock_widget(curate)
    before = curate.editor.categories()
    layer.selected_data = {0, 1}
    curate.label_input.setEditText("undetermined")
    curate.assign_button.click()
    layer.selected_data = {2}
    curate.label_input.setEditText("benign")  # sorts before every label of the file
    curate.assign_button.click()
    order = before + ["undetermined", "benign"]
    assert curate.editor.categories() == order and order.index("undetermined") == 4
    assert "5 undetermined" in curate.hotkey_help.full_text()
    curate.save(block=True)

    viewer.layers.clear()
    reopened = add_slide_to_viewer(viewer, load_slide(slide_paths.coord))[-1]
    viewer.layers.selection.active = reopened
    qtbot.waitUntil(lambda: curate.layer is not None and curate.editor.categories() == order, timeout=5000)
    assert "5 undetermined · 6 benign" in curate.hotkey_help.full_text()
    assert color.legend_rows["undetermined"][1].text().startswith("[5] ")
    curate.select_none()
    reopened.selected_data = {10}
    curate.assign_hotkey(5)
    assert reopened.features["label"][10] == "undetermined"


# -- label text guard ------------------------------------------------------------------------------

def test_every_word_pandas_reads_as_missing_is_refused_as_a_label():
    import io

    import pandas as pd
    from pandas._libs.parsers import STR_NA_VALUES

    words = sorted(w for w in STR_NA_VALUES if w)
    assert {"None", "NULL", "null", "#N/A", "n/a", "-nan", "NA", "nan"} <= set(words)
    read_back = pd.read_csv(io.StringIO("label\n" + "\n".join(words) + "\n"))["label"]
    assert read_back.isna().all()  # the list is what read_csv really treats as missing
    for word in words:
        with pytest.raises(ValueError, match="read back as 'unlabelled'"):
            normalise_label(word)
        with pytest.raises(ValueError):
            normalise_label(f"  {word} ", known_labels=["TLS"])
    assert normalise_label("Nonetheless") == "Nonetheless"


def test_one_enter_assigns_once_as_typed_and_warns_about_near_twins(docked, qtbot):
    _, _, curate, layer = docked
    edit = curate.label_input.lineEdit()
    edit.setFocus()

    def type_and_enter(text):
        layer.selected_data = {0, 1}
        curate.editor.assign([0, 1], None)
        steps = len(curate.editor._undo)
        edit.clear()
        qtbot.keyClicks(edit, text)
        qtbot.keyClick(edit, Qt.Key.Key_Return)
        return len(curate.editor._undo) - steps, layer.features["label"][0]

    assert type_and_enter("adipose tissue") == (1, "adipose tissue")
    assert type_and_enter("Invasive Cancer") == (1, "Invasive Cancer")  # not merged into "invasive cancer"
    assert curate.notes[-1] == "‘Invasive Cancer’ differs from existing ‘invasive cancer’ only by case"
    assert type_and_enter("  Benign  ") == (1, "Benign")
    assert curate.editor.categories().count("Benign") == 1
    curate.notes.clear()
    for word in ("NULL", "None", "#N/A"):
        steps, label = type_and_enter(word)
        assert steps == 0 and pd.isna(label)  # nothing assigned, spot stays unlabelled
        assert curate.notes[-1] == f"the label {word!r} would be read back as 'unlabelled'; choose another name"


# -- no data is not zero ---------------------------------------------------------------------------

def test_spots_missing_from_the_count_file_are_drawn_unlike_zero_counts(make_napari_viewer, slide, qtbot):
    from test_color_widget import _canvas_pixel, _type_gene

    viewer = make_napari_viewer(show=True)
    layer = add_slide_to_viewer(viewer, slide)[-1]
    widget = ColorWidget(viewer)
    qtbot.addWidget(widget)
    widget.colorbar_check.setChecked(False)
    _type_gene(qtbot, widget, "ERBB2")
    assert widget.non_expressing_combo.currentText() == "transparent"
    viewer.reset_view()
    counts = slide.gene_values("ERBB2")
    missing, zero = int(np.flatnonzero(np.isnan(counts))[0]), int(np.flatnonzero(counts == 0)[0])
    layer.visible = False
    bare = viewer.screenshot(canvas_only=True, flash=False)
    layer.visible = True
    for mode in col.NON_EXPRESSING_MODES:
        widget.non_expressing_combo.setCurrentText(mode)
        shot = viewer.screenshot(canvas_only=True, flash=False)

        def seen(i, image=shot):
            return _canvas_pixel(viewer, image, *slide.positions[i])

        if mode == "transparent":  # zero shows the tissue, no data does not
            assert np.abs(seen(zero) - seen(zero, bare)).max() <= 8
        gap = np.abs((seen(missing) - seen(missing, bare)) - (seen(zero) - seen(zero, bare))).max()
        assert gap > 60, (mode, gap)


# -- palette and legend ----------------------------------------------------------------------------

def test_a_long_label_wraps_and_keeps_its_solo_button_in_view(docked, qtbot):
    _, color, curate, _ = docked
    long_label = "invasive carcinoma with extensive lymphovascular invasion and necrosis, re-review"
    curate.editor.assign([0, 1, 2], long_label)
    color.tabs.setCurrentIndex(1)
    qtbot.waitUntil(lambda: long_label in color.legend_rows, timeout=5000)
    _, check, solo = color.legend_rows[long_label]
    qtbot.waitUntil(lambda: solo.isVisible() and check.text_label.height() > 0, timeout=5000)
    viewport = color.legend_box.parentWidget()  # the legend's scroll area viewport
    right = solo.mapTo(viewport, solo.rect().topRight()).x()
    assert 0 < right <= viewport.width()  # the solo button is inside the visible legend
    one_line = check.text_label.fontMetrics().height()
    assert check.text_label.height() >= 2 * one_line  # wrapped, not cut or widened
    solo.click()
    assert color.state().hidden_labels == {e.label for e in color.legend_entries()} - {long_label}
    check.text_label.setFocus()
    qtbot.mouseClick(check.text_label, Qt.MouseButton.LeftButton)  # clicking the text toggles
    assert long_label in color.state().hidden_labels


# -- recent genes, and nothing stale once a slide is gone -------------------------------------------

def test_recent_genes_follow_the_slide_and_an_absent_one_is_refused_politely(docked, qtbot):
    from test_color_widget import _type_gene

    viewer, color, _, _ = docked
    col.remember_recent_gene("NOTONTHISSLIDE")  # from a slide with another gene list
    col.remember_recent_gene("ERBB2, NOTONTHISSLIDE")
    _type_gene(qtbot, color, "PTPRC")
    again = ColorWidget(viewer)  # a new session reads the list
    qtbot.addWidget(again)
    items = [again.recent_combo.itemText(i) for i in range(again.recent_combo.count())]
    assert items == ["PTPRC"]  # only what this slide has
    again.apply_recent("ERBB2, NOTONTHISSLIDE")  # e.g. picked just before switching slides
    assert again.state().gene.genes == ("PTPRC",) and again.gene_edit.text() == "PTPRC"
    assert again.candidate_info.text().startswith("no gene 'NOTONTHISSLIDE' on this slide")
    again.recent_combo.activated.emit(0)
    assert again.state().gene.genes == ("PTPRC",)


def test_no_stale_legend_or_actions_once_the_slides_layers_are_gone(docked, qtbot):
    viewer, color, curate, _ = docked
    color.tabs.setCurrentIndex(1)
    assert color.legend_rows
    viewer.layers.clear()
    assert color.layer is None and color.legend_rows == {} and color.legend_layout.count() == 0
    assert color.column_combo.count() == 0 and color.gene_edit.text() == ""
    assert curate.layer is None and curate.editor is None
    assert not curate.assign_button.isEnabled() and not curate.invert_button.isEnabled()
    assert curate.label_input.count() == 0 and curate.hotkey_help.full_text().startswith("Keys 1-9")
    color.apply_recent("PTPRC")  # nothing to colour: no error
    color.show_all_labels()


# -- see the tissue under the spots ----------------------------------------------------------------

def test_outline_spots_and_opacity_show_the_tissue_inside(docked, qtbot, slide):
    from test_color_widget import _canvas_pixel

    viewer, color, _, layer = docked
    color.tabs.setCurrentIndex(1)
    spot = int(np.flatnonzero(col.display_labels(slide.labels) == "connective tissue")[0])
    y, x = slide.positions[spot]
    r = float(slide.spots["r"].iloc[spot])
    camera(viewer).center = (y, x)
    camera(viewer).zoom = 60 / r  # a spot 120 screen pixels wide: the zoom a pathologist labels at
    entry = {e.label: e.color for e in color.legend_entries()}["connective tissue"]
    swatch = np.array([int(entry[k:k + 2], 16) for k in (1, 3, 5)])
    color.opacity_slider.setValue(1.0)
    layer.visible = False
    bare = viewer.screenshot(canvas_only=True, flash=False)
    layer.visible = True

    def at(shot, dx):
        return _canvas_pixel(viewer, shot, y, x + dx)

    filled = viewer.screenshot(canvas_only=True, flash=False)
    assert np.abs(at(filled, 0) - swatch).max() <= 12  # a filled disc hides the tissue
    color.style_combo.setCurrentText("outline")
    outline = viewer.screenshot(canvas_only=True, flash=False)
    assert np.abs(at(outline, 0) - at(bare, 0)).max() <= 8  # the tissue shows inside the spot
    assert np.abs(at(outline, 0.92 * r) - swatch).max() <= 20  # the ring carries the label colour
    color.opacity_slider.setValue(0.5)
    faint = viewer.screenshot(canvas_only=True, flash=False)
    expected = 0.5 * swatch + 0.5 * at(bare, 0.92 * r)
    assert np.abs(at(faint, 0.92 * r) - expected).max() <= 20
    color.style_combo.setCurrentText("filled")
    assert np.abs(at(viewer.screenshot(canvas_only=True, flash=False), 0) - (0.5 * swatch + 0.5 * at(bare, 0))).max() <= 20
    assert layer.border_color[spot, :3].tolist() == [1.0, 1.0, 1.0]  # the white rims are back


@pytest.mark.parametrize("zoom_factor", [1.0, 8.0])
def test_the_selection_outline_is_three_screen_pixels_wide_at_every_zoom(docked, qtbot, slide, zoom_factor):
    viewer, _, curate, _ = docked
    camera(viewer).zoom = camera(viewer).zoom * zoom_factor
    cy, cx = camera(viewer).center[-2:]
    half = 60 / camera(viewer).zoom  # a 120-pixel rectangle on the screen
    curate.tool_buttons["rectangle"].click()
    shots = []
    _drag(viewer, [(cy - half, cx - half), (cy, cx), (cy + half, cx + half)], qtbot,
          before_release=lambda: shots.append(viewer.screenshot(canvas_only=True, flash=False)))
    row = shots[0][shots[0].shape[0] // 2, :, :3].astype(int)
    magenta = (row[:, 0] > 200) & (row[:, 1] < 60) & (row[:, 2] > 200)
    runs = np.flatnonzero(np.diff(np.r_[0, magenta.astype(int), 0]) != 0).reshape(-1, 2)
    widths = (runs[:, 1] - runs[:, 0]).tolist()
    assert len(widths) == 2 and all(2 <= w <= 5 for w in widths), widths  # left and right edges
