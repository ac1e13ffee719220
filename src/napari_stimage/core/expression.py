"""Spots x genes expression of one slide, whatever file it came from (Qt-free, source-agnostic)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp


def make_unique(names: Iterable[str], join: str = "-") -> list[str]:
    """Make repeated names unique the way anndata's `var_names_make_unique` does.

    The first occurrence keeps its name, later ones get `-1`, `-2`, ... skipping any
    suffix that would collide with a name already present in the file.
    """
    names = [str(n) for n in names]
    taken = set(names)
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name not in seen:
            seen[name] = 0
            out.append(name)
            continue
        k = seen[name]
        while True:
            k += 1
            candidate = f"{name}{join}{k}"
            if candidate not in taken:
                break
        seen[name] = k
        taken.add(candidate)
        out.append(candidate)
    return out


def _read_run(array: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """`array[lo:hi]`, read from the file when `array` maps one (the expression cache): pages read
    through the map stay counted in the process's memory, so switching through the genes of a
    600k-bin slide would keep every column it showed."""
    if hi <= lo or not isinstance(array, np.memmap) or array.filename is None:
        return array[lo:hi]
    # a whole .npy file's map (a slice of one keeps the file's offset, not its own: not read that way)
    if array.ndim == 1 and array.offset + array.nbytes == os.path.getsize(array.filename):
        with open(array.filename, "rb") as fh:
            fh.seek(array.offset + lo * array.itemsize)
            return np.fromfile(fh, dtype=array.dtype, count=hi - lo)
    return array[lo:hi]


@dataclass
class Expression:
    """Counts of one slide: `matrix[i, j]` is spot `spot_ids[i]`, gene `gene_names[j]`.

    `matrix` is CSC (float32) so that taking one gene is a contiguous slice.
    `gene_names` are unique; `raw_gene_names` are the header cells as written.
    """

    spot_ids: np.ndarray
    gene_names: np.ndarray
    matrix: sp.csc_matrix
    raw_gene_names: np.ndarray | None = None
    source: Path | None = None
    # True when the values are not raw counts (e.g. an AnnData X already log-normalised): gene
    # colouring then shows them as they are instead of taking log1p again (`coloring.default_transform`)
    normalised: bool = False
    # Per-spot/per-gene summaries computed while streaming (the cache stores them), so that
    # opening a 600k-bin slide never scans its whole matrix: total_counts, n_genes, log1p_var.
    stats: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _gene_lookup: dict[str, int] = field(default_factory=dict, repr=False)
    _gene_lookup_lower: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if not sp.isspmatrix_csc(self.matrix):
            self.matrix = sp.csc_matrix(self.matrix)
        if self.raw_gene_names is None:
            self.raw_gene_names = self.gene_names
        self._gene_lookup = {g: i for i, g in enumerate(self.gene_names)}
        for i, g in enumerate(self.gene_names):
            self._gene_lookup_lower.setdefault(g.lower(), i)

    @property
    def n_spots(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_genes(self) -> int:
        return self.matrix.shape[1]

    def gene_index(self, gene: str) -> int:
        """Column of `gene`: exact name first, then case-insensitive. KeyError if absent."""
        if gene in self._gene_lookup:
            return self._gene_lookup[gene]
        try:
            return self._gene_lookup_lower[gene.lower()]
        except KeyError:
            raise KeyError(f"gene {gene!r} is not in {self.source or 'the expression'}") from None

    def gene_values(self, gene: str) -> np.ndarray:
        """Dense float32 vector of one gene over all spots of the count file."""
        j = self.gene_index(gene)
        m = self.matrix
        out = np.zeros(m.shape[0], dtype=np.float32)
        lo, hi = int(m.indptr[j]), int(m.indptr[j + 1])
        out[_read_run(m.indices, lo, hi)] = _read_run(m.data, lo, hi)
        return out

    def total_counts(self) -> np.ndarray:
        if "total_counts" in self.stats:
            return np.asarray(self.stats["total_counts"], dtype=np.float64)
        m = self.matrix
        return np.bincount(m.indices, weights=m.data, minlength=m.shape[0]).astype(np.float64)

    def n_genes_detected(self) -> np.ndarray:
        if "n_genes" in self.stats:
            return np.asarray(self.stats["n_genes"], dtype=np.int64)
        m = self.matrix
        return np.bincount(m.indices[m.data != 0], minlength=m.shape[0]).astype(np.int64)

    def log1p_variance(self) -> np.ndarray:
        """Per gene, the variance over spots of log1p(count)."""
        if "log1p_var" in self.stats:
            return np.asarray(self.stats["log1p_var"], dtype=np.float64)
        m = self.matrix
        logged = np.log1p(np.asarray(m.data, dtype=np.float64))
        cols = np.repeat(np.arange(m.shape[1]), np.diff(m.indptr))
        n = max(m.shape[0], 1)
        mean = np.bincount(cols, weights=logged, minlength=m.shape[1]) / n
        return np.bincount(cols, weights=logged**2, minlength=m.shape[1]) / n - mean**2

    def looks_normalised(self) -> bool:
        """True when the stored values are not all whole numbers (raw counts are)."""
        data = np.asarray(self.matrix.data[:100_000], dtype=np.float64)
        return bool(data.size and np.any(data != np.round(data)))

    def top_variable_genes(self, n: int = 50) -> list[str]:
        """The `n` genes with the highest variance of log1p counts, most variable first."""
        if self.n_genes == 0 or self.n_spots == 0:
            return []
        var = self.log1p_variance()
        order = np.argsort(-var, kind="stable")[: min(n, self.n_genes)]
        return [str(self.gene_names[j]) for j in order if var[j] > 1e-12]
