"""What counts as a label, and the one order labels are listed in (legend, hotkeys 1-9)."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

UNLABELLED = "(unlabelled)"  # how a missing label is shown; never written to a file


def is_unlabelled(value) -> bool:
    """NaN, None, pandas NA and empty strings all mean "no label"."""
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    if isinstance(value, str):
        return value == ""
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def unlabelled_mask(values) -> np.ndarray:
    """`is_unlabelled` of every entry of `values` at once, as a boolean array."""
    import pandas as pd

    column = values if isinstance(values, pd.Series) else pd.Series(_as_sequence(values), dtype=object)
    return column.isna().to_numpy() | (column == "").to_numpy()


def _as_sequence(values):
    return values if isinstance(values, np.ndarray) else list(values)


def _natural_key(label: str):
    # "L2" < "L10", "idc_2" < "idc_10"; case-insensitive so the order feels alphabetical
    return [(0, int(tok), "") if tok.isdigit() else (1, 0, tok.lower()) for tok in re.split(r"(\d+)", label)]


def label_categories(values: Iterable) -> list[str]:
    """The distinct labels of `values` in natural order, unlabelled left out."""
    return sorted({str(v) for v in values if not is_unlabelled(v)}, key=_natural_key)


def display_labels(values: Iterable) -> np.ndarray:
    """Per spot the label as shown: its text, or UNLABELLED (`is_unlabelled`, vectorised)."""
    import pandas as pd

    column = pd.Series(values if isinstance(values, (np.ndarray, pd.Series)) else list(values), dtype=object)
    missing = unlabelled_mask(column)
    out = column.astype(str).to_numpy(dtype=object)
    out[missing] = UNLABELLED
    return out


def visible_mask(values: Iterable, hidden_labels: Iterable[str]) -> np.ndarray:
    """Spots whose label (UNLABELLED for none) is not hidden."""
    shown = display_labels(values)
    hidden = list(hidden_labels)
    return ~np.isin(shown.astype(str), hidden) if hidden else np.ones(len(shown), dtype=bool)
