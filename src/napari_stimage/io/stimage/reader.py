"""Read an STimage-1K4M slide: coord, count and annotation files joined on spot id.

Registered in `io.registry` by `io/stimage/__init__.py`; use `napari_stimage.load_slide`, which
picks the reader for a path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...core.errors import SlideError, reading
from ...core.expression import Expression
from ...core.progress import CancelCallback, ProgressCallback, progress_share
from ...core.slide import JoinReport, Slide
from .annotation import read_annotation
from .layout import SlidePaths
from .source import STimageSource


def _repeated(ids) -> list[str]:
    s = pd.Series(ids)
    return s[s.duplicated()].astype(str).unique().tolist()


def read_coords(path: str | Path) -> pd.DataFrame:
    """Spots of a coord file: columns spot_id, y, x, r in file order (ids may repeat)."""
    path = Path(path)
    with reading(path, "coord file"):
        df = pd.read_csv(path, dtype={0: str}, keep_default_na=False, na_values=[""])
    missing = [c for c in ("yaxis", "xaxis", "r") if c not in df.columns]
    if missing:
        raise SlideError(
            path, f"the coord file lacks column(s) {', '.join(missing)} (expected header ',yaxis,xaxis,r')"
        )
    spots = pd.DataFrame(
        {
            "spot_id": df.iloc[:, 0].astype(str).to_numpy(dtype=object),
            "y": pd.to_numeric(df["yaxis"], errors="coerce").to_numpy(np.float64),
            "x": pd.to_numeric(df["xaxis"], errors="coerce").to_numpy(np.float64),
            "r": pd.to_numeric(df["r"], errors="coerce").to_numpy(np.float64),
        }
    )
    if spots.empty:
        raise SlideError(path, "the coord file has no spots")
    _check_geometry(path, spots, df)
    return spots


MAX_COORDINATE = 1e7  # pixels; the largest slide images are ~1e5 wide


def _check_geometry(path: Path, spots: pd.DataFrame, cells: pd.DataFrame) -> None:
    """Numeric, finite positions within +-`MAX_COORDINATE`, radii in 0..`MAX_COORDINATE`:
    anything else would break napari (Qt overflow) and render later, far from its cause."""
    for column, name in (("y", "yaxis"), ("x", "xaxis"), ("r", "r")):
        values = spots[column].to_numpy(np.float64)
        low = 0.0 if column == "r" else -MAX_COORDINATE
        bad = ~np.isfinite(values) | (values < low) | (values > MAX_COORDINATE)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            cell = cells[name].iloc[i]
            what = "missing" if pd.isna(cell) or str(cell).strip() == "" else f"{str(cell)[:40]!r}"
            raise SlideError(
                path,
                f"column {name}, line {i + 2} (spot {spots['spot_id'].iloc[i]}): {what} is not a "
                f"{'radius' if column == 'r' else 'coordinate'} in {low:g}..{MAX_COORDINATE:g}"
                f" ({int(bad.sum())} bad value(s) in this column)",
            )


def load_expression(
    path: Path,
    progress: ProgressCallback | None = None,
    cancel: CancelCallback | None = None,
    notes: list[str] | None = None,
) -> Expression:
    """The expression of a count file (the single place slides get their counts from).

    Goes through the on-disk cache (`io/cache.py`): parsed once, memory-mapped on later opens.
    """
    from ..cache import load_expression_cached

    return load_expression_cached(path, progress=progress, cancel=cancel, notes=notes)


def _remove_stale_temp_files(paths: SlidePaths) -> None:
    """Temporary files of saves and cache builds that a killed process left behind."""
    from ...core.storage import remove_stale_temp_files
    from ..cache import remove_stale_temp_files_once

    remove_stale_temp_files_once()
    annotation = paths.annotation or paths.default_annotation_path
    remove_stale_temp_files(annotation.parent, recurse=False)


def read_slide(
    paths: SlidePaths,
    progress: ProgressCallback | None = None,
    decode_image: bool = False,
    cancel: CancelCallback | None = None,
) -> Slide:
    """Load the slide of `paths` (what `io.registry.load_slide` does for STimage-1K4M files; its
    docstring says what `progress`, `decode_image` and `cancel` do). Raises SlideError on bad input."""
    _remove_stale_temp_files(paths)
    spots = read_coords(paths.coord)
    report = JoinReport(repeated_coord_ids=_repeated(spots["spot_id"]), notes=list(paths.unusable))
    # id -> the coord file's own string: the count and annotation files' equal ids share it, so
    # a 600k-bin slide holds its ids once, not three times (~55 MB each)
    coord_ids = dict(zip(spots["spot_id"], spots["spot_id"], strict=True))

    expression = None
    rows = np.full(len(spots), -1, dtype=np.int64)
    if paths.count is not None:
        expression = load_expression(
            paths.count, progress_share(progress, 0.0, 0.8 if decode_image else 1.0), cancel, notes=report.notes
        )
        expression.spot_ids = np.fromiter(
            map(coord_ids.get, expression.spot_ids, expression.spot_ids), object, len(expression.spot_ids)
        )
        count_ids = pd.Index(expression.spot_ids)
        report.repeated_count_ids = _repeated(count_ids)
        first_row = pd.Series(np.arange(len(count_ids)), index=count_ids)
        first_row = first_row[~first_row.index.duplicated()]
        rows = first_row.reindex(spots["spot_id"]).fillna(-1).to_numpy(np.int64)
        if (rows < 0).all():
            raise SlideError(
                paths.count,
                f"none of its {len(count_ids)} spot ids match the {len(spots)} spots of {paths.coord.name}",
            )
        report.coord_not_in_count = spots.loc[rows < 0, "spot_id"].astype(str).unique().tolist()
        report.count_not_in_coord = [s for s in first_row.index if s not in coord_ids]

    annotation = None
    if paths.annotation is not None:
        annotation = read_annotation(paths.annotation, known_ids=coord_ids)
        report.repeated_annotation_ids = annotation.repeated_ids()
        report.annotation_not_in_coord = list(
            dict.fromkeys(s for s in annotation.spot_ids if s not in coord_ids)
        )

    slide = Slide(
        source=STimageSource(paths),
        spots=spots,
        expression=expression,
        annotation=annotation,
        report=report,
        expression_rows=rows,
    )
    return slide.finish_reading(progress, decode_image, cancel)
