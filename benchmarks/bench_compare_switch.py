"""Gene switching in the compare view (measured, predicted, residual tiles) against a normal gene
switch in the colour widget, measured in the same run, redraw included.

    cd /work/main && xvfb-run -a .venv/bin/python benchmarks/bench_compare_switch.py \
        [--spots 5000 100000] [--repeats 30] [--window 1089 630]

For each slide size it builds an in-memory slide (`bench_gene_switch.make_slide`) and dense
float32 predictions for its 200 genes (log1p(counts) + noise, as a model would give), then opens
two shown napari viewers of the same size:

- normal: the slide with the real "Color spots" `ColorWidget` docked; a step is
  `ColorWidget.apply_genes([gene])` + one paint of its canvas (`bench_gene_switch.Redraw`);
- compare: the slide with the real "Compare predictions" `PredictionsWidget` docked and its
  compare view open (napari grid, three image + spots tiles, three colorbars); a step is
  `PredictionsWidget.show_gene(gene)` + one paint of its canvas;
- maths: the Qt-free colours alone, `GeneColoring.values` + `gene_colors` against
  `ComparisonColors.of(...).colors()`.

Steps alternate between the two viewers with genes not shown before, so load from other
processes hits both alike. Reports median, interquartile range and min-max in ms, and the
ratio compare / normal of the medians. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gene_switch import Redraw, make_slide, stats_ms


def make_model(slide, seed: int = 1):
    from napari_stimage.io.predictions import Predictions, compare
    from napari_stimage.viewer.predictions import ModelOnSlide

    rng = np.random.default_rng(seed)
    values = np.log1p(slide.expression.matrix.toarray()).astype(np.float32)
    values += rng.normal(0, 0.4, values.shape).astype(np.float32)
    predictions = Predictions(Path("bench_model.h5ad"), slide.expression.gene_names.copy(), values,
                              np.arange(slide.n_spots), "bench")
    return ModelOnSlide(predictions, compare(slide, predictions))


def open_viewer(slide, window):
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_stimage.viewer.layers import add_slide_to_viewer

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*window)  # napari restores saved geometry: fix the canvas size
    layer = add_slide_to_viewer(viewer, slide)[-1]
    QApplication.processEvents()
    return viewer, layer


def bench_size(n_spots: int, repeats: int, window: tuple[int, int]) -> dict:
    from qtpy.QtWidgets import QApplication

    from napari_stimage import coloring as col
    from napari_stimage._qt.color_widget import ColorWidget
    from napari_stimage._qt.predictions_widget import PredictionsWidget
    from napari_stimage.viewer.predictions import attach_model

    slide = make_slide(n_spots)
    model = make_model(slide)
    normal_viewer, _ = open_viewer(slide, window)
    color = ColorWidget(normal_viewer)
    normal_viewer.window.add_dock_widget(color)
    compare_viewer, spots = open_viewer(slide, window)
    compare_widget = PredictionsWidget(compare_viewer)
    compare_viewer.window.add_dock_widget(compare_widget)
    attach_model(spots, model)  # opens the compare view on the best gene
    QApplication.processEvents()
    for viewer in (normal_viewer, compare_viewer):
        viewer.reset_view()
    redraw = {"normal": Redraw(normal_viewer), "compare": Redraw(compare_viewer)}
    switch = {"normal": lambda g: color.apply_genes([g]), "compare": compare_widget.show_gene}
    genes = itertools.cycle(list(slide.expression.gene_names[1:]))
    for _ in range(3):  # warm-up: shaders, glyphs
        for name in switch:
            switch[name](next(genes))
            redraw[name]()

    times = {"normal": [], "compare": [], "normal maths": [], "compare maths": []}
    draws = {"normal": 0, "compare": 0}
    for _ in range(repeats):
        for name in ("normal", "compare"):
            gene = next(genes)
            before = redraw[name].draws
            start = time.perf_counter()
            switch[name](gene)
            redraw[name]()
            times[name].append(time.perf_counter() - start)
            draws[name] += redraw[name].draws - before
        gene = next(genes)
        start = time.perf_counter()
        coloring = col.GeneColoring((gene,))
        values = coloring.values(slide)
        col.gene_colors(values, coloring.with_limits(values))
        times["normal maths"].append(time.perf_counter() - start)
        start = time.perf_counter()
        measured = col.transform_values(slide.gene_values(gene), "log1p")
        col.ComparisonColors.of(gene, measured, model.predictions.gene_values(gene)).colors()
        times["compare maths"].append(time.perf_counter() - start)
    canvas = tuple(redraw["compare"].canvas.size)
    compare_viewer.close()
    normal_viewer.close()
    out = {name: stats_ms(t) for name, t in times.items()}
    out["draws_per_step"] = {name: count / repeats for name, count in draws.items()}
    out["canvas"] = canvas
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spots", type=int, nargs="+", default=[5000, 100_000])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--window", type=int, nargs=2, default=[1089, 630], metavar=("W", "H"))
    args = parser.parse_args(argv)
    for env in ("NAPARI_STIMAGE_CACHE", "NAPARI_STIMAGE_CONFIG"):  # keep the user's recent genes untouched
        os.environ.setdefault(env, tempfile.mkdtemp(prefix="stimage-bench-"))
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])  # noqa: F841 (napari needs the app alive)
    print("ms per gene switch: median [25th-75th percentile] (min-max)")
    for n in args.spots:
        r = bench_size(n, args.repeats, tuple(args.window))
        print(f"\n{n:,} spots, canvas {r['canvas'][0]}x{r['canvas'][1]} px, paints per step: "
              + ", ".join(f"{name} {count:.2f}" for name, count in r["draws_per_step"].items()))
        for name in ("normal", "compare", "normal maths", "compare maths"):
            s = r[name]
            print(f"  {name:<14} {s['median']:8.1f}  [{s['q1']:7.1f} - {s['q3']:7.1f}]  "
                  f"({s['min']:.1f} - {s['max']:.1f}, n={s['n']})", flush=True)
        print(f"  compare / normal (median): {r['compare']['median'] / r['normal']['median']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
