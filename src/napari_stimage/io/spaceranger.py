"""A 10x Space Ranger `outs/` folder: `filtered_feature_bc_matrix.h5` + `spatial/`.

Opens from the matrix file, from `spatial/tissue_positions*.csv` or from the folder itself. Spots
are the matrix's barcodes (in matrix order) at `pxl_row/col_in_fullres` of the positions file
(`tissue_positions.csv` has a header, Space Ranger 1's `tissue_positions_list.csv` has none),
sized by `spot_diameter_fullres`. The image is `tissue_hires_image.png` placed by
`tissue_hires_scalef`, else the lowres one: a hires image that is blank (one colour: the scanpy
test folder ships a black placeholder) or does not reach the spots is passed over, with a note.
Labels are saved as `{name}_anno.csv` in the folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..core.errors import SlideError, reading
from ..core.expression import Expression, make_unique
from ..core.progress import CancelCallback, ProgressCallback
from ..core.slide import JoinReport, Slide
from ..core.source import SaveTarget
from .anndata import pick_image
from .registry import SlideReader, register

MATRIX = "filtered_feature_bc_matrix.h5"
POSITION_FILES = ("tissue_positions.csv", "tissue_positions_list.csv")
POSITION_COLUMNS = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]
IMAGES = (("hires", "tissue_hires_image.png"), ("lowres", "tissue_lowres_image.png"))


def _outs_of(path: Path) -> Path | None:
    if path.is_dir():
        folder = path
    elif path.name.endswith(MATRIX):
        folder = path.parent
    elif path.parent.name == "spatial" and path.name.startswith("tissue_positions") and path.suffix == ".csv":
        folder = path.parent.parent
    else:
        return None
    return folder if (folder / MATRIX).is_file() and (folder / "spatial").is_dir() else None


def _resolve(path) -> Path | None:
    try:
        return _outs_of(Path(path).expanduser())
    except (TypeError, ValueError, OSError):
        return None


@dataclass(frozen=True)
class SpaceRangerOuts:
    """The source of a Space Ranger slide: its `outs/` folder and the image chosen to show."""

    folder: Path
    image_path: Path | None = None
    image_scale: float = 1.0  # full-res pixels per image pixel (1 / tissue_*_scalef)
    technology: str | None = "Visium"

    @property
    def name(self) -> str:
        return self.folder.parent.name if self.folder.name == "outs" else self.folder.name

    @property
    def location(self) -> Path:
        return self.folder / MATRIX

    @property
    def save_target(self) -> SaveTarget:
        return SaveTarget(self.folder / f"{self.name}_anno.csv")

    def load_image(self, progress: ProgressCallback | None = None, cancel: CancelCallback | None = None,
                   notes: list[str] | None = None) -> list | None:
        if self.image_path is None:
            return None
        from .images import read_image

        return read_image(self.image_path, progress=progress, cancel=cancel, notes=notes)


def read_matrix(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, sp.csr_matrix]:
    """(barcodes, gene ids, gene names, barcodes x genes CSR) of the Gene Expression features."""
    import h5py

    with reading(path, "feature-barcode matrix"):
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise SlideError(path, f"not an HDF5 feature-barcode matrix ({exc})") from exc
        with f:
            if "matrix" not in f or "features" not in f["matrix"]:
                raise SlideError(path, "not a Space Ranger feature-barcode matrix (no matrix/features group)")
            m = f["matrix"]
            missing = [k for k in ("data", "indices", "indptr", "shape", "barcodes") if k not in m]
            if missing:
                raise SlideError(path, f"the matrix group lacks {', '.join(missing)}")
            n_genes, n_barcodes = (int(v) for v in m["shape"][:])
            by_barcode = sp.csc_matrix(
                (m["data"][:], m["indices"][:], m["indptr"][:]), shape=(n_genes, n_barcodes)
            )
            barcodes = m["barcodes"][:].astype(str)
            features = m["features"]
            ids, names = features["id"][:].astype(str), features["name"][:].astype(str)
            types = features["feature_type"][:].astype(str) if "feature_type" in features else None
    genes = np.ones(len(ids), dtype=bool) if types is None else types == "Gene Expression"
    return barcodes, ids[genes], names[genes], by_barcode.T.tocsr()[:, np.flatnonzero(genes)]


def read_positions(spatial: Path) -> pd.DataFrame:
    """The positions file (with or without header) as a table indexed by barcode."""
    path = next((spatial / n for n in POSITION_FILES if (spatial / n).is_file()), None)
    if path is None:
        raise SlideError(spatial, f"no {' or '.join(POSITION_FILES)} in the spatial folder")
    with reading(path, "tissue positions file"):
        first = path.open().readline().split(",")[0].strip()
        table = pd.read_csv(path, header=0 if first == "barcode" else None, dtype={0: str})
    if table.shape[1] < len(POSITION_COLUMNS):
        raise SlideError(path, f"{table.shape[1]} columns; expected {','.join(POSITION_COLUMNS)}")
    table = table.iloc[:, : len(POSITION_COLUMNS)]
    table.columns = POSITION_COLUMNS
    for column in ("pxl_row_in_fullres", "pxl_col_in_fullres"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    return table.drop_duplicates("barcode").set_index("barcode")


def _scalefactors(spatial: Path) -> dict:
    path = spatial / "scalefactors_json.json"
    if not path.is_file():
        raise SlideError(spatial, "no scalefactors_json.json (spot size and image scale)")
    with reading(path, "scale factors"):
        return json.loads(path.read_text())


def read_outs(folder: Path, progress: ProgressCallback | None = None, decode_image: bool = False,
              cancel: CancelCallback | None = None) -> Slide:
    folder = Path(folder)
    spatial = folder / "spatial"
    barcodes, gene_ids, gene_names, counts = read_matrix(folder / MATRIX)
    positions = read_positions(spatial)
    scalefactors = _scalefactors(spatial)
    if progress is not None:
        progress(400, 1000)

    placed = positions.reindex(barcodes)
    has_position = placed["pxl_row_in_fullres"].notna().to_numpy() & placed["pxl_col_in_fullres"].notna().to_numpy()
    if not has_position.any():
        raise SlideError(folder / MATRIX, f"none of its {len(barcodes)} barcodes are in the positions file")
    report = JoinReport(count_not_in_coord=barcodes[~has_position].tolist())
    rows = np.flatnonzero(has_position)
    diameter = float(scalefactors.get("spot_diameter_fullres") or 0)
    if diameter <= 0:
        raise SlideError(spatial / "scalefactors_json.json", "no positive spot_diameter_fullres")
    spots = pd.DataFrame({
        "spot_id": barcodes[rows].astype(object),
        "y": placed["pxl_row_in_fullres"].to_numpy(np.float64)[rows],
        "x": placed["pxl_col_in_fullres"].to_numpy(np.float64)[rows],
        "r": diameter / 2,
    })

    from .images import read_image

    candidates = []
    for name, file_name in IMAGES:
        scalef = scalefactors.get(f"tissue_{name}_scalef")
        if (spatial / file_name).is_file() and scalef:
            candidates.append((name, read_image(spatial / file_name)[0], 1.0 / float(scalef)))
    chosen = pick_image(candidates, spots[["x", "y"]].to_numpy(), report.notes)
    image_path = dict(IMAGES)[chosen[0]] if chosen else None
    source = SpaceRangerOuts(
        folder=folder,
        image_path=spatial / image_path if image_path else None,
        image_scale=chosen[2] if chosen else 1.0,
    )
    expression = Expression(
        spot_ids=barcodes.astype(object),
        gene_names=np.asarray(make_unique(gene_names), dtype=object),
        matrix=sp.csc_matrix(counts, dtype=np.float32),
        raw_gene_names=gene_names.astype(object),
        source=folder / MATRIX,
    )
    annotation = None
    if source.save_target.path.is_file():
        from .stimage.annotation import read_annotation

        annotation = read_annotation(source.save_target.path)
    slide = Slide(
        source=source,
        spots=spots,
        expression=expression,
        annotation=annotation,
        report=report,
        expression_rows=rows.astype(np.int64),
    )
    if decode_image:
        slide.load_image()
    if progress is not None:
        progress(1000, 1000)
    return slide


def _find(root: Path) -> list:
    return sorted({p.parent for p in Path(root).rglob(MATRIX) if _resolve(p.parent) is not None}, key=str)


register(
    SlideReader(
        name="spaceranger",
        kind="a Space Ranger outs folder",
        missing=f"no {MATRIX} with a spatial/ folder beside it",
        expected=f"expected a Space Ranger outs/ folder, its {MATRIX} or spatial/tissue_positions*.csv",
        resolve=_resolve,
        read=read_outs,
        find=_find,
    )
)
