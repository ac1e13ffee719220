"""Judging predictions: per-gene metrics over a whole slide, against a naive per-gene loop.

    cd /work/main && .venv/bin/python benchmarks/bench_predictions.py [--spots 5000] [--genes 20000] [--repeats 5]

Builds an in-memory slide (`bench_gene_switch.make_slide`: sparse Poisson counts, 15% non-zero)
and dense float32 predictions of the same shape, as STPath writes them, then times:

- metrics: `predictions.compare` (Pearson r, R², L2 error, mean measured log1p for every gene),
  median over --repeats runs. Target: under 1 s at 20,000 genes x 5,000 spots.
- naive baseline, measured in the same run: for each gene, densify log1p(counts) and call
  `scipy.stats.pearsonr` (Pearson r only), once.
- per gene switch in a compare view (Qt-free part): measured, predicted and residual values and
  their colours, against the colours of a plain gene switch (`GeneColoring.values` + `gene_colors`).

Prints the timings, the ratio naive / vectorised, and the largest |r| difference between the two.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gene_switch import make_slide


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spots", type=int, default=5000)
    parser.add_argument("--genes", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    from scipy.stats import pearsonr

    from napari_stimage import coloring as col
    from napari_stimage.io.predictions import Predictions, compare

    t0 = time.perf_counter()
    slide = make_slide(args.spots, args.genes)
    rng = np.random.default_rng(1)
    values = rng.standard_normal((args.spots, args.genes), dtype=np.float32)
    values += np.log1p(slide.expression.matrix.toarray())  # a prediction that follows the counts
    predictions = Predictions(Path("bench.h5ad"), slide.expression.gene_names.copy(), values,
                              np.arange(args.spots), "bench")
    nnz = slide.expression.matrix.nnz
    print(f"{args.genes} genes x {args.spots} spots, {nnz / (args.genes * args.spots):.0%} non-zero "
          f"(built in {time.perf_counter() - t0:.1f} s)")

    result = compare(slide, predictions)
    metrics_ms = _median_ms(lambda: compare(slide, predictions), args.repeats)

    t0 = time.perf_counter()
    naive = np.empty(args.genes)
    for j, gene in enumerate(slide.expression.gene_names):
        naive[j] = pearsonr(np.log1p(slide.expression.gene_values(gene).astype(np.float64)),
                            values[:, j].astype(np.float64)).statistic
    naive_ms = 1000 * (time.perf_counter() - t0)
    diff = np.nanmax(np.abs(result.table["pearson_r"].to_numpy() - naive))

    genes = list(slide.expression.gene_names[:50])

    def plain_switch(gene):
        coloring = col.GeneColoring((gene,), "log1p", "viridis", None, "colormap")
        col.gene_colors(coloring.values(slide), coloring)

    def compare_switch(gene):
        measured = col.transform_values(slide.gene_values(gene), "log1p")
        col.ComparisonColors.of(gene, measured, predictions.gene_values(gene)).colors()

    cycle = iter(genes * (args.repeats * 4))
    plain_ms = _median_ms(lambda: plain_switch(next(cycle)), len(genes))
    compare_ms = _median_ms(lambda: compare_switch(next(cycle)), len(genes))

    print(f"metrics (compare, all genes):      {metrics_ms:8.1f} ms  (median of {args.repeats}; target < 1000 ms)")
    print(f"naive scipy.stats.pearsonr loop:   {naive_ms:8.1f} ms  (Pearson r only)")
    print(f"ratio naive / vectorised:          {naive_ms / metrics_ms:8.1f} x")
    print(f"largest |r| difference:            {diff:8.1e}")
    print(f"gene switch, colours of 3 panels:  {compare_ms:8.2f} ms  (plain gene switch: {plain_ms:.2f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
