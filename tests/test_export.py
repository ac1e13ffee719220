"""Any slide out as .h5ad in scanpy/squidpy conventions, with its current labels, and back in."""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from napari.plugins.io import save_layers

from conftest import write_spaceranger_outs
from napari_stimage import load_slide
from napari_stimage.cli import main
from napari_stimage.core.expression import make_unique
from napari_stimage.core.labels import unlabelled_mask
from napari_stimage.curation.editor import LabelEditor
from napari_stimage.export import export_slide
from napari_stimage.viewer.editors import editor_for_layer


def _same_labels(a, b):
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    missing = unlabelled_mask(a)
    assert (missing == unlabelled_mask(b)).all()
    assert a[~missing].tolist() == b[~missing].tolist()


def _assert_round_trip(slide, back, labels):
    """Positions, labels and counts of the spots with expression come back equal."""
    keep = np.flatnonzero(slide.expression_rows >= 0)
    assert back.spots["spot_id"].tolist() == make_unique(slide.spots["spot_id"].iloc[keep].astype(str))
    np.testing.assert_array_equal(back.positions, slide.positions[keep])
    np.testing.assert_allclose(back.diameters, slide.diameters[keep])
    _same_labels(back.labels, np.asarray(labels, dtype=object)[keep])
    counts = slide.expression.matrix.tocsr()[slide.expression_rows[keep]]
    assert (back.expression.matrix.tocsr() != counts).nnz == 0
    assert back.expression.gene_names.tolist() == slide.expression.gene_names.tolist()
    assert back.expression.raw_gene_names.tolist() == slide.expression.raw_gene_names.tolist()
    assert back.expression.normalised == slide.expression.normalised


def _edited_labels(slide):
    editor = LabelEditor.from_slide(slide, autosave=False)
    editor.assign([0, 1, 2], "Curated")
    editor.assign([3], None)
    return editor.labels


def test_stimage_slide_round_trip_in_scanpy_conventions(slide, tmp_path):
    labels = _edited_labels(slide)
    out = export_slide(slide, tmp_path / "out.h5ad", labels=labels)
    adata = ad.read_h5ad(out)
    assert sp.issparse(adata.X) and adata.X.format == "csr"
    library = adata.uns["spatial"][slide.name]
    assert library["images"]["hires"].dtype == np.uint8 and library["images"]["hires"].shape == (1000, 1000, 3)
    assert set(library["scalefactors"]) == {"spot_diameter_fullres", "tissue_hires_scalef"}
    assert isinstance(adata.obs["label"].dtype, pd.CategoricalDtype)
    assert "MALAT1" in adata.var["gene_name_in_file"].tolist()  # the names as the count file wrote them
    back = load_slide(out, decode_image=True)
    assert back.name == slide.name
    _assert_round_trip(slide, back, labels)
    np.testing.assert_array_equal(back.image_levels[0], np.asarray(slide.image_levels[0]))


def test_the_image_is_a_downscaled_copy_placed_by_its_scale_factor(slide):
    adata = slide.to_anndata(image_max_px=256)
    library = adata.uns["spatial"][slide.name]
    image, scalef = library["images"]["hires"], library["scalefactors"]["tissue_hires_scalef"]
    assert max(image.shape[:2]) <= 256 and scalef == pytest.approx(image.shape[1] / 1000)
    full = np.asarray(slide.image_levels[0]).astype(int)
    x, y = adata.obsm["spatial"].T
    under = image[(y * scalef).astype(int), (x * scalef).astype(int)].astype(int)
    assert np.abs(under - full[y.astype(int), x.astype(int)]).mean() < 15  # the same tissue under each spot


def test_h5ad_round_trip_keeps_categorical_columns(visium_h5ad, tmp_path):
    slide = load_slide(visium_h5ad)
    labels = _edited_labels(slide)
    out = export_slide(slide, tmp_path / "again.h5ad", labels=labels)
    back = load_slide(out)
    _assert_round_trip(slide, back, labels)
    for column in ("leiden", "cell_type"):
        assert back.categories[column].tolist() == slide.categories[column].tolist()


def test_squidpy_file_round_trip(real_data, tmp_path):
    slide = load_slide(real_data / "squidpy_test_data.h5ad", decode_image=True)
    labels = _edited_labels(slide)
    back = load_slide(export_slide(slide, tmp_path / "squidpy.h5ad", labels=labels), decode_image=True)
    _assert_round_trip(slide, back, labels)  # normalised stays normalised (it has no raw counts to write)
    assert back.categories["leiden"].tolist() == slide.categories["leiden"].tolist()
    assert back.image_levels[0].shape == (88, 49, 3) and back.image_scale == pytest.approx(slide.image_scale)


@pytest.mark.parametrize("source", ["generated", "real"])
def test_spaceranger_round_trip(source, slide, tmp_path, request):
    if source == "real":
        folder = request.getfixturevalue("real_data") / "scanpy_visium_1.0.0"
    else:
        folder = write_spaceranger_outs(tmp_path / "S1" / "outs", slide)
    opened = load_slide(folder, decode_image=True)
    labels = _edited_labels(opened)
    back = load_slide(export_slide(opened, tmp_path / "sr.h5ad", labels=labels), decode_image=True)
    _assert_round_trip(opened, back, labels)
    np.testing.assert_array_equal(back.image_levels[0], np.asarray(opened.image_levels[0]))
    assert back.image_scale == pytest.approx(opened.image_scale)


def test_cli_export(slide_paths, tmp_path, capsys):
    out = tmp_path / "cli.h5ad"
    assert main(["export", str(slide_paths.coord), "--to", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    back = load_slide(out)
    slide = load_slide(slide_paths.coord)
    _assert_round_trip(slide, back, slide.labels)  # the labels saved in the dataset's _anno.csv
    assert main(["export", str(slide_paths.coord), "--to", str(tmp_path / "x.loom")]) == 2


def test_failed_export_leaves_the_existing_file_untouched(slide, tmp_path, monkeypatch):
    (tmp_path / "out").mkdir()
    out = export_slide(slide, tmp_path / "out" / "keep.h5ad")
    before = out.read_bytes()

    def crash(self, path, **kwargs):
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(ad.AnnData, "write_h5ad", crash)
    with pytest.raises(OSError, match="disk full"):
        export_slide(slide, out)
    assert out.read_bytes() == before and [p.name for p in out.parent.iterdir()] == ["keep.h5ad"]


@pytest.mark.timeout(90)
def test_file_save_writes_the_current_edited_labels(make_napari_viewer, outs_folder, tmp_path):
    viewer = make_napari_viewer()
    *_, spots = viewer.open(str(outs_folder), plugin="napari-stimage")
    editor = editor_for_layer(spots)
    editor.assign([0, 5], "Edited")  # unsaved
    out = tmp_path / "saved.h5ad"
    save_layers(str(out), [spots], plugin="napari-stimage")
    adata = ad.read_h5ad(out)
    assert adata.obs["label"].iloc[[0, 5]].tolist() == ["Edited", "Edited"] and adata.obs["label"].isna().sum() == len(adata) - 2
    assert editor.dirty and not editor.path.exists()  # the slide's own label file is not written


# scanpy 1.11 deprecates sc.pl.spatial in favour of squidpy's; it is still the check the issue asks for
@pytest.mark.filterwarnings("ignore:Use `squidpy.pl.spatial_scatter` instead:FutureWarning")
@pytest.mark.filterwarnings("ignore:The set_bad function will be deprecated:PendingDeprecationWarning")  # inside scanpy
def test_scanpy_draws_the_export(slide, tmp_path):
    sc = pytest.importorskip("scanpy")  # installed with the [spatialdata] extra
    import matplotlib

    matplotlib.use("Agg")
    labels = _edited_labels(slide)
    adata = ad.read_h5ad(export_slide(slide, tmp_path / "for_scanpy.h5ad", labels=labels))
    axes = sc.pl.spatial(adata, color="label", library_id=slide.name, show=False)
    ax = axes[0]
    assert len(ax.images) == 1  # the H&E
    circles = max(ax.collections, key=lambda c: len(c.get_paths()))  # (the others are legend markers)
    centres = np.array([p.vertices.mean(axis=0) for p in circles.get_paths()])
    assert len(centres) == adata.n_obs  # one circle per spot (unlabelled ones in scanpy's NA grey)
    # scanpy places circles at obsm['spatial'] x tissue_hires_scalef: on the image it shows
    scalef = adata.uns["spatial"][slide.name]["scalefactors"]["tissue_hires_scalef"]
    expected = adata.obsm["spatial"] * scalef
    nearest = np.abs(centres[:, None, :] - expected[None, :, :]).sum(axis=2).min(axis=1)
    assert nearest.max() < 1.0
