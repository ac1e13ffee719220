"""SpatialData (scverse) `.zarr`: read a table that annotates circle shapes as a slide, and write a
slide as one. Needs the optional extra `napari-stimage[spatialdata]` (spatialdata 0.7.x); without
it the reader still recognises a SpatialData folder and says what to install.

Read: the first table whose `uns['spatialdata_attrs']['region']` names a shapes element with a
`radius` column (spatialdata-io's Visium reader writes exactly this: circles indexed by `spot_id`).
Spots are its rows joined to the circles on `instance_key`, in the coordinate system where the
circles are in their own (full-resolution pixel) units, i.e. an Identity transformation (else the
first one, transformed). The image is the highest-resolution one in that coordinate system that
is not blank and reaches the spots (see `anndata.pick_image`), placed by its Scale. Counts,
normalisation flag, categorical columns and `obs['label']` as in `io/anndata.py`.

Write: `write_zarr(slide, path, labels)`: circles `{slide}` (Identity to `global`), the downscaled
image `{slide}_hires_image` (Scale to `global`), table `table` = `Slide.to_anndata` annotating the
circles (region_key `region`, instance_key `spot_id`). Atomic: written beside, then renamed.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import SlideError
from ..core.progress import CancelCallback, ProgressCallback
from ..core.slide import JoinReport, Slide
from ..core.source import SaveTarget
from ..core.storage import real_target, temp_dir_next_to
from .anndata import default_annotation_path, pick_image, slide_parts_from_table
from .registry import SlideReader, register

EXTRA = "pip install 'napari-stimage[spatialdata]'"


def _resolve(path) -> Path | None:
    try:
        path = Path(path).expanduser()
        is_zarr = (path / "zarr.json").is_file() or (path / ".zgroup").is_file()
        if path.is_dir() and is_zarr and (path / "tables").is_dir() and (path / "shapes").is_dir():
            return path
    except (TypeError, ValueError, OSError):
        return None
    return None


def _spatialdata(path: Path):
    try:
        import spatialdata
    except ImportError as exc:
        raise SlideError(path, f"a SpatialData folder: reading it needs the optional extra ({EXTRA})") from exc
    return spatialdata


@dataclass(frozen=True)
class SpatialDataZarr:
    """The source of a slide read from a SpatialData `.zarr` (its image levels already chosen, lazy)."""

    path: Path
    region: str
    levels: list = field(default_factory=list, compare=False)
    image_scale: float = 1.0  # full-res pixels per pixel of levels[0]
    technology: str | None = None

    @property
    def name(self) -> str:
        return self.region

    @property
    def location(self) -> Path:
        return self.path

    @property
    def save_target(self) -> SaveTarget:
        return SaveTarget(default_annotation_path(self.path))

    def load_image(self, progress: ProgressCallback | None = None, cancel: CancelCallback | None = None,
                   notes: list[str] | None = None) -> list | None:
        return list(self.levels) or None


def _image_levels(element) -> list:
    """The (y, x[, c]) dask levels of an image element (one DataArray, or a multiscale DataTree), largest first,
    as 8-bit RGB (alpha dropped)."""
    import dask.array as da

    arrays = [element] if hasattr(element, "dims") else [element[k].ds["image"] for k in sorted(element.keys())]
    levels = []
    for array in arrays:
        data = array.data if isinstance(array.data, da.Array) else da.from_array(array.data)
        if "c" in array.dims:
            data = data.transpose(*(array.dims.index(d) for d in ("y", "x", "c")))[..., :3]
            if data.shape[-1] == 1:
                data = data[..., 0]
        if data.dtype != np.uint8:
            top = 1.0 if data.dtype.kind == "f" and float(data[::64, ::64].max()) <= 1.0 else 255.0
            data = da.clip(da.nan_to_num(data.astype(np.float32)) * np.float32(255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        levels.append(data)
    return levels


def _scale_to(element, coordinate_system: str) -> float | None:
    from spatialdata.transformations import get_transformation

    transforms = get_transformation(element, get_all=True)
    if coordinate_system not in transforms:
        return None
    affine = transforms[coordinate_system].to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y"))
    return float(np.sqrt(abs(np.linalg.det(affine[:2, :2]))))


def read_zarr(path: Path, progress: ProgressCallback | None = None, decode_image: bool = False,
              cancel: CancelCallback | None = None) -> Slide:
    path = Path(path)
    sd = _spatialdata(path)
    from spatialdata.transformations import Identity, get_transformation

    try:
        sdata = sd.read_zarr(path)
    except Exception as exc:  # zarr, ome-zarr and pydantic raise many types for damaged folders
        raise SlideError(path, f"cannot read the SpatialData folder ({type(exc).__name__}: {exc})") from exc
    found = None
    for table_name, table in sdata.tables.items():
        attrs = table.uns.get("spatialdata_attrs") or {}
        regions = attrs.get("region")
        for region in [regions] if isinstance(regions, str) else list(regions or []):
            shapes = sdata.shapes.get(region)
            if shapes is not None and "radius" in shapes.columns:
                found = (table_name, table, str(region), shapes, attrs["region_key"], attrs["instance_key"])
                break
        if found:
            break
    if found is None:
        raise SlideError(
            path,
            f"no table annotates circle shapes (spots with a radius): tables {sorted(sdata.tables)}, "
            f"shapes {sorted(sdata.shapes)}",
        )
    table_name, table, region, shapes, region_key, instance_key = found
    table = table[(table.obs[region_key].astype(str) == region).to_numpy()]
    circles = shapes.reindex(table.obs[instance_key].to_numpy())
    # a row without a circle, or with an empty one (spatialdata-io writes POINT EMPTY for a barcode
    # its positions file lacks): not drawn, reported like a count-file spot without coordinates
    missing = (circles.geometry.isna() | circles.geometry.is_empty).to_numpy()
    if missing.all():
        raise SlideError(path, f"none of the rows of table {table_name!r} match a circle of {region!r}")
    report = JoinReport(count_not_in_coord=table.obs_names[missing].astype(str).tolist())
    table = table[~missing]
    circles = circles[~missing]

    transforms = get_transformation(shapes, get_all=True)
    system = next((k for k, t in transforms.items() if isinstance(t, Identity)), next(iter(transforms)))
    affine = transforms[system].to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y"))
    xy = np.column_stack([circles.geometry.x.to_numpy(), circles.geometry.y.to_numpy(), np.ones(len(circles))])
    xy = xy @ affine.T
    radius = circles["radius"].to_numpy(np.float64) * float(np.sqrt(abs(np.linalg.det(affine[:2, :2]))))
    spots = pd.DataFrame({
        "spot_id": table.obs_names.astype(str).to_numpy(dtype=object),
        "y": xy[:, 1], "x": xy[:, 0], "r": radius,
    })

    candidates, levels_of = [], {}
    for name, element in sdata.images.items():
        scale = _scale_to(element, system)
        if scale is None:
            continue
        levels = _image_levels(element)
        levels_of[name] = levels
        smallest = levels[-1]
        candidates.append((name, smallest, scale * levels[0].shape[1] / smallest.shape[1]))
    candidates.sort(key=lambda c: c[2] * c[1].shape[1] / levels_of[c[0]][0].shape[1])  # sharpest first
    chosen = pick_image(candidates, xy[:, :2], report.notes)
    image_scale = chosen[2] * chosen[1].shape[1] / levels_of[chosen[0]][0].shape[1] if chosen else 1.0
    source = SpatialDataZarr(
        path=path, region=region, levels=levels_of[chosen[0]] if chosen else [], image_scale=image_scale,
    )
    if progress is not None:
        progress(1000, 1000)
    return slide_parts_from_table(table, source, spots, report, exclude=(region_key, instance_key))


def _element_name(name: str) -> str:
    """SpatialData element names allow letters, digits, `_`, `-` and `.`."""
    return re.sub(r"[^\w.-]", "_", name)


def write_zarr(slide: Slide, path: str | Path, labels=None) -> Path:
    """Write `slide` (with `labels`) as a SpatialData `.zarr` (see the module docstring)."""
    target = real_target(path)
    sd = _spatialdata(target)
    import geopandas as gpd
    from spatialdata.models import Image2DModel, ShapesModel, TableModel
    from spatialdata.transformations import Identity, Scale

    adata = slide.to_anndata(labels=labels)
    name = _element_name(slide.name)
    keep = np.flatnonzero(slide.expression_rows >= 0)
    xy = adata.obsm["spatial"]
    circles = gpd.GeoDataFrame(
        {"radius": slide.spots["r"].to_numpy(np.float64)[keep]},
        geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
        index=pd.RangeIndex(adata.n_obs),
    )
    shapes = {name: ShapesModel.parse(circles, transformations={"global": Identity()})}
    library = adata.uns["spatial"][slide.name]
    images = {}
    if "images" in library:
        image = library.pop("images")["hires"]
        s = library["scalefactors"]["tissue_hires_scalef"]
        images[f"{name}_hires_image"] = Image2DModel.parse(
            np.moveaxis(image, -1, 0), dims=("c", "y", "x"), c_coords=["r", "g", "b"],
            transformations={"global": Scale([1 / s, 1 / s], axes=("y", "x"))},
        )
    adata.obs["region"] = pd.Categorical([name] * adata.n_obs)
    adata.obs["spot_id"] = np.arange(adata.n_obs)
    table = TableModel.parse(adata, region=name, region_key="region", instance_key="spot_id")
    sdata = sd.SpatialData(images=images, shapes=shapes, tables={"table": table})

    scratch = temp_dir_next_to(target)
    try:
        sdata.write(scratch / target.name)
        if target.exists():  # swap: the old folder moves aside only once the new one is complete
            old = scratch / "previous"
            os.replace(target, old)
        os.replace(scratch / target.name, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _find(root: Path) -> list:
    return sorted(p for p in Path(root).rglob("*.zarr") if _resolve(p) is not None)


register(
    SlideReader(
        name="spatialdata",
        kind="a SpatialData .zarr",
        missing="not a SpatialData folder (no tables/ and shapes/)",
        expected=f"expected a SpatialData .zarr folder whose table annotates circles ({EXTRA})",
        resolve=_resolve,
        read=read_zarr,
        find=_find,
    )
)
