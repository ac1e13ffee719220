"""Write a synthetic HEST-1k sample in HEST's on-disk layout, traps included (tests, benchmarks).

The sample carries the traps of formats.md section 2:
- `metadata/{id}.json` written with plain `json.dump`: bare `NaN` tokens (`pixel_size_um_embedded`);
- the WSI's resolution tags say 0.1x the true pixel size (only `pixel_size_um_estimated` is right);
- the WSI is a tiled (256 px), LZW BigTIFF whose pyramid levels are ordinary pages, written tile by
  tile (a 50,000 px slide never sits in memory);
- Visium barcodes are 18 characters (`AAACAAGTATCTCCCA-1`); Xenium / Visium HD pseudo-spot ids are
  `000x001` / `0000x0001` on a square lattice whose pitch is NOT `spot_diameter_fullres` (55 µm);
- a gene name repeats (`MALAT1` twice); `X` dense or sparse;
- no `tissue_seg/` unless asked; `wsis/` can be left out (st/-only download, thumbnail in the h5ad).
Tissue is a pink disc on white, and every spot sits on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .io.hest.layout import HestSample

TISSUE_RGB = (200, 90, 160)
BACKGROUND_RGB = (255, 255, 255)
TILE = 256
GENES = ["GAPDH", "ACTB", "MALAT1", "ERBB2", "MALAT1", "KRT19", "EPCAM", "CD3E"]


def _tissue(height: int, width: int):
    return height / 2, width / 2, 0.35 * min(height, width)  # centre y, x and radius


def _tile(y0: int, x0: int, h: int, w: int, height: int, width: int, step: float) -> np.ndarray:
    """Tile (y0, x0) of a level `step` times smaller than full resolution."""
    cy, cx, radius = _tissue(height, width)
    yy = (np.arange(y0, y0 + h) + 0.5)[:, None] * step
    xx = (np.arange(x0, x0 + w) + 0.5)[None, :] * step
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
    out = np.empty((h, w, 3), np.uint8)
    out[:] = BACKGROUND_RGB
    out[inside] = TISSUE_RGB
    return out


def _encoded_tiles(height: int, width: int, step: float, full_h: int, full_w: int):
    """LZW-encoded tiles, row by row; the many tiles wholly inside or outside the tissue are
    encoded once (a 50,000 px slide is written in a few minutes)."""
    from imagecodecs import lzw_encode

    cy, cx, radius = _tissue(full_h, full_w)
    uniform = {}
    for y0 in range(0, height, TILE):
        for x0 in range(0, width, TILE):
            top, bottom = y0 * step, (y0 + TILE) * step  # the tile's extent in full-res pixels
            left, right = x0 * step, (x0 + TILE) * step
            near = np.hypot(max(top - cy, 0, cy - bottom), max(left - cx, 0, cx - right))
            far = np.hypot(max(abs(top - cy), abs(bottom - cy)), max(abs(left - cx), abs(right - cx)))
            kind = "inside" if far < radius else "outside" if near >= radius else None
            if kind is None:
                yield lzw_encode(_tile(y0, x0, TILE, TILE, full_h, full_w, step).tobytes())
                continue
            if kind not in uniform:
                tile = np.empty((TILE, TILE, 3), np.uint8)
                tile[:] = TISSUE_RGB if kind == "inside" else BACKGROUND_RGB
                uniform[kind] = lzw_encode(tile.tobytes())
            yield uniform[kind]


def write_wsi(path: Path, height: int, width: int, pixel_size_um: float, min_level: int = 512) -> None:
    """A HEST-like pyramidal BigTIFF: levels as ordinary pages, tiled LZW, a wrong resolution tag."""
    import tifffile

    wrong_per_cm = 1e4 / (pixel_size_um / 10)  # the tag claims pixels 10x smaller than they are
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        step = 1
        while True:
            h, w = -(-height // step), -(-width // step)
            tif.write(_encoded_tiles(h, w, step, height, width), shape=(h, w, 3), dtype=np.uint8, tile=(TILE, TILE),
                      compression="lzw", photometric="rgb", subfiletype=0 if step == 1 else 1,
                      resolution=(wrong_per_cm / step, wrong_per_cm / step), resolutionunit="CENTIMETER")
            if max(h, w) <= min_level:
                break
            step *= 2


def _visium_barcode(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list("ACGT"), 16)) + "-1"  # 18 characters


def write_hest_sample(
    root: str | Path,
    sample_id: str = "TENX99",
    technology: str = "Visium",
    size: tuple[int, int] = (2000, 2400),
    pixel_size_um: float = 0.5,
    n_spots: int | None = None,
    n_genes: int | None = None,
    dense: bool = False,
    with_wsi: bool = True,
    with_contours: bool = False,
    with_cells: int = 0,
    seed: int = 0,
) -> HestSample:
    """Write `{root}/st`, `metadata` (and `wsis`, `tissue_seg`, `cellvit_seg` when asked)."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    root = Path(root)
    height, width = size
    cy, cx, radius = _tissue(height, width)
    square = technology in ("Xenium", "Visium HD")
    pitch = (16.0 if technology == "Visium HD" else 100.0) / pixel_size_um if square else 100.0 / pixel_size_um
    rows, cols = np.mgrid[-60:61, -60:61]
    rows, cols = rows.ravel(), cols.ravel()
    if square:
        y, x = cy + rows * pitch, cx + cols * pitch
    else:  # Visium hexagonal lattice: array_col steps half the pitch, array_row sqrt(3)/2 of it
        cols = 2 * cols + (rows % 2)
        y, x = cy + rows * pitch * np.sqrt(3) / 2, cx + cols * pitch / 2
    keep = (y - cy) ** 2 + (x - cx) ** 2 < (0.9 * radius) ** 2
    rows, cols, y, x = rows[keep], cols[keep], y[keep], x[keep]
    if n_spots is not None:  # a denser lattice for benchmarks: positions only matter on tissue
        pick = rng.choice(len(y), n_spots, replace=n_spots > len(y))
        rows, cols, y, x = rows[pick], cols[pick], y[pick], x[pick]
    n = len(y)
    if technology == "Xenium":
        ids = [f"{r - rows.min():03d}x{c - cols.min():03d}" for r, c in zip(rows, cols, strict=True)]
    elif technology == "Visium HD":
        ids = [f"{r - rows.min():04d}x{c - cols.min():04d}" for r, c in zip(rows, cols, strict=True)]
    else:
        ids = [_visium_barcode(rng) for _ in range(n)]
    genes = GENES if n_genes is None else GENES + [f"GENE{i:05d}" for i in range(n_genes - len(GENES))]
    counts = sp.random(n, len(genes), density=0.1, format="csr", random_state=seed, dtype=np.float32)
    counts.data = np.ceil(counts.data * 20)
    obs = pd.DataFrame({"in_tissue": np.ones(n, np.int64), "array_row": rows, "array_col": cols,
                        "pxl_row_in_fullres": y, "pxl_col_in_fullres": x}, index=pd.Index(ids))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata warns about the repeated gene name, kept as HEST ships it
        adata = ad.AnnData(X=counts.toarray() if dense else counts, obs=obs, var=pd.DataFrame(index=pd.Index(genes)))
    adata.obsm["spatial"] = np.column_stack([x, y])
    scalef = 1000 / max(height, width)
    thumb = _tile(0, 0, int(height * scalef), int(width * scalef), height, width, 1 / scalef)
    adata.uns["spatial"] = {"ST": {"images": {"downscaled_fullres": thumb},
                                   "scalefactors": {"spot_diameter_fullres": 55.0 / pixel_size_um,
                                                    "tissue_downscaled_fullres_scalef": scalef}}}
    for folder in ("st", "metadata"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata.write_h5ad(root / "st" / f"{sample_id}.h5ad")
    meta = {"st_technology": technology, "organ": "Breast", "species": "Homo sapiens", "oncotree_code": "IDC",
            "pixel_size_um_estimated": pixel_size_um, "pixel_size_um_embedded": float("nan"),
            "spot_diameter": 55.0, "inter_spot_dist": 100.0, "fullres_px_width": width, "fullres_px_height": height}
    (root / "metadata" / f"{sample_id}.json").write_text(json.dumps(meta))  # bare NaN, as json.dump writes
    if with_wsi:
        (root / "wsis").mkdir(exist_ok=True)
        write_wsi(root / "wsis" / f"{sample_id}.tif", height, width, pixel_size_um)
    if with_contours:
        (root / "tissue_seg").mkdir(exist_ok=True)
        ring = [[cx + radius * np.cos(t), cy + radius * np.sin(t)] for t in np.linspace(0, 2 * np.pi, 33)]
        hole = [[cx + 0.2 * radius * np.cos(t), cy + 0.2 * radius * np.sin(t)] for t in np.linspace(0, 2 * np.pi, 17)]
        contours = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"tissue_id": 0},
             "geometry": {"type": "Polygon", "coordinates": [ring, hole]}}]}
        (root / "tissue_seg" / f"{sample_id}_contours.geojson").write_text(json.dumps(contours))
    if with_cells:
        (root / "cellvit_seg").mkdir(exist_ok=True)
        write_cellvit_geojson(root / "cellvit_seg" / f"{sample_id}_cellvit_seg.geojson", with_cells,
                              (cy, cx, radius), rng)
    return HestSample(root, sample_id)


CELL_CLASSES = {"Neoplastic": [255, 0, 0], "Inflammatory": [34, 221, 77], "Connective": [35, 92, 236]}


def write_cellvit_geojson(path: Path, n_cells: int, disc: tuple[float, float, float], rng) -> None:
    """CellViT's GeoJSON: a JSON ARRAY of QuPath-style features, one MultiPolygon per class."""
    cy, cx, radius = disc
    angle = np.linspace(0, 2 * np.pi, 9)[:-1]
    features = []
    for k, (name, color) in enumerate(CELL_CLASSES.items()):
        m = n_cells // len(CELL_CLASSES) + (k < n_cells % len(CELL_CLASSES))
        r = radius * np.sqrt(rng.random(m))
        t = rng.random(m) * 2 * np.pi
        centres = np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)])
        ring = np.stack([np.cos(angle), np.sin(angle)], -1) * 6.0
        polygons = np.round(centres[:, None, :] + ring[None], 1)
        polygons = np.concatenate([polygons, polygons[:, :1]], axis=1)  # closed rings
        features.append({"type": "Feature", "id": f"class-{k}",
                         "geometry": {"type": "MultiPolygon", "coordinates": [[p] for p in polygons.tolist()]},
                         "properties": {"objectType": "annotation", "classification": {"name": name, "color": color}}})
    path.write_text(json.dumps(features))


def polygon_wkb(ring: np.ndarray, multi: bool = False) -> bytes:
    """Little-endian WKB of a one-ring Polygon (or a MultiPolygon holding it), as shapely writes."""
    import struct

    body = struct.pack("<BII", 1, 3, 1) + struct.pack("<I", len(ring)) + np.asarray(ring, "<f8").tobytes()
    return struct.pack("<BII", 1, 6, 1) + body if multi else body


def write_cellvit_parquet(path: Path, centres: np.ndarray, classes: list[str]) -> None:
    """CellViT's parquet: `geometry` (WKB octagons; every third one a MultiPolygon), `class`, `cell_id`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    angle = np.linspace(0, 2 * np.pi, 9)
    geometry = [polygon_wkb(np.column_stack([x + 6 * np.cos(angle), y + 6 * np.sin(angle)]), multi=k % 3 == 0)
                for k, (x, y) in enumerate(centres)]
    pq.write_table(pa.table({"geometry": pa.array(geometry, pa.binary()), "class": classes,
                             "cell_id": np.arange(len(centres))}), path)
