"""How two labellings of the same spots agree: adjusted Rand index, NMI, Cohen's kappa
(scikit-learn's) and their contingency table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..labels import label_categories, unlabelled_mask


@dataclass
class Agreement:
    ari: float
    nmi: float
    kappa: float
    n_spots: int  # spots labelled in both
    contingency: pd.DataFrame  # rows: the first labelling's labels, columns: the second's
    both: np.ndarray  # per spot: labelled in both (the spots the figures count)

    def to_json(self) -> dict[str, Any]:
        """`ari`, `nmi`, `kappa`, `n_spots` and `contingency` as {row label: {column label: count}}."""
        table = self.contingency
        return {
            "ari": self.ari,
            "nmi": self.nmi,
            "kappa": self.kappa,
            "n_spots": self.n_spots,
            "contingency": {str(r): {str(c): int(table.at[r, c]) for c in table.columns} for r in table.index},
        }


def label_agreement(first: np.ndarray, second: np.ndarray) -> Agreement:
    """Agreement of two labellings, one value per spot each, over the spots labelled in both.
    Kappa compares label names, so it is meaningful when both use the same names (two
    pathologists); ARI and NMI compare the partitions whatever the names (labels against clusters)."""
    from sklearn.metrics import adjusted_rand_score, cohen_kappa_score, normalized_mutual_info_score

    first, second = np.asarray(first, dtype=object), np.asarray(second, dtype=object)
    if first.shape != second.shape:
        raise ValueError(f"{len(first)} and {len(second)} labels: one per spot each is needed")
    both = ~unlabelled_mask(first) & ~unlabelled_mask(second)
    a, b = first[both].astype(str), second[both].astype(str)
    rows, columns = label_categories(a), label_categories(b)
    contingency = (
        pd.crosstab(pd.Categorical(a, categories=rows), pd.Categorical(b, categories=columns), dropna=False)
        if len(a)
        else pd.DataFrame(0, index=rows, columns=columns)
    )
    contingency.index.name, contingency.columns.name = None, None
    if len(a) == 0:
        return Agreement(np.nan, np.nan, np.nan, 0, contingency, both)
    one_label = len(set(a) | set(b)) < 2
    kappa = 1.0 if one_label else float(cohen_kappa_score(a, b))
    return Agreement(
        ari=float(adjusted_rand_score(a, b)),
        nmi=float(normalized_mutual_info_score(a, b)),
        kappa=kappa,
        n_spots=int(both.sum()),
        contingency=contingency.astype(np.int64),
        both=both,
    )
