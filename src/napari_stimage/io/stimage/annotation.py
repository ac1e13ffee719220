"""Pathologist annotation files: `annotation/{slide}_anno.csv`, read and written losslessly.

One row per spot: the spot id, then one label column whose header differs by study
(`V2`, `TLS_2_cat`, ...). The first header cell is empty or `V1`/`Barcode`.
Empty, `NA` and `NaN` cells mean "unlabelled".

Curators' files must survive a round trip untouched, so the reader keeps the raw text of
every record (cells as written, quoting, line ending, BOM, blank lines, bytes that are not
UTF-8) and the writer emits unedited records verbatim:

    >>> table = read_annotation("annotation/SLIDE_anno.csv")
    >>> edited = table.with_labels({"SLIDE_AAAC-1": "L3", "SLIDE_NEW-1": "WM"})
    >>> write_annotation(edited, table.path, expected=table.fingerprint)

`with_labels` relabels every row of a spot (repeated ids included), appends rows for spots
the file did not list, and leaves rows of other spots (also unknown spots) as they were.
New files get the header `,label` (empty first cell, label column `DEFAULT_LABEL_COLUMN`);
`LabelEditor` writes them with one row per spot, unlabelled spots with an empty label cell.
Writes are atomic (`storage.atomic_write_bytes`, through symlinks), locked against other
processes (`storage.file_lock`, the changed-on-disk check runs under the lock) and keep the
previous version next to the file as `{name}.bak`, and the first version ever replaced as
`{name}.orig`. `write_annotation(..., expected=...)`
raises `AnnotationChangedOnDisk` instead of overwriting a file someone else changed, and
`AnnotationDeletedOnDisk` instead of re-creating one someone deleted.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from ...core.errors import SlideError
from ...core.storage import atomic_write_bytes, file_lock, real_target

MISSING_TOKENS = frozenset({"", "NA", "NaN", "nan", "N/A", "<NA>"})
DEFAULT_LABEL_COLUMN = "label"
BACKUP_SUFFIX = ".bak"
ORIGINAL_SUFFIX = ".orig"
_BOM = "\ufeff"
_ENCODING = "utf-8"
_ERRORS = "surrogateescape"  # bytes that are not UTF-8 round-trip unchanged


def parse_label(cell: str) -> str | None:
    return None if cell.strip() in MISSING_TOKENS else cell


def reads_as_missing(label: str) -> bool:
    """True for a label text that any reader of the file would take as "unlabelled": ours, or
    pandas' `read_csv` with its default missing-value words (`None`, `NULL`, `#N/A`, `-nan`, ...)."""
    from pandas._libs.parsers import STR_NA_VALUES  # the list read_csv documents; no public name

    text = label.strip()
    return text in MISSING_TOKENS or text in STR_NA_VALUES


class AnnotationChangedOnDisk(SlideError):
    """The annotation file was changed by something else since it was loaded; nothing was written."""

    def __init__(self, path: str | Path, problem: str | None = None):
        super().__init__(path, problem or (
            "the file was changed on disk (by another program or curator) since it was loaded; "
            "not overwritten, so their edits are not lost (save elsewhere, or reload)"
        ))


class AnnotationDeletedOnDisk(AnnotationChangedOnDisk):
    """The annotation file was deleted since it was loaded; it is not silently re-created."""

    def __init__(self, path: str | Path):
        super().__init__(path, "the file was deleted on disk since it was loaded; not re-created without asking")


@dataclass(frozen=True)
class Fingerprint:
    """What a file looked like when read or written: changes in any part mean "changed on disk"."""

    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def of_bytes(cls, data: bytes, mtime_ns: int) -> Fingerprint:
        return cls(len(data), mtime_ns, hashlib.sha256(data).hexdigest())

    @classmethod
    def of_file(cls, path: str | Path) -> Fingerprint | None:
        path = Path(path)
        try:
            stat = path.stat()
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return cls.of_bytes(data, stat.st_mtime_ns)

    def same_content(self, other: Fingerprint | None) -> bool:
        return other is not None and (self.size, self.sha256) == (other.size, other.sha256)


@dataclass(slots=True)  # one per row: 600k of them for a VisiumHD slide
class AnnotationRow:
    """One record of the file. `cells` hold the raw text of each cell (quotes included), or are
    None for a record without quotes, whose cells are `raw.split(",")` (600k lists are ~50 MB).

    A row whose `label` still equals `original_label` is written back as `raw` + `terminator`.
    """

    spot_id: str | None  # None for blank lines (kept verbatim, not data)
    label: str | None
    cells: list[str] | None
    terminator: str
    original_label: str | None = None
    raw: str | None = None  # None for rows that were not in the file

    @property
    def is_data(self) -> bool:
        return self.spot_id is not None

    @property
    def edited(self) -> bool:
        return self.raw is None or self.label != self.original_label


@dataclass(frozen=True)
class FileStyle:
    """How the file writes what new and edited cells must also write."""

    terminator: str = "\n"
    missing: str = ""  # the raw text of an unlabelled cell: "" (pandas) or NA (R)
    quote_ids: bool = False
    quote_labels: bool = False
    bom: bool = False
    trailing_newline: bool = True
    encoding: str = "utf-8"  # "latin-1" for files that are not valid UTF-8 (old Windows exports)


@dataclass
class AnnotationTable:
    """Rows of an annotation file in file order; repeated spot ids and unknown spots are kept."""

    header: list[str]  # decoded header cells
    rows: list[AnnotationRow] = field(default_factory=list)
    path: Path | None = None
    fingerprint: Fingerprint | None = None  # of the file as read; None for a table not read from disk
    style: FileStyle = field(default_factory=FileStyle)
    header_raw: str | None = None
    header_terminator: str = "\n"

    # -- the read API slide.py uses -------------------------------------------------------------
    @property
    def data_rows(self) -> list[AnnotationRow]:
        return [row for row in self.rows if row.is_data]

    @property
    def spot_ids(self) -> list[str]:
        return [row.spot_id for row in self.rows if row.is_data]

    @property
    def labels(self) -> list[str | None]:
        return [row.label for row in self.rows if row.is_data]

    @property
    def label_column(self) -> str:
        return self.header[1] if len(self.header) > 1 else DEFAULT_LABEL_COLUMN

    def first_labels(self) -> dict[str, str | None]:
        """Spot id -> label, the first row of a repeated id winning (as the dataset's code does)."""
        out: dict[str, str | None] = {}
        for row in self.rows:
            if row.is_data:
                out.setdefault(row.spot_id, row.label)
        return out

    def repeated_ids(self) -> list[str]:
        seen, repeated = set(), []
        for spot in self.spot_ids:
            if spot in seen:
                repeated.append(spot)
            seen.add(spot)
        return repeated

    # -- editing -----------------------------------------------------------------------------
    @classmethod
    def new(cls, path: str | Path | None = None, label_column: str = DEFAULT_LABEL_COLUMN) -> AnnotationTable:
        """An empty table for a slide without annotation file: header `,{label_column}`."""
        return cls(header=["", label_column], path=Path(path) if path is not None else None)

    def with_labels(
        self,
        labels: Mapping[str, str | None],
        append_order: Iterable[str] | None = None,
        append_unlabelled: bool = False,
    ) -> AnnotationTable:
        """A copy with `labels` (spot id -> label, None = unlabelled) applied to every row of each spot.

        Spots not yet in the file get a new row at the end when they have a label (or always, with
        `append_unlabelled`: a new file listing every spot), in the order of `append_order`
        (default: the mapping's order). Rows of spots not in `labels` are untouched.
        """
        rows, listed = [], set()
        for row in self.rows:
            if row.is_data and row.spot_id in labels:
                listed.add(row.spot_id)
                row = replace(row, label=labels[row.spot_id])
            rows.append(row)
        order = labels.keys() if append_order is None else append_order
        appended = set()
        for spot in order:
            label = labels.get(spot)
            if spot in listed or spot in appended or (label is None and not append_unlabelled):
                continue
            appended.add(spot)
            rows.append(
                AnnotationRow(spot_id=spot, label=label, cells=[], terminator=self.style.terminator)
            )
        return replace(self, rows=rows)

    # -- writing -----------------------------------------------------------------------------
    def to_text(self) -> str:
        style = self.style
        parts = [_BOM] if style.bom else []
        header = self.header_raw if self.header_raw is not None else ",".join(
            _quote(cell, style.quote_ids) for cell in self.header
        )
        n_extra = max(len(self.header) - 2, 0)
        records = [[header, self.header_terminator]]
        records += [[_render_row(row, style, n_extra), row.terminator] for row in self.rows]
        if self.rows and self.rows[-1].raw is None and not style.trailing_newline:
            records[-1][1] = ""  # appended last row: keep the file's "no newline at the end"
        for body, terminator in records[:-1]:
            # a record without terminator that is no longer last (rows were appended after it)
            parts.append(body + (terminator or style.terminator))
        parts.append("".join(records[-1]))
        return "".join(parts)

    def to_bytes(self) -> bytes:
        encoding = self.style.encoding
        try:
            return self.to_text().encode(encoding, _ERRORS)
        except UnicodeEncodeError as exc:
            # writing it in another encoding would leave the file with two encodings at once
            bad = exc.object[exc.start:exc.end]
            raise SlideError(
                self.path, f"the label text {bad!r} cannot be written in this file's encoding ({encoding})"
            ) from exc


def _needs_quotes(text: str) -> bool:
    return any(ch in text for ch in ',"\r\n') or text != text.strip()


def _quote(text: str, always: bool) -> str:
    if always or _needs_quotes(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def _render_row(row: AnnotationRow, style: FileStyle, n_extra: int) -> str:
    if not row.is_data:
        return row.raw or ""
    if not row.edited:
        return row.raw
    if row.raw is not None:
        cells = row.cells if row.cells is not None else row.raw.split(",")
        id_cell, extra = cells[0], cells[2:]
    else:
        id_cell, extra = _quote(row.spot_id, style.quote_ids), [""] * n_extra
    label_cell = style.missing if row.label is None else _quote(row.label, style.quote_labels)
    return ",".join([id_cell, label_cell, *extra])


# -- reading ------------------------------------------------------------------------------------
_SIMPLE_RECORD = re.compile(r'[^"\r\n]*')  # a record without quotes: split on commas
_QUOTED_CELL = re.compile(r'"([^"]*(?:""[^"]*)*)"')
_PLAIN_CELL = re.compile(r"[^,\r\n]*")


def _terminator_at(text: str, i: int) -> str:
    if text.startswith("\r\n", i):
        return "\r\n"
    return text[i] if i < len(text) else ""


def _split_records(text: str, path: Path | None) -> Iterator[tuple[list[str], list[str], str, str]]:
    """CSV records as (raw cells, values, raw body, terminator); quoted cells may hold newlines.

    One at a time: a list of 600k records would be ~50 MB more at the peak of opening a slide.
    """
    i, n = 0, len(text)
    while i < n:
        simple = _SIMPLE_RECORD.match(text, i)
        end = simple.end()
        if end == n or text[end] in "\r\n":  # no quote in this record: the fast path
            body = text[i:end]
            cells = body.split(",")
            terminator = _terminator_at(text, end)
            i = end + len(terminator)
            yield cells, cells, body, terminator
            continue
        start_record = i
        raw_cells, values = [], []
        while True:
            start = i
            if text.startswith('"', i):
                quoted = _QUOTED_CELL.match(text, i)
                if quoted is None:
                    line = text.count("\n", 0, start) + 1
                    raise SlideError(path, f"line {line}: a quoted cell is never closed")
                tail = _PLAIN_CELL.match(text, quoted.end())  # text after a closing quote: kept as csv does
                value = quoted.group(1).replace('""', '"') + tail.group()
                i = tail.end()
            else:
                plain = _PLAIN_CELL.match(text, i)
                value = plain.group()
                i = plain.end()
            raw_cells.append(text[start:i])
            values.append(value)
            if i < n and text[i] == ",":
                i += 1
                continue
            break
        body = text[start_record:i]
        terminator = _terminator_at(text, i)
        i += len(terminator)
        yield raw_cells, values, body, terminator


def _majority(counter: Counter, default):
    return counter.most_common(1)[0][0] if counter else default


def read_annotation(path: str | Path, known_ids: Mapping[str, str] | None = None) -> AnnotationTable:
    """Read an annotation file keeping everything needed to write it back byte for byte.

    `known_ids` maps spot ids to equal strings already held (the coord file's): rows then share
    them instead of holding a second copy of 600k ids (`parse_annotation`).
    """
    path = Path(path)
    try:
        mtime_ns = path.stat().st_mtime_ns
        data = path.read_bytes()
    except OSError as exc:
        raise SlideError(path, f"cannot read the annotation file ({exc})") from exc
    fingerprint = Fingerprint.of_bytes(data, mtime_ns)
    text, encoding = _decode(data, path)
    del data  # parsed from the text alone: a 600k-row file is ~35 MB of bytes and as much of text
    return _parse_text(text, encoding, path, fingerprint, known_ids)


def _decode(data: bytes, path: Path | None) -> tuple[str, str]:
    """The file's text and the one encoding its new labels are written in.

    UTF-8, with stray bytes that are not UTF-8 kept as they are (`surrogateescape`: they
    round-trip unchanged and the other labels stay readable). A file without a single UTF-8
    multi-byte character but with other high bytes is an old Windows export: Latin-1, which
    maps every byte. UTF-16 and NUL bytes are refused: they would silently lose labels.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or data[:200].count(b"\x00") > len(data[:200]) // 4:
        raise SlideError(path, "the annotation file is UTF-16 encoded; save it as UTF-8 (CSV UTF-8) and open it again")
    if b"\x00" in data:
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise SlideError(path, f"line {line} contains a NUL byte (a damaged or binary file); labels would be lost")
    text = data.decode(_ENCODING, _ERRORS)
    if _STRAY_BYTE.search(text) is None or _UTF8_CHARACTER.search(text) is not None:
        return text, _ENCODING  # UTF-8, perhaps with a few stray bytes kept as they were
    return data.decode("latin-1"), "latin-1"


_STRAY_BYTE = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a non-UTF-8 byte
_UTF8_CHARACTER = re.compile("[^\x00-\x7f\udc80-\udcff]")


def parse_annotation(data: bytes, path: str | Path | None = None, fingerprint: Fingerprint | None = None,
                     known_ids: Mapping[str, str] | None = None) -> AnnotationTable:
    path = Path(path) if path is not None else None
    return _parse_text(*_decode(data, path), path, fingerprint, known_ids)


def _parse_text(text: str, encoding: str, path: Path | None, fingerprint: Fingerprint | None,
                known_ids: Mapping[str, str] | None) -> AnnotationTable:
    bom = text.startswith(_BOM)
    if bom:
        text = text[1:]
    records = _split_records(text, path)
    header = next(records, None)
    if header is None:
        raise SlideError(path, "the annotation file is empty")
    header_cells, header_values, header_raw, header_terminator = header
    if len(header_values) < 2:
        raise SlideError(path, "the annotation file needs a spot id column and a label column (header has one cell)")

    rows: list[AnnotationRow] = []
    terminators = Counter([header_terminator] if header_terminator else [])
    missing, quoted_ids, quoted_labels = Counter(), Counter(), Counter()
    line_no = 1 + header_raw.count("\n") + (header_terminator != "")
    # Equal strings held once: a VisiumHD file repeats a handful of labels over 600k rows, and its
    # ids are the coord file's. Only unquoted cells (`cells is values`), whose text is the value.
    known_ids = known_ids or {}
    seen_labels: dict[str, str] = {}
    last_terminator = header_terminator
    for cells, values, body, terminator in records:
        last_terminator = terminator
        if cells is values and len(cells) > 1:
            cells[0] = known_ids.get(cells[0], cells[0])
            cells[1] = seen_labels.setdefault(cells[1], cells[1])
        if terminator:
            terminators[terminator] += 1
        if values == [""]:  # a blank line: not data, kept where it was
            rows.append(AnnotationRow(None, None, cells, terminator, raw=body))
        else:
            if len(values) < 2:
                raise SlideError(path, f"line {line_no} has no label column: {body!r}")
            label = parse_label(values[1])
            rows.append(AnnotationRow(values[0], label, None if cells is values else cells, terminator,
                                      original_label=label, raw=body))
            quoted_ids[cells[0].startswith('"')] += 1
            if label is None:
                missing[cells[1]] += 1
            else:
                quoted_labels[cells[1].startswith('"')] += 1
        line_no += body.count("\n") + (terminator != "")

    style = FileStyle(
        terminator=_majority(terminators, "\n"),
        missing=_majority(missing, ""),
        quote_ids=_majority(quoted_ids, False),
        quote_labels=_majority(quoted_labels, header_cells[1].startswith('"')),
        bom=bom,
        trailing_newline=last_terminator != "",
        encoding=encoding,
    )
    return AnnotationTable(
        header=header_values,
        rows=rows,
        path=path,
        fingerprint=fingerprint,
        style=style,
        header_raw=header_raw,
        header_terminator=header_terminator,
    )


def backup_path(path: str | Path) -> Path:
    """The previous version, replaced at every save."""
    path = Path(path)
    return path.with_name(path.name + BACKUP_SUFFIX)


def original_path(path: str | Path) -> Path:
    """The file as it was before napari-stimage first saved over it; written once, kept for good."""
    path = Path(path)
    return path.with_name(path.name + ORIGINAL_SUFFIX)


def write_annotation(
    table: AnnotationTable,
    path: str | Path | None = None,
    expected: Fingerprint | None = None,
    check_changed: bool = True,
    backup: bool = True,
) -> Fingerprint:
    """Write `table` to `path` (default `table.path`) atomically; returns the new file's fingerprint.

    With `check_changed` and an `expected` fingerprint, an existing file whose content differs from
    it raises `AnnotationChangedOnDisk` and nothing is written. The file being replaced is kept as
    `{name}.bak`, and the very first version napari-stimage replaced as `{name}.orig` (never
overwritten). On any error the file at `path` is left as it was.
    """
    if path is None and table.path is None:
        raise ValueError("write_annotation needs a path for a table that was not read from a file")
    path = Path(path if path is not None else table.path)
    target = real_target(path)  # a symlinked annotation: its target gets the edits, the link stays
    data = table.to_bytes()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # The check and the write happen under one lock, so two curators saving at the same
        # moment cannot both pass the check: the second one sees the first one's file.
        with file_lock(target):
            current = Fingerprint.of_file(target)
            if check_changed and expected is not None:
                if current is None:
                    raise AnnotationDeletedOnDisk(path)
                if not expected.same_content(current):
                    raise AnnotationChangedOnDisk(path)
            if backup and current is not None:
                previous = target.read_bytes()
                if not original_path(target).exists():  # the file as first found, never overwritten
                    atomic_write_bytes(original_path(target), previous, mode_from=target)
                atomic_write_bytes(backup_path(target), previous, mode_from=target)
            atomic_write_bytes(target, data)
            return Fingerprint.of_bytes(data, target.stat().st_mtime_ns)
    except SlideError:
        raise
    except OSError as exc:
        raise SlideError(path, f"cannot write the annotation file ({exc})") from exc
