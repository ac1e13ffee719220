"""The curation widget, headless: lasso and brush drags on the rendered canvas, labels, keys, saving."""

import numpy as np
import pytest

from napari_stimage._qt.curate_widget import CurateWidget
from napari_stimage.core.selection import points_in_polygon, points_near_path
from napari_stimage.io.stimage.annotation import read_annotation
from napari_stimage.viewer.canvas import camera
from napari_stimage.viewer.editors import editor_for_layer
from napari_stimage.viewer.layers import add_slide_to_viewer


@pytest.fixture
def curate(slide_in_viewer, qtbot):
    viewer, layer = slide_in_viewer
    widget = CurateWidget(viewer)
    widget.questions = []
    # closing the viewer at teardown asks about unsaved edits: answer "don't save"
    widget.ask = lambda title, text, choices: widget.questions.append(title) or "Don't save"
    qtbot.addWidget(widget)
    viewer.reset_view()
    return viewer, widget, layer


def _canvas(viewer):
    return viewer.window._qt_viewer.canvas


def _to_canvas(viewer, world_rc):
    """Canvas pixel (x, y) of a world (row, col) position, through the view's own transform."""
    view = _canvas(viewer).view
    transform = view.transform * view.scene.transform
    x, y = transform.map([world_rc[1], world_rc[0]])[:2]
    return (float(x), float(y))


def _drag(viewer, world_path, qtbot, modifiers=(), whole_pixels=False, before_release=None):
    """Press, move along and release over `world_path` on the vispy canvas, as the mouse would.

    napari throttles mouse moves (5 ms), so each move gets time to be delivered, like a real hand.
    `whole_pixels`: integer canvas positions, as a real mouse gives (napari's brush outline needs them).
    """
    scene = _canvas(viewer)._scene_canvas
    pos = [_to_canvas(viewer, p) for p in world_path]
    if whole_pixels:
        pos = [(round(x), round(y)) for x, y in pos]
    scene.events.mouse_press(pos=pos[0], modifiers=modifiers, button=1)
    for p in pos[1:]:
        scene.events.mouse_move(pos=p, modifiers=modifiers, button=1)
        qtbot.wait(8)
    if before_release is not None:
        before_release()
    scene.events.mouse_release(pos=pos[-1], modifiers=modifiers, button=1)


def test_lasso_selects_spots_inside_and_assigns_a_typed_label(curate, qtbot, slide):
    viewer, widget, layer = curate
    assert widget.layer is layer and widget.editor is editor_for_layer(layer)
    widget.set_tool("lasso")
    assert viewer.layers.selection.active is layer and not camera(viewer).mouse_pan
    centre = slide.positions.mean(axis=0)
    angles = np.linspace(0, 2 * np.pi, 40)
    lasso = centre + np.c_[np.sin(angles) * 150, np.cos(angles) * 220]  # an ellipse
    camera_before = tuple(camera(viewer).center)
    _drag(viewer, lasso, qtbot)
    assert tuple(camera(viewer).center) == camera_before  # drawing did not pan the view
    expected = points_in_polygon(slide.positions, lasso)
    inside = ((slide.positions - centre) ** 2 / np.array([150, 220]) ** 2).sum(axis=1) < 0.9
    assert expected.size > 5 and set(np.flatnonzero(inside)) <= set(expected.tolist())
    assert widget.selection.tolist() == expected.tolist()
    assert widget.selection_count.text() == f"{expected.size} selected"
    assert widget.questions == []

    widget.label_input.setEditText('tumor "edge", zone*')
    widget.assign_button.click()
    labels = layer.features["label"].to_numpy()
    assert all(labels[i] == 'tumor "edge", zone*' for i in expected)
    assert "unsaved" in widget.status.full_text()
    assert widget.label_input.findText('tumor "edge", zone*') >= 0  # now a known label


def test_brush_selection_adds_with_shift_and_hotkeys_assign(curate, qtbot, slide):
    viewer, widget, layer = curate
    widget.set_tool("brush")
    widget.brush_radius.setValue(45.0)
    y0, x0 = slide.positions.min(axis=0) + 60
    stroke = np.array([[y0, x0], [y0, x0 + 300], [y0 + 120, x0 + 300]])
    _drag(viewer, stroke, qtbot)
    first = points_near_path(slide.positions, stroke, 45.0)
    assert first.size > 3 and widget.selection.tolist() == first.tolist()
    second_stroke = stroke + [400, 0]
    _drag(viewer, second_stroke, qtbot, modifiers=("Shift",))
    second = points_near_path(slide.positions, second_stroke, 45.0)
    assert set(widget.selection.tolist()) == set(first.tolist()) | set(second.tolist())

    # hotkey 2 = the second label of the legend order
    categories = widget.editor.categories()
    # the layer keymap holds our bindings: press through napari's key handling
    handler = viewer.window._qt_viewer.canvas._key_map_handler
    viewer.layers.selection.active = layer
    handler.press_key("2")
    handler.release_key("2")
    selected = widget.selection
    assert set(layer.features["label"].to_numpy()[selected]) == {categories[1]}
    handler.press_key("Backspace")  # clears labels, never deletes spots
    handler.release_key("Backspace")
    assert len(layer.data) == slide.n_spots
    assert layer.features["label"].isna().to_numpy()[selected].all()
    handler.press_key("Control-Z")
    handler.release_key("Control-Z")
    assert set(layer.features["label"].to_numpy()[selected]) == {categories[1]}


def test_select_label_invert_and_save_reproduce_file(curate, qtbot, slide):
    viewer, widget, layer = curate
    widget.select_label_combo.setCurrentIndex(widget.select_label_combo.findData("invasive cancer"))
    labels = layer.features["label"].to_numpy()
    widget.select_label()
    wanted = np.flatnonzero(labels == "invasive cancer")
    assert wanted.size and widget.selection.tolist() == wanted.tolist()
    widget.invert_selection()
    assert len(widget.selection) == slide.n_spots - wanted.size

    # save with no net edits: byte-identical file
    original = slide.paths.annotation.read_bytes()
    widget.editor.assign([0], "x")
    widget.undo()
    worker = widget.save()
    with qtbot.waitSignal(worker.finished, timeout=10000):
        pass
    assert slide.paths.annotation.read_bytes() == original


def test_save_on_changed_file_asks_and_saves_elsewhere(curate, qtbot, slide, tmp_path, monkeypatch):
    viewer, widget, layer = curate
    widget.editor.assign([0, 1], "L9")
    slide.paths.annotation.write_bytes(b",V2\ncolleague,edit\n")
    asked = []
    widget.ask = lambda title, text, choices: asked.append(title) or "Save elsewhere…"
    other = tmp_path / "mine.csv"
    monkeypatch.setattr("napari_stimage._qt.curate_widget.QFileDialog.getSaveFileName", lambda *a, **k: (str(other), ""))
    widget.save()
    qtbot.waitUntil(lambda: other.exists() and not widget.editor.dirty, timeout=10000)
    assert asked == ["File changed on disk"]
    assert slide.paths.annotation.read_bytes() == b",V2\ncolleague,edit\n"
    ids = slide.spots["spot_id"].tolist()
    saved = read_annotation(other).first_labels()
    assert saved[ids[0]] == saved[ids[1]] == "L9"


@pytest.mark.timeout(60)
def test_save_of_a_deleted_annotation_asks_before_recreating_it(curate, qtbot, slide):
    viewer, widget, layer = curate
    widget.editor.assign([0], "L9")
    slide.paths.annotation.unlink()
    answers = iter(["Cancel", "Re-create"])
    widget.ask = lambda title, text, choices: widget.questions.append((title, choices)) or next(answers)
    widget.save()
    qtbot.waitUntil(lambda: len(widget.questions) == 1, timeout=10000)
    assert widget.questions == [("File deleted on disk", ("Re-create", "Save elsewhere…", "Cancel"))]
    assert not slide.paths.annotation.exists() and widget.editor.dirty
    widget.save()
    qtbot.waitUntil(lambda: not widget.editor.dirty, timeout=10000)
    assert len(widget.questions) == 2
    spot = slide.spots["spot_id"].tolist()[0]
    assert read_annotation(slide.paths.annotation).first_labels()[spot] == "L9"


def test_closing_with_unsaved_edits_asks_and_recovery_is_offered(make_napari_viewer, slide_paths, qtbot):
    from napari_stimage import load_slide

    viewer = make_napari_viewer()
    slide = load_slide(slide_paths.coord)
    layer = add_slide_to_viewer(viewer, slide)[-1]
    widget = CurateWidget(viewer)
    qtbot.addWidget(widget)
    widget.editor.assign([3, 4], "from scratch")
    questions = []
    widget.ask = lambda title, text, choices: questions.append(title) or "Cancel"
    assert widget.confirm_discard_all() is False  # Cancel keeps the viewer open
    widget.ask = lambda title, text, choices: questions.append(title) or "Don't save"
    viewer.layers.remove(layer)  # asks; not saving leaves the recovery file
    assert questions == ["Unsaved labels", "Unsaved labels"]

    # the slide opened again: recovery is offered and restores the edits
    slide2 = load_slide(slide_paths.coord)
    widget.ask = lambda title, text, choices: questions.append(title) or "Recover"
    layer2 = add_slide_to_viewer(viewer, slide2)[-1]
    qtbot.waitUntil(lambda: "Recover unsaved labels?" in questions, timeout=5000)
    labels = layer2.features["label"].to_numpy()
    assert labels[3] == labels[4] == "from scratch"


def test_slide_without_annotation_is_annotated_from_scratch(make_napari_viewer, tmp_path, qtbot):
    from napari_stimage import load_slide
    from napari_stimage.synthetic import write_synthetic_slide

    paths = write_synthetic_slide(tmp_path / "root", with_annotation=False)
    viewer = make_napari_viewer()
    slide = load_slide(paths.coord)
    layer = add_slide_to_viewer(viewer, slide)[-1]
    widget = CurateWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.status.full_text().endswith("(new file, not saved yet)")  # not "saved": nothing is on disk
    layer.selected_data = {0, 2}
    widget.label_input.setEditText("L1")
    widget.assign_button.click()
    assert widget.status.full_text().endswith("(new file, not saved yet): ● unsaved changes")
    widget.save(block=True)
    assert widget.status.full_text().endswith(": saved") and "new file" not in widget.status.full_text()
    target = paths.default_annotation_path
    # like the dataset's files: every spot once, in coord-file order, unlabelled = empty cell
    ids = list(dict.fromkeys(slide.spots["spot_id"].tolist()))
    expected = "".join(f"{spot},{'L1' if spot in (ids[0], ids[2]) else ''}\n" for spot in ids)
    assert target.read_text() == ",label\n" + expected
    assert read_annotation(target).spot_ids == ids


def test_writer_contribution_saves_labels(make_napari_viewer, slide, tmp_path):
    """File > Save Layers with our writer (through napari's plugin machinery) writes the annotation format."""
    from napari.plugins.io import save_layers

    viewer = make_napari_viewer()
    layer = add_slide_to_viewer(viewer, slide)[-1]
    layer.features.loc[0, "label"] = "via writer, *"
    out = tmp_path / "saved_anno.csv"
    written = save_layers(str(out), [layer], plugin="napari-stimage")
    assert [str(p) for p in written] == [str(out)]
    table = read_annotation(out)
    assert table.first_labels()[slide.spots["spot_id"][0]] == "via writer, *"
    assert table.header == read_annotation(slide.paths.annotation).header
    # every other row is byte-identical to the original file
    original = slide.paths.annotation.read_bytes().decode().splitlines()
    saved = out.read_bytes().decode().splitlines()
    assert len(saved) == len(original)
    assert sum(a != b for a, b in zip(original, saved, strict=True)) == 1


def test_rectangle_selects_and_alt_removes_and_redo_key(curate, qtbot, slide):
    viewer, widget, layer = curate
    widget.set_tool("rectangle")
    lo = slide.positions.min(axis=0) + 50
    shown = []
    _drag(viewer, [lo, lo + [100, 150], lo + [200, 300]], qtbot,
          before_release=lambda: shown.extend(viewer.layers["selection stroke"].data))
    assert len(shown) == 1  # the outline shows while dragging: the box from press to pointer
    np.testing.assert_allclose(sorted(map(tuple, shown[0][:-1])), sorted([(y, x) for y in (lo[0], lo[0] + 200) for x in (lo[1], lo[1] + 300)]),
                               atol=1.0)
    np.testing.assert_array_equal(shown[0][0], shown[0][-1])  # a closed outline
    pos = slide.positions
    box = np.flatnonzero(np.all((pos >= lo) & (pos <= lo + [200, 300]), axis=1))
    assert box.size > 3 and widget.selection.tolist() == box.tolist()
    stroke = viewer.layers["selection stroke"]
    assert len(stroke.data) == 0 and viewer.layers.selection.active is layer  # and is gone after it
    _drag(viewer, [lo, lo + [100, 150]], qtbot, modifiers=("Alt",))
    inner = np.flatnonzero(np.all((pos >= lo) & (pos <= lo + [100, 150]), axis=1))
    assert set(widget.selection.tolist()) == set(box.tolist()) - set(inner.tolist())

    widget.label_input.setEditText("Benign*")
    widget.assign_button.click()
    handler = viewer.window._qt_viewer.canvas._key_map_handler
    for key in ("Control-Z", "Control-Shift-Z"):
        handler.press_key(key)
        handler.release_key(key)
    assert set(layer.features["label"].to_numpy()[widget.selection]) == {"Benign*"}
    assert widget.editor.can_undo and not widget.editor.can_redo
    widget.set_tool("pan")  # the helper layer leaves the layer list with the drawing tool
    assert "selection stroke" not in viewer.layers and viewer.layers.selection.active is layer


def test_closing_the_window_with_unsaved_edits_can_be_cancelled(curate, qtbot):
    viewer, widget, layer = curate
    viewer.window.add_dock_widget(widget)  # the guard sits on the window the widget is docked in
    viewer.window._qt_window.show()
    qtbot.waitUntil(lambda: viewer.window._qt_window in widget._guarded_windows, timeout=5000)
    widget.editor.assign([0], "unsaved")
    answers = iter(["Cancel"])
    widget.ask = lambda title, text, choices: widget.questions.append((title, choices)) or next(answers, "Don't save")
    viewer.window._qt_window.close()
    assert widget.questions == [("Unsaved labels", ("Save", "Don't save", "Cancel"))]
    assert layer in viewer.layers and widget.editor.dirty


def test_a_new_label_does_not_shift_hotkeys_dropdown_or_key_hint(curate, qtbot, slide):
    viewer, widget, layer = curate
    before = widget.editor.categories()
    assert before[:2] == ["adipose tissue", "connective tissue"]
    layer.selected_data = {0, 1}
    widget.label_input.setEditText("Benign")  # sorts before "connective tissue" by name
    widget.assign_button.click()
    assert widget.editor.categories() == [*before, "Benign"]  # appended: the keys keep their meaning
    assert [widget.label_input.itemText(i) for i in range(widget.label_input.count())] == [*before, "Benign"]
    assert widget.hotkey_help.full_text().startswith("1 adipose tissue · 2 connective tissue · ")
    assert "\n2: connective tissue\n" in widget.hotkey_help.toolTip()
    layer.selected_data = {5}
    viewer.layers.selection.active = layer
    _press(viewer, "2")
    assert layer.features["label"][5] == "connective tissue"


def test_key_hint_is_one_elided_line_with_the_full_text_in_its_tooltip(curate, qtbot):
    viewer, widget, layer = curate
    hint = widget.hotkey_help
    widget.resize(260, 700)  # a narrow dock
    widget.show()
    qtbot.waitExposed(widget)
    assert hint.text().endswith("…") and len(hint.text()) < len(hint.full_text())
    for label in widget.editor.categories():
        assert label in hint.toolTip()
    assert "L: Lasso" in hint.toolTip() and "Esc" in hint.toolTip()


def test_typed_labels_are_trimmed_and_near_twins_warned_about(curate, qtbot, slide):
    viewer, widget, layer = curate
    notes = []
    widget._notify = notes.append
    layer.selected_data = {0}
    widget.label_input.setEditText("  Benign  ")
    widget.assign_button.click()
    assert layer.features["label"][0] == "Benign" and "  Benign  " not in widget.editor.categories()
    assert notes == []
    layer.selected_data = {1}
    widget.label_input.setEditText("benign")
    widget.assign_button.click()
    assert notes == ["‘benign’ differs from existing ‘Benign’ only by case"]
    assert layer.features["label"][1] == "benign"  # assigned as typed
    layer.selected_data = {2}
    widget.label_input.setEditText("adipose  tissue")
    widget.assign_button.click()
    assert notes[-1] == "‘adipose  tissue’ differs from existing ‘adipose tissue’ only by spacing"


def test_widget_follows_the_selected_slide(make_napari_viewer, slide_paths, tmp_path, qtbot):
    from napari_stimage import load_slide
    from napari_stimage.synthetic import write_synthetic_slide

    viewer = make_napari_viewer()
    first = add_slide_to_viewer(viewer, load_slide(slide_paths.coord))
    widget = CurateWidget(viewer)
    qtbot.addWidget(widget)
    other_paths = write_synthetic_slide(tmp_path / "other", name="Second_Slide_Synthetic_Visium")
    second = add_slide_to_viewer(viewer, load_slide(other_paths.coord))
    spots_a, spots_b = first[-1], second[-1]
    viewer.layers.selection.active = spots_b
    assert widget.layer is spots_b and widget.layer_combo.currentText() == spots_b.name
    assert widget.editor is editor_for_layer(spots_b)
    viewer.layers.selection.active = first[0]  # the H&E image: the choice stays
    assert widget.layer is spots_b
    viewer.layers.selection.active = spots_a
    assert widget.layer is spots_a and widget.layer_combo.currentText() == spots_a.name
    widget.layer_combo.setCurrentIndex(widget.layer_combo.findText(spots_b.name))  # the chooser still works
    assert widget.layer is spots_b and viewer.layers.selection.active is spots_b

    # a drawing tool carries over to the newly selected slide, its outline layer placed for it
    widget.set_tool("lasso")
    viewer.layers.selection.active = spots_a
    assert widget.layer is spots_a and widget.tool == "lasso" and not spots_a.mouse_pan
    assert [layer.name for layer in viewer.layers].count("selection stroke") == 1
    viewer.layers.remove(spots_a)  # the curated layer closes while drawing: the helper goes too
    assert widget.layer is spots_b and "selection stroke" in viewer.layers
    widget.set_tool("pan")
    assert "selection stroke" not in viewer.layers


def test_dock_scrolls_instead_of_clipping_its_buttons(curate, qtbot):
    from qtpy.QtWidgets import QPushButton, QScrollArea

    viewer, widget, layer = curate
    assert isinstance(widget.scroll_area, QScrollArea) and widget.scroll_area.widgetResizable()
    widget.setFixedSize(330, 300)  # a dock squeezed short and narrow by its neighbours
    widget.show()
    qtbot.waitExposed(widget)
    for button in widget.scroll_area.widget().findChildren(QPushButton):
        if button.isVisible():
            assert button.width() >= button.sizeHint().width() - 1, button.text()
            assert button.height() >= button.sizeHint().height() - 1, button.text()
    assert widget.scroll_area.verticalScrollBar().maximum() > 0
    # the brush radius has a row of its own
    radius = widget.brush_radius
    assert all(abs(b.geometry().center().y() - radius.geometry().center().y()) > 5
               for b in widget.tool_buttons.values())


def test_tool_keys_on_the_spots_layer(curate, qtbot):
    viewer, widget, layer = curate
    viewer.layers.selection.active = layer
    for key, tool in (("L", "lasso"), ("B", "brush"), ("R", "rectangle")):
        _press(viewer, key)
        assert widget.tool == tool and widget.tool_buttons[tool].isChecked()
        assert f"(key {key})" in widget.tool_buttons[tool].toolTip()
    layer.selected_data = {1, 2}
    _press(viewer, "Escape")
    assert widget.tool == "pan" and layer.mode == "pan_zoom" and widget.selection.size == 0
    assert "selection stroke" not in viewer.layers
    _press(viewer, "S")  # napari's own select-mode key is kept
    assert layer.mode == "select"


def test_close_guard_uses_no_private_window_attribute(make_napari_viewer_proxy, slide, qtbot):
    """Docked widgets get napari's public-only viewer proxy, which warns on `Window._qt_window`."""
    import warnings

    viewer = make_napari_viewer_proxy()
    add_slide_to_viewer(viewer, slide)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        widget = CurateWidget(viewer)
        qtbot.addWidget(widget)
        viewer.window.add_dock_widget(widget)
    main_window = viewer.__wrapped__.window._qt_window  # the test, not the plugin, may look
    main_window.show()
    qtbot.waitUntil(lambda: main_window in widget._guarded_windows, timeout=5000)


# -- bin-labels layers (VisiumHD rasters) -----------------------------------------------------





@pytest.fixture
def hd_curate(make_napari_viewer, hd_paths, qtbot):
    """The Curate widget docked first, then the slide opened with napari's File > Open path."""
    viewer = make_napari_viewer()
    widget = CurateWidget(viewer)
    widget.questions = []
    widget.ask = lambda title, text, choices: widget.questions.append(title) or "Don't save"
    qtbot.addWidget(widget)
    viewer.open(str(hd_paths.coord), plugin="napari-stimage")
    viewer.reset_view()
    return viewer, widget, viewer.layers[f"{hd_paths.name} bin labels"]


def _saved_changes(paths, slide, annotation_path=None):
    """Spot id -> label for every spot whose saved label differs from the original file's."""
    before = {s: (v if isinstance(v, str) else None) for s, v in zip(slide.spots["spot_id"], slide.labels, strict=True)}
    after = read_annotation(annotation_path or paths.annotation).first_labels()
    return {s: after.get(s) for s in before if after.get(s) != before[s]}


def _bin_world(grid, row, col):
    return np.asarray(grid.origin) + grid.pitch * np.array([row, col], dtype=float)


def _press(viewer, key):
    handler = viewer.window._qt_viewer.canvas._key_map_handler
    handler.press_key(key)
    handler.release_key(key)


def test_bins_painted_with_napari_tools_take_the_widgets_labels_undo_and_save(hd_curate, hd_paths, qtbot):
    from napari_stimage.coloring import LabelPalette, legend_entries

    viewer, widget, layer = hd_curate
    slide = layer.metadata["stimage_slide"]
    assert [widget.layer_combo.itemText(i) for i in range(widget.layer_combo.count())] == [layer.name]
    assert widget.layer is layer and widget.is_bins and widget.editor is editor_for_layer(layer)
    assert widget.tools.title() == "Select bins" and widget.assign_button.text() == "Assign"
    sync, grid = widget.sync, widget.sync.grid
    ids = slide.spots["spot_id"].to_numpy()

    # napari's paint tool picked in the layer controls: a typed, new label becomes the brush's label
    viewer.window._qt_viewer.controls.widgets[layer].paint_button.click()
    widget.label_input.setEditText("tertiary lymphoid, *new*")
    widget.assign_button.click()
    code = layer.selected_label
    assert sync.categories[code - 1] == "tertiary lymphoid, *new*" and code == len(sync.categories)
    assert layer.mode == "paint" and viewer.layers.selection.active is layer
    assert widget.selection.size == 0 and widget.editor.changes() == {}  # nothing was assigned
    # a real brush stroke on the canvas along row 30, columns 10..20 of the grid
    layer.brush_size = 1
    stroke = [_bin_world(grid, 30, c) for c in np.linspace(10, 20, 21)]
    _drag(viewer, stroke, qtbot, whole_pixels=True)
    on_row = np.flatnonzero((grid.row == 30) & (grid.col >= 10) & (grid.col <= 20))
    painted = {ids[i]: "tertiary lymphoid, *new*" for i in on_row}
    assert widget.editor.changes() == painted
    assert "unsaved" in widget.status.full_text()

    # hotkey 2 picks the legend's second label; the drop-down picks too
    categories = widget.editor.categories()
    _press(viewer, "2")
    assert layer.selected_label == sync.code_of(categories[1]) and layer.mode == "paint"
    widget.label_input.activated.emit(0)
    assert layer.selected_label == sync.code_of(widget.label_input.itemText(0))
    # Clear = eraser: a click on a labelled bin makes it unlabelled
    widget.clear_button.click()
    assert layer.mode == "erase"
    target = int(np.flatnonzero(np.not_equal(widget.editor.labels, None) & (grid.row > 40))[0])
    _drag(viewer, [_bin_world(grid, grid.row[target], grid.col[target])], qtbot, whole_pixels=True)
    assert widget.editor.labels[target] is None and layer.data[grid.row[target], grid.col[target]] == 0
    # undo (widget button) brings it back; redo (Ctrl+Shift+Z on the layer) erases it again; undo again
    widget.undo_button.click()
    assert widget.editor.labels[target] == slide.labels[target]
    assert layer.data[grid.row[target], grid.col[target]] == sync.code_of(slide.labels[target])
    _press(viewer, "Control-Shift-Z")
    assert widget.editor.labels[target] is None
    _press(viewer, "Control-Z")

    # the raster's colours are the label palette's, as on the spots legend
    from napari.utils.colormaps.standardize_color import transform_color

    for entry in legend_entries(widget.editor.labels, LabelPalette()):
        if not entry.unlabelled:
            np.testing.assert_allclose(layer.colormap.map(sync.code_of(entry.label)),
                                       transform_color(entry.color)[0], atol=1e-6)

    worker = widget.save()
    with qtbot.waitSignal(worker.finished, timeout=10000):
        pass
    assert _saved_changes(hd_paths, slide) == painted
    assert not widget.editor.dirty and "saved" in widget.status.full_text() and "unsaved" not in widget.status.full_text()
    assert widget.questions == []


def test_bins_save_on_changed_file_asks_and_saves_elsewhere(hd_curate, hd_paths, qtbot, tmp_path, monkeypatch):
    viewer, widget, layer = hd_curate
    grid, slide = widget.sync.grid, layer.metadata["stimage_slide"]
    spots = np.array([1, 2, 3])
    layer.data_setitem((grid.row[spots], grid.col[spots]), widget.paint_with("L9"))
    hd_paths.annotation.write_bytes(b",V2\ncolleague,edit\n")
    widget.ask = lambda title, text, choices: widget.questions.append(title) or "Save elsewhere…"
    other = tmp_path / "mine.csv"
    monkeypatch.setattr("napari_stimage._qt.curate_widget.QFileDialog.getSaveFileName", lambda *a, **k: (str(other), ""))
    widget.save()
    qtbot.waitUntil(lambda: other.exists() and not widget.editor.dirty, timeout=10000)
    assert widget.questions == ["File changed on disk"]
    assert hd_paths.annotation.read_bytes() == b",V2\ncolleague,edit\n"
    ids = slide.spots["spot_id"].to_numpy()
    assert _saved_changes(hd_paths, slide, other) == {ids[i]: "L9" for i in spots}


def test_bins_close_guard_and_recovery(hd_curate, hd_paths, qtbot):
    from napari_stimage.viewer import bins

    viewer, widget, layer = hd_curate
    grid = widget.sync.grid
    spots = np.array([7, 8, 300])
    layer.data_setitem((grid.row[spots], grid.col[spots]), widget.paint_with("from the raster"))
    widget.ask = lambda title, text, choices: widget.questions.append(title) or "Cancel"
    assert widget.confirm_discard_all() is False  # the unsaved bins keep the viewer open
    widget.ask = lambda title, text, choices: widget.questions.append(title) or "Don't save"
    viewer.layers.remove(layer)  # asks; not saving leaves the edits in the recovery file
    assert widget.questions == ["Unsaved labels", "Unsaved labels"]
    assert widget.layer is not layer

    widget.ask = lambda title, text, choices: widget.questions.append(title) or "Recover"
    viewer.open(str(hd_paths.coord), plugin="napari-stimage")
    again = viewer.layers[f"{hd_paths.name} bin labels"]
    qtbot.waitUntil(lambda: "Recover unsaved labels?" in widget.questions, timeout=5000)
    sync = bins.bin_labels_sync(again)
    assert widget.layer is again and widget.sync is sync
    assert set(sync.editor.labels[spots]) == {"from the raster"}
    assert set(again.data[grid.row[spots], grid.col[spots]].tolist()) == {sync.code_of("from the raster")}


def test_switching_between_spots_and_bins_keeps_bin_undo_on_the_editor(hd_curate, slide, qtbot):
    viewer, widget, layer = hd_curate
    spots_layer = add_slide_to_viewer(viewer, slide)[-1]
    names = [widget.layer_combo.itemText(i) for i in range(widget.layer_combo.count())]
    assert names == [layer.name, spots_layer.name]
    widget.layer_combo.setCurrentIndex(1)
    assert widget.layer is spots_layer and not widget.is_bins
    assert widget.tool_buttons["rectangle"].isEnabled() and widget.assign_button.text() == "Assign"
    # the bins layer, no longer the widget's, still undoes through its editor
    sync = layer.metadata["stimage_label_sync"]
    layer.data_setitem((sync.grid.row[:2], sync.grid.col[:2]), sync.code_of("kept"))
    assert set(sync.editor.labels[:2]) == {"kept"}
    viewer.layers.selection.active = layer
    _press(viewer, "Control-Z")
    assert "kept" not in set(sync.editor.labels[:2]) and not sync.editor.dirty
    assert not np.isin(layer.data[sync.grid.row[:2], sync.grid.col[:2]], [sync.code_of("kept")]).any()
    widget.layer_combo.setCurrentIndex(0)
    assert widget.layer is layer and widget.is_bins and widget.tools.title() == "Select bins"
