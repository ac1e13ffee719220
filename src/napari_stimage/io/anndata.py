"""Generic AnnData `.h5ad` in scanpy/squidpy conventions: read as a slide, and write a slide as one.

Read: `obsm['spatial']` = (x, y) full-resolution pixels, `uns['spatial'][library]` with `images`
(`hires`, else `lowres`, else any) placed by `scalefactors['tissue_{image}_scalef']` and spots sized by
`scalefactors['spot_diameter_fullres']`. Counts come from `layers['counts']` or `raw.X` when `X` is not
whole numbers and they are; otherwise `X` as it is, marked `Expression.normalised` when it holds
non-integer values (gene colouring then defaults to "raw" instead of log1p). Categorical `obs` columns
become `Slide.categories`; `obs['label']` (what `export` writes) is the curated label. Labels are
saved beside the file as `{stem}_anno.csv` (STimage-1K4M's annotation format).

Write: `write_h5ad(slide, path, labels)` = `Slide.to_anndata` written atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.errors import SlideError
from ..core.expression import Expression, make_unique
from ..core.progress import CancelCallback, ProgressCallback
from ..core.slide import JoinReport, Slide
from ..core.source import SaveTarget
from ..core.storage import real_target, temp_name
from .registry import SlideReader, register
from .stimage.annotation import AnnotationTable, read_annotation

IMAGE_PREFERENCE = ("hires", "lowres")
MAX_CATEGORIES = 200  # a text obs column with more distinct values is an id or free text, not a category
# Without scalefactors, spots are drawn at Visium's 55 µm diameter on its 100 µm pitch
VISIUM_DIAMETER_PER_PITCH = 0.55


def is_hest_tree_file(path: Path) -> bool:
    """`st/{id}.h5ad` of a HEST-1k tree (a sibling `metadata/` or `wsis/`): the HEST reader's."""
    root = path.parent.parent
    return path.parent.name == "st" and ((root / "metadata").is_dir() or (root / "wsis").is_dir())


def _resolve(path) -> Path | None:
    try:
        path = Path(path)
        if path.suffix.lower() != ".h5ad" or not path.is_file() or is_hest_tree_file(path):
            return None
    except (TypeError, ValueError, OSError):
        return None
    return path


def default_annotation_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}_anno.csv")


@dataclass(frozen=True)
class AnnDataFile:
    """The source of a slide read from an `.h5ad` (its image already decoded from `uns`)."""

    path: Path
    library: str | None
    image: np.ndarray | None = None
    image_scale: float = 1.0  # full-res pixels per image pixel (1 / tissue_*_scalef)
    technology: str | None = None

    @property
    def name(self) -> str:
        return self.library or self.path.stem

    @property
    def location(self) -> Path:
        return self.path

    @property
    def save_target(self) -> SaveTarget:
        return SaveTarget(default_annotation_path(self.path))

    def load_image(self, progress: ProgressCallback | None = None, cancel: CancelCallback | None = None,
                   notes: list[str] | None = None) -> list | None:
        return None if self.image is None else [self.image]


def image_as_rgb8(image) -> np.ndarray:
    """An `uns` image (uint8, or float in 0..1 as scanpy stores them; RGB(A) or grey) as uint8 RGB/grey."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    if array.dtype != np.uint8:
        array = np.nan_to_num(array.astype(np.float64))
        top = 1.0 if array.size and array.max() <= 1.0 else 255.0
        array = np.clip(np.round(array * (255.0 / top)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def is_blank(image: np.ndarray) -> bool:
    """One colour everywhere (Space Ranger test outputs ship a black placeholder hires PNG)."""
    sample = np.asarray(image[:: max(1, image.shape[0] // 256), :: max(1, image.shape[1] // 256)])
    return bool(sample.size == 0 or sample.min() == sample.max())


def covers(shape, scale: float, xy: np.ndarray) -> bool:
    """The image, drawn at `scale` full-res px per pixel, reaches every spot centre (x, y)."""
    return bool(len(xy) == 0 or (xy.max(axis=0) <= np.array([shape[1], shape[0]]) * scale).all())


def pick_image(candidates: list[tuple[str, np.ndarray, float]], xy: np.ndarray, notes: list[str]):
    """Of (name, uint8 image, full-res px per pixel) in preference order (hires first), the first that
    is not blank and reaches every spot; else the first that is not blank; else None. What was passed
    over and why goes to `notes`."""
    shown = [c for c in candidates if not is_blank(c[1])]
    for name, _, _ in candidates:
        if all(name != c[0] for c in shown):
            notes.append(f"the {name} image is blank (one colour): not shown")
    covering = [c for c in shown if covers(c[1].shape, c[2], xy)]
    chosen = covering[0] if covering else (shown[0] if shown else None)
    if chosen is not None and shown and chosen is not shown[0]:
        notes.append(f"the {shown[0][0]} image does not reach all spots: the {chosen[0]} image is shown")
    return chosen


def uns_images(images: dict, scalefactors: dict) -> list[tuple[str, np.ndarray, float]]:
    """(name, uint8 image, full-res px per pixel) of each `uns` image with a scale factor, hires first."""
    names = [n for n in IMAGE_PREFERENCE if n in images] + [n for n in images if n not in IMAGE_PREFERENCE]
    out = []
    for name in names:
        scalef = scalefactors.get(f"tissue_{name}_scalef")
        if scalef is not None and float(scalef) > 0:
            out.append((name, image_as_rgb8(images[name]), 1.0 / float(scalef)))
    return out


def spot_radius(scalefactors: dict, xy: np.ndarray) -> tuple[float, str | None]:
    """Radius in full-res px from `spot_diameter_fullres`; else estimated from the spot pitch (with a note)."""
    diameter = scalefactors.get("spot_diameter_fullres")
    if diameter is not None and np.isfinite(float(diameter)) and float(diameter) > 0:
        return float(diameter) / 2, None
    from scipy.spatial import cKDTree

    if len(xy) < 2:
        return 1.0, "no spot_diameter_fullres: spots drawn 2 px wide"
    distances, _ = cKDTree(xy).query(xy, k=2)
    pitch = float(np.median(distances[:, 1]))
    return VISIUM_DIAMETER_PER_PITCH * pitch / 2, (
        f"no spot_diameter_fullres in uns['spatial']: spots drawn at 55% of their pitch ({pitch:.1f} px)"
    )


def _is_whole(matrix) -> bool:
    data = matrix.data if sp.issparse(matrix) else np.asarray(matrix).ravel()
    data = np.asarray(data[:200_000], dtype=np.float64)
    return bool(np.all(data == np.round(data)))


def choose_counts(adata) -> tuple[object, str]:
    """The matrix to colour by and where it came from: raw counts when the file has them."""
    if _is_whole(adata.X):
        return adata.X, "X"
    if "counts" in adata.layers and _is_whole(adata.layers["counts"]):
        return adata.layers["counts"], "layers['counts']"
    if adata.raw is not None and adata.raw.shape == adata.shape and _is_whole(adata.raw.X):
        return adata.raw.X, "raw.X"
    return adata.X, "X"


def categorical_obs(obs: pd.DataFrame) -> pd.DataFrame:
    """obs columns that are categories: pandas categoricals, booleans and text with few distinct values."""
    keep = {}
    for name, column in obs.items():
        if name == "label":
            continue
        if isinstance(column.dtype, pd.CategoricalDtype) or (
            (column.dtype == object or pd.api.types.is_string_dtype(column))
            and column.nunique(dropna=True) <= min(MAX_CATEGORIES, max(len(column) // 2, 1))
        ):
            values = column.astype(object).to_numpy()
            text = values.astype(str).astype(object)
            text[pd.isna(values)] = np.nan
            keep[str(name)] = text
    return pd.DataFrame(keep, index=range(len(obs)))


def labels_from_obs(obs: pd.DataFrame, save_path: Path) -> AnnotationTable | None:
    """`obs['label']` (an export's curated labels) as an unsaved annotation table at `save_path`."""
    if "label" not in obs.columns:
        return None
    values = obs["label"].astype(object).to_numpy()
    labels = {str(spot): (None if pd.isna(v) or str(v) == "" else str(v)) for spot, v in zip(obs.index, values, strict=True)}
    return AnnotationTable.new(save_path).with_labels(labels, append_unlabelled=True)


def _library(adata) -> tuple[str | None, dict]:
    spatial = adata.uns.get("spatial")
    if not isinstance(spatial, dict) or not spatial:
        return None, {}
    # the library with an image first (squidpy files carry one library)
    name = next((k for k, v in spatial.items() if isinstance(v, dict) and v.get("images")), next(iter(spatial)))
    return str(name), spatial[name] if isinstance(spatial[name], dict) else {}


def read_h5ad(path: Path, progress: ProgressCallback | None = None, decode_image: bool = False,
              cancel: CancelCallback | None = None) -> Slide:
    import anndata as ad

    path = Path(path)
    try:
        adata = ad.read_h5ad(path)
    except Exception as exc:  # h5py and anndata raise many types for damaged files
        raise SlideError(path, f"cannot read the .h5ad file ({type(exc).__name__}: {exc})") from exc
    if progress is not None:
        progress(500, 1000)
    if "spatial" not in adata.obsm:
        held = ", ".join(map(repr, adata.obsm.keys())) or "nothing"
        raise SlideError(
            path,
            "no spatial coordinates: obsm['spatial'] (x, y per spot in full-resolution pixels) is missing "
            f"(obsm holds {held})",
        )
    xy = np.asarray(adata.obsm["spatial"], dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] < 2 or xy.shape[0] != adata.n_obs:
        raise SlideError(path, f"obsm['spatial'] has shape {xy.shape}; expected ({adata.n_obs}, 2) = (x, y) per spot")
    xy = xy[:, :2]
    if not np.isfinite(xy).all():
        bad = int((~np.isfinite(xy).any(axis=1)).sum())
        raise SlideError(path, f"obsm['spatial'] has {bad} spot(s) without finite coordinates")

    library, info = _library(adata)
    scalefactors = dict(info.get("scalefactors") or {})
    report = JoinReport()
    radius, note = spot_radius(scalefactors, xy)
    if note:
        report.notes.append(note)
    candidates = uns_images(dict(info.get("images") or {}), scalefactors)
    if info.get("images") and not candidates:
        report.notes.append("image not shown: uns['spatial'] has images but no tissue_*_scalef to place them")
    picked = pick_image(candidates, xy, report.notes)

    spots = pd.DataFrame({
        "spot_id": adata.obs_names.astype(str).to_numpy(dtype=object), "y": xy[:, 1], "x": xy[:, 0], "r": radius,
    })
    source = AnnDataFile(
        path=path,
        library=library,
        image=picked[1] if picked else None,
        image_scale=picked[2] if picked else 1.0,
        technology=str((info.get("metadata") or {}).get("tech") or "") or None,
    )
    if progress is not None:
        progress(1000, 1000)
    return slide_parts_from_table(adata, source, spots, report)


def slide_parts_from_table(adata, source, spots: pd.DataFrame, report: JoinReport, exclude=()) -> Slide:
    """The slide of an AnnData whose rows are `spots` (in order): counts (raw when the file has them,
    else `X` flagged as normalised), categorical obs columns (but `exclude`), and labels from the
    annotation CSV at the source's save target, else from `obs['label']`."""
    path = source.location
    matrix, where = choose_counts(adata)
    gene_names = adata.var_names.astype(str).to_numpy()
    # an export keeps the names as the source wrote them (repeats included) in var['gene_name_in_file']
    written = adata.var["gene_name_in_file"].astype(str).to_numpy() if "gene_name_in_file" in adata.var else gene_names
    expression = Expression(
        spot_ids=spots["spot_id"].to_numpy(dtype=object),
        gene_names=np.asarray(make_unique(gene_names), dtype=object),
        matrix=sp.csc_matrix(matrix, dtype=np.float32),
        raw_gene_names=written.astype(object),
        source=path,
    )
    expression.normalised = expression.looks_normalised()
    if expression.normalised:
        report.notes.append(f"expression values are already normalised ({where} holds non-integer values): "
                            "gene colours default to the values as they are, not log1p")
    elif where != "X":
        report.notes.append(f"raw counts read from {where} (X is normalised)")

    save_path = source.save_target.path
    annotation = read_annotation(save_path) if save_path.is_file() else labels_from_obs(adata.obs, save_path)
    return Slide(
        source=source,
        spots=spots,
        expression=expression,
        annotation=annotation,
        report=report,
        expression_rows=np.arange(len(spots), dtype=np.int64),
        categories=categorical_obs(adata.obs.drop(columns=list(exclude))),
    )


def write_h5ad(slide: Slide, path: str | Path, labels=None) -> Path:
    """Write `slide.to_anndata(labels)` to `path` atomically (a temporary file renamed over it)."""
    target = real_target(path)
    adata = slide.to_anndata(labels=labels)
    tmp = temp_name(target)
    try:
        adata.write_h5ad(tmp, compression="gzip")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _find(root: Path) -> list:
    return sorted((p for p in Path(root).rglob("*.h5ad") if _resolve(p) is not None), key=lambda p: p.name)


register(
    SlideReader(
        name="anndata",
        kind="a spatial AnnData file",
        missing="not a .h5ad file",
        expected="expected a .h5ad with obsm['spatial'] (scanpy/squidpy conventions)",
        resolve=_resolve,
        read=read_h5ad,
        find=_find,
    )
)
