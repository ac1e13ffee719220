"""Gene switching in the colour widget: median time per switch, redraw included.

Run (needs a display; under SSH/CI wrap it in xvfb-run):

    cd /work/main && .venv/bin/python benchmarks/bench_gene_switch.py [--spots 5000 100000] [--repeats 30]

For each slide size it builds an in-memory slide (hexagonal spot grid, sparse Poisson counts for
200 genes), opens it in a shown napari viewer with the real `ColorWidget`, and times:
- widget: `ColorWidget.apply_genes([gene])` (values, transform, autoscale, colours set on the
  existing layer) followed by a synchronous repaint of the canvas;
- naive baseline, measured in the same run: remove the spots layer and add a new Points layer
  with the new colours (what a widget that rebuilds the layer would do), then the same repaint.
Target: median widget switch under 50 ms at 5,000 spots. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp


def make_slide(n_spots: int, n_genes: int = 200, seed: int = 0):
    from napari_stimage.expression import Expression
    from napari_stimage.layout import SlidePaths
    from napari_stimage.slide import JoinReport, Slide

    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n_spots)))
    pitch = 40.0
    yy, xx = np.divmod(np.arange(n_spots), side)
    y = (yy + 1) * pitch * np.sqrt(3) / 2
    x = (xx + 1 + 0.5 * (yy % 2)) * pitch
    ids = np.array([f"bench_{i:07d}" for i in range(n_spots)], dtype=object)
    spots = pd.DataFrame({"spot_id": ids, "y": y, "x": x, "r": np.full(n_spots, pitch * 0.275)})
    genes = np.array([f"GENE{k:04d}" for k in range(n_genes)], dtype=object)
    rates = rng.gamma(0.3, 2.0, n_genes)
    counts = sp.random(n_spots, n_genes, density=0.15, format="csc", dtype=np.float32, random_state=seed,
                       data_rvs=lambda k: rng.poisson(rates.mean() * 4, k) + 1)
    expression = Expression(spot_ids=ids, gene_names=genes, matrix=counts)
    labels = np.array(["tumour", "stroma", "immune", np.nan], dtype=object)[rng.integers(0, 4, n_spots)]
    annotation = None
    slide = Slide(
        paths=SlidePaths(name=f"bench_{n_spots}", coord=Path(f"bench_{n_spots}_coord.csv")),
        spots=spots, expression=expression, annotation=annotation, report=JoinReport(),
        expression_rows=np.arange(n_spots),
    )
    slide.__dict__["labels"] = labels  # cached_property: set directly, there is no annotation file
    slide.__dict__["default_genes"] = list(genes[:50])
    return slide


def repaint(viewer):
    """Draw the canvas now and wait for the GL work to finish."""
    from qtpy.QtWidgets import QApplication
    from vispy.gloo import gl

    QApplication.processEvents()
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    canvas.native.repaint()
    gl.glFinish()


def bench_size(n_spots: int, repeats: int, colorbar: bool = True) -> dict:
    import napari

    from napari_stimage import coloring as col
    from napari_stimage._widget_color import ColorWidget
    from napari_stimage.layers import spots_layer_data

    slide = make_slide(n_spots)
    viewer = napari.Viewer(show=True)
    data, meta, _ = spots_layer_data(slide)
    viewer.add_points(data, **meta)
    widget = ColorWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.colorbar_check.setChecked(colorbar)
    viewer.reset_view()
    genes = list(slide.expression.gene_names)
    widget.apply_genes([genes[0]])
    repaint(viewer)

    widget_times, apply_times = [], []
    for k in range(repeats):
        gene = genes[1 + k % (len(genes) - 1)]
        start = time.perf_counter()
        widget.apply_genes([gene])
        applied = time.perf_counter()
        repaint(viewer)
        widget_times.append(time.perf_counter() - start)
        apply_times.append(applied - start)

    idle_times = []  # the floor: redrawing the unchanged canvas
    for _ in range(repeats):
        start = time.perf_counter()
        repaint(viewer)
        idle_times.append(time.perf_counter() - start)

    compute_times = []
    for k in range(repeats):
        gene = genes[1 + k % (len(genes) - 1)]
        start = time.perf_counter()
        coloring = col.GeneColoring((gene,))
        values = coloring.values(slide)
        col.gene_colors(values, coloring.with_limits(values))
        compute_times.append(time.perf_counter() - start)

    naive_times = []
    for k in range(max(5, repeats // 3)):
        gene = genes[1 + k % (len(genes) - 1)]
        start = time.perf_counter()
        coloring = col.GeneColoring((gene,))
        values = coloring.values(slide)
        rgba = col.gene_colors(values, coloring.with_limits(values))
        viewer.layers.remove(viewer.layers[-1])
        data, meta, _ = spots_layer_data(slide)
        meta = {**meta, "face_color": rgba}
        viewer.add_points(data, **meta)
        repaint(viewer)
        naive_times.append(time.perf_counter() - start)
    viewer.close()
    return {
        "spots": n_spots,
        "widget_ms": 1000 * statistics.median(widget_times),
        "widget_no_redraw_ms": 1000 * statistics.median(apply_times),
        "idle_redraw_ms": 1000 * statistics.median(idle_times),
        "colour_compute_ms": 1000 * statistics.median(compute_times),
        "naive_rebuild_ms": 1000 * statistics.median(naive_times),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spots", type=int, nargs="+", default=[5000, 100_000])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--no-colorbar", action="store_true", help="switch genes with the canvas colorbar off")
    args = parser.parse_args(argv)
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])  # noqa: F841 (napari needs the app alive)
    print("median ms per gene switch    widget = switch+redraw (without redraw; colour maths only)")
    print("                             naive = remove + re-add the Points layer + redraw")
    print("                             idle redraw = repainting the unchanged canvas (the floor)")
    print(f"{'spots':>8} {'widget':>9} {'(no redraw':>11} {'; maths)':>9} {'naive':>9} {'idle redraw':>12}")
    for n in args.spots:
        r = bench_size(n, args.repeats, colorbar=not args.no_colorbar)
        print(f"{r['spots']:>8} {r['widget_ms']:>9.1f} {r['widget_no_redraw_ms']:>11.1f} "
              f"{r['colour_compute_ms']:>9.1f} {r['naive_rebuild_ms']:>9.1f} {r['idle_redraw_ms']:>12.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
