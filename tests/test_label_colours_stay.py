"""A label keeps its colour for as long as its annotation file has it: creating, merging or
removing other labels, and reopening the slide, move no colour. Qt-free palette tests, then the
user's path: both docks from the Plugins menu, labels typed and assigned, the file saved and
the slide opened again in a new viewer (a new session: the remembered colours read from disk)."""

import json

import numpy as np
import pytest

from gui_user import User
from napari_stimage import coloring as col
from napari_stimage.core.labels import label_categories


def _twins(color: str, n: int = 2) -> list[str]:
    """Labels outside the built-in vocabularies whose hashed colour is `color`."""
    names = (f"region {k}" for k in range(10_000))
    return [name for name in names if col.LABEL_PALETTE[col.hashed_palette_index(name)] == color][:n]


@pytest.fixture
def forget_sessions():
    """A new session: the remembered colours are read from disk again."""
    col.LabelColorMemory._open.clear()
    yield col.LabelColorMemory._open.clear
    col.LabelColorMemory._open.clear()


def test_a_new_label_never_takes_an_existing_labels_colour(tmp_path, forget_sessions):
    old, new = sorted(_twins("#76ff03"), key=lambda s: label_categories([s])[0], reverse=True)
    assert label_categories([old, new]) == [new, old]  # the new label sorts first: it used to win
    palette = col.LabelPalette(tmp_path / "user.json").for_annotation(tmp_path / "a_anno.csv")
    before = palette.colors([old])
    after = palette.colors([old, new])  # curation order: a new label is appended
    assert after[old] == before[old] == "#76ff03" and after[new] not in (after[old],)


def test_a_removed_label_leaves_the_others_colours_alone_after_reopening(tmp_path, forget_sessions):
    first, second = _twins("#ff5252")
    anno = tmp_path / "a_anno.csv"
    palette = col.LabelPalette(tmp_path / "user.json")
    shown = palette.for_annotation(anno).colors([first, second])
    assert shown[first] == "#ff5252" and shown[second] != "#ff5252"
    forget_sessions()  # the file reopened without `first`: its colour is free, `second` keeps its own
    assert palette.for_annotation(anno).colors([second]) == {second: shown[second]}
    # another file is another memory: there `second` has its own hashed colour
    assert palette.for_annotation(tmp_path / "b_anno.csv").colors([second]) == {second: "#ff5252"}
    # the user's own colour still wins over a remembered one; built-in labels never move
    palette.set_color(second, "#123456")
    assert palette.for_annotation(anno).colors([second, "TLS"]) == {second: "#123456", "TLS": "#ffd600"}


def test_a_damaged_or_unwritable_memory_costs_only_the_memory(tmp_path, forget_sessions, monkeypatch):
    from napari_stimage.io.cache import annotation_user_file

    anno = tmp_path / "a_anno.csv"
    stored = annotation_user_file(col.LABEL_COLOR_MEMORY_FOLDER, anno)
    stored.write_text('{"tumour": "#0000ff", "x": "not a colour", "y": 3, ')  # cut short
    palette = col.LabelPalette(tmp_path / "user.json")
    assert palette.for_annotation(anno).colors(["tumour"]) == {"tumour": palette.default_color("tumour")}
    assert json.loads(stored.read_text()) == {"tumour": palette.default_color("tumour")}
    forget_sessions()
    stored.write_text(json.dumps({"tumour": "#0000ff", "bad": "javascript:1"}))
    assert palette.for_annotation(anno).colors(["tumour", "bad"])["tumour"] == "#0000ff"
    forget_sessions()
    stored.unlink()
    stored.parent.chmod(0o500)  # a read-only data folder (root ignores this: then it is simply written)
    try:
        assert palette.for_annotation(anno).colors(["tumour"]) == {"tumour": palette.default_color("tumour")}
    finally:
        stored.parent.chmod(0o700)


def _legend(color) -> dict[str, str]:
    return {e.label: e.color for e in color.legend_entries()}


@pytest.mark.timeout(120)
def test_colours_stay_put_through_create_merge_save_and_reopen(make_napari_viewer, slide_paths, qtbot, forget_sessions):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    user = User(viewer, qtbot, slide_paths)
    curate, color = user.curate, user.color
    layer = viewer.layers[f"{slide_paths.name} spots"]
    viewer.layers.selection.active = layer
    color.tabs.setCurrentIndex(1)
    start = _legend(color)
    hashed = "immune infiltrate, dense"  # on the slide, outside the built-in vocabularies
    assert start[hashed] == col.LABEL_PALETTE[col.hashed_palette_index(hashed)]
    # a new label whose hashed colour is the existing label's, and that sorts before it
    twin = next(name for name in (f"a{k} hotspot" for k in range(10_000))
                if col.hashed_palette_index(name) == col.hashed_palette_index(hashed))
    positions = np.asarray(layer.data, dtype=float)
    lo, span = positions.min(axis=0), np.ptp(positions, axis=0)

    user.click(curate, "Rectangle")
    user.drag([lo, lo + 0.2 * span])
    user.type_label(twin)
    user.click(curate, "Assign")
    created = _legend(color)
    assert {label: created[label] for label in start} == start  # nothing moved
    assert created[twin] not in start.values() or created[twin] == start.get(col.UNLABELLED)

    # merge: every spot of the existing hashed label becomes the twin; the twin keeps its colour
    curate.tools.select_label_combo.setCurrentIndex(curate.tools.select_label_combo.findData(hashed))
    user.click(curate, "Select label")
    user.type_label(twin)
    user.click(curate, "Assign")
    assert hashed not in {e.label for e in color.legend_entries() if e.count}
    assert _legend(color)[twin] == created[twin]
    user.click(curate, "Save")
    qtbot.waitUntil(lambda: "unsaved" not in curate.status.full_text(), timeout=10000)

    # a new session: the file no longer has the hashed label, its colour is free; the twin keeps its own
    viewer.layers.clear()
    forget_sessions()
    reopened = user.open(slide_paths)
    viewer.layers.selection.active = reopened
    qtbot.waitUntil(lambda: color.layer is reopened, timeout=5000)
    color.tabs.setCurrentIndex(1)
    again = _legend(color)
    assert again[twin] == created[twin]
    assert {label: again[label] for label in again if label in start} == {label: start[label] for label in again if label in start}
    # the spots are drawn in those colours, as before the reopening
    twins = np.flatnonzero(reopened.features["label"].to_numpy() == twin)
    assert twins.size and {col.rgba_to_hex(c) for c in reopened.face_color[twins]} == {created[twin]}
