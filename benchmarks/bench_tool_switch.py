"""Choosing a selection tool in "Curate labels" docked from the Plugins menu: time per switch.

Run (needs a display; under SSH/CI wrap it in xvfb-run):

    xvfb-run -a .venv/bin/python benchmarks/bench_tool_switch.py [--repeats 20]

Opens the synthetic sample slide with `viewer.open(..., plugin="napari-stimage")`, docks the widget
with `add_plugin_dock_widget` (so it works on napari's proxy viewer, as a user's does) and clicks
Rectangle, Lasso, Brush, Click and Pan/zoom in turn, each click followed by one processed event
loop. Naive baseline, same run: what a tool switch costs when it rebuilds its helper layer (remove
and add a Shapes layer, then re-select the spots layer). Target: every switch well under 1 s (the
proxy-viewer recursion of issue 8 took about a minute). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QApplication, QPushButton

    from napari_stimage.synthetic import write_synthetic_slide

    paths = write_synthetic_slide(Path(tempfile.mkdtemp()) / "STimage-1K4M")
    viewer = napari.Viewer(show=True)
    viewer.open(str(paths.coord), plugin="napari-stimage")
    _, curate = viewer.window.add_plugin_dock_widget("napari-stimage", "Curate labels")
    spots = viewer.layers[f"{paths.name} spots"]
    app = QApplication.instance()
    app.processEvents()

    def button(text):
        return next(b for b in curate.findChildren(QPushButton) if b.text() == text and b.isVisible())

    switches, naive = [], []
    for _ in range(args.repeats):
        for title in ("Rectangle", "Lasso", "Brush", "Click", "Pan/zoom"):
            start = time.perf_counter()
            QTest.mouseClick(button(title), Qt.MouseButton.LeftButton)
            app.processEvents()
            switches.append(time.perf_counter() - start)
        start = time.perf_counter()
        helper = viewer.add_shapes(name="naive stroke")
        viewer.layers.remove(helper)
        viewer.layers.selection.active = spots
        app.processEvents()
        naive.append(time.perf_counter() - start)

    def ms(values):
        return f"median {1000 * statistics.median(values):7.1f} ms, max {1000 * max(values):7.1f} ms"

    print(f"tool switch ({len(switches)} clicks): {ms(switches)}")
    print(f"naive rebuild of the helper layer:  {ms(naive)}")
    print(f"ratio (median switch / naive rebuild): {statistics.median(switches) / statistics.median(naive):.2f}")
    viewer.close()
    return 0 if max(switches) < 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
