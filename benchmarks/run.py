"""napari-stimage scale benchmarks (issue 5), one command, baselines measured in the same run:

    cd /work/main && .venv/bin/python benchmarks/run.py            # real shapes (~3 GB of data)
    cd /work/main && .venv/bin/python benchmarks/run.py --quick    # small shapes, ~1 minute
    options: --hd-gb 1.5 (size of the VisiumHD-like CSV), --keep (keep benchmarks/_data/), --redraw

Data is generated under benchmarks/_data/ (gitignored) in the real shapes: a dense float-count
CSV with ~90% zeros (2,000 spots x 32,000 genes, ~250 MB), a VisiumHD-like CSV (18,000 genes,
97% zeros, --hd-gb GB), and a 20,000 x 20,000 H&E-like image as PNG, JPEG and tiled TIFF.
Every measurement runs in its own subprocess; peak memory is that process's max RSS
(`resource.getrusage`), including the interpreter and imports (~100 MB). Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
sys.path.insert(0, str(HERE))

PRELUDE = """
import json, os, resource, sys, time
def done(**kw):
    kw['peak_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print('RESULT ' + json.dumps(kw))
"""


def measure(code: str, cache: Path | None = None, timeout: int = 3600) -> dict:
    env = dict(os.environ)
    if cache is not None:
        env["NAPARI_STIMAGE_CACHE"] = str(cache)
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"benchmark failed:\n{proc.stdout}\n{proc.stderr}")


def row(name: str, result: dict, extra: str = "") -> None:
    print(f"  {name:<52} {result['seconds']:8.2f} s {result['peak_mb']:8.0f} MB  {extra}", flush=True)


def ensure_counts(path: Path, spots: int, genes: int, zero_fraction: float) -> Path:
    from datagen import write_count_csv

    if not path.exists():
        print(f"  generating {path.name} ({spots} x {genes}, {zero_fraction:.0%} zeros)...", flush=True)
        write_count_csv(path.with_suffix(".tmp"), spots, genes, zero_fraction)
        path.with_suffix(".tmp").rename(path)
    return path


def ensure_images(side: int) -> dict[str, Path]:
    import pyvips

    paths = {k: DATA / f"he_{side}.{k}" for k in ("png", "jpeg", "tiff")}
    if not paths["png"].exists():
        print(f"  generating {side} x {side} H&E-like PNG/JPEG/TIFF...", flush=True)
        base = pyvips.Image.perlin(side, side, cell_size=256, uchar=True)
        noise = pyvips.Image.gaussnoise(side, side, sigma=6)
        bands = [(base * a + b + noise).cast("uchar") for a, b in ((0.3, 170), (0.5, 90), (0.2, 180))]
        image = bands[0].bandjoin(bands[1:]).copy(interpretation="srgb")
        image.pngsave(str(paths["png"]), compression=1)
        image.jpegsave(str(paths["jpeg"]), Q=90)
        image.tiffsave(str(paths["tiff"]), tile=True, pyramid=True, subifd=True, compression="jpeg",
                       Q=90, tile_width=512, tile_height=512, bigtiff=True)
    # The dataset names every image `.png` whatever its bytes are.
    named = {}
    for kind, p in paths.items():
        alias = DATA / f"he_{side}_{kind}.png"
        if not alias.exists():
            os.link(p, alias)
        named[kind] = alias
    return named


def bench_counts(csv: Path, cache_root: Path) -> None:
    size_mb = csv.stat().st_size / 1e6
    print(f"\n# Count CSV {csv.name} ({size_mb:.0f} MB)")
    base = measure(f"""
        import pandas as pd
        t = time.perf_counter(); df = pd.read_csv({str(csv)!r}, index_col=0)
        done(seconds=time.perf_counter() - t, shape=list(df.shape))
    """)
    row("baseline pd.read_csv(index_col=0)", base)
    cache = cache_root / "counts"
    shutil.rmtree(cache, ignore_errors=True)
    load = f"""
        from napari_stimage.io.stimage.reader import load_expression
        from pathlib import Path
        t = time.perf_counter(); e = load_expression(Path({str(csv)!r}))
        genes = e.top_variable_genes(50); tc = e.total_counts(); v = e.gene_values(genes[0])
        done(seconds=time.perf_counter() - t, shape=[e.n_spots, e.n_genes], nnz=int(e.matrix.nnz))
    """
    first = measure(load, cache)
    row("first open (parse + cache build + load)", first,
        f"{base['seconds'] / first['seconds']:.1f}x faster, {first['peak_mb'] / base['peak_mb']:.2f} of the memory"
        f"  (targets >= 8x, <= 0.25)")
    again = measure(load, cache)
    row("re-open from cache", again, "(target < 0.3 s)")
    inmem = measure(f"""
        from napari_stimage.io.count_csv import read_count_csv
        t = time.perf_counter(); e = read_count_csv({str(csv)!r})
        done(seconds=time.perf_counter() - t)
    """)
    row("read_count_csv (in memory, no cache)", inmem, f"{base['seconds'] / inmem['seconds']:.1f}x faster")
    shutil.rmtree(cache, ignore_errors=True)


def bench_stream(csv: Path, cache_root: Path) -> None:
    size_mb = csv.stat().st_size / 1e6
    print(f"\n# VisiumHD-like streaming conversion {csv.name} ({size_mb:.0f} MB)")
    cache = cache_root / "hd"
    shutil.rmtree(cache, ignore_errors=True)
    result = measure(f"""
        from napari_stimage.io.cache import build_expression_cache
        ticks = []
        t = time.perf_counter()
        build_expression_cache({str(csv)!r}, progress=lambda d, n: ticks.append(d))
        done(seconds=time.perf_counter() - t, ticks=len(ticks))
    """, cache)
    row("build_expression_cache (one core)", result,
        f"{size_mb / result['seconds']:.0f} MB/s, {result['ticks']} progress calls  (targets >= 100 MB/s, < 2 GB)")
    cancel = measure(f"""
        from napari_stimage.io.cache import build_expression_cache, expression_cache_path
        from napari_stimage.core.progress import Cancelled
        calls = []
        def cancel():
            calls.append(1); return len(calls) > 3
        t = time.perf_counter()
        try:
            build_expression_cache({str(csv)!r}, cancel=cancel)
            stopped = False
        except Cancelled:
            stopped = True
        left = list(expression_cache_path({str(csv)!r}).parent.glob('.*tmp'))
        done(seconds=time.perf_counter() - t, stopped=stopped, leftovers=len(left))
    """, cache_root / "hd-cancel")
    row("cancel after 3 blocks", cancel, f"stopped={cancel['stopped']}, temp folders left={cancel['leftovers']}")
    reopen = measure(f"""
        from napari_stimage.io.stimage.reader import load_expression
        from pathlib import Path
        t = time.perf_counter(); e = load_expression(Path({str(csv)!r})); g = e.top_variable_genes(50)
        done(seconds=time.perf_counter() - t)
    """, cache)
    row("re-open from cache (memory-mapped)", reopen)
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(cache_root / "hd-cancel", ignore_errors=True)


def bench_gene_switch(n_bins: int, redraw: bool) -> None:
    print(f"\n# Gene switching on {n_bins:,} bins (square grid, cached CSC expression)")
    code = f"""
        import numpy as np, scipy.sparse as sp
        from napari_stimage.core.expression import Expression
        from napari_stimage.curation.bins import detect_grid
        n = {n_bins}; side = int(np.ceil(np.sqrt(n)))
        rng = np.random.default_rng(0)
        ij = np.stack(np.unravel_index(rng.permutation(side * side)[:n], (side, side)), 1).astype(float)
        positions = ij * 29.6 + 500.0
        genes = 200
        m = sp.random(n, genes, density=0.03, format='csc', dtype=np.float32, random_state=0)
        m.data[:] = np.ceil(m.data * 10)
        e = Expression(np.array([f's{{i}}' for i in range(n)], dtype=object), np.array([f'G{{j}}' for j in range(genes)], dtype=object), m)
        t = time.perf_counter(); grid = detect_grid(positions); t_grid = time.perf_counter() - t
        rows = rng.permutation(n)  # spot -> count row, as the slide's join gives
        times = []
        viewer = layer = None
        if {redraw!r}:
            import napari
            viewer = napari.Viewer(show=True)
            layer = viewer.add_image(grid.raster(np.zeros(n)), colormap='viridis', **grid.layer_kwargs())
            viewer.screenshot(canvas_only=True)
        for g in range(30):
            t = time.perf_counter()
            values = e.gene_values(f'G{{g}}')[rows]
            raster = grid.raster(values)
            if layer is not None:
                layer.data = raster
                layer.contrast_limits = (0, max(float(np.nanmax(raster)), 1))
                viewer.screenshot(canvas_only=True)
            times.append(time.perf_counter() - t)
        done(seconds=float(np.median(times)), grid_seconds=t_grid, shape=list(grid.shape), redraw={redraw!r})
    """
    result = measure(code)
    what = "values + raster + redraw (screenshot)" if redraw else "values + raster (no display: --redraw adds it)"
    row(f"median switch: {what}", result, "(target < 0.15 s)")
    print(f"  grid detection once per slide: {result['grid_seconds']:.2f} s, raster {result['shape']}")


def bench_images(paths: dict[str, Path], cache_root: Path) -> None:
    print(f"\n# Images ({paths['png'].name.split('_')[1]} px square)")
    base = measure(f"""
        from PIL import Image
        Image.MAX_IMAGE_PIXELS = None
        t = time.perf_counter(); a = Image.open({str(paths['png'])!r}).convert('RGB'); a.load()
        done(seconds=time.perf_counter() - t)
    """)
    row("baseline PIL.Image.open(png).convert('RGB')", base)
    view = """
        from napari_stimage.io.images import read_image
        t = time.perf_counter()
        levels = read_image(PATH, progress=lambda d, n: None)
        # First view: the coarsest level whole plus one 1024^2 screen of a middle level.
        import numpy as np
        overview = np.asarray(levels[-1][:])
        mid = levels[len(levels) // 2]; tile = np.asarray(mid[:1024, :1024])
        done(seconds=time.perf_counter() - t, levels=len(levels))
    """
    for kind in ("png", "jpeg", "tiff"):
        cache = cache_root / f"img-{kind}"
        shutil.rmtree(cache, ignore_errors=True)
        code = view.replace("PATH", repr(str(paths[kind])))
        first = measure(code, cache)
        row(f"{kind.upper()} first open" + (" (pyramid built if large)" if kind != "tiff" else " (lazy)"), first,
            f"{first['levels']} levels")
        second = measure(code, cache)
        row(f"{kind.upper()} second open to first view", second,
            f"{base['seconds'] / second['seconds']:.0f}x faster than PIL  (targets < 3 s, < 600 MB)")
        shutil.rmtree(cache, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small shapes, about a minute")
    parser.add_argument("--hd-gb", type=float, default=1.5, help="size of the VisiumHD-like CSV in GB")
    parser.add_argument("--keep", action="store_true", help="keep the generated data in benchmarks/_data")
    parser.add_argument("--redraw", action="store_true", help="include napari redraws in gene switching (needs a display)")
    args = parser.parse_args(argv)
    DATA.mkdir(exist_ok=True)
    cache_root = Path(tempfile.mkdtemp(prefix="stimage-bench-cache-"))
    started = time.perf_counter()
    try:
        if args.quick:
            median = ensure_counts(DATA / "quick_count.csv", 500, 8000, 0.9)
            hd = ensure_counts(DATA / "quick_hd_count.csv", 3000, 18000, 0.97)
            images = ensure_images(4000)
            n_bins = 100_000
        else:
            median = ensure_counts(DATA / "median_count.csv", 2000, 32000, 0.9)
            hd_spots = max(int(args.hd_gb * 1e9 / (18000 * 4)), 1000)
            hd = ensure_counts(DATA / f"hd_count_{hd_spots}.csv", hd_spots, 18000, 0.97)
            images = ensure_images(20000)
            n_bins = 600_000
        bench_counts(median, cache_root)
        bench_stream(hd, cache_root)
        bench_gene_switch(n_bins, args.redraw)
        bench_images(images, cache_root)
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(DATA, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
