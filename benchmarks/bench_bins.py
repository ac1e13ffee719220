"""VisiumHD bins (issue 14): memory of opening a 600,000-bin x 18,000-gene slide and switching
through 20 genes, before and after, measured in the same run; gene switch time; selecting bins
(a lasso by point-in-polygon on the 600k centres, the naive way, against the scanline fill on
the raster the Curate widget uses; a brush stroke) and labelling the selection.

    cd /work/main && .venv/bin/python benchmarks/bench_bins.py [--bins 600000] [--genes 18000] [--keep]

"before" runs the code of a git revision (default: main before issue 14) extracted into a
temporary folder, doing what that code offered: `load_slide`, `bin_layer_data`, then per gene
`grid.raster(slide.gene_values(gene))`. "after" runs this checkout the way the colour widget
will: `load_slide`, `bin_layer_data`, then per gene a `GeneValuesCache` lookup,
`image_coloring` and `grid.raster`. Each runs in its own process; peak memory is its max RSS
(`resource.getrusage`), interpreter and imports included. Target: after < 500 MB.
The slide is written once under benchmarks/_data/ (`hd_slide.py`; ~1 GB). Not run in CI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from run import DATA, measure  # noqa: E402

BEFORE_REVISION = "f6637c92c7777e371f96db4820d17e9d5e6371a1"  # main before issue 14

OPEN = """
    import numpy as np
    from napari_stimage import load_slide
    from napari_stimage.curation.bins import bin_grid
    from napari_stimage.viewer.bins import bin_layer_data
    t = time.perf_counter()
    slide = load_slide(COORD)
    grid = bin_grid(slide)
    layers = bin_layer_data(slide, grid)
    open_seconds = time.perf_counter() - t
    open_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    genes = slide.expression.top_variable_genes(20)
    times = []
"""

BEFORE = OPEN + """
    for gene in genes:
        t = time.perf_counter()
        raster = grid.raster(slide.gene_values(gene))
        times.append(time.perf_counter() - t)
    done(seconds=float(np.median(times)), open_seconds=open_seconds, open_mb=open_mb, shape=list(grid.shape))
"""

AFTER = OPEN + """
    from napari_stimage import coloring as col
    cache = col.GeneValuesCache()
    for gene in genes + genes[-5:][::-1]:  # then back through the last five: cache hits
        t = time.perf_counter()
        coloring = col.GeneColoring((gene,))
        values = cache.get((coloring.genes, coloring.transform), lambda: col.GeneValues.of(coloring.values(slide)))
        raster = grid.raster(col.image_coloring(values, coloring).values)
        times.append(time.perf_counter() - t)
    done(seconds=float(np.median(times[:20])), revisit=float(np.median(times[20:])), open_seconds=open_seconds,
         open_mb=open_mb, shape=list(grid.shape), cache_mb=cache.nbytes / 2**20, cached=len(cache))
"""

LASSO = """
    import numpy as np
    from napari_stimage import load_slide
    from napari_stimage import coloring as col
    from napari_stimage.core.selection import SpotIndex, points_in_polygon
    from napari_stimage.curation.bins import bin_grid, LabelRasterSync
    from napari_stimage.curation.editor import LabelEditor
    slide = load_slide(COORD)
    grid = bin_grid(slide)
    pos = slide.positions
    centre, span = pos.mean(axis=0), np.ptp(pos, axis=0)
    a = np.linspace(0, 2 * np.pi, 400)  # a free-hand loop over about a third of the tissue
    loop = centre + np.c_[np.sin(a) * (1 + 0.2 * np.sin(7 * a)), np.cos(a)] * span * 0.3
    c, s = np.cos(grid.angle), np.sin(grid.angle)
    def to_raster(points):  # image pixels -> raster (row, col), as napari's world_to_data does
        return (np.asarray(points) - grid.origin) @ np.array([[c, -s], [s, c]]) / grid.pitch
    naive, fast, n, m = [], [], 0, 0
    for _ in range(5):
        t = time.perf_counter(); n = len(points_in_polygon(pos, loop)); naive.append(time.perf_counter() - t)
        t = time.perf_counter(); picked = grid.spots_in_polygon(to_raster(loop)); fast.append(time.perf_counter() - t)
        m = len(picked)
    t = time.perf_counter(); index = SpotIndex(pos); index_s = time.perf_counter() - t
    stroke = centre + np.c_[np.linspace(-1, 1, 60), np.sin(np.linspace(0, 6, 60))] * span * 0.2
    t = time.perf_counter(); brushed = len(index.near_path(stroke, 60.0)); brush_s = time.perf_counter() - t
    t = time.perf_counter(); grid_brushed = len(grid.spots_near_path(to_raster(stroke), 60.0 / grid.pitch))
    grid_brush_first = time.perf_counter() - t
    t = time.perf_counter(); grid.spots_near_path(to_raster(stroke), 60.0 / grid.pitch); grid_brush = time.perf_counter() - t
    # a key press on that selection: hidden labels left out, one assign, the raster and legend follow
    editor = LabelEditor(slide.spots["spot_id"].astype(str).tolist(), autosave=False)
    sync = LabelRasterSync(grid, editor)
    editor.add_view(sync.on_editor_change)
    editor.assign(np.arange(0, grid.n_spots, 3), "stroma")
    editor.set_hidden_labels(["stroma"])
    t = time.perf_counter()
    shown, skipped = editor.split_hidden(picked)
    changed = editor.assign(shown, "tumour")
    entries = col.legend_entries_from_counts(editor.label_counts(), col.LabelPalette(), editor.categories())
    key_s = time.perf_counter() - t
    t = time.perf_counter(); mask = np.zeros(grid.shape, np.uint8); mask.reshape(-1)[grid.flat_index[picked]] = 1
    mask_s = time.perf_counter() - t
    done(seconds=float(np.median(naive)), fast=float(np.median(fast)), selected=n, selected_fast=m, index_seconds=index_s,
         brush_seconds=brush_s, brushed=brushed, grid_brush_first=grid_brush_first, grid_brush=grid_brush,
         grid_brushed=grid_brushed, key_seconds=key_s, changed=changed, skipped=skipped, mask_seconds=mask_s,
         legend=len(entries))
"""


def extract(revision: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bins", type=int, default=600_000)
    parser.add_argument("--genes", type=int, default=18_000)
    parser.add_argument("--before", default=BEFORE_REVISION, help="git revision measured as 'before'")
    parser.add_argument("--keep", action="store_true", help="keep the generated slide in benchmarks/_data")
    args = parser.parse_args(argv)
    from hd_slide import write_hd_slide

    cache = DATA / "bins-cache"
    os.environ["NAPARI_STIMAGE_CACHE"] = str(cache)
    work = Path(tempfile.mkdtemp(prefix="stimage-bench-bins-"))
    try:
        print(f"# VisiumHD bins: {args.bins:,} bins x {args.genes:,} genes, open + 20 gene switches", flush=True)
        sys.path.insert(0, str(ROOT / "src"))
        coord = write_hd_slide(DATA / f"hd_{args.bins}", args.bins, args.genes)
        os.environ["PYTHONPATH"] = str(extract(args.before, work))
        before = measure(BEFORE.replace("COORD", repr(str(coord))), cache)
        os.environ["PYTHONPATH"] = str(ROOT / "src")
        after = measure(AFTER.replace("COORD", repr(str(coord))), cache)
        for name, r in ((f"before ({args.before[:7]})", before), ("after", after)):
            print(f"  {name[:18]:<18} peak {r['peak_mb']:6.0f} MB (after open {r['open_mb']:6.0f} MB), open {r['open_seconds']:5.1f} s,"
                  f" median switch {r['seconds'] * 1000:6.1f} ms", flush=True)
        print(f"  after / before peak: {after['peak_mb'] / before['peak_mb']:.2f}  (target: after < 500 MB;"
              f" raster {after['shape']}, gene cache {after['cache_mb']:.0f} MB for {after['cached']} genes,"
              f" revisit {after['revisit'] * 1000:.1f} ms)")
        lasso = measure(LASSO.replace("COORD", repr(str(coord))), cache)
        print(f"  lasso over {args.bins:,} bins (400 vertices): naive point-in-polygon on the centres "
              f"{lasso['seconds'] * 1000:.0f} ms ({lasso['selected']:,} bins), scanline fill on the raster "
              f"{lasso['fast'] * 1000:.1f} ms ({lasso['selected_fast']:,} bins): {lasso['seconds'] / lasso['fast']:.0f}x")
        print(f"  brush stroke: k-d tree on image pixels {lasso['index_seconds']:.2f} s once + {lasso['brush_seconds'] * 1000:.0f} ms"
              f" ({lasso['brushed']:,} bins); on the raster {lasso['grid_brush_first']:.2f} s first, then"
              f" {lasso['grid_brush'] * 1000:.0f} ms ({lasso['grid_brushed']:,} bins)")
        print(f"  key 1 on the lasso's selection: {lasso['key_seconds'] * 1000:.0f} ms ({lasso['changed']:,} bins labelled,"
              f" {lasso['skipped']:,} hidden skipped, raster and legend updated); selection outline raster"
              f" {lasso['mask_seconds'] * 1000:.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(DATA / f"hd_{args.bins}", ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
