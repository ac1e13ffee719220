"""Spots x genes expression, streamed from the dataset's dense count CSV into a sparse matrix.

The count files are dense text (`,GENE1,GENE2,...` then `spot_id,0.0,1.0,...`), mostly zeros,
and up to 44 GB. `iter_count_blocks` reads them in blocks of whole lines (16 MiB) and tokenises
each block with numpy (no per-cell Python, no float parsing of zeros; see `_parse_lines_fast`),
yielding only the non-zeros, so memory follows the block size and the non-zeros, not the file.
Anything the fast path does not recognise (quotes, `0`/`2.5`/`1e3` cells, blank lines, errors)
falls back, per block, to an exact tokenizer that names the file and line of a bad cell.

`read_count_csv` builds an in-memory `Expression`; `cache.load_expression_cached` (what slides
use) streams to an on-disk CSC cache instead and memory-maps it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..core.errors import SlideError, reading
from ..core.expression import Expression, make_unique
from ..core.progress import Cancelled, ProgressCallback


def read_count_header(path: str | Path) -> tuple[str, list[str]]:
    """The id header cell and the gene names of a count CSV, as written."""
    path = Path(path)
    with reading(path, "count file header"), open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        with reading(path, "count file header", reader):
            header = next(reader, None)
    if not header or len(header) < 2:
        raise SlideError(path, "the count file has no header row with gene names")
    return header[0], header[1:]



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


def _parse_lines(path: Path, data: bytes, n_genes: int, first_row: int, first_line_no: int) -> CountBlock:
    """Parse whole lines: the fast path for files as the dataset writes them, else the exact one."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    if not data.endswith(b"\n"):
        data += b"\n"
    block = _parse_lines_fast(data, n_genes, first_row)
    if block is None:
        with np.errstate(over="ignore"):  # 1e300 becomes inf in float32: _check_counts reports it
            block = _parse_lines_exact(path, data, n_genes, first_row, first_line_no)
    _check_counts(path, block, first_line_no)
    return block


MAX_COUNT = 1e9  # more reads than any spot or bin can hold: a corrupt or mislabelled file


def _check_counts(path: Path, block: CountBlock, first_line_no: int) -> None:
    """Counts are finite, non-negative and below `MAX_COUNT`, whatever path parsed them (they
    decide which genes are shown by default, so a bad one must not pass silently)."""
    bad = ~np.isfinite(block.values) | (block.values < 0) | (block.values > MAX_COUNT)
    if not bad.any():
        return
    i = int(np.flatnonzero(bad)[0])
    value = float(block.values[i])
    why = "not a finite number" if not np.isfinite(value) else "negative" if value < 0 else f"above {MAX_COUNT:g}"
    line = first_line_no + int(block.rows[i] - block.first_row)
    raise _line_number_error(path, line, f"count {value:g} in gene column {int(block.cols[i]) + 2} is {why}")


_FIELD_WINDOW = 10  # bytes looked at from the start of a non-zero cell (`1234567.0,`)
_ALLOWED_IN_COUNTS = b"0123456789.,\n"


def _parse_lines_fast(data: bytes, n_genes: int, first_row: int) -> CountBlock | None:
    """The dataset's own layout, where every zero cell is exactly `0.0` and counts are `N.0`.

    Only the bytes of non-zero cells are looked at one by one: the column of a non-zero cell
    follows from the byte distance to the previous one (each zero cell is 4 bytes, `0.0,`, or
    2 bytes, `0,`, in files written as integers).
    Every assumption is checked (characters, commas and dots per line, gap sizes); on any
    surprise this returns None and the exact tokenizer handles the block.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    newline_at = np.flatnonzero(buf == _NEWLINE)
    n_lines = len(newline_at)
    line_start = np.empty(n_lines, dtype=np.int64)
    line_start[0] = 0
    line_start[1:] = newline_at[:-1] + 1
    spot_ids: list[str] = []
    id_end = np.empty(n_lines, dtype=np.int64)
    leftover_in_ids = []
    zero_width: int | None = None  # bytes of a zero cell with its comma: `0.0,` or `0,`
    for k, (a, b) in enumerate(zip(line_start.tolist(), newline_at.tolist(), strict=True)):
        line = data[a:b]
        comma = line.find(b",")
        if comma <= 0 or line.count(b",") != n_genes:
            return None
        spot_id = line[:comma]
        if b'"' in spot_id:
            return None
        # Every value cell has one dot (`0.0`, `3.0`) or none (`0`, `3`): zero cells are 4 or 2 bytes.
        dots = line.count(b".") - spot_id.count(b".")
        cell_style = 4 if dots == n_genes else 2 if dots == 0 else None
        if cell_style is None or (zero_width is not None and cell_style != zero_width):
            return None
        zero_width = cell_style
        id_end[k] = a + comma
        spot_ids.append(spot_id.decode("utf-8"))
        leftover_in_ids.append(spot_id.translate(None, _ALLOWED_IN_COUNTS))
    if data.translate(None, _ALLOWED_IN_COUNTS) != b"".join(leftover_in_ids):
        return None  # letters, signs or spaces outside the ids: let the exact path judge them

    # Candidate non-zero cells: a 1-9 digit right after a comma, outside the id cells.
    digit_at = np.flatnonzero((buf - np.uint8(49)) < np.uint8(9))
    line_of_digit = np.searchsorted(newline_at, digit_at)
    digit_at = digit_at[digit_at > id_end[line_of_digit]]
    is_start = buf[digit_at - 1] == _COMMA
    starts = digit_at[is_start]
    line_of = np.searchsorted(newline_at, starts)

    # Decode `N` or `N.0` inside a fixed window after each start, one byte column at a time.
    n = len(starts)
    last = len(buf) - 1
    width = np.full(n, -1, dtype=np.int64)  # cell length = offset of the closing separator
    for k in range(_FIELD_WINDOW):
        c = buf[np.minimum(starts + k, last)]
        width[(width < 0) & ((c == _COMMA) | (c == _NEWLINE))] = k
    if (width < 0).any():
        return None
    ends = starts + width
    dot_zero = (width >= 3) & (buf[ends - 1] == _ZERO) & (buf[ends - 2] == _DOT)
    int_width = np.where(dot_zero, width - 2, width)
    if (int_width > _MAX_FAST_DIGITS).any():
        return None
    values = np.zeros(n, dtype=np.int64)
    for k in range(_MAX_FAST_DIGITS):
        active = k < int_width
        if not active.any():
            break
        d = buf[np.minimum(starts + k, last)].astype(np.int64) - _ZERO
        if ((d[active] < 0) | (d[active] > 9)).any():
            return None  # decimals (`2.5`), exponents: the exact path parses them
        values = np.where(active, values * 10 + d, values)
    values = values.astype(np.float32)

    # Every 1-9 digit must sit inside one of the decoded cells (else a cell like `0.5` exists).
    owner = np.searchsorted(starts, digit_at, side="right") - 1
    if len(digit_at) and ((owner < 0).any() or (digit_at >= ends[np.maximum(owner, 0)]).any()):
        return None

    # Column from byte gaps: between cells only `0.0,` (4 bytes each) may occur.
    prev_end = np.empty(len(starts), dtype=np.int64)
    if len(starts):
        prev_end[1:] = ends[:-1]
        first_in_line = np.ones(len(starts), dtype=bool)
        first_in_line[1:] = line_of[1:] != line_of[:-1]
        prev_end[first_in_line] = id_end[line_of[first_in_line]]
        gap = starts - prev_end - 1
        if (gap % zero_width).any():
            return None
        step = gap // zero_width + 1
        running = np.cumsum(step)
        line_base = np.zeros(len(starts), dtype=np.int64)
        group_start = np.flatnonzero(first_in_line)
        base_values = np.concatenate([[0], running[group_start[1:] - 1]])
        line_base = np.repeat(base_values, np.diff(np.append(group_start, len(starts))))
        cols = running - line_base - 1
        # Trailing zeros after the last non-zero cell of each line must fill it up to n_genes.
        last_in_line = np.ones(len(starts), dtype=bool)
        last_in_line[:-1] = line_of[1:] != line_of[:-1]
        tail = newline_at[line_of[last_in_line]] - ends[last_in_line]
        if (tail % zero_width).any() or not np.array_equal(
            cols[last_in_line] + 1 + tail // zero_width, np.full(last_in_line.sum(), n_genes)
        ):
            return None
    else:
        cols = np.zeros(0, dtype=np.int64)
    has_value = np.zeros(n_lines, dtype=bool)
    has_value[line_of] = True
    empty_lines = np.flatnonzero(~has_value)
    if len(empty_lines) and not np.all(newline_at[empty_lines] - id_end[empty_lines] == zero_width * n_genes):
        return None
    if (cols >= n_genes).any():
        return None
    keep = values != 0
    return CountBlock(
        first_row, spot_ids, (line_of + first_row)[keep], cols[keep].astype(np.int32), values[keep]
    )


def _parse_lines_exact(
    path: Path, data: bytes, n_genes: int, first_row: int, first_line_no: int
) -> CountBlock:
    """Tokenise whole lines with numpy (every separator located): any cell format, exact errors.

    Zero cells (`0`, `0.0`) are recognised by their bytes and never converted; non-zero whole
    counts (`3`, `12.0`) are decoded digit by digit in bulk; anything else (`2.5`, `1e3`) goes
    through `float()` one by one, which is rare in real count files.
    """
    if b"\n\n" in data or data.startswith(b"\n"):
        # Blank lines carry no spot (pandas skips them too); error line numbers may then be
        # off by the number of blank lines skipped before them.
        data = b"\n".join(line for line in data.split(b"\n") if line.strip()) + b"\n"
        if data == b"\n":
            return CountBlock(first_row, [], np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32))
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
    spot_ids = [data[a:b].decode("utf-8") for a, b in zip(line_starts.tolist(), id_ends.tolist(), strict=True)]
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
    reader = csv.reader(io.StringIO(text), strict=True)
    with reading(path, "count file", reader):
        records = list(reader)
    for k, cells in enumerate(records):
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
    with reading(path, "count file"), open(path, "rb") as fh:
        head = fh.read(1 << 16)
    # old Mac line endings (CR only): read as if they were LF, block by block
    cr_only = b"\r" in head and b"\n" not in head
    header_bytes = head.index(b"\r") + 1 if cr_only else _header_length(path)

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
                if cr_only:
                    chunk = chunk.replace(b"\r", b"\n")
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
