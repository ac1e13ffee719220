"""What the curator sees is what is saved: the label the box shows after an edit is the label the
next Assign applies, on bins and on spots, and the saved file carries it. Both widgets docked from
the Plugins menu, selections dragged on the canvas, labels typed, buttons clicked and keys pressed."""

import csv

import numpy as np
import pytest
from qtpy.QtCore import Qt

from gui_user import User

pytestmark = pytest.mark.timeout(120)


def _saved_labels(user) -> dict[str, str]:
    user.qtbot.waitUntil(lambda: "unsaved" not in user.curate.status.full_text(), timeout=10000)
    with open(user.paths.annotation, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return {row[0]: row[1] for row in rows[1:]}


def _box_text(user) -> str:
    return user.curate.labelling.label_input.currentText()


def _assign_twice_and_save(user, centres, ids):
    """Select area A, type a new label, Assign; select area B, Assign again (the box unchanged);
    then an undo, a redo, a second new label (Enter), key 1 and Ctrl+Z: after each, the box's label
    is the one the next Assign gives, and the saved file holds what was assigned."""
    curate = user.curate
    lo, span = centres.min(axis=0), np.ptp(centres, axis=0)
    user.click(curate, "Rectangle")
    user.drag([lo + 0.05 * span, lo + 0.3 * span])
    area_a = curate.selection.copy()
    user.type_label("necrotic core")
    user.click(curate, "Assign")
    assert _box_text(user) == "necrotic core"
    assert set(curate.editor.labels[area_a]) == {"necrotic core"}

    user.drag([lo + 0.6 * span, lo + 0.9 * span])
    area_b = curate.selection.copy()
    assert area_b.size > 3 and not set(area_a.tolist()) & set(area_b.tolist())
    user.click(curate, "Assign")
    assert _box_text(user) == "necrotic core"
    assert set(curate.editor.labels[area_b]) == {"necrotic core"}

    # undo and redo leave the box alone, and the next Assign still gives what it shows
    user.click(curate, "Undo")
    assert _box_text(user) == "necrotic core"
    user.click(curate, "Redo")
    assert _box_text(user) == "necrotic core"

    # a second new label, then key 1 on the canvas: the box never jumps to another label
    user.drag([lo + 0.35 * span, lo + 0.55 * span])
    area_c = np.setdiff1d(curate.selection, np.concatenate([area_a, area_b]))
    curate.set_selection(area_c)
    user.type_label("hotspot")
    user.qtbot.keyClick(curate.labelling.label_input.lineEdit(), Qt.Key.Key_Return)  # Enter assigns too
    assert _box_text(user) == "hotspot"
    assert set(curate.editor.labels[area_c]) == {"hotspot"}
    # key 1 on the canvas labels with the first label; the box keeps what the user typed
    first = curate.editor.categories()[0]
    user.drag([lo + 0.6 * span, lo + 0.9 * span])  # area B
    user.key(Qt.Key.Key_1)
    assert set(curate.editor.labels[area_b]) == {first} and _box_text(user) == "hotspot"
    user.key(Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert set(curate.editor.labels[area_b]) == {"necrotic core"} and _box_text(user) == "hotspot"
    user.drag([lo + 0.05 * span, lo + 0.3 * span])  # area A again
    user.click(curate, "Assign")
    assert _box_text(user) == "hotspot" and set(curate.editor.labels[area_a]) == {"hotspot"}
    user.click(curate, "Undo")
    assert set(curate.editor.labels[area_a]) == {"necrotic core"} and _box_text(user) == "hotspot"

    user.click(curate, "Save")
    saved = _saved_labels(user)
    assert {saved[ids[k]] for k in area_a} == {"necrotic core"}
    assert {saved[ids[k]] for k in area_b} == {"necrotic core"}
    assert {saved[ids[k]] for k in area_c} == {"hotspot"}


def test_bins_get_the_label_the_box_shows(make_napari_viewer, hd_lattice_paths, qtbot):
    from napari_stimage.viewer.bins import bin_grid_of

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    user = User(viewer, qtbot, hd_lattice_paths)
    layer = viewer.layers[f"{hd_lattice_paths.name} bin labels"]
    viewer.layers.selection.active = layer
    grid = bin_grid_of(layer)
    centres = np.array([layer.data_to_world((r, c)) for r, c in zip(grid.row, grid.col, strict=True)])
    ids = layer.metadata["stimage_slide"].spots["spot_id"].to_numpy()
    _assign_twice_and_save(user, centres, ids)


def test_spots_get_the_label_the_box_shows(make_napari_viewer, slide_paths, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    user = User(viewer, qtbot, slide_paths)
    layer = viewer.layers[f"{slide_paths.name} spots"]
    viewer.layers.selection.active = layer
    centres = np.asarray(layer.data, dtype=float)
    ids = layer.features["spot_id"].to_numpy()
    _assign_twice_and_save(user, centres, ids)
