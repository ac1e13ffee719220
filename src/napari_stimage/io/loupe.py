"""Loupe Browser category CSV (`Barcode,<Category>`), so labels move between this tool and 10x's.

Slide spot ids are `{slide}_{barcode}` for Visium; Loupe knows only the barcode. Export strips
the `{slide}_` prefix, import adds it back (a barcode that already is a slide spot id is taken
as is). Only labelled spots are exported: Loupe treats unlisted barcodes as unassigned, so an
imported row with an empty category cell is skipped (counted), never a reason to clear a label.

    >>> export_loupe(editor, "clusters.csv", category="Pathology")
    >>> result = import_loupe("clusters.csv", editor)   # one undo step for the whole import
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import SlideError, reading
from ..core.storage import atomic_write_bytes
from .stimage.annotation import parse_label

BARCODE_HEADER = "Barcode"


def barcode_of(spot_id: str, slide_name: str) -> str:
    prefix = f"{slide_name}_"
    return spot_id[len(prefix):] if slide_name and spot_id.startswith(prefix) else spot_id


def loupe_text(spot_ids: Sequence[str], labels: Sequence, slide_name: str, category: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([BARCODE_HEADER, category])
    seen = set()
    for spot, label in zip(spot_ids, labels, strict=True):
        if label is None or (isinstance(label, float) and label != label) or spot in seen:
            continue
        seen.add(spot)  # a spot id repeating in the coord file is one barcode
        writer.writerow([barcode_of(spot, slide_name), label])
    return buf.getvalue()


def export_loupe(editor, path: str | Path, category: str | None = None) -> int:
    """Write the editor's labelled spots as a Loupe category CSV; returns the rows written."""
    path = Path(path)
    category = category or editor.table.label_column
    text = loupe_text(editor.spot_ids.tolist(), editor.labels.tolist(), editor.slide_name, category)
    try:
        atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as exc:  # its own text may name the temporary file: name the chosen one only
        raise SlideError(path, f"cannot write the Loupe CSV ({exc.strerror or exc})") from exc
    return text.count("\n") - 1


@dataclass
class LoupeCategories:
    category: str
    labels: dict[str, str]  # slide spot id -> label
    unmatched: list[str] = field(default_factory=list)  # barcodes not on the slide
    empty: list[str] = field(default_factory=list)  # barcodes with an empty (or NA) category cell: skipped


def read_loupe(path: str | Path, spot_ids: Sequence[str], slide_name: str) -> LoupeCategories:
    """Parse a Loupe category CSV and map its barcodes onto the slide's spot ids."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SlideError(path, f"cannot read the Loupe CSV ({exc})") from exc
    # strict: an unclosed quote is an error, not a cell that swallows the rest of the file
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    with reading(path, "Loupe CSV", reader):
        rows = [row for row in reader if row]
    if not rows or len(rows[0]) < 2:
        raise SlideError(path, "not a Loupe category CSV: expected a header 'Barcode,<Category>'")
    if rows[0][0].strip().lower() != BARCODE_HEADER.lower():
        raise SlideError(path, f"not a Loupe category CSV: the first header cell is {rows[0][0]!r}, not 'Barcode'")
    known = set(spot_ids)
    out = LoupeCategories(category=rows[0][1], labels={})
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) < 2:
            raise SlideError(path, f"line {line_no} has no category: {row!r}")
        barcode, label = row[0], parse_label(row[1])
        if label is None:
            out.empty.append(barcode)
            continue
        spot = f"{slide_name}_{barcode}" if f"{slide_name}_{barcode}" in known else barcode
        if spot not in known:
            out.unmatched.append(barcode)
            continue
        out.labels[spot] = label
    return out


def import_loupe(path: str | Path, editor) -> LoupeCategories:
    """Apply a Loupe category CSV to `editor` as one undo step; empty category cells are skipped."""
    result = read_loupe(path, editor.spot_ids.tolist(), editor.slide_name)
    index: dict[str, int] = {}
    for i, spot in enumerate(editor.spot_ids.tolist()):
        index.setdefault(spot, i)  # the editor spreads a label over repeated ids itself
    labels_by_index = {index[spot]: label for spot, label in result.labels.items()}
    editor.assign_each(labels_by_index, description=f"import {len(labels_by_index)} Loupe label(s)")
    return result
