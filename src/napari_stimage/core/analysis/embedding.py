"""The expression PCA of a slide, as scanpy computes it (normalise total, log1p, highly variable
genes, PCA), one row per spot of `slide.spots`."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from ..progress import CancelCallback, Cancelled, ProgressCallback

if TYPE_CHECKING:
    from anndata import AnnData

    from ..slide import Slide


def _step(progress: ProgressCallback | None, cancel: CancelCallback | None, done: int) -> None:
    """Report `done` of 1000 and stop here when the caller asked to."""
    if cancel is not None and cancel():
        raise Cancelled()
    if progress is not None:
        progress(done, 1000)


def measured_rows(slide: Slide) -> tuple[np.ndarray, np.ndarray]:
    """The count-file rows the slide's spots use, once each, and per spot of `slide.spots` its
    index into them (-1 for a spot the count file lacks). A spot id repeated in the coord file
    points twice at one row: it is computed once."""
    rows = np.asarray(slide.expression_rows, dtype=np.int64)
    have = rows >= 0
    used, inverse = np.unique(rows[have], return_inverse=True)
    per_spot = np.full(len(rows), -1, dtype=np.int64)
    per_spot[have] = inverse
    return used, per_spot


def normalised_anndata(slide: Slide, used_rows: np.ndarray) -> AnnData:
    """An AnnData of `used_rows` of the count matrix (CSR float32), normalised to the median total
    and log1p'ed the way scanpy does it, unless the source's values are already normalised."""
    import anndata as ad
    import scanpy as sc

    if slide.expression is None:
        raise ValueError(f"slide {slide.name} has no count file")
    expression = slide.expression
    matrix = sp.csr_matrix(expression.matrix.tocsr()[used_rows], dtype=np.float32)
    adata = ad.AnnData(X=matrix)
    adata.var_names = np.asarray(expression.gene_names).astype(str)
    if not expression.normalised:
        with warnings.catch_warnings():
            # a spot with no counts stays all zeros (real slides have them: not worth a warning)
            warnings.filterwarnings("ignore", message="Some cells have zero counts")
            sc.pp.normalize_total(adata)
        sc.pp.log1p(adata)
    return adata


def expression_pca(
    slide: Slide,
    *,
    n_top_genes: int = 2000,
    n_pcs: int = 30,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> np.ndarray:
    """Principal components of the slide's expression: float32 (n_spots, n_pcs), rows in
    `slide.spots` order, NaN rows for spots the count file lacks.

    scanpy's recipe: `normalize_total`, `log1p` (skipped when the source's values are already
    normalised), the `n_top_genes` most variable genes (`highly_variable_genes`, seurat flavour; all
    genes when the slide has no more), then `pca` with a fixed random state. A slide with fewer genes
    or spots than `n_pcs` + 1 gets that many fewer columns. `progress(done, 1000)` is called between
    steps and `cancel()` polled there (True raises `core.progress.Cancelled`).
    """
    import scanpy as sc

    if n_top_genes < 1 or n_pcs < 1:
        raise ValueError(f"n_top_genes and n_pcs must be at least 1 (got {n_top_genes}, {n_pcs})")
    _step(progress, cancel, 0)
    used, per_spot = measured_rows(slide)
    if len(used) < 3:
        raise ValueError(f"slide {slide.name}: {len(used)} spot(s) with expression, too few for a PCA")
    adata = normalised_anndata(slide, used)
    _step(progress, cancel, 250)
    if adata.n_vars > n_top_genes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # genes never detected: 0/0 dispersion
            sc.pp.highly_variable_genes(adata, n_top_genes=n_top_genes, flavor="seurat")
        adata = adata[:, adata.var["highly_variable"].to_numpy()].copy()
    _step(progress, cancel, 400)
    n_comps = min(n_pcs, adata.n_obs - 1, adata.n_vars - 1)
    if n_comps < 1:
        raise ValueError(f"slide {slide.name}: {adata.n_vars} gene(s), too few for a PCA")
    sc.pp.pca(adata, n_comps=n_comps, random_state=0)
    pcs = np.asarray(adata.obsm["X_pca"], dtype=np.float32)
    out = np.full((len(per_spot), n_comps), np.nan, dtype=np.float32)
    have = per_spot >= 0
    out[have] = pcs[per_spot[have]]
    _step(progress, cancel, 1000)
    return out
