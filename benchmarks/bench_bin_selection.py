"""Selecting and labelling 600,000 VisiumHD bins in "Curate labels", end to end, as a user does.

Run (needs a display; under SSH/CI wrap it in xvfb-run):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_bin_selection.py [--bins 600000]

A shown viewer opens a generated VisiumHD slide (`hd_slide.py`, 200 genes: only the bins
matter here) with `viewer.open(..., plugin="napari-stimage")`; "Curate labels" and "Color spots"
are docked from the Plugins menu. A lasso over about a third of the tissue is dragged on the
canvas with real Qt mouse events; the time is from the button's release to the selection drawn
(event loop processed). Naive baseline, same run: the same drags with bins picked by testing every
bin centre against the outline (point-in-polygon on 600k centres). Then key 1 on the canvas labels
the selection: time until the raster, the legend and the outline are redrawn. Not run in CI.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bins", type=int, default=600_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtCore import QEvent, QPointF, Qt
    from qtpy.QtGui import QMouseEvent
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QApplication

    from hd_slide import write_hd_slide
    from napari_stimage.core.selection import points_in_polygon
    from napari_stimage.viewer import targets

    work = Path(tempfile.mkdtemp(prefix="stimage-bench-selection-"))
    import os

    os.environ["NAPARI_STIMAGE_CACHE"] = str(work / "cache")
    try:
        coord = write_hd_slide(work / "data", args.bins, 200)
        app = QApplication.instance() or QApplication([])
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1400, 900)
        start = time.perf_counter()
        viewer.open(str(coord), plugin="napari-stimage")
        open_s = time.perf_counter() - start
        _, curate = viewer.window.add_plugin_dock_widget("napari-stimage", "Curate labels")
        viewer.window.add_plugin_dock_widget("napari-stimage", "Color spots")
        app.processEvents()
        viewer.reset_view()
        layer = next(layer for layer in viewer.layers if layer.name.endswith(" bin labels"))
        grid = curate.target.grid
        canvas = viewer.window._qt_viewer.canvas
        native = canvas.native

        def to_canvas(world_rc):
            transform = canvas.view.transform * canvas.view.scene.transform
            x, y = transform.map([world_rc[1], world_rc[0]])[:2]
            return QPointF(round(float(x)), round(float(y)))

        def mouse(kind, pos, buttons):
            button = Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton
            QApplication.sendEvent(native, QMouseEvent(kind, pos, native.mapToGlobal(pos), button, buttons,
                                                       Qt.KeyboardModifier.NoModifier))

        def drag(world_path) -> float:
            """Seconds from the release to the selection shown."""
            points = [to_canvas(p) for p in world_path]
            mouse(QEvent.Type.MouseButtonPress, points[0], Qt.MouseButton.LeftButton)
            for p in points[1:]:
                QTest.qWait(8)  # napari drops moves that come faster than a hand
                start = time.perf_counter()
                mouse(QEvent.Type.MouseMove, p, Qt.MouseButton.LeftButton)
                moves.append(time.perf_counter() - start)
            QTest.qWait(8)
            start = time.perf_counter()
            mouse(QEvent.Type.MouseButtonRelease, points[-1], Qt.MouseButton.NoButton)
            app.processEvents()
            return time.perf_counter() - start

        corners = [layer.data_to_world((0, 0)), layer.data_to_world(grid.shape)]
        centre, span = np.mean(corners, axis=0)[-2:], np.ptp(corners, axis=0)[-2:]
        a = np.linspace(0, 2 * np.pi, 120)
        loop = centre + np.c_[np.sin(a) * (1 + 0.2 * np.sin(7 * a)), np.cos(a)] * span * 0.3
        curate.set_tool("lasso")
        app.processEvents()

        moves: list[float] = []
        fast = [drag(loop) for _ in range(args.repeats)]
        n_fast = len(curate.selection)
        # every bin centre in world coordinates, once, outside the timing
        world = np.array([layer.data_to_world((0, 0)), layer.data_to_world((1, 0)), layer.data_to_world((0, 1))])[:, -2:]
        centres_world = world[0] + np.c_[grid.row, grid.col] @ (world[1:] - world[0])

        def naive_pick(self, tool, world_path, brush_radius):
            return points_in_polygon(centres_world, np.asarray(world_path)[:, -2:])

        fast_pick = targets.BinsTarget.pick
        targets.BinsTarget.pick = naive_pick
        try:
            curate.select_none()
            naive = [drag(loop) for _ in range(args.repeats)]
            n_naive = len(curate.selection)
        finally:
            targets.BinsTarget.pick = fast_pick
        curate.select_none()
        drag(loop)
        start = time.perf_counter()
        QTest.keyClick(native, Qt.Key.Key_1)
        app.processEvents()
        key_s = time.perf_counter() - start
        labelled = int(np.sum(curate.editor.labels[curate.selection] == curate.editor.categories()[0]))

        print(f"# Curate labels on {grid.n_spots:,} bins (raster {grid.shape[0]}x{grid.shape[1]}), opened in {open_s:.1f} s")
        print(f"  lasso (120 points), release -> selection shown: naive point-in-polygon {statistics.median(naive) * 1000:.0f} ms"
              f" ({n_naive:,} bins), raster fill {statistics.median(fast) * 1000:.0f} ms ({n_fast:,} bins):"
              f" {statistics.median(naive) / statistics.median(fast):.1f}x")
        print(f"  a mouse move while drawing the lasso (outline redrawn): median {statistics.median(moves) * 1000:.1f} ms,"
              f" 95th percentile {np.percentile(moves, 95) * 1000:.1f} ms")
        print(f"  key 1 on the selection -> labels, legend and outline redrawn: {key_s * 1000:.0f} ms ({labelled:,} bins labelled)")
        curate.ask = lambda title, text, choices: "Don't save"  # the edit stays in the recovery file
        viewer.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
