"""A Space Ranger outs/ folder opens as a slide from any of its entry points (io/spaceranger.py)."""

import numpy as np
import pandas as pd
import pytest

from conftest import HIRES_SCALEF, LOWRES_SCALEF, write_spaceranger_outs
from napari_stimage import load_slide
from napari_stimage._reader import get_reader
from napari_stimage.core.errors import SlideError
from napari_stimage.io import registry


def _expected_spots(slide):
    keep = np.flatnonzero(slide.expression_rows >= 0)
    return slide.spots.iloc[keep].drop_duplicates("spot_id").reset_index(drop=True)


@pytest.mark.parametrize("header", [True, False])
def test_outs_opens_from_folder_matrix_or_positions(tmp_path, slide, header):
    outs = write_spaceranger_outs(tmp_path / "S1" / "outs", slide, header=header)
    positions = outs / "spatial" / ("tissue_positions.csv" if header else "tissue_positions_list.csv")
    opened = [load_slide(p, decode_image=True) for p in (outs, outs / "filtered_feature_bc_matrix.h5", positions)]
    assert {registry.resolve(p)[0].name for p in (outs, positions)} == {"spaceranger"}
    first = opened[0]
    assert first.name == "S1" and first.tech == "Visium"  # outs/ takes its sample folder's name
    expected = _expected_spots(slide)
    # spots = the matrix's barcodes that have a position (the first one was left out of the positions file)
    assert first.spots["spot_id"].tolist() == expected["spot_id"].tolist()[1:]
    assert first.report.count_not_in_coord == [expected["spot_id"].iloc[0]]
    np.testing.assert_array_equal(first.positions, expected[["y", "x"]].to_numpy()[1:].astype(int))
    np.testing.assert_allclose(first.diameters, 2 * expected["r"].to_numpy()[1:])
    assert first.image_levels[0].shape == (500, 500, 3) and first.image_scale == pytest.approx(1 / HIRES_SCALEF)
    assert "CD3_TotalSeqB" not in first.expression.gene_names  # only Gene Expression features
    gene = slide.default_genes[0]
    row_of = dict(zip(slide.spots["spot_id"], slide.expression_rows, strict=True))
    rows = [row_of[s] for s in first.spots["spot_id"]]
    np.testing.assert_array_equal(first.gene_values(gene), slide.expression.gene_values(gene)[rows])
    for other in opened[1:]:
        np.testing.assert_array_equal(other.positions, first.positions)
        assert other.spots["spot_id"].tolist() == first.spots["spot_id"].tolist()


def test_blank_hires_placeholder_falls_back_to_lowres(tmp_path, slide):
    outs = write_spaceranger_outs(tmp_path / "S2", slide, blank_hires=True)
    opened = load_slide(outs, decode_image=True)
    assert opened.source.image_path.name == "tissue_lowres_image.png"
    assert opened.image_scale == pytest.approx(1 / LOWRES_SCALEF) and opened.image_levels[0].shape == (150, 150, 3)
    assert "the hires image is blank (one colour): not shown" in opened.report.messages()


def test_folders_reach_the_npe2_reader_only_when_they_are_outs(tmp_path, outs_folder, slide_paths):
    assert get_reader(str(outs_folder)) is not None
    assert get_reader(str(tmp_path)) is None  # a folder of nothing we know
    assert get_reader(str(slide_paths.coord.parent)) is None  # an STimage folder is opened by its files
    (outs_folder / "filtered_feature_bc_matrix.h5").unlink()
    assert get_reader(str(outs_folder)) is None


def test_bad_matrix_is_a_slide_error_naming_it(outs_folder):
    (outs_folder / "filtered_feature_bc_matrix.h5").write_bytes(b"not hdf5")
    with pytest.raises(SlideError, match=r"filtered_feature_bc_matrix\.h5: not an HDF5 feature-barcode matrix"):
        load_slide(outs_folder)


def test_real_scanpy_visium_folder(real_data):
    folder = real_data / "scanpy_visium_1.0.0"
    opened = load_slide(folder, decode_image=True)
    assert (opened.name, opened.n_spots, opened.expression.n_genes) == ("scanpy_visium_1.0.0", 100, 100)
    positions = pd.read_csv(folder / "spatial" / "tissue_positions_list.csv", header=None, index_col=0)
    expected = positions.loc[opened.spots["spot_id"], [4, 5]].to_numpy()
    np.testing.assert_array_equal(opened.positions, expected)
    assert opened.diameters[0] == pytest.approx(89.42751063343188)
    # its hires PNG is a black placeholder: the real lowres H&E is shown, placed by tissue_lowres_scalef
    assert opened.source.image_path.name == "tissue_lowres_image.png"
    assert opened.image_scale == pytest.approx(1 / 0.045004502)
    image = opened.image_levels[0]
    y, x = (opened.positions / opened.image_scale).astype(int).T
    assert image[y, x].mean() < image.mean()  # spots (filtered = under tissue) sit on darker-than-average tissue


@pytest.mark.timeout(90)
def test_outs_folder_opens_in_napari(make_napari_viewer, outs_folder):
    viewer = make_napari_viewer()
    image, spots = viewer.open(str(outs_folder), plugin="napari-stimage")
    assert spots.name == "sample1 spots" and len(spots.data) == load_slide(outs_folder).n_spots
    np.testing.assert_allclose(image.scale, [1 / HIRES_SCALEF] * 2)


def test_convert_skips_sources_without_caches(tmp_path, slide_paths, slide, visium_h5ad):
    from napari_stimage.convert import convert_tree

    write_spaceranger_outs(slide_paths.coord.parents[2] / "sr" / "outs", slide)
    (slide_paths.coord.parents[2] / "x.h5ad").write_bytes(visium_h5ad.read_bytes())
    found = registry.find_slides(slide_paths.coord.parents[2])
    assert {type(h).__name__ for h in found} >= {"SlidePaths", "PosixPath"}
    results = convert_tree(slide_paths.coord.parents[2], show_progress=False)
    assert results == []  # the STimage slide's cache was built when the fixture opened it; the others have none
