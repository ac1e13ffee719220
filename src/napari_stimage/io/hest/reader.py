"""Read a HEST-1k sample: its `st/{id}.h5ad` (spots, counts via `counts.py`, thumbnail), metadata
JSON and WSI."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...core.errors import SlideError
from ...core.progress import CancelCallback, ProgressCallback, progress_share
from ...core.slide import JoinReport, Slide
from .counts import build_expression, index_of, read_counts, store
from .layout import HestSample, read_metadata
from .source import HestSource

SQUARE_TECHNOLOGIES = ("xenium", "visium hd", "visiumhd")  # pooled square pseudo-spots


def _column(group, name: str) -> np.ndarray | None:
    """A numeric obs column (plain dataset), or None."""
    if name not in group:
        return None
    item = group[name]
    return np.asarray(item[()], dtype=np.float64) if hasattr(item, "shape") else None


def square_pitch(array_row: np.ndarray, array_col: np.ndarray, xy: np.ndarray) -> float | None:
    """Full-res pixels per lattice step, fitted from `array_row/col` to the positions (None if the
    lattice does not explain them)."""
    ok = np.isfinite(array_row) & np.isfinite(array_col) & np.isfinite(xy).all(axis=1)
    if ok.sum() < 3:
        return None
    design = np.column_stack([array_row[ok], array_col[ok], np.ones(ok.sum())])
    coef, *_ = np.linalg.lstsq(design, xy[ok], rcond=None)
    steps = np.linalg.norm(coef[:2], axis=1)  # pixel displacement per row step and per col step
    pitch = float(steps.mean())
    return pitch if np.isfinite(pitch) and pitch > 0 else None


def _is_square(technology: str | None) -> bool:
    return technology is not None and any(t in str(technology).lower() for t in SQUARE_TECHNOLOGIES)


def read_sample(
    sample: HestSample,
    progress: ProgressCallback | None = None,
    decode_image: bool = False,
    cancel: CancelCallback | None = None,
) -> Slide:
    """Load a HEST sample. Raises SlideError (naming the file) on bad input."""
    import h5py

    from ..cache import CacheInvalid, fingerprint, load_cached_expression
    from ..stimage.annotation import read_annotation

    metadata = read_metadata(sample.metadata)
    report = JoinReport()
    path = sample.st
    try:
        expression = load_cached_expression(path)  # written on the first open (or by `convert`)
    except (CacheInvalid, OSError, ValueError):
        expression = None
    before = fingerprint(path) if expression is None else None  # taken before X is read
    try:
        with h5py.File(path, "r") as f:
            if "obsm" not in f or "spatial" not in f["obsm"]:
                raise SlideError(path, "the h5ad has no obsm['spatial'] (spot positions)")
            spot_ids = index_of(f["obs"])
            xy = np.asarray(f["obsm"]["spatial"][()], dtype=np.float64)
            if xy.ndim != 2 or xy.shape[1] < 2 or len(xy) != len(spot_ids):
                raise SlideError(path, f"obsm['spatial'] has shape {xy.shape}, expected ({len(spot_ids)}, 2)")
            array_row, array_col = _column(f["obs"], "array_row"), _column(f["obs"], "array_col")
            raw_genes = index_of(f["var"])
            library = next(iter(f["uns"]["spatial"].keys()), None) if "uns" in f and "spatial" in f["uns"] else None
            scalefactors, thumbnail = {}, None
            if library is not None:
                lib = f["uns"]["spatial"][library]
                if "scalefactors" in lib:
                    scalefactors = {k: float(np.asarray(v[()])) for k, v in lib["scalefactors"].items()}
                images = lib.get("images", {})
                if "downscaled_fullres" in images:
                    thumbnail = np.asarray(images["downscaled_fullres"][()])
            if expression is None or expression.n_spots != len(spot_ids):
                expression = None
                counts = read_counts(f["X"], len(spot_ids), len(raw_genes), cancel,
                                      progress_share(progress, 0.0, 0.8 if decode_image else 1.0))
    except SlideError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SlideError(path, f"cannot read the h5ad ({exc})") from exc

    xy = xy[:, :2]
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        raise SlideError(path, f"obsm['spatial'] has {int(bad.sum())} missing position(s), first at spot {spot_ids[bad][0]}")
    technology = metadata.get("st_technology")
    diameter = scalefactors.get("spot_diameter_fullres")
    symbol = "disc"
    if _is_square(technology):
        pitch = None if array_row is None or array_col is None else square_pitch(array_row, array_col, xy)
        if pitch is None:
            report.notes.append(f"{technology} pseudo-spots without a usable array_row/array_col lattice: "
                                "drawn as discs of spot_diameter_fullres")
        else:
            diameter, symbol = pitch, "square"
    if diameter is None or not np.isfinite(diameter) or diameter <= 0:
        raise SlideError(path, "uns['spatial'] has no spot_diameter_fullres (the spot size in full-res pixels)")

    spots = pd.DataFrame({"spot_id": spot_ids, "y": xy[:, 1], "x": xy[:, 0], "r": np.full(len(xy), diameter / 2)})
    if expression is None:
        expression = build_expression(path, spot_ids, raw_genes, counts)
        store(path, expression, before, report.notes)
    repeated = pd.Series(spot_ids)
    report.repeated_coord_ids = repeated[repeated.duplicated()].unique().tolist()

    annotation = None
    if sample.annotation.is_file():
        annotation = read_annotation(sample.annotation)
        report.repeated_annotation_ids = annotation.repeated_ids()
        known = set(spot_ids)
        report.annotation_not_in_coord = list(dict.fromkeys(s for s in annotation.spot_ids if s not in known))

    source = HestSource(sample, metadata=metadata, thumbnail=thumbnail,
                        thumbnail_scalef=scalefactors.get("tissue_downscaled_fullres_scalef"), spot_symbol=symbol)
    if sample.wsi is None and thumbnail is not None and source.thumbnail_scalef is None:
        report.notes.append("the h5ad's thumbnail has no tissue_downscaled_fullres_scalef: it is not shown")
        source = HestSource(sample, metadata=metadata, spot_symbol=symbol)
    slide = Slide(source=source, spots=spots, expression=expression, annotation=annotation, report=report,
                  expression_rows=np.arange(len(spots), dtype=np.int64))
    return slide.finish_reading(progress, decode_image, cancel)
