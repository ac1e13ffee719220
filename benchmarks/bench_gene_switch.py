"""Gene switching in the colour widget: time per switch, redraw included.

Run (needs a display; under SSH/CI wrap it in xvfb-run):

    cd /work/main && xvfb-run -a .venv/bin/python benchmarks/bench_gene_switch.py \
        [--spots 5000 100000] [--repeats 30] [--window 1089 630] [--no-colorbar]

For each slide size it builds an in-memory slide (hexagonal spot grid, sparse Poisson counts for
200 genes), opens it in a shown napari viewer of a fixed size with the real `ColorWidget` docked
(colorbar and title on the canvas unless --no-colorbar), and times the steps below. The first four
are interleaved round by round, so load from other processes on a shared machine hits them alike:

- switch: `ColorWidget.apply_genes([gene])` with a gene not shown before (values, transform,
  autoscale, colours, colorbar and title set on the existing layer), then exactly one canvas
  paint of the result (see `Redraw`);
- revisit: the same, switching back to the gene shown before that one;
- idle redraw: one paint of the unchanged canvas, the floor any switch pays;
- maths: the Qt-free colour computation alone (`GeneColoring.values` + `gene_colors`), as
  `napari-stimage render` does it;
- naive baseline, measured in the same run after the rounds above: remove the spots layer, add a
  new Points layer with the new colours (what a widget that rebuilds the layer would do; the
  widget follows the new layer as it would in use), then the same paint.

Reports median, interquartile range and min–max in ms. Target: median switch under 50 ms at
5,000 spots. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp


def make_slide(n_spots: int, n_genes: int = 200, seed: int = 0):
    from napari_stimage.core.expression import Expression
    from napari_stimage.core.slide import JoinReport, Slide
    from napari_stimage.io.stimage.layout import SlidePaths
    from napari_stimage.io.stimage.source import STimageSource

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
        source=STimageSource(SlidePaths(name=f"bench_{n_spots}", coord=Path(f"bench_{n_spots}_coord.csv"))),
        spots=spots, expression=expression, annotation=annotation, report=JoinReport(),
        expression_rows=np.arange(n_spots),
    )
    slide.__dict__["labels"] = labels  # cached_property: set directly, there is no annotation file
    slide.__dict__["default_genes"] = list(genes[:50])
    return slide


class Redraw:
    """One paint of the canvas, as the user would see it, waiting for the GL work to finish.

    Asks Qt for an update and delivers the pending events: Qt paints the canvas (vispy's draw
    event) and flushes the window inside `processEvents`, together with anything napari asked
    for. (`QWidget.repaint` is no good here: for the GL canvas it only schedules the paint, which
    then lands in the next step's time, or in none.) Paints are counted so the report shows
    that every timed step paid exactly one.
    """

    def __init__(self, viewer):
        self.canvas = viewer.window._qt_viewer.canvas._scene_canvas
        self.draws = 0
        self.canvas.events.draw.connect(self._count)

    def _count(self, event=None):
        self.draws += 1

    def __call__(self):
        from qtpy.QtWidgets import QApplication
        from vispy.gloo import gl

        before = self.draws
        self.canvas.native.update()
        QApplication.processEvents()
        if self.draws == before:  # not expected; never leave a step without its paint
            self.canvas.native.repaint()
            QApplication.processEvents()
        gl.glFinish()


def stats_ms(times: list[float]) -> dict:
    ms = np.asarray(times) * 1000
    q1, q3 = np.percentile(ms, [25, 75])
    return {"median": float(np.median(ms)), "q1": float(q1), "q3": float(q3),
            "min": float(ms.min()), "max": float(ms.max()), "n": len(ms)}


def bench_size(n_spots: int, repeats: int, window: tuple[int, int], colorbar: bool = True) -> dict:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_stimage import coloring as col
    from napari_stimage._qt.color_widget import ColorWidget
    from napari_stimage.viewer.layers import spots_layer_data

    slide = make_slide(n_spots)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*window)  # napari restores saved geometry: fix the canvas size
    data, meta, _ = spots_layer_data(slide)
    viewer.add_points(data, **meta)
    widget = ColorWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.colorbar_check.setChecked(colorbar)
    QApplication.processEvents()
    viewer.reset_view()
    redraw = Redraw(viewer)
    genes = list(slide.expression.gene_names)
    fresh = itertools.cycle(genes[1:])  # 199 genes: more than the widget's cache holds
    for _ in range(3):  # warm-up: first draws compile shaders and build glyphs
        widget.apply_genes([next(fresh)])
        redraw()

    times = {"switch": [], "switch_no_redraw": [], "revisit": [], "idle": [], "maths": [], "naive": []}
    draws = {"switch": 0, "revisit": 0, "idle": 0}
    shown: list[str] = []

    def timed(name, action):
        before = redraw.draws
        start = time.perf_counter()
        action()
        applied = time.perf_counter()
        redraw()
        times[name].append(time.perf_counter() - start)
        draws[name] += redraw.draws - before
        return applied - start

    for _ in range(repeats):
        gene = next(fresh)
        times["switch_no_redraw"].append(timed("switch", lambda gene=gene: widget.apply_genes([gene])))
        shown.append(gene)
        if len(shown) >= 2:
            timed("revisit", lambda: widget.apply_genes([shown[-2]]))
        timed("idle", lambda: None)

        start = time.perf_counter()
        coloring = col.GeneColoring((gene,))
        values = coloring.values(slide)
        col.gene_colors(values, coloring.with_limits(values))
        times["maths"].append(time.perf_counter() - start)

    # naive rounds last: after a rebuilt layer the widget would follow and recolour the new layer,
    # and (seen with napari 0.9.2 / vispy 0.17 on llvmpipe) a gene switch on a layer added after
    # removing the coloured one can crash in the next paint when interleaved here
    for k in range(max(5, repeats // 3)):
        gene = genes[1 + k % (len(genes) - 1)]
        start = time.perf_counter()
        coloring = col.GeneColoring((gene,))
        values = coloring.values(slide)
        rgba = col.gene_colors(values, coloring.with_limits(values))
        viewer.layers.remove(viewer.layers[-1])
        data, meta, _ = spots_layer_data(slide)
        viewer.add_points(data, **{**meta, "face_color": rgba})
        redraw()
        times["naive"].append(time.perf_counter() - start)

    canvas_size = tuple(redraw.canvas.size)
    viewer.close()
    out = {name: stats_ms(t) for name, t in times.items() if t}
    out["draws_per_step"] = {name: count / max(1, len(times[name])) for name, count in draws.items()}
    out["spots"] = n_spots
    out["canvas"] = canvas_size
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spots", type=int, nargs="+", default=[5000, 100_000])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--window", type=int, nargs=2, default=[1089, 630], metavar=("W", "H"),
                        help="main window size (default: napari's own default on a 1280x1024 screen)")
    parser.add_argument("--no-colorbar", action="store_true", help="switch genes with the canvas colorbar off")
    args = parser.parse_args(argv)
    # the widget keeps recent genes in the plugin's cache folder: keep the user's list untouched
    os.environ.setdefault("NAPARI_STIMAGE_CACHE", tempfile.mkdtemp(prefix="stimage-bench-"))
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])  # noqa: F841 (napari needs the app alive)
    print("ms per step: median [25th-75th percentile] (min-max)")
    print("  switch  = ColorWidget.apply_genes(new gene) + one canvas paint   (no redraw: apply_genes alone)")
    print("  revisit = the same, back to the gene shown before")
    print("  idle    = one paint of the unchanged canvas (the floor)")
    print("  maths   = Qt-free colour computation only")
    print("  naive   = remove + re-add the Points layer with the new colours + one paint")
    rows = ("switch", "switch_no_redraw", "revisit", "idle", "maths", "naive")
    for n in args.spots:
        r = bench_size(n, args.repeats, tuple(args.window), colorbar=not args.no_colorbar)
        print(f"\n{n:,} spots, canvas {r['canvas'][0]}x{r['canvas'][1]} px, "
              f"colorbar {'off' if args.no_colorbar else 'on'}, paints per step: "
              + ", ".join(f"{name} {count:.2f}" for name, count in r["draws_per_step"].items()))
        for name in rows:
            s = r.get(name)
            if s is None:
                continue
            label = "  (no redraw)" if name == "switch_no_redraw" else f"  {name}"
            print(f"{label:<14} {s['median']:8.1f}  [{s['q1']:7.1f} - {s['q3']:7.1f}]  "
                  f"({s['min']:.1f} - {s['max']:.1f}, n={s['n']})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
