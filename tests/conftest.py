import os
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

# CI explores the same examples on every run (a red CI then means a change broke something, not
# that the search got lucky); a developer's run keeps searching new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

SHARED_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own cache, data and config folders: no test sees another's files,
    and none touches the user's own."""
    for env in ("NAPARI_STIMAGE_CACHE", "NAPARI_STIMAGE_DATA", "NAPARI_STIMAGE_CONFIG"):
        monkeypatch.setenv(env, str(tmp_path_factory.mktemp(env.rsplit("_", 1)[-1].lower())))


@pytest.fixture
def slide_paths(tmp_path):
    """A synthetic slide in the real dataset layout, carrying the quirks of formats.md."""
    from napari_stimage.synthetic import write_synthetic_slide

    return write_synthetic_slide(tmp_path / "STimage-1K4M")


@pytest.fixture
def slide(slide_paths):
    from napari_stimage import load_slide

    return load_slide(slide_paths.coord)


@pytest.fixture
def real_data():
    """The real files in ../shared/data/real; tests using them skip when it is absent."""
    if not SHARED_REAL.is_dir():
        pytest.skip("../shared/data/real is not available")
    return SHARED_REAL


@pytest.fixture
def hd_paths(tmp_path, monkeypatch):
    """A VisiumHD-like slide on disk: ~3,700 bins on a square lattice, dense for the test."""
    from napari_stimage.curation import bins
    from napari_stimage.synthetic import write_synthetic_slide

    monkeypatch.setattr(bins, "DENSE_GRID_MIN_SPOTS", 1000)
    return write_synthetic_slide(tmp_path / "STimage-1K4M", name="Mouse_Brain_Synthetic_VisiumHD", tech="VisiumHD", pitch=16.0,
                                 n_genes=20, layout="square")


@pytest.fixture(params=[0.0, 4.0], ids=["square", "tilted-4deg"])
def hd_lattice_paths(request, tmp_path, monkeypatch):
    """A VisiumHD-shaped slide, square or tilted by 4 degrees, 6 bins missing from the count file."""
    from napari_stimage.curation import bins
    from napari_stimage.synthetic import write_synthetic_slide

    monkeypatch.setattr(bins, "DENSE_GRID_MIN_SPOTS", 1000)
    return write_synthetic_slide(tmp_path / "STimage-1K4M", name="Mouse_Brain_Synthetic_VisiumHD", tech="VisiumHD",
                                 pitch=16.0, n_genes=20, layout="square", angle=request.param, missing_counts=6)


# The genes of generated predictions: one predicted well (log1p(counts) + noise), one random,
# one the slide does not measure
PREDICTED_GENES = GOOD, RANDOM, ABSENT = "ERBB2", "GAPDH", "NOTONTHESLIDE"


def write_stpath_outputs(slide, tmp_path, order=None, seed=1, tag="pred"):
    """What STPath writes for `slide`, rows in `order` (indices of the coord file's spots):
    the embeddings .h5 (coords (x, y) float32, embeddings, barcodes as bytes (n, 1)) and the
    prediction .h5ad (dense float32 X, obs_names "0".."n-1", obsm['coordinates'] rescaled in float32)."""
    rng = np.random.default_rng(seed)
    order = np.arange(slide.n_spots) if order is None else np.asarray(order)
    coords = slide.spots[["x", "y"]].to_numpy(np.float32)[order]
    ids = slide.spots["spot_id"].to_numpy()[order]
    embeddings = tmp_path / f"{tag}_embeddings.h5"
    with h5py.File(embeddings, "w") as f:
        f["coords"] = coords
        f["embeddings"] = rng.normal(size=(len(order), 8)).astype(np.float32)
        f["barcodes"] = np.array(ids, dtype="<U100").astype("S")[:, None]
    shifted = coords - coords.min(axis=0)
    rescaled = shifted / (shifted.max(axis=0) - shifted.min(axis=0)) * np.float32(100)  # float32, as torch
    # the model's output per spot (noise drawn per spot, so any row order predicts the same thing)
    measured = np.log1p(slide.gene_values(GOOD))
    per_spot = np.c_[
        np.where(np.isnan(measured), 0.0, measured) + rng.normal(0, 0.4, slide.n_spots),
        rng.normal(1.0, 0.3, slide.n_spots),
        rng.normal(2.0, 0.5, slide.n_spots),
    ]
    X = per_spot[order].astype(np.float32)
    adata = ad.AnnData(X=X)
    adata.var_names = pd.Index([GOOD, RANDOM, ABSENT])
    adata.obsm["coordinates"] = rescaled
    prediction = tmp_path / f"{tag}.h5ad"
    adata.write_h5ad(prediction)
    return prediction, embeddings


@pytest.fixture
def stpath_outputs():
    """`write_stpath_outputs(slide, tmp_path, order=None, seed=1, tag="pred")` -> (prediction .h5ad,
    embeddings .h5), as STPath writes them."""
    return write_stpath_outputs


@pytest.fixture
def slide_in_viewer(make_napari_viewer, slide):
    """A viewer holding the sample slide (image and spots): (viewer, spots layer)."""
    from napari_stimage.viewer.layers import add_slide_to_viewer

    viewer = make_napari_viewer()
    return viewer, add_slide_to_viewer(viewer, slide)[-1]


@pytest.fixture
def slide_in_shown_viewer(make_napari_viewer, slide):
    """The same in a shown viewer, for screenshots and canvas input: (viewer, spots layer)."""
    from napari_stimage.viewer.layers import add_slide_to_viewer

    viewer = make_napari_viewer(show=True)
    return viewer, add_slide_to_viewer(viewer, slide)[-1]


def _resized(image, factor: float):
    import numpy as np
    from PIL import Image

    h, w = image.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(np.asarray(image)).resize(size, Image.Resampling.BILINEAR))


HIRES_SCALEF = 0.5
LOWRES_SCALEF = 0.15


@pytest.fixture
def visium_h5ad(tmp_path, slide):
    """The synthetic slide as a scanpy/squidpy-style .h5ad: raw integer counts in a sparse X, obs
    `leiden` (categorical) and `cell_type` (text), obsm['spatial'] = (x, y), uns['spatial'][library]
    with a float hires image (0..1, as scanpy stores it) and a uint8 lowres one, and scalefactors."""
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    keep = np.flatnonzero((slide.expression_rows >= 0) & ~slide.spots["spot_id"].duplicated().to_numpy())
    spots = slide.spots.iloc[keep]
    counts = sp.csr_matrix(slide.expression.matrix.tocsr()[slide.expression_rows[keep]])
    leiden = (spots["x"].to_numpy() > 500).astype(int) + 2 * (spots["y"].to_numpy() > 500)
    obs = pd.DataFrame(
        {
            "leiden": pd.Categorical(leiden.astype(str)),
            "cell_type": np.where(leiden % 2 == 0, "tumour", "stroma").astype(object),
            "in_tissue": np.ones(len(keep), dtype=int),
        },
        index=pd.Index(spots["spot_id"].astype(str)),
    )
    adata = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=slide.expression.gene_names.astype(str)))
    adata.obsm["spatial"] = spots[["x", "y"]].to_numpy(np.float64)
    image = np.asarray(slide.image_levels[0])
    adata.uns["spatial"] = {
        "synthetic_lib": {
            "images": {
                "hires": _resized(image, HIRES_SCALEF).astype(np.float32) / 255.0,
                "lowres": _resized(image, LOWRES_SCALEF),
            },
            "scalefactors": {
                "spot_diameter_fullres": float(2 * spots["r"].iloc[0]),
                "tissue_hires_scalef": HIRES_SCALEF,
                "tissue_lowres_scalef": LOWRES_SCALEF,
            },
        }
    }
    path = tmp_path / "synthetic_visium.h5ad"
    adata.write_h5ad(path)
    return path


def write_spaceranger_outs(folder, slide, header: bool = True, blank_hires: bool = False):
    """The synthetic slide as a Space Ranger outs/ folder: filtered_feature_bc_matrix.h5 (CSC genes x
    barcodes, one extra 'Antibody Capture' feature, one barcode missing from the positions file),
    spatial/tissue_positions.csv (header) or tissue_positions_list.csv (none, Space Ranger 1),
    scalefactors_json.json, hires and lowres PNGs (hires optionally a black RGBA placeholder)."""
    import json

    import h5py
    import numpy as np
    import scipy.sparse as sp
    from PIL import Image

    folder = Path(folder)
    (folder / "spatial").mkdir(parents=True)
    keep = np.flatnonzero(slide.expression_rows >= 0)
    spots = slide.spots.iloc[keep].drop_duplicates("spot_id")
    rows = slide.expression_rows[spots.index.to_numpy()]
    barcodes = spots["spot_id"].astype(str).to_numpy()
    counts = slide.expression.matrix.tocsr()[rows]
    genes = slide.expression.raw_gene_names.astype(str)
    extra = sp.csr_matrix(np.arange(len(barcodes), dtype=np.float32)[:, None])  # an antibody
    by_gene = sp.csc_matrix(sp.hstack([counts, extra]).T.astype(np.int32))  # genes x barcodes, CSC
    with h5py.File(folder / "filtered_feature_bc_matrix.h5", "w") as f:
        m = f.create_group("matrix")
        m["data"], m["indices"], m["indptr"] = by_gene.data, by_gene.indices, by_gene.indptr
        m["shape"] = np.array(by_gene.shape, dtype=np.int32)
        m["barcodes"] = np.array([b.encode() for b in barcodes])
        features = m.create_group("features")
        features["name"] = np.array([g.encode() for g in [*genes, "CD3_TotalSeqB"]])
        features["id"] = np.array([f"ENSG{i:08d}".encode() for i in range(len(genes) + 1)])
        features["feature_type"] = np.array([b"Gene Expression"] * len(genes) + [b"Antibody Capture"])
    lines = [
        f"{b},1,{i // 50},{i % 50},{int(y)},{int(x)}"
        for i, (b, y, x) in enumerate(zip(barcodes[1:], spots["y"].to_numpy()[1:], spots["x"].to_numpy()[1:], strict=True))
    ]
    lines.append("AAAAAAAAAAAAAAAA-1,0,99,99,5,5")  # a barcode the matrix does not list
    name = "tissue_positions.csv" if header else "tissue_positions_list.csv"
    head = ["barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres"] if header else []
    (folder / "spatial" / name).write_text("\n".join(head + lines) + "\n")
    (folder / "spatial" / "scalefactors_json.json").write_text(json.dumps({
        "spot_diameter_fullres": float(2 * spots["r"].iloc[0]),
        "tissue_hires_scalef": HIRES_SCALEF,
        "tissue_lowres_scalef": LOWRES_SCALEF,
        "fiducial_diameter_fullres": 100.0,
    }))
    image = np.asarray(slide.image_levels[0])
    hires = _resized(image, HIRES_SCALEF)
    if blank_hires:
        hires = np.zeros(hires.shape[:2] + (4,), np.uint8)
        hires[..., 3] = 255
    Image.fromarray(hires).save(folder / "spatial" / "tissue_hires_image.png")
    Image.fromarray(_resized(image, LOWRES_SCALEF)).save(folder / "spatial" / "tissue_lowres_image.png")
    return folder


@pytest.fixture
def outs_folder(tmp_path, slide):
    return write_spaceranger_outs(tmp_path / "sample1" / "outs", slide)
