"""The curation widget, headless: lasso and brush drags on the rendered canvas, labels, keys, saving."""

import numpy as np
import pytest

from napari_stimage._widget_curate import CurateWidget
from napari_stimage.annotation import read_annotation
from napari_stimage.editing import editor_for_layer
from napari_stimage.layers import add_slide_to_viewer
from napari_stimage.selection import points_in_polygon, points_near_path


@pytest.fixture
def curate(make_napari_viewer, slide, qtbot):
    viewer = make_napari_viewer()
    layer = add_slide_to_viewer(viewer, slide)[-1]
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


def _drag(viewer, world_path, qtbot, modifiers=(), whole_pixels=False):
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
    scene.events.mouse_release(pos=pos[-1], modifiers=modifiers, button=1)


def test_lasso_selects_spots_inside_and_assigns_a_typed_label(curate, qtbot, slide):
    viewer, widget, layer = curate
    assert widget.layer is layer and widget.editor is editor_for_layer(layer)
    widget.set_tool("lasso")
    assert viewer.layers.selection.active is layer and not viewer.camera.mouse_pan
    centre = slide.positions.mean(axis=0)
    angles = np.linspace(0, 2 * np.pi, 40)
    lasso = centre + np.c_[np.sin(angles) * 150, np.cos(angles) * 220]  # an ellipse
    camera_before = tuple(viewer.camera.center)
    _drag(viewer, lasso, qtbot)
    assert tuple(viewer.camera.center) == camera_before  # drawing did not pan the view
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
    assert "unsaved" in widget.status.text()
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
    layer.bind_key  # the layer keymap holds our bindings: press through napari's key handling
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
    monkeypatch.setattr("napari_stimage._widget_curate.QFileDialog.getSaveFileName", lambda *a, **k: (str(other), ""))
    worker = widget.save()
    qtbot.waitUntil(lambda: other.exists() and not widget.editor.dirty, timeout=10000)
    assert asked == ["File changed on disk"]
    assert slide.paths.annotation.read_bytes() == b",V2\ncolleague,edit\n"
    ids = slide.spots["spot_id"].tolist()
    saved = read_annotation(other).first_labels()
    assert saved[ids[0]] == saved[ids[1]] == "L9"


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
    assert "new file" in widget.status.text()
    layer.selected_data = {0, 2}
    widget.label_input.setEditText("L1")
    widget.assign_button.click()
    widget.save(block=True)
    target = paths.default_annotation_path
    ids = slide.spots["spot_id"].tolist()
    assert target.read_text() == f",label\n{ids[0]},L1\n{ids[2]},L1\n"


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
    assert sum(a != b for a, b in zip(original, saved)) == 1


def test_rectangle_selects_and_alt_removes_and_redo_key(curate, qtbot, slide):
    viewer, widget, layer = curate
    widget.set_tool("rectangle")
    lo = slide.positions.min(axis=0) + 50
    _drag(viewer, [lo, lo + [100, 150], lo + [200, 300]], qtbot)
    pos = slide.positions
    box = np.flatnonzero(np.all((pos >= lo) & (pos <= lo + [200, 300]), axis=1))
    assert box.size > 3 and widget.selection.tolist() == box.tolist()
    stroke = viewer.layers["selection stroke"]
    assert stroke.shape_type == ["rectangle"] and viewer.layers.selection.active is layer
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


def test_closing_the_window_with_unsaved_edits_can_be_cancelled(curate, qtbot):
    viewer, widget, layer = curate
    widget.editor.assign([0], "unsaved")
    answers = iter(["Cancel"])
    widget.ask = lambda title, text, choices: widget.questions.append((title, choices)) or next(answers, "Don't save")
    viewer.window._qt_window.close()
    assert widget.questions == [("Unsaved labels", ("Save", "Don't save", "Cancel"))]
    assert layer in viewer.layers and widget.editor.dirty


# -- bin-labels layers (VisiumHD rasters) -----------------------------------------------------

HD_NAME = "Mouse_Brain_Synthetic_VisiumHD"


@pytest.fixture
def hd_paths(tmp_path, monkeypatch):
    """A VisiumHD-like slide on disk: ~3,700 bins on a square lattice, dense for the test."""
    from napari_stimage import bins
    from napari_stimage.synthetic import write_synthetic_slide

    monkeypatch.setattr(bins, "DENSE_GRID_MIN_SPOTS", 1000)
    return write_synthetic_slide(tmp_path / "STimage-1K4M", name=HD_NAME, tech="VisiumHD", pitch=16.0,
                                 n_genes=20, layout="square")


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
    return viewer, widget, viewer.layers[f"{HD_NAME} bin labels"]


def _saved_changes(paths, slide, annotation_path=None):
    """Spot id -> label for every spot whose saved label differs from the original file's."""
    before = {s: (v if isinstance(v, str) else None) for s, v in zip(slide.spots["spot_id"], slide.labels)}
    after = read_annotation(annotation_path or paths.annotation).first_labels()
    return {s: after.get(s) for s in before if after.get(s) != before[s]}


def _bin_world(grid, row, col):
    return np.asarray(grid.origin) + grid.pitch * np.array([row, col], dtype=float)


def _press(viewer, key):
    handler = viewer.window._qt_viewer.canvas._key_map_handler
    handler.press_key(key)
    handler.release_key(key)


def test_bin_labels_are_painted_through_the_widget_undone_and_saved(hd_curate, hd_paths, qtbot):
    from napari_stimage.coloring import LabelPalette, legend_entries

    viewer, widget, layer = hd_curate
    slide = layer.metadata["stimage_slide"]
    assert [widget.layer_combo.itemText(i) for i in range(widget.layer_combo.count())] == [layer.name]
    assert widget.layer is layer and widget.is_bins and widget.editor is editor_for_layer(layer)
    assert not widget.tool_buttons["rectangle"].isEnabled() and not widget.tool_buttons["click"].isEnabled()
    assert widget.tool_buttons["brush"].isEnabled() and widget.assign_button.text() == "Paint with"
    sync, grid = widget.sync, widget.sync.grid
    ids = slide.spots["spot_id"].to_numpy()

    # a typed, new label becomes the brush's label, in paint mode
    widget.label_input.setEditText("tertiary lymphoid, *new*")
    widget.assign_button.click()
    code = layer.selected_label
    assert sync.categories[code - 1] == "tertiary lymphoid, *new*" and code == len(sync.categories)
    assert layer.mode == "paint" and viewer.layers.selection.active is layer
    # a real brush stroke on the canvas along row 30, columns 10..20 of the grid
    layer.brush_size = 1
    stroke = [_bin_world(grid, 30, c) for c in np.linspace(10, 20, 21)]
    _drag(viewer, stroke, qtbot, whole_pixels=True)
    on_row = np.flatnonzero((grid.row == 30) & (grid.col >= 10) & (grid.col <= 20))
    painted = {ids[i]: "tertiary lymphoid, *new*" for i in on_row}
    assert widget.editor.changes() == painted
    assert "unsaved" in widget.status.text()

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
    assert not widget.editor.dirty and "saved" in widget.status.text() and "unsaved" not in widget.status.text()
    assert widget.questions == []


def test_bins_save_on_changed_file_asks_and_saves_elsewhere(hd_curate, hd_paths, qtbot, tmp_path, monkeypatch):
    viewer, widget, layer = hd_curate
    grid, slide = widget.sync.grid, layer.metadata["stimage_slide"]
    spots = np.array([1, 2, 3])
    layer.data_setitem((grid.row[spots], grid.col[spots]), widget.paint_with("L9"))
    hd_paths.annotation.write_bytes(b",V2\ncolleague,edit\n")
    widget.ask = lambda title, text, choices: widget.questions.append(title) or "Save elsewhere…"
    other = tmp_path / "mine.csv"
    monkeypatch.setattr("napari_stimage._widget_curate.QFileDialog.getSaveFileName", lambda *a, **k: (str(other), ""))
    widget.save()
    qtbot.waitUntil(lambda: other.exists() and not widget.editor.dirty, timeout=10000)
    assert widget.questions == ["File changed on disk"]
    assert hd_paths.annotation.read_bytes() == b",V2\ncolleague,edit\n"
    ids = slide.spots["spot_id"].to_numpy()
    assert _saved_changes(hd_paths, slide, other) == {ids[i]: "L9" for i in spots}


def test_bins_close_guard_and_recovery(hd_curate, hd_paths, qtbot):
    from napari_stimage import bins

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
    again = viewer.layers[f"{HD_NAME} bin labels"]
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
    assert widget.layer is layer and widget.is_bins and not widget.tool_buttons["rectangle"].isEnabled()
