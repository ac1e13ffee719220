"""Browsing a dataset: catalogue load, filtering, and next/previous with the next slide prefetched.

    cd <worktree> && PYTHONPATH=$PWD/src .venv/bin/python benchmarks/bench_browse.py [--repeats 7]

Times, each against a naive baseline measured in the same run (ratios, not absolute targets,
are what compares across machines):

- catalogue load: `load_catalogue` on the real STimage-1K4M meta table (1,149 slides,
  ../shared/data/real; skipped when absent) and on a generated HEST-1k metadata CSV of 1,229
  samples. Target: under 1 s each.
- filtering: `Catalogue.filter_mask` for a set of user filters (species + tissue, text search,
  technology + cancer), against a naive filter that re-reads the meta table with pandas and
  applies string tests per filter. Target: under 50 ms per filter change.
- the browser widget (Qt, a virtual display): one filter change = mask + model reset + count label.
- next slide: the browser's Next on generated slides, the next one prefetched (its expression cache
  warmed in the background) against a cold Next (cache emptied first). Target: under 1 s from the cache.

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REAL_META = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "meta_all_gene02122025.csv"
FILTERS = [
    {"species": "human", "tissue": "brain"},
    {"search": "tumor microenvironment"},
    {"tech": "Visium", "cancer": True},
    {"tissue": "lymph node", "on_disk": True},
]


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def _naive_filter(meta: Path, criteria: dict):
    """What a script without a catalogue does: read the table again and test the strings."""
    import pandas as pd

    table = pd.read_csv(meta, dtype=str, keep_default_na=False)
    mask = np.ones(len(table), bool)
    if "species" in criteria:
        mask &= table["species"].str.lower().str.contains(criteria["species"]).to_numpy()
    if "tissue" in criteria:
        mask &= table["tissue"].str.lower().str.contains(criteria["tissue"]).to_numpy()
    if "tech" in criteria:
        mask &= table["tech"].eq(criteria["tech"]).to_numpy()
    if criteria.get("cancer"):
        mask &= table["involve_cancer"].eq("True").to_numpy()
    for word in criteria.get("search", "").split():
        text = (table["slide"] + table["title"] + table["keywords"] + table["abstract"]).str.lower()
        mask &= text.str.contains(word, regex=False).to_numpy()
    return mask


def write_hest_table(path: Path, n: int = 1229) -> None:
    rng = np.random.default_rng(0)
    techs = ["Visium"] * 602 + ["Spatial Transcriptomics"] * 552 + ["Xenium"] * 65 + ["Visium HD"] * 10
    organs = ["Brain", "Bowel", "Breast", "Kidney", "Lymph node", "Skin", "Prostate", "Lung"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset_title", "id", "organ", "disease_state", "oncotree_code", "species", "st_technology",
                    "spots_under_tissue", "nb_genes"])
        for k in range(n):
            cancer = rng.random() < 0.4
            w.writerow([f"Study {k // 20}", f"SAMPLE{k:04d}", organs[k % len(organs)], "Cancer" if cancer else "Healthy",
                        "IDC" if cancer else "", "Homo sapiens" if k % 3 else "Mus musculus", techs[k % len(techs)],
                        int(rng.integers(200, 5000)), int(rng.integers(500, 30000))])


def bench_catalogue(repeats: int, work: Path) -> None:
    from napari_stimage.io.catalogue import load_catalogue

    hest = work / "hest"
    hest.mkdir()
    write_hest_table(hest / "HEST_v1_1_0.csv")
    tables = [("HEST-1k metadata CSV (1,229, generated)", hest)]
    if REAL_META.is_file():
        root = work / "stimage"
        (root / "meta").mkdir(parents=True)
        shutil.copy(REAL_META, root / "meta" / REAL_META.name)
        tables.insert(0, ("STimage-1K4M meta table (1,149, real)", root))
    else:
        print("real meta table absent: STimage-1K4M rows skipped")
    for name, root in tables:
        load_ms = _median_ms(lambda root=root: load_catalogue(root), repeats)
        catalogue = load_catalogue(root)
        print(f"{name}: {len(catalogue)} rows, load {load_ms:.0f} ms (target < 1000)")
        for criteria in FILTERS:
            fast = _median_ms(lambda c=criteria, cat=catalogue: cat.filter_mask(**c), repeats)
            line = f"  filter {criteria}: {int(catalogue.filter_mask(**criteria).sum())} rows, {fast:.1f} ms"
            if catalogue.meta_path is not None and catalogue.table["dataset"].iloc[0] == "STimage-1K4M":
                naive = _median_ms(lambda c=criteria, m=catalogue.meta_path: _naive_filter(m, c), repeats)
                line += f"; naive re-read {naive:.0f} ms, ratio {naive / max(fast, 1e-6):.0f}x"
            print(line)


def bench_widget(repeats: int, work: Path, slides: int, size: int, genes: int) -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_stimage.io import cache
    from napari_stimage.synthetic import write_synthetic_slide

    viewer = napari.Viewer(show=False)
    _, widget = viewer.window.add_plugin_dock_widget("napari-stimage", "Browse slides")
    if REAL_META.is_file():
        widget.set_root(work / "stimage")

        def change(text):
            widget.search_edit.setText(text)  # textChanged -> mask, model reset, count label

        texts = ["brain", "", "tumor", "", "visium cancer", ""]
        ms = _median_ms(lambda: [change(t) for t in texts], repeats) / len(texts)
        print(f"browser widget, one filter change over 1,149 rows: {ms:.1f} ms (target < 50)")

    root = work / "tree"
    names = [f"Human_Bench_Slide{k}_Visium" for k in range(slides)]
    for k, name in enumerate(names):
        write_synthetic_slide(root, name=name, size=size, n_genes=genes, seed=k, with_annotation=False)
    widget.set_root(root)
    app = QApplication.instance()

    def wait(condition, timeout=120.0):
        end = time.perf_counter() + timeout
        while not condition():
            app.processEvents()
            time.sleep(0.002)
            if time.perf_counter() > end:
                raise TimeoutError("benchmark step timed out")

    widget.open_slide(names[0])
    wait(lambda: widget.current_slide == names[0])
    n_spots = len(viewer.layers[-1].data)
    warm, cold = [], []
    for k in range(1, slides):
        if k % 2:  # prefetched: the browser warmed the next slide's cache while this one was shown
            wait(lambda k=k: names[k] in widget.prefetched)
        else:  # cold: what Next costs without the prefetch
            wait(lambda: not widget.prefetching)
            shutil.rmtree(cache.cache_dir(), ignore_errors=True)
            widget.prefetched.discard(names[k])
        t0 = time.perf_counter()
        widget.step(1)
        wait(lambda k=k: widget.current_slide == names[k])
        (warm if k % 2 else cold).append(1000 * (time.perf_counter() - t0))
    print(f"next slide ({n_spots} spots x {genes} genes, count CSV "
          f"{(root / 'Visium' / 'gene_exp' / f'{names[0]}_count.csv').stat().st_size / 1e6:.0f} MB): "
          f"prefetched {np.median(warm):.0f} ms (target < 1000), cold {np.median(cold):.0f} ms, "
          f"ratio {np.median(cold) / np.median(warm):.1f}x")
    viewer.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--slides", type=int, default=7, help="generated slides walked with Next")
    parser.add_argument("--size", type=int, default=2400, help="image side of each generated slide, pixels")
    parser.add_argument("--genes", type=int, default=3000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for env in ("NAPARI_STIMAGE_CACHE", "NAPARI_STIMAGE_CONFIG", "NAPARI_STIMAGE_DATA"):
            os.environ[env] = str(work / env.lower())  # never the user's own folders
        bench_catalogue(args.repeats, work)
        bench_widget(args.repeats, work, args.slides, args.size, args.genes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
