"""Marker genes of a group of spots against the rest (or a second group), as scanpy ranks them."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..labels import unlabelled_mask
from .embedding import measured_rows, normalised_anndata

if TYPE_CHECKING:
    from ..slide import Slide

MARKER_COLUMNS = ["group", "gene", "score", "logfoldchange", "pct_in", "pct_out", "pvals_adj"]
METHODS = ("wilcoxon", "t-test", "t-test_overestim_var", "logreg")
MIN_GROUP_SPOTS = 2  # fewer spots give no test statistic


def _fraction_expressing(matrix: sp.csr_matrix, mask: np.ndarray) -> np.ndarray:
    """Per gene, the fraction of the rows in `mask` with a count above zero."""
    rows = matrix[np.flatnonzero(mask)]
    detected = np.bincount(rows.indices[rows.data > 0], minlength=matrix.shape[1])
    return detected / max(int(mask.sum()), 1)


def rank_markers(
    slide: Slide,
    groups: np.ndarray,
    *,
    group: str | None = None,
    reference: str = "rest",
    method: str = "wilcoxon",
    n_genes: int | None = None,
) -> pd.DataFrame:
    """Marker genes per group: one row per (group, gene), columns `MARKER_COLUMNS`, ranked within
    each group by scanpy's score (best first).

    `groups` holds one group name per spot of `slide.spots` (None/NaN/"" = in no group: left out of
    every comparison, "the rest" included). `group` ranks that group only (default: every group
    with at least `MIN_GROUP_SPOTS` spots); `reference` is "rest" or a second group. The counts are
    normalised and log1p'ed as for the embedding, tested with `scanpy.tl.rank_genes_groups`
    (Wilcoxon by default, Benjamini-Hochberg adjusted p); `pct_in`/`pct_out` are the fractions of
    spots with a count above zero in the group and in the reference. `n_genes` keeps the best n.
    """
    import scanpy as sc

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    groups = np.asarray(groups, dtype=object)
    if len(groups) != slide.n_spots:
        raise ValueError(f"{len(groups)} group values for the {slide.n_spots} spots of {slide.name}")
    used, per_spot = measured_rows(slide)
    # one group per measured row: the first spot of a repeated id decides, as for labels
    row_group = np.full(len(used), None, dtype=object)
    have = np.flatnonzero((per_spot >= 0) & ~unlabelled_mask(groups))
    row_group[per_spot[have[::-1]]] = [str(g) for g in groups[have[::-1]]]
    in_some = ~unlabelled_mask(row_group)
    names, sizes = np.unique(row_group[in_some].astype(str), return_counts=True)
    counts = dict(zip(names.tolist(), sizes.tolist(), strict=True))
    if group is not None and counts.get(group, 0) < MIN_GROUP_SPOTS:
        raise ValueError(
            f"group {group!r} has {counts.get(group, 0)} measured spot(s); at least {MIN_GROUP_SPOTS} needed"
        )
    if reference != "rest" and counts.get(reference, 0) < MIN_GROUP_SPOTS:
        raise ValueError(f"reference group {reference!r} has {counts.get(reference, 0)} measured spot(s)")
    tested = [group] if group is not None else [g for g in names.tolist() if counts[g] >= MIN_GROUP_SPOTS]
    if reference == "rest" and (len(counts) < 2 or not tested):
        raise ValueError(f"slide {slide.name}: markers need two groups of at least {MIN_GROUP_SPOTS} spots")
    tested = [g for g in tested if g != reference]

    keep = np.flatnonzero(in_some)
    adata = normalised_anndata(slide, used[keep])
    adata.obs["group"] = pd.Categorical(row_group[keep].astype(str))
    with warnings.catch_warnings():
        # scanpy warns about its own internals (e.g. pandas fragmentation) that say nothing to a user
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        warnings.filterwarnings("ignore", message=".*invalid value encountered.*", category=RuntimeWarning)
        sc.tl.rank_genes_groups(
            adata, "group", groups=tested, reference=reference, method=method, n_genes=n_genes, key_added="markers"
        )
    table = sc.get.rank_genes_groups_df(adata, group=None, key="markers")
    if "group" not in table.columns:  # one group tested: scanpy leaves the column out
        table.insert(0, "group", tested[0])
    raw = slide.expression.matrix.tocsr()[used[keep]] if slide.expression is not None else None
    assert raw is not None  # normalised_anndata raised already
    gene_index = {g: i for i, g in enumerate(adata.var_names)}
    labels_kept = row_group[keep].astype(str)
    reference_mask = labels_kept != "" if reference == "rest" else labels_kept == reference
    parts = []
    for name, rows in table.groupby("group", sort=False, observed=True):
        inside = labels_kept == str(name)
        outside = reference_mask & ~inside
        columns = np.array([gene_index[g] for g in rows["names"]], dtype=np.int64)
        part = pd.DataFrame(
            {
                "group": str(name),
                "gene": rows["names"].astype(str).to_numpy(),
                "score": rows["scores"].to_numpy(np.float64),
                "logfoldchange": rows["logfoldchanges"].to_numpy(np.float64) if "logfoldchanges" in rows else np.nan,
                "pct_in": _fraction_expressing(raw, inside)[columns],
                "pct_out": _fraction_expressing(raw, outside)[columns],
                "pvals_adj": rows["pvals_adj"].to_numpy(np.float64) if "pvals_adj" in rows else np.nan,
            }
        )
        parts.append(part.sort_values("score", ascending=False, kind="stable"))
    return pd.concat(parts, ignore_index=True)[MARKER_COLUMNS]
