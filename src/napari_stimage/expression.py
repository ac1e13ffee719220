"""Spots x genes expression, streamed from the dataset's dense count CSV into a sparse matrix.

The count files are dense text (`,GENE1,GENE2,...` then `spot_id,0.0,1.0,...`), mostly zeros,
and up to 44 GB. They are parsed in blocks with pyarrow's multithreaded CSV reader and each
block is turned into a CSR slice straight away, so memory follows the non-zeros, not the file.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import SlideError

ProgressCallback = Callable[[int, int], None]  # (bytes done, bytes total)


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
        lo, hi = m.indptr[j], m.indptr[j + 1]
        out[m.indices[lo:hi]] = m.data[lo:hi]
        return out

    def total_counts(self) -> np.ndarray:
        return np.asarray(self.matrix.sum(axis=1)).ravel().astype(np.float64)

    def n_genes_detected(self) -> np.ndarray:
        return np.diff(self.matrix.tocsr().indptr).astype(np.int64)

    def genes_by_spot_count(self) -> np.ndarray:
        """How many spots express each gene (non-zero count), per gene."""
        return np.diff(self.matrix.indptr)

    def gene_maxima(self) -> np.ndarray:
        m = self.matrix
        out = np.zeros(m.shape[1], dtype=np.float32)
        nz = np.diff(m.indptr) > 0
        if m.nnz:
            out[nz] = np.maximum.reduceat(m.data, m.indptr[:-1][nz])
        return out

    def top_variable_genes(self, n: int = 50) -> list[str]:
        """The `n` genes with the highest variance of log1p counts, most variable first."""
        m = self.matrix
        if m.shape[1] == 0 or m.shape[0] == 0:
            return []
        logged = m.copy()
        logged.data = np.log1p(logged.data)
        mean = np.asarray(logged.mean(axis=0)).ravel()
        sq = logged.copy()
        sq.data **= 2
        var = np.asarray(sq.mean(axis=0)).ravel() - mean**2
        order = np.argsort(-var, kind="stable")[: min(n, m.shape[1])]
        return [str(self.gene_names[j]) for j in order if var[j] > 0]


def read_count_header(path: str | Path) -> tuple[str, list[str]]:
    """The id header cell and the gene names of a count CSV, as written."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise SlideError(path, f"cannot read the count file header ({exc})") from exc
    if not header or len(header) < 2:
        raise SlideError(path, "the count file has no header row with gene names")
    return header[0], header[1:]


def read_count_csv(
    path: str | Path,
    progress: ProgressCallback | None = None,
    block_size: int = 32 << 20,
) -> Expression:
    """Stream a dense count CSV into a sparse `Expression` without a dense copy of the file."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    path = Path(path)
    _, raw_genes = read_count_header(path)
    genes = make_unique(raw_genes)
    id_col = "\x00spot_id"  # cannot collide with a gene name
    column_types = {id_col: pa.string(), **{g: pa.float32() for g in genes}}
    total = max(path.stat().st_size, 1)
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(
                column_names=[id_col, *genes], skip_rows=1, block_size=block_size
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=column_types,
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        ids: list[np.ndarray] = []
        blocks: list[sp.csr_matrix] = []
        done = 0
        for batch in reader:
            ids.append(batch.column(0).to_numpy(zero_copy_only=False).astype(object))
            dense = np.empty((batch.num_rows, len(genes)), dtype=np.float32)
            for j in range(len(genes)):
                dense[:, j] = batch.column(j + 1).to_numpy(zero_copy_only=False)
            if np.isnan(dense).any():
                raise SlideError(path, "the count file has empty or non-numeric values")
            blocks.append(sp.csr_matrix(dense))
            done += batch.nbytes // 2  # text is about half the float32 width; refined below
            if progress is not None:
                progress(min(done, total), total)
    except SlideError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SlideError(path, f"malformed or truncated count file: {exc}") from exc
    except OSError as exc:
        raise SlideError(path, f"cannot read the count file ({exc})") from exc
    if progress is not None:
        progress(total, total)
    if not blocks:
        raise SlideError(path, "the count file has a header but no spots")
    spot_ids = np.concatenate(ids)
    matrix = sp.vstack(blocks, format="csr").tocsc()
    return Expression(
        spot_ids=spot_ids,
        gene_names=np.array(genes, dtype=object),
        raw_gene_names=np.array(raw_genes, dtype=object),
        matrix=matrix,
        source=path,
    )


def expression_from_dataframe(df: pd.DataFrame) -> Expression:
    """An `Expression` from a spots x genes table (index = spot ids); for tests and scripts."""
    genes = make_unique(df.columns.astype(str))
    return Expression(
        spot_ids=df.index.astype(str).to_numpy(dtype=object),
        gene_names=np.array(genes, dtype=object),
        raw_gene_names=df.columns.astype(str).to_numpy(dtype=object),
        matrix=sp.csc_matrix(df.to_numpy(dtype=np.float32)),
    )
