"""The plugin exactly as a user meets it: a shown viewer, File > Open (`viewer.open(..., plugin=)`),
widgets docked from the Plugins menu (`add_plugin_dock_widget`, which hands them napari's
`PublicOnlyProxy` viewer), buttons clicked, text typed, keys and mouse drags sent to the canvas,
and the result checked in screenshots and in the saved file's bytes.

Questions (unsaved edits, recovery) are answered by replacing the docked widget's `ask`.
"""

import csv
import time

import numpy as np
import pytest
from qtpy.QtCore import QEvent, QPointF, Qt
from qtpy.QtWidgets import QApplication, QCheckBox, QLabel, QPushButton, QToolButton

from gui_user import User, spots_layer_name_for
from napari_stimage import coloring as col
from napari_stimage.core.selection import (
    points_in_polygon,
    points_in_rectangle,
    points_near_path,
)
from napari_stimage.viewer.canvas import camera
from napari_stimage.viewer.editors import editor_for_layer

# A switch that re-entered itself (the proxy-viewer recursion) ran for about a minute: 10 s fails
# it on any machine, however loaded. The < 1 s target is measured by benchmarks/bench_tool_switch.py.
TOOL_SWITCH_LIMIT_S = 10.0


@pytest.fixture
def user(make_napari_viewer, slide_paths, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    u = User(viewer, qtbot, slide_paths)
    u.layer = viewer.layers[spots_layer_name_for(slide_paths)]
    u.slide = u.layer.metadata["stimage_slide"]
    return u


def _saved_rows(path) -> dict[str, list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return {row[0]: row for row in csv.reader(f)}


def _changed_lines(before: bytes, after: bytes) -> list[tuple[bytes, bytes]]:
    return [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]


# -- the widgets on napari's proxy -------------------------------------------------------------
def test_docked_widgets_follow_the_opened_slide_through_napari_s_proxy(user):
    assert type(user.curate.viewer).__name__ == "PublicOnlyProxy"  # what napari hands a plugin
    assert type(user.color.viewer).__name__ == "PublicOnlyProxy"
    assert user.curate.layer is user.layer and user.color.layer is user.layer
    assert user.curate.layer_combo.currentText() == user.layer.name
    assert user.slide.name in user.color.slide_label.text()


def test_every_tool_switch_completes_at_once_and_adds_one_stroke_layer(user):
    rebinds = []
    follow = user.curate.follower._on_follow
    user.curate.follower._on_follow = lambda layer: rebinds.append(layer) or follow(layer)
    for tool, title in (("rectangle", "Rectangle"), ("lasso", "Lasso"), ("brush", "Brush"),
                        ("click", "Click"), ("rectangle", "Rectangle"), ("pan", "Pan/zoom")):
        start = time.perf_counter()
        user.click(user.curate, title)
        elapsed = time.perf_counter() - start
        assert elapsed < TOOL_SWITCH_LIMIT_S, f"{title} took {elapsed:.2f} s"
        assert user.curate.tool == tool and user.button(user.curate, title).isChecked()
        assert user.curate.layer is user.layer  # choosing a tool never rebinds the widget
        strokes = [layer.name for layer in user.viewer.layers].count("selection stroke")
        assert strokes == (1 if tool in ("rectangle", "lasso", "brush") else 0)
        assert user.viewer.layers.selection.active is user.layer  # drags and keys go to the spots
    for key, tool in ((Qt.Key.Key_L, "lasso"), (Qt.Key.Key_B, "brush"), (Qt.Key.Key_R, "rectangle")):
        start = time.perf_counter()
        user.key(key)
        assert time.perf_counter() - start < TOOL_SWITCH_LIMIT_S
        assert user.curate.tool == tool
    user.key(Qt.Key.Key_Escape)
    assert user.curate.tool == "pan" and "selection stroke" not in user.viewer.layers
    assert rebinds == []  # the stroke layer coming and going never re-entered the widget's binding


# -- selecting, labelling, undo, save ----------------------------------------------------------
def test_rectangle_drag_hotkey_undo_redo_and_save_write_the_labels(user):
    slide, layer, curate = user.slide, user.layer, user.curate
    before_bytes = user.paths.annotation.read_bytes()
    user.click(curate, "Rectangle")
    centre = slide.positions.mean(axis=0)
    corner_a, corner_b = centre - (90, 140), centre + (60, 100)
    dragged = user.drag([corner_a, (corner_a + corner_b) / 2, corner_b])
    expected = points_in_rectangle(slide.positions, dragged[0], dragged[-1])
    assert expected.size > 3 and curate.selection.tolist() == expected.tolist()
    assert curate.selection_count.text() == f"{expected.size} selected"

    first_label = editor_for_layer(layer).categories()[0]
    user.key(Qt.Key.Key_1)
    labels = layer.features["label"].to_numpy()
    assert all(labels[i] == first_label for i in expected)
    assert "unsaved" in curate.status.full_text()
    user.key(Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not all(layer.features["label"].to_numpy()[i] == first_label for i in expected)
    user.click(curate, "Redo")
    assert all(layer.features["label"].to_numpy()[i] == first_label for i in expected)

    user.click(curate, "Save")
    user.qtbot.waitUntil(lambda: "saved" in curate.status.full_text() and "unsaved" not in curate.status.full_text(),
                         timeout=10000)
    after_bytes = user.paths.annotation.read_bytes()
    ids = slide.spots["spot_id"].to_numpy()
    rows = _saved_rows(user.paths.annotation)
    for i in expected:
        assert rows[ids[i]][1] == first_label
    # every other line is byte for byte what it was
    changed = _changed_lines(before_bytes, after_bytes)
    assert changed and all(new.split(b",", 1)[0].decode() in set(ids[expected]) for _, new in changed)


def test_lasso_and_brush_drags_then_typed_label_and_assign_button(user):
    slide, layer, curate = user.slide, user.layer, user.curate
    user.click(curate, "Lasso")
    camera_before = tuple(camera(user.viewer).center)
    centre = slide.positions.mean(axis=0)
    angles = np.linspace(0, 2 * np.pi, 30)
    lasso = centre + np.c_[np.sin(angles) * 120, np.cos(angles) * 160]
    inside = points_in_polygon(slide.positions, user.drag(lasso))
    assert inside.size > 3 and curate.selection.tolist() == inside.tolist()
    assert tuple(camera(user.viewer).center) == camera_before  # drawing did not pan the view

    user.type_label("tumour margin")
    user.click(curate, "Assign")
    labels = layer.features["label"].to_numpy()
    assert all(labels[i] == "tumour margin" for i in inside)

    user.click(curate, "Brush")
    radius = curate.brush_radius.value()
    stroke = [slide.positions[0] + (0, k * 5.0) for k in range(8)]
    dragged = user.drag(stroke, Qt.KeyboardModifier.ShiftModifier)  # Shift adds to the selection
    brushed = points_near_path(slide.positions, dragged, radius)
    assert brushed.size and set(curate.selection.tolist()) == set(inside.tolist()) | set(brushed.tolist())
    user.click(curate, "Undo")
    assert all(layer.features["label"].to_numpy()[i] != "tumour margin" for i in inside)


def test_click_tool_selects_the_spot_under_the_mouse(user):
    slide, curate = user.slide, user.curate
    user.click(curate, "Click")
    spot = int(np.argmin(np.abs(slide.positions - slide.positions.mean(axis=0)).sum(axis=1)))
    user.drag([slide.positions[spot]])  # a click: press and release at one place
    assert curate.selection.tolist() == [spot]


# -- colouring ---------------------------------------------------------------------------------
def test_gene_typed_and_enter_colours_the_spots_on_screen(user):
    slide, layer, color = user.slide, user.layer, user.color
    user.viewer.layers[slide.name].visible = False  # the spots alone on the black canvas
    layer.border_width = 0
    color.tabs.setCurrentIndex(0)
    color.colorbar_check.setChecked(False)
    color.non_expressing_combo.setCurrentText("colormap")
    color.colormap_combo.setCurrentText("magma")
    color.opacity_slider.setValue(1.0)
    user.type_gene("ERBB2")
    assert color.state().gene.genes == ("ERBB2",)
    shot = user.screenshot()
    values = np.log1p(slide.gene_values("ERBB2"))
    hot = int(np.flatnonzero(values >= color.state().gene.contrast_limits[1])[0])
    cold = int(np.flatnonzero(values == 0)[0])
    from napari.utils.colormaps import ensure_colormap

    top = (ensure_colormap("magma").map(np.array([1.0]))[0][:3] * 255).astype(int)
    assert np.abs(user.pixel(shot, slide.positions[hot]) - top).max() <= 12
    assert user.pixel(shot, slide.positions[cold]).sum() < user.pixel(shot, slide.positions[hot]).sum() / 3


def test_legend_hide_and_solo_show_on_screen(user):
    slide, layer, color = user.slide, user.layer, user.color
    color.tabs.setCurrentIndex(1)
    color.opacity_slider.setValue(1.0)
    shown = col.display_labels(layer.features["label"].to_numpy())
    hidden, kept = "invasive cancer", "connective tissue"
    i, j = int(np.flatnonzero(shown == hidden)[0]), int(np.flatnonzero(shown == kept)[0])
    layer.visible = False
    bare = user.screenshot()
    layer.visible = True
    before = user.screenshot()
    assert np.abs(user.pixel(before, slide.positions[i]) - user.pixel(bare, slide.positions[i])).max() > 40

    row = color.legend_rows[hidden][1]  # a checkbox whose label wraps
    check = row.box
    assert isinstance(check, QCheckBox) and check.isVisible() and row.text().endswith(f"{hidden}  ({(shown == hidden).sum()})")
    user.qtbot.mouseClick(check, Qt.MouseButton.LeftButton)
    shot = user.screenshot()
    assert np.abs(user.pixel(shot, slide.positions[i]) - user.pixel(bare, slide.positions[i])).max() <= 8
    assert np.abs(user.pixel(shot, slide.positions[j]) - user.pixel(before, slide.positions[j])).max() <= 8

    solo = color.legend_rows[kept][2]
    assert isinstance(solo, QToolButton) and solo.isVisible()
    user.qtbot.mouseClick(solo, Qt.MouseButton.LeftButton)
    shot = user.screenshot()
    other = int(np.flatnonzero((shown != kept) & (shown != hidden) & (shown != ""))[0])
    assert np.abs(user.pixel(shot, slide.positions[other]) - user.pixel(bare, slide.positions[other])).max() <= 8
    assert np.abs(user.pixel(shot, slide.positions[j]) - user.pixel(before, slide.positions[j])).max() <= 8
    user.click(color, "Show all")
    assert layer.shown.all()


# -- several slides, closing slides ------------------------------------------------------------
def test_two_slides_each_widget_follows_the_selected_one(user, tmp_path):
    from napari_stimage.synthetic import write_synthetic_slide

    other_paths = write_synthetic_slide(tmp_path / "other", name="Second_Slide_Synthetic_Visium", seed=3)
    second = user.open(other_paths)
    assert user.curate.layer is second and user.color.layer is second
    assert [user.curate.layer_combo.itemText(k) for k in range(user.curate.layer_combo.count())] == [
        user.layer.name, second.name]
    user.click(user.curate, "Rectangle")
    user.viewer.layers.selection.active = user.viewer.layers[user.slide.name]  # the H&E: the choice stays
    assert user.curate.layer is second
    start = time.perf_counter()
    user.viewer.layers.selection.active = user.layer  # the first slide's spots in the layer list
    assert time.perf_counter() - start < TOOL_SWITCH_LIMIT_S
    assert user.curate.layer is user.layer and user.color.layer is user.layer
    assert user.curate.layer_combo.currentText() == user.layer.name
    assert [layer.name for layer in user.viewer.layers].count("selection stroke") == 1
    centre = user.slide.positions.mean(axis=0)
    dragged = user.drag([centre - 60, centre + 60])
    assert user.curate.selection.tolist() == points_in_rectangle(user.slide.positions, *dragged).tolist()
    assert len(second.selected_data) == 0


def test_removing_a_slides_layers_with_the_widgets_open_then_reopening_it(user):
    viewer, curate, color = user.viewer, user.curate, user.color
    user.click(curate, "Brush")
    user.layer.selected_data = {1, 2, 3}
    user.type_label("to recover")
    user.qtbot.keyClick(curate.label_input.lineEdit(), Qt.Key.Key_Return)
    user.answers["Unsaved labels"] = "Don't save"
    viewer.layers.remove(user.layer)  # asks; not saving keeps the edits in the recovery file
    viewer.layers.remove(user.slide.name)
    assert user.questions == ["Unsaved labels"]
    assert curate.layer is None and curate.editor is None and color.layer is None
    assert curate.layer_combo.count() == 0 and "Open a slide" in curate.status.full_text()
    assert color.legend_rows == {} and "Select a slide" in color.slide_label.text()
    assert not any(b.isEnabled() for b in (curate.assign_button, curate.save_button))
    assert "selection stroke" not in viewer.layers

    user.answers["Recover unsaved labels?"] = "Recover"
    again = user.open(user.paths)
    user.qtbot.waitUntil(lambda: "Recover unsaved labels?" in user.questions, timeout=10000)
    user.qtbot.wait(300)
    assert user.questions.count("Recover unsaved labels?") == 1  # asked once, after the slide opened:
    names, open_progress_bars = user.asked_with
    assert names[:2] == [user.slide.name, again.name] and open_progress_bars == 0  # the slide is in, napari's progress closed
    assert curate.layer is again and color.layer is again
    assert set(again.features["label"].to_numpy()[[1, 2, 3]]) == {"to recover"}
    start = time.perf_counter()
    user.click(curate, "Lasso")
    assert time.perf_counter() - start < TOOL_SWITCH_LIMIT_S
    assert viewer.layers.selection.active is again


# -- closing with unsaved edits ----------------------------------------------------------------
def _edit(user):
    user.layer.selected_data = {5, 6}
    user.key(Qt.Key.Key_1)
    assert editor_for_layer(user.layer).dirty
    return editor_for_layer(user.layer).categories()[0]


@pytest.fixture
def no_napari_close_dialog():
    from napari.settings import get_settings

    settings = get_settings().application
    before = settings.confirm_close_window
    settings.confirm_close_window = False  # napari's own "close?" box would wait for a person
    yield
    settings.confirm_close_window = before


def _file_action(viewer, title):
    menu_bar = viewer.window._qt_window.menuBar()
    file_menu = next(a.menu() for a in menu_bar.actions() if a.text().replace("&", "") == "File")
    return next(a for a in file_menu.actions() if a.text() == title)


def test_file_exit_with_unsaved_edits_asks_and_cancel_keeps_them(user, no_napari_close_dialog):
    _edit(user)
    user.answers["Unsaved labels"] = "Cancel"
    _file_action(user.viewer, "Exit").trigger()
    assert user.questions == ["Unsaved labels"]
    window = user.viewer.window._qt_window
    assert window.isVisible() and editor_for_layer(user.layer).dirty
    window._quit_app = False  # napari leaves a cancelled Exit armed; the fixture's close must not quit Qt


@pytest.mark.parametrize("answer", ["Save", "Don't save", "Cancel"])
def test_file_close_window_with_unsaved_edits_asks(user, no_napari_close_dialog, answer):
    before = user.paths.annotation.read_bytes()
    label = _edit(user)
    user.answers["Unsaved labels"] = answer
    window = user.viewer.window._qt_window
    window.activateWindow()
    user.qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    _file_action(user.viewer, "Close Window").trigger()
    assert user.questions == ["Unsaved labels"]
    assert window.isVisible() == (answer == "Cancel")
    after = user.paths.annotation.read_bytes()
    if answer == "Save":
        ids = user.slide.spots["spot_id"].to_numpy()
        assert _saved_rows(user.paths.annotation)[ids[5]][1] == label
    else:
        assert after == before
    if answer == "Cancel":
        assert editor_for_layer(user.layer).dirty
    else:  # napari deleted the closed window; its fixture would close it a second time
        del user.viewer.window._qt_window


@pytest.mark.parametrize("answer", ["Save", "Don't save"])
def test_closing_the_last_viewer_from_python_asks(user, answer):
    before = user.paths.annotation.read_bytes()
    label = _edit(user)
    editor = editor_for_layer(user.layer)
    user.answers["Unsaved labels"] = answer
    user.viewer.close()
    assert user.questions == ["Unsaved labels"]
    if answer == "Save":
        ids = user.slide.spots["spot_id"].to_numpy()
        assert _saved_rows(user.paths.annotation)[ids[5]][1] == label
    else:
        assert user.paths.annotation.read_bytes() == before
        assert editor.find_recovery() is not None  # "don't save" leaves them for the next opening


@pytest.mark.parametrize("answer", ["Save", "Don't save"])
def test_removing_the_slide_layer_with_unsaved_edits_asks(user, answer):
    before = user.paths.annotation.read_bytes()
    label = _edit(user)
    editor = editor_for_layer(user.layer)
    user.answers["Unsaved labels"] = answer
    user.viewer.layers.remove(user.layer)
    assert user.questions == ["Unsaved labels"]
    if answer == "Save":
        ids = user.slide.spots["spot_id"].to_numpy()
        assert _saved_rows(user.paths.annotation)[ids[5]][1] == label
    else:
        assert user.paths.annotation.read_bytes() == before and editor.find_recovery() is not None


# -- the same words on every path, and the first window -----------------------------------------
def _hover(user, world_rc) -> str:
    """Move the mouse over `world_rc`; the status text napari shows for it (its status thread runs
    `update_status_from_cursor` while the mouse is in the window; here it is called directly)."""
    p = user.to_canvas(world_rc)
    for q in (QPointF(p.x() + 2, p.y()), p):
        user._mouse(QEvent.Type.MouseMove, q, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
        user.qtbot.wait(20)
    user.viewer.update_status_from_cursor()
    status = user.viewer.status
    text = status["coordinates"] if isinstance(status, dict) else str(status)
    return text.split(": ", 1)[-1]  # the spot's values, without the cursor's pixel coordinates


class CommandUser(User):
    """The window `napari-stimage open PATH` builds: `open_slide_in_viewer` docks the widgets."""

    def __init__(self, viewer, qtbot, paths):
        from napari_stimage._qt.loading import open_slide_in_viewer

        self.viewer, self.qtbot, self.paths = viewer, qtbot, paths
        self.questions, self.answers = [], {}
        open_slide_in_viewer(viewer, paths.coord)
        qtbot.waitUntil(lambda: len(viewer.window.dock_widgets) == 2, timeout=20000)
        self.curate = viewer.window.dock_widgets["Curate labels (napari-stimage)"]
        self.color = viewer.window.dock_widgets["Color spots (napari-stimage)"]
        self.curate.ask = self._answer
        qtbot.waitExposed(self.canvas)
        qtbot.wait(50)  # the view is fitted once the docks are laid out


def _what_the_user_reads(user) -> dict:
    from napari.utils.notifications import notification_manager

    def last_notification(action):
        before = len(notification_manager.records)
        action()
        return [r.message for r in notification_manager.records[before:]]

    layer = user.viewer.layers[spots_layer_name_for(user.paths)]
    slide = layer.metadata["stimage_slide"]
    read = {"hover": _hover(user, slide.positions[10])}
    user.click(user.curate, "Rectangle")
    read["status bar"] = user.viewer.help
    read["no label typed"] = last_notification(lambda: user.click(user.curate, "Assign"))
    user.type_label("stroma")
    read["nothing selected"] = last_notification(lambda: user.click(user.curate, "Assign"))
    layer.selected_data = {10}
    user.click(user.curate, "Assign")
    read["hover after labelling"] = _hover(user, slide.positions[10])
    read["saved"] = last_notification(lambda: (user.curate.save(block=True)))
    read["slide"] = user.color.slide_label.text()
    return read


def test_hover_status_bar_and_notifications_are_the_same_as_in_the_command_s_window(make_napari_viewer, slide_paths, qtbot,
                                                                                  tmp_path):
    command_viewer = make_napari_viewer(show=True)
    command_viewer.window._qt_window.resize(1400, 900)
    command = _what_the_user_reads(CommandUser(command_viewer, qtbot, slide_paths))
    from napari_stimage.synthetic import write_synthetic_slide

    same_slide = write_synthetic_slide(tmp_path / "again")  # the first run saved its labels
    assert same_slide.name == slide_paths.name
    plugin_viewer = make_napari_viewer(show=True)
    plugin_viewer.window._qt_window.resize(1400, 900)
    plugin = _what_the_user_reads(User(plugin_viewer, qtbot, same_slide))
    assert plugin.pop("saved") == [f"saved {same_slide.annotation}"]
    command_saved = command.pop("saved")
    assert plugin == command
    spot_id = command_viewer.layers[spots_layer_name_for(slide_paths)].metadata["stimage_slide"].spots["spot_id"].iloc[10]
    assert spot_id in plugin["hover"] and "stroma" in plugin["hover after labelling"]
    assert plugin["status bar"].startswith("Rectangle: ") and "keys 1-9 assign" in plugin["status bar"]
    assert plugin["no label typed"] == ["type or pick a label (use Clear to unlabel)"]
    assert plugin["nothing selected"] == ["select spots first"]
    assert command_saved == [f"saved {slide_paths.annotation}"]


def _spots_on_canvas(user) -> np.ndarray:
    layer = user.viewer.layers[spots_layer_name_for(user.paths)]
    points = [user._transform().map([x, y])[:2] for y, x in np.asarray(layer.data)]
    return np.asarray(points)


def test_first_window_fits_the_slide_after_docking_and_shows_our_hotkeys(make_napari_viewer, slide_paths, qtbot):
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1090, 800)
    user = CommandUser(viewer, qtbot, slide_paths)
    canvas = user.canvas
    # the Color dock scrolls rather than push the window off a small screen (it forced 991 px before)
    assert window.height() <= 830
    xy = _spots_on_canvas(user)
    assert (xy >= 0).all() and (xy[:, 0] <= canvas.width()).all() and (xy[:, 1] <= canvas.height()).all()
    assert np.ptp(xy[:, 0]) > 0.8 * canvas.width() or np.ptp(xy[:, 1]) > 0.8 * canvas.height()  # fitted, not tiny
    # the status bar names our keys, not napari's Points modes on keys 1-9
    assert "keys 1-9 assign" in viewer.help and "add points" not in viewer.help
    shown = [label.text() for label in window.statusBar().findChildren(QLabel)]
    assert viewer.help in shown
    user.click(user.curate, "Click")
    assert viewer.help.startswith("Click: ")
    user.layer = viewer.layers[spots_layer_name_for(slide_paths)]
    user.layer.mode = "add"  # a napari mode chosen in the layer controls: napari's own hint
    assert "keys 1-9 assign" not in viewer.help


def test_docks_are_not_clipped_on_a_1920x1080_screen(make_napari_viewer, slide_paths, qtbot):
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1920, 1080 - 60)  # the screen less a title bar and a task bar
    user = CommandUser(viewer, qtbot, slide_paths)
    assert window.height() <= 1080 - 60
    for widget in (user.curate, user.color):
        content = widget.scroll_area.widget()
        bar = widget.scroll_area.verticalScrollBar()
        qtbot.waitUntil(lambda bar=bar: bar.maximum() == 0, timeout=3000)  # all of it in view once laid out
        for button in content.findChildren(QPushButton):
            if button.isVisible():
                assert button.visibleRegion().boundingRect().size() == button.size(), button.text()
