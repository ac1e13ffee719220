"""Generic AnnData (.h5ad in scanpy/squidpy conventions) opens as a slide (io/anndata.py)."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from conftest import HIRES_SCALEF, LOWRES_SCALEF
from napari_stimage import coloring as col
from napari_stimage import load_slide
from napari_stimage._reader import get_reader
from napari_stimage.core.errors import SlideError
from napari_stimage.curation.editor import LabelEditor
from napari_stimage.io import registry
from napari_stimage.viewer.canvas import camera


def _rewrite(path, change):
    adata = ad.read_h5ad(path)
    change(adata)
    adata.write_h5ad(path)
    return path


def test_h5ad_opens_with_image_placed_by_its_scale_factor(visium_h5ad, slide):
    opened = load_slide(visium_h5ad, decode_image=True)
    assert opened.name == "synthetic_lib" and registry.resolve(visium_h5ad)[0].name == "anndata"
    keep = (slide.expression_rows >= 0) & ~slide.spots["spot_id"].duplicated().to_numpy()
    spots = slide.spots[keep].reset_index(drop=True)
    np.testing.assert_array_equal(opened.positions, spots[["y", "x"]].to_numpy())  # obsm (x, y) -> napari (y, x)
    np.testing.assert_allclose(opened.diameters, 2 * spots["r"].to_numpy())  # spot_diameter_fullres
    image = opened.image_levels[0]
    assert image.dtype == np.uint8 and image.shape == (500, 500, 3)  # hires preferred; float 0..1 -> uint8
    assert opened.image_scale == pytest.approx(1 / HIRES_SCALEF)
    # the image pixel under each spot is the full-res image's pixel there, i.e. spots sit where they did
    full = np.asarray(slide.image_levels[0]).astype(int)
    y, x = opened.positions.T.astype(int)
    under = image[(y / opened.image_scale).astype(int), (x / opened.image_scale).astype(int)].astype(int)
    assert np.abs(under - full[y, x]).mean() < 12
    gene = slide.default_genes[0]
    np.testing.assert_array_equal(opened.gene_values(gene), slide.gene_values(gene)[keep])
    assert not opened.expression.normalised and col.default_transform(opened) == "log1p"


def test_categorical_obs_columns_are_offered_as_label_columns(visium_h5ad):
    opened = load_slide(visium_h5ad)
    features = opened.features()
    assert col.categorical_columns(features) == ["label", "leiden", "cell_type"]  # not in_tissue (numbers)
    assert set(features["leiden"]) == {"0", "1", "2", "3"} and set(features["cell_type"]) == {"tumour", "stroma"}
    assert features["label"].isna().all()  # nothing curated yet


def test_normalised_x_is_detected_and_not_logged_twice(visium_h5ad):
    def normalise(adata):
        adata.X = sp.csr_matrix(np.log1p(adata.X.toarray() / 3.0), dtype=np.float32)

    opened = load_slide(_rewrite(visium_h5ad, normalise))
    assert opened.expression.normalised
    assert any("already normalised" in m for m in opened.report.messages())
    assert col.default_transform(opened) == "raw"  # the widget's and the reader's first transform


def test_raw_counts_in_a_layer_are_preferred_over_a_normalised_x(visium_h5ad, slide):
    def normalise_keep_counts(adata):
        adata.layers["counts"] = adata.X.copy()
        adata.X = sp.csr_matrix(np.log1p(adata.X.toarray()), dtype=np.float32)

    opened = load_slide(_rewrite(visium_h5ad, normalise_keep_counts))
    assert not opened.expression.normalised
    gene = slide.default_genes[0]
    keep = (slide.expression_rows >= 0) & ~slide.spots["spot_id"].duplicated().to_numpy()
    np.testing.assert_array_equal(opened.gene_values(gene), slide.gene_values(gene)[keep])
    assert "raw counts read from layers['counts'] (X is normalised)" in opened.report.messages()


def test_h5ad_without_spatial_coordinates_names_the_file_and_what_is_missing(tmp_path):
    path = tmp_path / "cells.h5ad"
    adata = ad.AnnData(X=sp.csr_matrix(np.ones((3, 2), np.float32)))
    adata.obsm["X_umap"] = np.zeros((3, 2))
    adata.write_h5ad(path)
    with pytest.raises(SlideError, match=r"cells\.h5ad: no spatial coordinates: obsm\['spatial'\] .* is missing \(obsm holds 'X_umap'\)"):
        load_slide(path)


def test_damaged_h5ad_is_a_slide_error(tmp_path):
    path = tmp_path / "broken.h5ad"
    path.write_bytes(b"\x89HDF\r\n\x1a\nnot really")
    with pytest.raises(SlideError, match=r"broken\.h5ad: cannot read the \.h5ad file"):
        load_slide(path)


def test_resolve_never_raises_and_leaves_hest_tree_files_to_the_hest_reader(tmp_path, visium_h5ad):
    reader = next(r for r in registry.readers() if r.name == "anndata")
    for odd in (None, 12, "", tmp_path, tmp_path / "missing.h5ad", "\0bad.h5ad"):
        assert reader.resolve(odd) is None
    assert reader.resolve(str(visium_h5ad)) == visium_h5ad
    for sibling in ("metadata", "wsis"):
        root = tmp_path / f"hest_{sibling}"
        (root / "st").mkdir(parents=True)
        (root / sibling).mkdir()
        sample = root / "st" / "TENX95.h5ad"
        sample.write_bytes(visium_h5ad.read_bytes())
        assert reader.resolve(sample) is None
    lone = tmp_path / "download" / "st"
    lone.mkdir(parents=True)
    (lone / "TENX95.h5ad").write_bytes(visium_h5ad.read_bytes())
    assert reader.resolve(lone / "TENX95.h5ad") is not None  # an st/ folder alone is just an .h5ad


def test_blank_or_short_hires_falls_back_to_lowres(visium_h5ad):
    def blank_hires(adata):
        adata.uns["spatial"]["synthetic_lib"]["images"]["hires"][:] = 0.0

    opened = load_slide(_rewrite(visium_h5ad, blank_hires), decode_image=True)
    assert opened.image_scale == pytest.approx(1 / LOWRES_SCALEF) and opened.image_levels[0].shape == (150, 150, 3)
    assert "the hires image is blank (one colour): not shown" in opened.report.messages()

    def crop_hires(adata):  # squidpy's test file: a hires crop that does not reach every spot
        images = adata.uns["spatial"]["synthetic_lib"]["images"]
        images["hires"] = np.random.default_rng(0).random((100, 100, 3)).astype(np.float32)

    opened = load_slide(_rewrite(visium_h5ad, crop_hires), decode_image=True)
    assert opened.image_levels[0].shape == (150, 150, 3)
    assert "the hires image does not reach all spots: the lowres image is shown" in opened.report.messages()


def test_labels_are_saved_beside_the_file_and_read_back(visium_h5ad):
    opened = load_slide(visium_h5ad)
    editor = LabelEditor.from_slide(opened, autosave=False)
    assert editor.path == visium_h5ad.with_name("synthetic_visium_anno.csv")
    editor.assign([0, 3], "Tumor")
    editor.save()
    again = load_slide(visium_h5ad)
    assert list(again.labels[[0, 3]]) == ["Tumor", "Tumor"] and pd.isna(again.labels[1])


def test_real_squidpy_file(real_data):
    path = real_data / "squidpy_test_data.h5ad"
    opened = load_slide(path, decode_image=True)
    assert (opened.name, opened.n_spots, opened.expression.n_genes) == ("V1_Adult_Mouse_Brain", 49, 1999)
    assert opened.expression.normalised  # the file is log-normalised
    np.testing.assert_array_equal(opened.positions[0], [439, 337])  # obsm['spatial'][0] = (337, 439)
    assert opened.diameters[0] == pytest.approx(89.44476048022638)
    # its hires image is a 100 px crop that misses most spots: the lowres one (scalef 0.051) is shown
    assert opened.image_levels[0].shape == (88, 49, 3)
    assert opened.image_scale == pytest.approx(1 / 0.051033426)
    assert "leiden" in col.categorical_columns(opened.features())
    assert get_reader(str(path)) is not None


def _tissue(rgb) -> bool:
    """H&E tissue in squidpy's crop is pink/purple (green well below red and blue); its background is grey."""
    r, g, b = (int(v) for v in rgb[:3])
    return r - g > 15 and b - g > 15


@pytest.mark.timeout(90)
def test_squidpy_file_opens_in_napari_with_spots_on_tissue(make_napari_viewer, real_data):
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(real_data / "squidpy_test_data.h5ad"), plugin="napari-stimage")
    image, spots = layers
    assert spots.name == "V1_Adult_Mouse_Brain spots" and len(spots.data) == 49
    assert "leiden" in col.categorical_columns(spots.features)
    spots.visible = False
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    cy, cx = camera(viewer).center[-2:]
    zoom = camera(viewer).zoom
    h, w = shot.shape[:2]

    def pixel(y, x):
        return shot[int(round((y - cy) * zoom + h / 2)), int(round((x - cx) * zoom + w / 2))]

    on_tissue = [_tissue(pixel(y, x)) for y, x in spots.data]
    assert all(on_tissue), f"{on_tissue.count(False)} of 49 spot centres are not on tissue"
    corner = pixel(image.scale[0] * 0.5, image.scale[1] * 0.5)  # image pixel (0, 0): grey background
    assert not _tissue(corner) and abs(int(corner[0]) - 128) < 20, corner


@pytest.mark.timeout(90)
def test_colour_widget_on_a_normalised_h5ad_offers_obs_columns_and_does_not_log_twice(make_napari_viewer, real_data, qtbot):
    viewer = make_napari_viewer()
    *_, spots = viewer.open(str(real_data / "squidpy_test_data.h5ad"), plugin="napari-stimage")
    _, widget = viewer.window.add_plugin_dock_widget("napari-stimage", "Color spots")
    assert "(values already normalised)" in widget.slide_label.text()
    assert widget.transform_combo.currentData() == "raw"
    gene = widget.state().gene.genes[0]  # opened coloured by its top gene, values as stored
    np.testing.assert_allclose(widget._values.values, spots.features[gene].to_numpy(), rtol=1e-6)
    widget.tabs.setCurrentIndex(1)
    items = [widget.column_combo.itemText(i) for i in range(widget.column_combo.count())]
    assert items == ["label", "leiden"]
    widget.column_combo.setCurrentIndex(1)
    widget.column_combo.activated.emit(1)
    assert set(widget.legend_rows) >= set(spots.features["leiden"].unique())


def test_render_places_the_downscaled_image_under_the_spots(real_data):
    from napari_stimage.render import render_scale, render_slide

    opened = load_slide(real_data / "squidpy_test_data.h5ad", decode_image=True)
    out = render_slide(opened, genes=opened.default_genes[0], opacity=0.0, panel=False, width=400)
    assert out.shape[1] == 400  # the image's full-res extent (49 px x 19.6), not its pixel count
    scale = render_scale(opened, 400)
    centres = ((opened.positions + 0.5) * scale).astype(int)
    assert all(_tissue(out[y, x]) for y, x in centres)
