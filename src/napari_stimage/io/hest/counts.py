"""The counts of a HEST h5ad (`X`, dense or sparse) as an `Expression`, through the expression cache.

Read element by element with h5py (never as a whole AnnData): a dense `X` is converted to sparse a
block of rows at a time, a sparse one is never densified.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ...core.errors import SlideError
from ...core.expression import Expression, make_unique
from ...core.progress import CancelCallback

DENSE_ROWS_PER_BLOCK = 512  # rows of a dense X converted to sparse at a time (~40 MB at 20k genes)


def strings(values) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)


def index_of(group) -> np.ndarray:
    key = group.attrs.get("_index", "_index")
    return strings(group[key][()])


def read_counts(x, n_obs: int, n_vars: int, cancel: CancelCallback | None, progress) -> sp.csc_matrix:
    from ...core.progress import Cancelled

    if hasattr(x, "shape") and not hasattr(x, "keys"):  # a dense dataset
        blocks = []
        for start in range(0, n_obs, DENSE_ROWS_PER_BLOCK):
            if cancel is not None and cancel():
                raise Cancelled(str(x.file.filename))
            block = np.asarray(x[start:start + DENSE_ROWS_PER_BLOCK], dtype=np.float32)
            blocks.append(sp.csr_matrix(block))
            if progress is not None:
                progress(start + len(block), n_obs)
        matrix = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((n_obs, n_vars), dtype=np.float32)
        return matrix.tocsc()
    encoding = x.attrs.get("encoding-type", "")
    shape = tuple(int(v) for v in x.attrs.get("shape", (n_obs, n_vars)))
    parts = (np.asarray(x["data"][()], dtype=np.float32), x["indices"][()], x["indptr"][()])
    if encoding == "csc_matrix":
        return sp.csc_matrix(parts, shape=shape)
    if encoding == "csr_matrix":
        return sp.csr_matrix(parts, shape=shape).tocsc()
    raise ValueError(f"X has an unknown encoding {encoding!r}")


def build_expression(path: Path, spot_ids: np.ndarray, raw_genes: np.ndarray, counts: sp.csc_matrix) -> Expression:
    return Expression(spot_ids=spot_ids, gene_names=np.array(make_unique(raw_genes), dtype=object),
                      raw_gene_names=raw_genes, matrix=counts, source=path)


def store(path, expression: Expression, before: dict, notes: list[str]) -> None:
    """Cache the counts (the next open memory-maps them); a cache that cannot be written is a note."""
    from ..cache import CacheUnavailable, store_expression_cache, unusable_folder_note

    try:
        store_expression_cache(path, expression, before)
    except (OSError, CacheUnavailable) as exc:
        notes.append(unusable_folder_note(exc, "expression not cached"))


def cache_counts(path: Path, progress=None, cancel: CancelCallback | None = None) -> str:
    """Build the expression cache of an h5ad (what `convert` does): "cached" or "built"."""
    import h5py

    from ..cache import fingerprint, is_cache_valid

    if is_cache_valid(path):
        return "cached"
    before = fingerprint(path)
    try:
        with h5py.File(path, "r") as f:
            spot_ids, raw_genes = index_of(f["obs"]), index_of(f["var"])
            counts = read_counts(f["X"], len(spot_ids), len(raw_genes), cancel, progress)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SlideError(path, f"cannot read the h5ad ({exc})") from exc
    notes: list[str] = []
    store(path, build_expression(path, spot_ids, raw_genes, counts), before, notes)
    if notes:
        raise SlideError(path, notes[0])
    return "built"
