"""core/analysis/embedding.py: the expression PCA, as scanpy computes it, in `slide.spots` order."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stimage.core.analysis.embedding import expression_pca
from napari_stimage.core.progress import Cancelled


def test_pca_is_scanpys_recipe_in_spot_order(slide):
    import scanpy as sc

    pcs = expression_pca(slide, n_pcs=10)
    assert pcs.dtype == np.float32 and pcs.shape == (slide.n_spots, 10)
    missing = slide.expression_rows < 0
    assert missing.sum() == 1 and np.isnan(pcs[missing]).all()  # the spot the count file lacks
    assert np.isfinite(pcs[~missing]).all()

    # the same recipe by hand on the exported AnnData (its rows: the spots with expression, in order)
    adata = slide.to_anndata(image_max_px=8)
    with pytest.warns(UserWarning, match="zero counts"):  # the slide's spot with no counts
        sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=10, random_state=0)
    np.testing.assert_allclose(np.abs(pcs[~missing]), np.abs(adata.obsm["X_pca"]), rtol=1e-3, atol=1e-3)


def test_planted_regions_separate_in_pc_space(slide):
    pcs = expression_pca(slide, n_pcs=5)
    labels = slide.labels.astype(str)
    tissue = np.isfinite(pcs[:, 0]) & np.isin(
        labels, ["invasive cancer", "immune infiltrate, dense", "connective tissue", "adipose tissue"]
    )
    names = sorted(set(labels[tissue]))
    centroids = np.stack([pcs[tissue & (labels == n)].mean(axis=0) for n in names])
    nearest = np.argmin(((pcs[tissue][:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = (np.asarray(names)[nearest] == labels[tissue]).mean()
    assert accuracy > 0.95


def test_pca_runs_on_the_highly_variable_genes_only(slide):
    # 5 genes chosen out of 200: at most 4 components exist, and the PCA says so by its width
    few = expression_pca(slide, n_top_genes=5, n_pcs=10)
    assert few.shape == (slide.n_spots, 4)
    assert np.isfinite(few[slide.expression_rows >= 0]).all()


def test_progress_reaches_the_end_and_cancel_stops(slide):
    seen: list[int] = []
    expression_pca(slide, n_pcs=3, progress=lambda done, total: seen.append(done))
    assert seen[0] == 0 and seen[-1] == 1000 and seen == sorted(seen)
    calls = iter([False, True])
    with pytest.raises(Cancelled):
        expression_pca(slide, n_pcs=3, cancel=lambda: next(calls))


def test_bad_parameters_are_refused(slide):
    with pytest.raises(ValueError, match="at least 1"):
        expression_pca(slide, n_pcs=0)
