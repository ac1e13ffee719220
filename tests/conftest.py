from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest

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
