"""Curating VisiumHD bins as a user does: both widgets docked from the Plugins menu, the slide
opened with File > Open, Rectangle / Lasso / Brush / Click dragged and clicked on the canvas,
keys 1-9 pressed on it, the selection's outline read from screenshots, the labels from the
saved file. On a square lattice and on one tilted by 4 degrees."""

import csv

import numpy as np
import pytest
from qtpy.QtCore import Qt

from gui_user import User
from napari_stimage.core.selection import points_in_polygon, points_near_path
from napari_stimage.viewer.bins import bin_grid_of
from napari_stimage.viewer.canvas import camera

pytestmark = pytest.mark.timeout(120)
MAGENTA = np.array([255, 0, 255])


@pytest.fixture
def hd_user(make_napari_viewer, hd_lattice_paths, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    user = User(viewer, qtbot, hd_lattice_paths)
    user.layer = viewer.layers[f"{hd_lattice_paths.name} bin labels"]
    user.slide = user.layer.metadata["stimage_slide"]
    user.grid = bin_grid_of(user.layer)
    # every bin centre in world coordinates, through the layer's own placement (tilt included)
    user.centres = np.array([user.layer.data_to_world((r, c)) for r, c in zip(user.grid.row, user.grid.col, strict=True)])
    return user


def _world_pitch(user) -> float:
    return float(np.linalg.norm(user.centres[1] - user.layer.data_to_world((user.grid.row[1], user.grid.col[1] + 1))))


def _in_rectangle(user, a, b, margin) -> np.ndarray:
    lo, hi = np.minimum(a, b) + margin, np.maximum(a, b) - margin
    return np.flatnonzero(np.all((user.centres >= lo) & (user.centres <= hi), axis=1))


def _assert_rectangle_selection(user, path):
    """The selection is the bins whose centre the dragged box covers (a bin within 2% of a
    pitch of the box's edge may go either way)."""
    margin = 0.02 * _world_pitch(user)
    surely_in = set(_in_rectangle(user, path[0], path[-1], margin).tolist())
    maybe_in = set(_in_rectangle(user, path[0], path[-1], -margin).tolist())
    selected = set(user.curate.selection.tolist())
    assert surely_in <= selected <= maybe_in and len(surely_in) > 20


def _selection_edges(user, selected: np.ndarray) -> tuple[int, int]:
    """A selected bin on the outline (a 4-neighbour is not selected) and one deep inside."""
    grid = user.grid
    chosen = np.zeros(grid.shape, dtype=bool)
    chosen[grid.row[selected], grid.col[selected]] = True
    padded = np.pad(chosen, 2)
    edge = inner = None
    for k in selected.tolist():
        r, c = grid.row[k] + 2, grid.col[k] + 2
        if not padded[r - 1:r + 2, c - 1:c + 2].all() and edge is None and padded[r, c - 1:c + 2].sum() == 2:
            edge = k  # on the left or right side of the patch, not a corner
        if padded[r - 2:r + 3, c - 2:c + 3].all() and inner is None:
            inner = k
    return edge, inner


def test_tools_select_bins_and_keys_label_them(hd_user):
    user, curate = hd_user, hd_user.curate
    layer, grid, centres = user.layer, user.grid, user.centres
    assert curate.tools.title() == "Select bins" and all(b.isEnabled() for b in curate.tool_buttons.values())
    lo, hi = centres.min(axis=0), centres.max(axis=0)
    span = hi - lo
    screen_pitch = _world_pitch(user) * camera(user.viewer).zoom
    assert screen_pitch > 6  # a bin covers several screen pixels: colours can be read per bin

    # Rectangle: a box dragged on the canvas selects the bins inside, outlined in magenta
    user.click(curate, "Rectangle")
    assert layer.mode == "pan_zoom" and not layer.mouse_pan
    box = user.drag([lo + 0.25 * span, lo + 0.35 * span, lo + 0.55 * span])
    _assert_rectangle_selection(user, box)
    selected = curate.selection
    assert curate.selection_count.text() == f"{selected.size} selected"
    outline = user.viewer.layers[f"{layer.name} selection"]
    assert user.viewer.layers.selection.active is layer  # keys and drags still go to the bins
    shot = user.screenshot()
    edge, inner = _selection_edges(user, selected)
    outside = int(np.flatnonzero(~np.isin(np.arange(grid.n_spots), selected) & (np.abs(centres - lo - 0.8 * span).max(axis=1) < 3 * _world_pitch(user)))[0])
    assert np.abs(user.pixel(shot, centres[edge]) - MAGENTA).max() < 40
    assert np.abs(user.pixel(shot, centres[inner]) - MAGENTA).max() > 80  # the labels show inside
    assert np.abs(user.pixel(shot, centres[outside]) - MAGENTA).max() > 80

    # Shift + Lasso adds the bins inside a free-hand outline elsewhere
    user.click(curate, "Lasso")
    loop = [lo + span * f for f in ([0.7, 0.1], [0.9, 0.15], [0.85, 0.35], [0.65, 0.3])]
    loop = user.drag([*loop, loop[0]], Qt.KeyboardModifier.ShiftModifier)
    lassoed = points_in_polygon(centres, loop)
    assert lassoed.size > 5 and set(curate.selection.tolist()) == set(selected.tolist()) | set(lassoed.tolist())

    # Alt + Brush removes the bins under a stroke (radius in image pixels)
    user.click(curate, "Brush")
    curate.brush_radius.setValue(1.2 * grid.pitch)
    zoom = camera(user.viewer).zoom
    stroke = user.drag([lo + span * [0.4, 0.2], lo + span * [0.4, 0.45], lo + span * [0.42, 0.6]], Qt.KeyboardModifier.AltModifier)
    raster_path = np.array([layer.world_to_data(p) for p in stroke])
    brushed = points_near_path(np.column_stack([grid.row, grid.col]), raster_path, 1.2)
    expected = (set(selected.tolist()) | set(lassoed.tolist())) - set(brushed.tolist())
    assert brushed.size > 3 and set(curate.selection.tolist()) == expected
    assert camera(user.viewer).zoom == zoom  # Alt belongs to the tool: napari did not zoom to the box

    # Click: the bin under the pointer; Shift-click adds one
    user.click(curate, "Click")
    a, b = int(selected[0]), int(lassoed[-1])
    user.drag([centres[a]])
    assert curate.selection.tolist() == [a]
    user.drag([centres[b]], Qt.KeyboardModifier.ShiftModifier)
    assert curate.selection.tolist() == sorted([a, b])

    # keys on the canvas: 1 labels the selection with the first label, Ctrl+Z undoes it
    user.click(curate, "Rectangle")
    box = user.drag([lo + 0.25 * span, lo + 0.55 * span])
    chosen = curate.selection
    first = curate.editor.categories()[0]
    before = curate.editor.labels
    user.key(Qt.Key.Key_1)
    assert all(curate.editor.labels[chosen] == first)
    assert set(layer.data[grid.row[chosen], grid.col[chosen]].tolist()) == {curate.sync.code_of(first)}
    untouched = np.setdiff1d(np.arange(grid.n_spots), chosen)
    assert list(curate.editor.labels[untouched]) == list(before[untouched])
    user.key(Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert list(curate.editor.labels) == list(before)

    # Escape: back to pan/zoom, nothing selected, the outline gone
    user.key(Qt.Key.Key_Escape)
    assert curate.tool == "pan" and layer.mouse_pan and curate.selection.size == 0
    assert outline not in user.viewer.layers


def test_hidden_labels_are_protected_and_the_selection_labelled_and_saved(hd_user):
    user, curate, color = hd_user, hd_user.curate, hd_user.color
    grid, centres, ids = user.grid, user.centres, user.slide.spots["spot_id"].to_numpy()
    labels = curate.editor.labels
    hidden = "invasive cancer"
    color.tabs.setCurrentIndex(1)  # Label mode: the legend lists the bins' labels
    color.legend_rows[hidden][1].click()  # the legend checkbox hides the label
    user.viewer.layers.selection.active = user.layer  # back to the bins, as a click in the layer list would

    user.click(curate, "Rectangle")
    lo, hi = centres.min(axis=0), centres.max(axis=0)
    user.drag([lo - 5, hi + 5])  # every bin
    assert set(curate.selection.tolist()) == set(np.flatnonzero(labels != hidden).tolist())

    # a new label typed and assigned goes to the selected bins only, never to the hidden ones
    user.type_label("tertiary lymphoid")
    user.click(curate, "Assign")
    now = curate.editor.labels
    assert all(now[labels == hidden] == hidden)
    assert set(now[labels != hidden]) == {"tertiary lymphoid"}
    # the legend counts follow the edit
    counts = {e.label: e.count for e in color.legend_entries()}
    assert counts["tertiary lymphoid"] == int((labels != hidden).sum()) and counts[hidden] == int((labels == hidden).sum())

    user.click(curate, "Save")
    user.qtbot.waitUntil(lambda: "saved" in curate.status.full_text() and "unsaved" not in curate.status.full_text(),
                         timeout=10000)
    with open(user.paths.annotation, newline="", encoding="utf-8") as f:
        saved = {row[0]: row[1] for row in csv.reader(f)}
    for k in range(grid.n_spots):
        if ids[k] in saved:
            assert saved[ids[k]] == (hidden if labels[k] == hidden else "tertiary lymphoid")


def test_the_outline_goes_with_its_layer_and_the_dock_gives_alt_zoom_back(hd_user):
    user, curate, viewer = hd_user, hd_user.curate, hd_user.viewer
    user.click(curate, "Lasso")
    assert not any(getattr(cb, "__name__", "") == "drag_to_zoom" for cb in viewer.mouse_drag_callbacks)
    curate.set_selection(np.arange(40))
    assert f"{user.layer.name} selection" in viewer.layers and "selection stroke" in viewer.layers

    # a gene shown after the selection was made: the next selection change puts the outline back on top
    user.type_gene("COL1A1")
    assert viewer.layers[-1].name == f"{user.slide.name} gene"
    curate.set_selection(np.arange(50))
    assert viewer.layers[-1].name == f"{user.layer.name} selection"
    # and a drag raises the stroke above the gene too, so the lasso shows while it is drawn
    viewer.layers.move(viewer.layers.index(viewer.layers[f"{user.slide.name} gene"]), len(viewer.layers))
    lo, span = user.centres.min(axis=0), np.ptp(user.centres, axis=0)
    user.drag([lo + span * f for f in ([0.2, 0.2], [0.2, 0.4], [0.4, 0.4], [0.2, 0.2])])
    names = [layer.name for layer in viewer.layers]
    assert names.index("selection stroke") > names.index(f"{user.slide.name} gene")
    assert viewer.layers.selection.active is user.layer

    # closing the dock (its title bar's X hides it) leaves no drawing tool behind
    dock = viewer.window.dock_widgets["Curate labels (napari-stimage)"].parent()
    dock.hide()
    assert "selection stroke" not in viewer.layers
    assert any(getattr(cb, "__name__", "") == "drag_to_zoom" for cb in viewer.mouse_drag_callbacks)
    dock.show()

    # removing the bin labels takes their selection outline with them
    viewer.layers.remove(user.layer)
    assert [layer.name for layer in viewer.layers if "selection" in layer.name] == []
    assert curate.target is None and curate.selection_count.text() == "0 selected"
