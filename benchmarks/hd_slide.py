"""A 600,000-bin x 18,000-gene VisiumHD-shaped slide on disk, for the bin benchmarks (not shipped).

The real count CSV of such a slide is 27-44 GB of text (docs: formats.md); parsing it is what
`run.py`'s streaming benchmark measures. Here the expression cache is written directly in the
format `io/cache.py` documents, as a first open would have left it, next to a count CSV holding
the header only: the slide then opens exactly as it does the second time a user opens it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PITCH = 29.6  # 8 µm bins at ~0.27 µm per full-resolution pixel


def write_hd_slide(root: Path, n_bins: int = 600_000, n_genes: int = 18_000, genes_per_bin: float = 180.0,
                   angle_deg: float = 0.0, seed: int = 0) -> Path:
    """Write `<root>/VisiumHD/{coord,gene_exp}/` and `<root>/annotation/`; returns the coord CSV.

    Bins fill a square lattice (1% of its nodes empty, a few bins missing from the count file);
    genes have log-normal rates, ~`genes_per_bin` detected per bin on average.
    """
    from napari_stimage.io import cache

    rng = np.random.default_rng(seed)
    name = f"Bench_{n_bins}_10X_VisiumHD"
    tech = Path(root) / "VisiumHD"
    for sub in ("coord", "gene_exp"):
        (tech / sub).mkdir(parents=True, exist_ok=True)
    (Path(root) / "annotation").mkdir(parents=True, exist_ok=True)
    coord = tech / "coord" / f"{name}_coord.csv"
    count = tech / "gene_exp" / f"{name}_count.csv"
    anno = Path(root) / "annotation" / f"{name}_anno.csv"
    if coord.exists() and count.exists() and cache.is_cache_valid(count):
        return coord
    side = int(np.ceil(np.sqrt(n_bins / 0.99)))
    nodes = np.sort(rng.permutation(side * side)[:n_bins])
    ij = np.stack(np.divmod(nodes, side), 1).astype(np.float64)
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    yx = (ij * PITCH) @ rot.T + 2000.0 + rng.normal(0, 0.3, ij.shape)
    ids = np.array([f"{name}_s_008um_{int(i):05d}_{int(j):05d}-1" for i, j in ij], dtype=object)
    order = rng.permutation(n_bins)  # file rows are in no spatial order
    with open(coord, "w") as fh:
        fh.write(",yaxis,xaxis,r\n")
        fh.writelines(f"{ids[k]},{yx[k, 0]:.3f},{yx[k, 1]:.3f},{PITCH / 2}\n" for k in order)
    labels = np.array(["tumour", "stroma", "immune", "necrosis", ""], dtype=object)
    region = np.minimum((ij[:, 0] // (side / 5)).astype(int), 4)
    with open(anno, "w") as fh:
        fh.write(",V2\n")
        fh.writelines(f"{ids[k]},{labels[region[k]]}\n" for k in order)

    count_rows = order[: n_bins - 25]  # the last 25 bins of the coord file have no counts
    n_rows = len(count_rows)
    genes = np.array([f"GENE{k:05d}" for k in range(n_genes)])
    rate = rng.lognormal(0, 1.5, n_genes)
    rate *= genes_per_bin * n_rows / rate.sum()
    nnz_per_gene = np.minimum(rng.poisson(rate), n_rows)
    indptr = np.zeros(n_genes + 1, np.int64)
    np.cumsum(nnz_per_gene, out=indptr[1:])
    folder = cache.expression_cache_path(count)
    folder.mkdir(parents=True, exist_ok=True)
    totals = np.zeros(n_rows)
    detected = np.zeros(n_rows, np.int32)
    gene_sum = np.zeros(n_genes)
    gene_sumsq = np.zeros(n_genes)
    with open(folder / "indices.npy", "wb") as fi, open(folder / "data.npy", "wb") as fd:
        np.lib.format.write_array_header_1_0(fi, {"descr": "<i4", "fortran_order": False, "shape": (int(indptr[-1]),)})
        np.lib.format.write_array_header_1_0(fd, {"descr": "<f4", "fortran_order": False, "shape": (int(indptr[-1]),)})
        for g, k in enumerate(nnz_per_gene.tolist()):
            rows = np.sort(rng.choice(n_rows, k, replace=False)).astype(np.int32)
            values = rng.geometric(0.5, k).astype(np.float32)
            rows.tofile(fi)
            values.tofile(fd)
            np.add.at(totals, rows, values)
            detected[rows] += 1
            logged = np.log1p(values.astype(np.float64))
            gene_sum[g], gene_sumsq[g] = logged.sum(), (logged**2).sum()
    nnz = int(indptr[-1])
    np.save(folder / "indptr.npy", indptr)
    np.save(folder / "spot_ids.npy", ids[count_rows].astype(str))
    np.save(folder / "gene_names.npy", genes)
    np.save(folder / "raw_gene_names.npy", genes)
    np.save(folder / "total_counts.npy", totals)
    np.save(folder / "n_genes.npy", detected)
    mean = gene_sum / n_rows
    np.save(folder / "log1p_var.npy", gene_sumsq / n_rows - mean**2)
    count.write_text("," + ",".join(genes) + "\n")  # header only: the cache holds the counts
    meta = {
        "format": cache.FORMAT_NAME, "version": cache.FORMAT_VERSION, "source": str(count.resolve()),
        "fingerprint": cache.fingerprint(count), "shape": [n_rows, n_genes], "nnz": nnz,
        "checksums": {f: cache._crc32_file(folder / f) for f in cache._ARRAY_FILES},
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    assert cache.is_cache_valid(count)
    return coord
