"""Tests on the real files in ../shared/data/real (skipped when it is absent).

The real files are read in place or copied into tmp_path; none is copied into the repo.
"""

import json
import shutil

import numpy as np
import pandas as pd

from napari_stimage import load_slide, resolve_slide
from napari_stimage.io.images import read_image, sniff_image_format


def test_real_st_coord_file(tmp_path, real_data):
    src = real_data / "Human_Breast_Andersson_10142021_ST_A1_coord.csv"
    dst = tmp_path / "ST" / "coord" / src.name
    dst.parent.mkdir(parents=True)
    shutil.copy(src, dst)
    slide = load_slide(dst)
    assert slide.name == "Human_Breast_Andersson_10142021_ST_A1" and slide.tech == "ST"
    assert slide.n_spots == 346 and slide.expression is None
    raw = pd.read_csv(src, index_col=0)
    np.testing.assert_allclose(slide.positions, raw[["yaxis", "xaxis"]].to_numpy())
    np.testing.assert_allclose(slide.diameters, 2 * raw["r"].to_numpy())
    assert slide.spots["spot_id"].iloc[0] == "Human_Breast_Andersson_10142021_ST_A1_10x13"


def _visium_slide_from_10x(real_data, root):
    """A slide in STimage layout built from real 10x Visium positions and the real low-res H&E."""
    spatial = real_data / "scanpy_visium_1.0.0" / "spatial"
    scale = json.loads((spatial / "scalefactors_json.json").read_text())
    pos = pd.read_csv(spatial / "tissue_positions_list.csv", header=None,
                      names=["barcode", "in_tissue", "row", "col", "y", "x"])
    pos = pos[pos.in_tissue == 1]
    name = "Mouse_Brain_10X_scanpy_Visium"
    f = scale["tissue_lowres_scalef"]
    (root / "Visium" / "coord").mkdir(parents=True)
    (root / "Visium" / "image").mkdir(parents=True)
    coord = pd.DataFrame({"yaxis": pos.y * f, "xaxis": pos.x * f, "r": scale["spot_diameter_fullres"] * f / 2})
    coord.index = name + "_" + pos.barcode
    coord.to_csv(root / "Visium" / "coord" / f"{name}_coord.csv")
    shutil.copy(spatial / "tissue_lowres_image.png", root / "Visium" / "image" / f"{name}.png")
    return root / "Visium" / "coord" / f"{name}_coord.csv", pos


def test_real_visium_positions_on_real_he(tmp_path, real_data):
    coord, pos = _visium_slide_from_10x(real_data, tmp_path)
    slide = load_slide(resolve_slide(coord).image)
    (img,) = slide.image_levels
    assert img.shape == (600, 600, 3)
    assert slide.n_spots == len(pos) > 2000
    # in-tissue spots sit on tissue: darker than the white glass around it on average
    ys, xs = slide.positions.round().astype(int).T
    on_tissue = img[ys, xs].mean()
    corners = np.concatenate([img[:20, :20].reshape(-1, 3), img[-20:, -20:].reshape(-1, 3)]).mean()
    assert on_tissue < corners - 20


def test_real_jpeg_and_rgba_png(real_data):
    jpg = real_data / "squidpy_test_img.jpg"
    assert sniff_image_format(jpg) == "jpeg"
    (img,) = read_image(jpg)
    assert img.shape == (1717, 950, 3)
    rgba = real_data / "scanpy_visium_1.0.0" / "spatial" / "tissue_hires_image.png"
    (img,) = read_image(rgba)
    assert img.shape == (2000, 2000, 3)  # alpha dropped
