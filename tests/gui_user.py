"""A user of the plugin, driven through what is on screen: a shown viewer, File > Open, the widgets
docked from the Plugins menu (napari's `PublicOnlyProxy` viewer), buttons clicked, text typed,
keys and mouse drags sent to the canvas widget, pixels read from screenshots.

Questions (unsaved edits, recovery) are answered by replacing the docked widget's `ask`.
"""

import numpy as np
from qtpy.QtCore import QEvent, QPointF, Qt
from qtpy.QtGui import QMouseEvent
from qtpy.QtWidgets import QApplication, QPushButton


class User:
    """A viewer with a slide opened and both widgets docked, driven through what is on screen."""

    def __init__(self, viewer, qtbot, paths):
        self.viewer, self.qtbot, self.paths = viewer, qtbot, paths
        self.questions: list[str] = []
        self.answers: dict[str, str] = {}  # question title -> button; else the last choice
        self.viewer.open(str(paths.coord), plugin="napari-stimage")
        _, self.curate = viewer.window.add_plugin_dock_widget("napari-stimage", "Curate labels")
        _, self.color = viewer.window.add_plugin_dock_widget("napari-stimage", "Color spots")
        self.curate.ask = self._answer
        qtbot.waitExposed(self.canvas)
        qtbot.wait(50)  # docking narrows the canvas: fit the slide to the canvas the user sees
        viewer.reset_view()

    def _answer(self, title, text, choices):
        from napari.utils import progress

        self.questions.append(title)
        # what was on screen when asked: the slide's layers, and napari's open progress bars
        self.asked_with = ([layer.name for layer in self.viewer.layers], len(progress._all_instances))
        return self.answers.get(title, choices[-1])

    def open(self, paths, layer_name=None):
        """File > Open of the slide's coord file; returns its spots layer (or `layer_name`'s)."""
        self.viewer.open(str(paths.coord), plugin="napari-stimage")
        return self.viewer.layers[layer_name or spots_layer_name_for(paths)]

    @property
    def canvas(self):
        return self.viewer.window._qt_viewer.canvas.native  # the test, not the plugin, may look

    def button(self, widget, text) -> QPushButton:
        found = [b for b in widget.findChildren(QPushButton) if b.text() == text and b.isVisible()]
        assert len(found) == 1, f"one visible {text!r} button expected, found {len(found)}"
        return found[0]

    def click(self, widget, text) -> None:
        self.qtbot.mouseClick(self.button(widget, text), Qt.MouseButton.LeftButton)

    def key(self, key, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
        self.qtbot.keyClick(self.canvas, key, modifiers)

    def type_label(self, text) -> None:
        line = self.curate.label_input.lineEdit()
        line.clear()
        self.qtbot.keyClicks(line, text)

    def type_gene(self, text) -> None:
        self.color.gene_edit.clear()
        self.qtbot.keyClicks(self.color.gene_edit, text)
        self.qtbot.keyClick(self.color.gene_edit, Qt.Key.Key_Return)

    def _transform(self):
        view = self.viewer.window._qt_viewer.canvas.view
        return view.transform * view.scene.transform

    def to_canvas(self, world_rc) -> QPointF:
        """The whole canvas pixel (a mouse gives whole pixels) at a world (row, col)."""
        x, y = self._transform().map([world_rc[1], world_rc[0]])[:2]
        return QPointF(round(float(x)), round(float(y)))

    def to_world(self, point: QPointF) -> np.ndarray:
        x, y = self._transform().imap([point.x(), point.y()])[:2]
        return np.array([y, x])

    def _mouse(self, kind, pos, buttons, modifiers):
        button = Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton
        event = QMouseEvent(kind, pos, self.canvas.mapToGlobal(pos), button, buttons, modifiers)
        QApplication.sendEvent(self.canvas, event)

    def drag(self, world_path, modifiers=Qt.KeyboardModifier.NoModifier) -> np.ndarray:
        """Press, move and release the left button along `world_path` on the canvas widget;
        returns the path in world coordinates as the mouse gave it (whole canvas pixels)."""
        points = [self.to_canvas(p) for p in world_path]
        held = Qt.MouseButton.LeftButton
        self._mouse(QEvent.Type.MouseButtonPress, points[0], held, modifiers)
        for p in points[1:]:
            self.qtbot.wait(8)  # vispy and napari drop moves that come too fast, as a hand never does
            self._mouse(QEvent.Type.MouseMove, p, held, modifiers)
        self.qtbot.wait(8)
        self._mouse(QEvent.Type.MouseButtonRelease, points[-1], Qt.MouseButton.NoButton, modifiers)
        return np.array([self.to_world(p) for p in points])

    def screenshot(self) -> np.ndarray:
        return self.viewer.screenshot(canvas_only=True, flash=False)

    def pixel(self, shot, world_rc) -> np.ndarray:
        p = self.to_canvas(world_rc)
        scale = shot.shape[1] / self.canvas.width()  # screenshots are in device pixels
        return shot[int(p.y() * scale), int(p.x() * scale), :3].astype(int)


def spots_layer_name_for(paths) -> str:
    return f"{paths.name} spots"
