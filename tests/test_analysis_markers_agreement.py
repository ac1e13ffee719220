"""core/analysis: UMAP + Leiden embedding, marker genes and label agreement on a slide with planted markers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_stimage.core.analysis.agreement import label_agreement
from napari_stimage.core.analysis.embedding import EmbeddingParameters, compute_embedding
from napari_stimage.core.analysis.markers import MARKER_COLUMNS, rank_markers
from napari_stimage.synthetic import REGIONS


def test_planted_markers_rank_first_per_label(slide):
    table = rank_markers(slide, slide.labels)
    assert list(table.columns) == MARKER_COLUMNS
    for label, (marker, _) in REGIONS.items():
        rows = table[table["group"] == label]
        assert rows["gene"].iloc[0] == marker
        assert rows["score"].is_monotonic_decreasing
        top = rows.iloc[0]
        assert top["pct_in"] > 0.9 and top["pct_out"] < 0.1 and top["pvals_adj"] < 1e-10


def test_one_group_against_a_second_group(slide):
    table = rank_markers(slide, slide.labels, group="invasive cancer", reference="adipose tissue")
    assert set(table["group"]) == {"invasive cancer"}
    assert table["gene"].iloc[0] == "ERBB2"
    with pytest.raises(ValueError, match="at least 2 needed"):
        rank_markers(slide, slide.labels, group="no such label")


def test_agreement_equals_scikit_learn(slide):
    from sklearn.metrics import adjusted_rand_score, cohen_kappa_score, normalized_mutual_info_score

    first = slide.labels.copy()
    second = first.copy()
    rng = np.random.default_rng(3)
    labelled = np.flatnonzero([isinstance(v, str) and v not in ("", "NA") for v in first])
    changed = rng.choice(labelled, 40, replace=False)
    second[changed] = "connective tissue"  # a second pathologist disagrees on 40 spots
    second[labelled[:5]] = None  # and left 5 unlabelled
    result = label_agreement(first, second)
    both = result.both
    a, b = first[both].astype(str), second[both].astype(str)
    assert result.n_spots == both.sum() == len(labelled) - 5 + (first.astype(str) == "NA").sum()
    assert result.ari == pytest.approx(adjusted_rand_score(a, b))
    assert result.nmi == pytest.approx(normalized_mutual_info_score(a, b))
    assert result.kappa == pytest.approx(cohen_kappa_score(a, b))
    assert result.contingency.to_numpy().sum() == result.n_spots
    off_diagonal = result.n_spots - sum(
        result.contingency.at[x, x] for x in result.contingency.index if x in result.contingency.columns
    )
    assert 0 < off_diagonal <= 40
    assert set(result.to_json()) == {"ari", "nmi", "kappa", "n_spots", "contingency"}


def test_umap_and_leiden_clusters_follow_the_planted_regions(slide):
    embedding = compute_embedding(slide, EmbeddingParameters(n_pcs=10, resolution=0.5))
    missing = slide.expression_rows < 0
    assert embedding.umap.shape == (slide.n_spots, 2) and np.isnan(embedding.umap[missing]).all()
    assert embedding.clusters[missing][0] is None
    labels = slide.labels.copy()
    labels[~np.isin(labels.astype(str), list(REGIONS))] = None
    agreement = label_agreement(labels, embedding.clusters)
    assert agreement.ari > 0.6
