"""Pathologist annotation files: `annotation/{slide}_anno.csv`.

One row per spot: the spot id, then one label column whose header differs by study
(`V2`, `TLS_2_cat`, ...). The first header cell is empty or `V1`/`Barcode`.
Empty, `NA` and `NaN` cells mean "unlabelled".
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SlideError

MISSING_TOKENS = frozenset({"", "NA", "NaN", "nan", "N/A", "<NA>"})
DEFAULT_LABEL_COLUMN = "label"


def parse_label(cell: str) -> str | None:
    return None if cell.strip() in MISSING_TOKENS else cell


@dataclass
class AnnotationTable:
    """Rows of an annotation file in file order; repeated spot ids are kept."""

    header: list[str]
    spot_ids: list[str]
    labels: list[str | None]
    path: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def label_column(self) -> str:
        return self.header[1] if len(self.header) > 1 else DEFAULT_LABEL_COLUMN

    def first_labels(self) -> dict[str, str | None]:
        """Spot id -> label, the first row of a repeated id winning (as the dataset's code does)."""
        out: dict[str, str | None] = {}
        for spot, label in zip(self.spot_ids, self.labels):
            out.setdefault(spot, label)
        return out

    def repeated_ids(self) -> list[str]:
        seen, repeated = set(), []
        for spot in self.spot_ids:
            if spot in seen:
                repeated.append(spot)
            seen.add(spot)
        return repeated


def read_annotation(path: str | Path) -> AnnotationTable:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SlideError(path, f"cannot read the annotation file ({exc})") from exc
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        raise SlideError(path, "the annotation file is empty")
    header = rows[0]
    if len(header) < 2:
        raise SlideError(path, "the annotation file needs a spot id column and a label column")
    spot_ids, labels = [], []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < 2:
            raise SlideError(path, f"line {line_no} has no label column: {row!r}")
        spot_ids.append(row[0])
        labels.append(parse_label(row[1]))
    return AnnotationTable(header=header, spot_ids=spot_ids, labels=labels, path=path)
