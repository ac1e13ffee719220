"""The expression PCA of a slide, as scanpy computes it (normalise total, log1p, highly variable
genes, PCA), one row per spot of `slide.spots`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
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


@dataclass(frozen=True)
class EmbeddingParameters:
    """What the embedding of a slide depends on besides its counts (the form's fields)."""

    n_top_genes: int = 2000
    n_pcs: int = 30
    n_neighbors: int = 15
    resolution: float = 1.0

    def check(self) -> None:
        if self.n_top_genes < 1 or self.n_pcs < 1:
            raise ValueError(f"genes and PCs must be at least 1 (got {self.n_top_genes}, {self.n_pcs})")
        if self.n_neighbors < 2:
            raise ValueError(f"neighbours must be at least 2 (got {self.n_neighbors})")
        if not (np.isfinite(self.resolution) and self.resolution > 0):
            raise ValueError(f"resolution must be a positive number (got {self.resolution})")


@dataclass
class Embedding:
    """A slide's expression embedding, one row per spot of `slide.spots` (NaN / None where the
    count file lacks the spot): PCA, the 2-D UMAP and Leiden clusters (text "0", "1", ...)."""

    pca: np.ndarray
    umap: np.ndarray
    clusters: np.ndarray  # object: cluster name per spot, None where unmeasured
    parameters: EmbeddingParameters | None  # None: taken from the file as it was computed there
    origin: str = "computed"  # "computed" or where in the file it was read from

    @property
    def n_spots(self) -> int:
        return int(self.umap.shape[0])


def _spread(per_spot: np.ndarray, values: np.ndarray, fill: object) -> np.ndarray:
    """Rows of `values` (one per measured row) put back in spot order, `fill` for unmeasured spots."""
    shape = (len(per_spot), *values.shape[1:])
    out = np.full(shape, fill, dtype=values.dtype if fill is not None else object)
    have = per_spot >= 0
    out[have] = values[per_spot[have]]
    return out


def compute_embedding(
    slide: Slide,
    parameters: EmbeddingParameters | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
) -> Embedding:
    """PCA (`expression_pca`), scanpy's neighbour graph on it, UMAP and Leiden clusters (igraph
    flavour), all with fixed random states: the same slide and parameters give the same result."""
    import anndata as ad
    import scanpy as sc

    parameters = parameters or EmbeddingParameters()
    parameters.check()
    pca = expression_pca(
        slide,
        n_top_genes=parameters.n_top_genes,
        n_pcs=parameters.n_pcs,
        progress=None if progress is None else (lambda done, total: progress(done * 4 // 10, 1000)),
        cancel=cancel,
    )
    used, per_spot = measured_rows(slide)
    first = np.full(len(used), -1, dtype=np.int64)  # a spot of each measured row, to read its PCs
    have = np.flatnonzero(per_spot >= 0)
    first[per_spot[have[::-1]]] = have[::-1]
    adata = ad.AnnData(obsm={"X_pca": pca[first]}, shape=(len(used), 0))
    n_neighbors = min(parameters.n_neighbors, len(used) - 1)
    sc.pp.neighbors(adata, n_neighbors=n_neighbors, use_rep="X_pca", random_state=0)
    _step(progress, cancel, 600)
    sc.tl.umap(adata, random_state=0)
    _step(progress, cancel, 900)
    sc.tl.leiden(
        adata, resolution=parameters.resolution, flavor="igraph", n_iterations=2, directed=False, random_state=0
    )
    clusters = adata.obs["leiden"].astype(str).to_numpy(dtype=object)
    _step(progress, cancel, 1000)
    return Embedding(
        pca=pca,
        umap=_spread(per_spot, np.asarray(adata.obsm["X_umap"], dtype=np.float32), np.nan),
        clusters=_spread(per_spot, clusters, None),
        parameters=parameters,
    )
