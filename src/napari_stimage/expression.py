"""Spots x genes expression, streamed from the dataset's dense count CSV into a sparse matrix.

The count files are dense text (`,GENE1,GENE2,...` then `spot_id,0.0,1.0,...`), mostly zeros,
and up to 44 GB. They are parsed in blocks with pyarrow's multithreaded CSV reader and each
block is turned into a CSR slice straight away, so memory follows the non-zeros, not the file.
"""

from __future__ import annotations

import csv
import io
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


class Cancelled(Exception):
    """Raised inside a parse when the caller's `cancel()` returned True."""


_COMMA, _NEWLINE, _QUOTE, _CR = 44, 10, 34, 13
_ZERO, _DOT = 48, 46
_MAX_FAST_DIGITS = 9  # whole counts up to 999,999,999 are decoded without float parsing


@dataclass
class CountBlock:
    """The non-zeros of a run of consecutive rows of a count file (row numbers are global)."""

    first_row: int
    spot_ids: list[str]
    rows: np.ndarray  # int64, global row of each non-zero
    cols: np.ndarray  # int32 gene column
    values: np.ndarray  # float32


def _line_number_error(path, line_no: int, problem: str) -> SlideError:
    return SlideError(path, f"line {line_no}: {problem}")


def _parse_odd_field(text: bytes) -> float | None:
    """A field the fast path did not recognise: a float, or None when empty/non-numeric/NaN."""
    try:
        value = float(text.strip().strip(b'"'))
    except ValueError:
        return None
    return None if np.isnan(value) else value


def _parse_lines(
    path: Path, data: bytes, n_genes: int, first_row: int, first_line_no: int
) -> CountBlock:
    """Tokenise whole lines of a count file with numpy: find separators, decode only non-zeros.

    Zero cells (`0`, `0.0`) are recognised by their bytes and never converted; non-zero whole
    counts (`3`, `12.0`) are decoded digit by digit in bulk; anything else (`2.5`, `1e3`) goes
    through `float()` one by one, which is rare in real count files.
    """
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    if not data.endswith(b"\n"):
        data += b"\n"
    buf = np.frombuffer(data, dtype=np.uint8)
    n_fields = n_genes + 1
    sep = np.flatnonzero((buf == _COMMA) | (buf == _NEWLINE)).astype(np.int64)
    is_newline = buf[sep] == _NEWLINE
    newline_at = np.flatnonzero(is_newline)
    n_lines = len(newline_at)
    expected = np.arange(1, n_lines + 1, dtype=np.int64) * n_fields - 1
    if len(sep) != n_lines * n_fields or not np.array_equal(newline_at, expected):
        # Find the first line whose field count is wrong, to name it.
        fields_per_line = np.diff(np.concatenate([[-1], newline_at]))
        bad = np.flatnonzero(fields_per_line != n_fields)
        k = int(bad[0]) if len(bad) else n_lines - 1
        if b'"' in data:
            return _parse_lines_slow(path, data, n_genes, first_row, first_line_no)
        line_text = data.split(b"\n")[k]
        if not line_text.strip():
            raise _line_number_error(path, first_line_no + k, "empty line inside the count table")
        raise _line_number_error(
            path,
            first_line_no + k,
            f"{int(fields_per_line[k]) if len(bad) else '?'} cells, expected {n_fields} "
            f"(spot id + {n_genes} genes): the file is truncated or malformed",
        )
    starts = np.empty(len(sep), dtype=np.int64)
    starts[0] = 0
    starts[1:] = sep[:-1] + 1
    ends = sep
    line_starts = starts[::n_fields]
    id_ends = ends[::n_fields]
    spot_ids = [data[a:b].decode("utf-8") for a, b in zip(line_starts.tolist(), id_ends.tolist())]
    if b'"' in data:
        spot_ids = [s[1:-1] if len(s) >= 2 and s[0] == s[-1] == '"' else s for s in spot_ids]

    # Fields holding a non-zero digit are non-zero (ids excluded); all others must be zeros.
    digit_pos = np.flatnonzero((buf > _ZERO) & (buf <= _ZERO + 9))
    field_of_digit = np.searchsorted(sep, digit_pos)
    keep = np.ones(len(field_of_digit), dtype=bool)
    keep[1:] = field_of_digit[1:] != field_of_digit[:-1]
    nonzero = field_of_digit[keep]
    nonzero = nonzero[nonzero % n_fields != 0]

    # Validate the zero cells by their bytes: exactly `0.0` or `0`.
    length = ends - starts
    is_nonzero = np.zeros(len(sep), dtype=bool)
    is_nonzero[nonzero] = True
    is_nonzero[::n_fields] = True  # ids are not values
    s0 = buf[np.minimum(starts, len(buf) - 1)]
    zero_like = (s0 == _ZERO) & (
        (length == 1)
        | ((length == 3) & (buf[np.minimum(starts + 1, len(buf) - 1)] == _DOT)
           & (buf[np.minimum(starts + 2, len(buf) - 1)] == _ZERO))
    )
    odd = np.flatnonzero(~zero_like & ~is_nonzero)

    # Decode non-zero whole counts (`123` or `123.0`) in bulk.
    ns, ne = starts[nonzero], ends[nonzero]
    trailing_dot_zero = (ne - ns >= 3) & (buf[ne - 1] == _ZERO) & (buf[ne - 2] == _DOT)
    int_end = np.where(trailing_dot_zero, ne - 2, ne)
    width = int_end - ns
    offsets = np.arange(_MAX_FAST_DIGITS, dtype=np.int64)
    pos = ns[:, None] + offsets[None, :]
    inside = pos < int_end[:, None]
    digits = buf[np.minimum(pos, len(buf) - 1)].astype(np.int64) - _ZERO
    fast = (width >= 1) & (width <= _MAX_FAST_DIGITS) & np.all(~inside | ((digits >= 0) & (digits <= 9)), axis=1)
    power = int_end[:, None] - pos - 1
    values = np.where(inside, digits * (10 ** np.clip(power, 0, _MAX_FAST_DIGITS)), 0).sum(axis=1)
    values = values.astype(np.float32)
    slow = np.flatnonzero(~fast)
    for i in slow.tolist():
        v = _parse_odd_field(data[ns[i] : ne[i]])
        if v is None:
            k = int(nonzero[i] // n_fields)
            raise _line_number_error(
                path, first_line_no + k, f"non-numeric count {data[ns[i]:ne[i]].decode(errors='replace')!r}"
            )
        values[i] = v

    fields = nonzero
    if len(odd):
        odd_values = np.empty(len(odd), dtype=np.float32)
        for n, f in enumerate(odd.tolist()):
            v = _parse_odd_field(data[starts[f] : ends[f]])
            if v is None:
                k = f // n_fields
                cell = data[starts[f] : ends[f]].decode(errors="replace")
                raise _line_number_error(
                    path, first_line_no + k, f"empty or non-numeric count {cell!r} in column {f % n_fields + 1}"
                )
            odd_values[n] = v
        fields = np.concatenate([fields, odd])
        values = np.concatenate([values, odd_values])
        order = np.argsort(fields, kind="stable")
        fields, values = fields[order], values[order]
        keep = values != 0
        fields, values = fields[keep], values[keep]
    rows = fields // n_fields
    cols = (fields - rows * n_fields - 1).astype(np.int32)
    return CountBlock(first_row, spot_ids, rows + first_row, cols, values)


def _parse_lines_slow(path: Path, data: bytes, n_genes: int, first_row: int, first_line_no: int) -> CountBlock:
    """Quoted cells: the csv module, line by line (only for files the fast path cannot split)."""
    text = data.decode("utf-8")
    ids, rows, cols, vals = [], [], [], []
    for k, cells in enumerate(csv.reader(io.StringIO(text))):
        if len(cells) != n_genes + 1:
            raise _line_number_error(
                path, first_line_no + k, f"{len(cells)} cells, expected {n_genes + 1}: truncated or malformed"
            )
        ids.append(cells[0])
        for j, cell in enumerate(cells[1:]):
            v = _parse_odd_field(cell.encode())
            if v is None:
                raise _line_number_error(path, first_line_no + k, f"empty or non-numeric count {cell!r}")
            if v != 0:
                rows.append(first_row + k)
                cols.append(j)
                vals.append(v)
    return CountBlock(
        first_row, ids, np.array(rows, np.int64), np.array(cols, np.int32), np.array(vals, np.float32)
    )


def _header_length(path: Path) -> int:
    """Bytes of the header record (it may be quoted and so hold commas; never newlines)."""
    with open(path, "rb") as fh:
        line = fh.readline()
    return len(line)


def iter_count_blocks(
    path: str | Path,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    block_size: int = 16 << 20,
) -> tuple[list[str], Iterable[CountBlock]]:
    """Raw gene names and a generator of parsed row blocks, read `block_size` bytes at a time.

    Memory stays at a few times `block_size` whatever the file size. `cancel()` is checked
    before each block; when it returns True the generator raises `Cancelled`.
    """
    path = Path(path)
    _, raw_genes = read_count_header(path)
    n_genes = len(raw_genes)
    total = max(path.stat().st_size, 1)
    header_bytes = _header_length(path)

    def blocks():
        done = header_bytes
        row = 0
        line_no = 2
        carry = b""
        with open(path, "rb") as fh:
            fh.seek(header_bytes)
            while True:
                if cancel is not None and cancel():
                    raise Cancelled(str(path))
                chunk = fh.read(block_size)
                if not chunk:
                    break
                data = carry + chunk if carry else chunk
                cut = data.rfind(b"\n")
                if cut < 0:  # a line longer than the block: keep reading
                    carry = data
                    continue
                carry = data[cut + 1 :]
                lines = data[: cut + 1]
                if lines.strip():
                    block = _parse_lines(path, lines, n_genes, row, line_no)
                    row += len(block.spot_ids)
                    line_no += len(block.spot_ids)
                    yield block
                done += len(chunk)
                if progress is not None:
                    progress(min(done, total), total)
        if carry.strip():  # the last line lacks its newline
            block = _parse_lines(path, carry, n_genes, row, line_no)
            yield block
        if progress is not None:
            progress(total, total)

    return raw_genes, blocks()


def read_count_csv(
    path: str | Path,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    block_size: int = 16 << 20,
) -> Expression:
    """Stream a dense count CSV into a sparse in-memory `Expression` (no dense copy of the file).

    For slides too large for memory use `cache.load_expression_cached`, which streams to disk.
    """
    path = Path(path)
    try:
        raw_genes, blocks = iter_count_blocks(path, progress, cancel, block_size)
        ids: list[str] = []
        rows, cols, vals = [], [], []
        for block in blocks:
            ids.extend(block.spot_ids)
            rows.append(block.rows)
            cols.append(block.cols)
            vals.append(block.values)
    except OSError as exc:
        raise SlideError(path, f"cannot read the count file ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise SlideError(path, f"the count file is not UTF-8 text ({exc})") from exc
    if not ids:
        raise SlideError(path, "the count file has a header but no spots")
    shape = (len(ids), len(raw_genes))
    matrix = sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape, dtype=np.float32
    )
    matrix.sum_duplicates()
    return Expression(
        spot_ids=np.array(ids, dtype=object),
        gene_names=np.array(make_unique(raw_genes), dtype=object),
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
