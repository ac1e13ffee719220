"""SpatialData .zarr in and out (io/spatialdata.py, optional extra [spatialdata])."""

import sys

import numpy as np
import pytest

from conftest import write_spaceranger_outs
from napari_stimage import load_slide
from napari_stimage.cli import main
from napari_stimage.core.errors import SlideError
from napari_stimage.export import export_slide
from napari_stimage.io import registry
from test_export import _assert_round_trip, _edited_labels


def test_without_the_extra_a_spatialdata_folder_says_what_to_install(tmp_path, monkeypatch):
    folder = tmp_path / "sample.zarr"
    for part in ("tables", "shapes", "images"):
        (folder / part).mkdir(parents=True)
    (folder / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    assert registry.resolve(folder)[0].name == "spatialdata"
    assert registry.resolve(tmp_path) is None
    monkeypatch.setitem(sys.modules, "spatialdata", None)  # as if the extra were not installed
    with pytest.raises(SlideError, match=r"sample\.zarr: a SpatialData folder: reading it needs the optional extra \(pip install 'napari-stimage\[spatialdata\]'\)"):
        load_slide(folder)


spatialdata_extra = pytest.mark.filterwarnings(
    # spatialdata 0.7 on zarr 3 / dask: warnings from inside those libraries, not from this package
    "ignore::UserWarning", "ignore::FutureWarning", "ignore::DeprecationWarning",
)


@pytest.fixture
def sd():
    return pytest.importorskip("spatialdata")


@spatialdata_extra
@pytest.mark.parametrize("source", ["generated", "real"])
def test_spatialdata_io_visium_zarr_opens_like_its_outs_folder(source, sd, slide, tmp_path, request):
    spatialdata_io = pytest.importorskip("spatialdata_io")
    if source == "real":
        outs = request.getfixturevalue("real_data") / "scanpy_visium_1.0.0"
    else:
        outs = write_spaceranger_outs(tmp_path / "S1" / "outs", slide, blank_hires=False)
    spatialdata_io.visium(outs, dataset_id="sample1").write(tmp_path / "sample1.zarr")
    from_outs = load_slide(outs, decode_image=True)
    opened = load_slide(tmp_path / "sample1.zarr", decode_image=True)
    assert opened.name == "sample1" and registry.resolve(tmp_path / "sample1.zarr")[0].name == "spatialdata"
    assert opened.spots["spot_id"].tolist() == from_outs.spots["spot_id"].tolist()
    np.testing.assert_allclose(opened.positions, from_outs.positions)
    np.testing.assert_allclose(opened.diameters, from_outs.diameters)
    assert opened.image_levels[0].shape == from_outs.image_levels[0].shape  # hires, or lowres for a blank hires
    assert opened.image_scale == pytest.approx(from_outs.image_scale, rel=1e-6)
    gene = from_outs.default_genes[0]
    np.testing.assert_array_equal(opened.gene_values(gene), from_outs.gene_values(gene))


@spatialdata_extra
def test_zarr_round_trip(sd, slide, tmp_path):
    labels = _edited_labels(slide)
    out = export_slide(slide, tmp_path / "slide.zarr", labels=labels)
    written = sd.read_zarr(out)
    name = slide.name
    assert set(written.shapes) == {name} and set(written.images) == {f"{name}_hires_image"}
    assert written.tables["table"].uns["spatialdata_attrs"]["region"] == name
    back = load_slide(out, decode_image=True)
    _assert_round_trip(slide, back, labels)
    np.testing.assert_array_equal(np.asarray(back.image_levels[0]), np.asarray(slide.image_levels[0]))
    export_slide(slide, out, labels=slide.labels)  # over an existing export: replaced whole
    _assert_round_trip(slide, load_slide(out), slide.labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["STimage-1K4M", "slide.zarr"]  # no scratch left


@spatialdata_extra
def test_cli_export_zarr(sd, real_data, tmp_path):
    out = tmp_path / "squidpy.zarr"
    assert main(["export", str(real_data / "squidpy_test_data.h5ad"), "--to", str(out)]) == 0
    back = load_slide(out)
    assert back.n_spots == 49 and "leiden" in back.categories.columns and back.expression.normalised


@spatialdata_extra
@pytest.mark.timeout(120)
def test_napari_spatialdata_opens_the_export(sd, slide, tmp_path, make_napari_viewer, qtbot):
    pytest.importorskip("napari_spatialdata")
    from napari_spatialdata import Interactive

    out = export_slide(slide, tmp_path / "slide.zarr")
    viewer = make_napari_viewer()  # Interactive uses the current viewer
    interactive = Interactive(sd.read_zarr(out), headless=True)
    # napari-spatialdata loads each element on its worker thread, one at a time
    interactive.add_element(slide.name, "global")
    qtbot.waitUntil(lambda: len(viewer.layers) == 1, timeout=60_000)
    interactive.add_element(f"{slide.name}_hires_image", "global")
    qtbot.waitUntil(lambda: len(viewer.layers) == 2, timeout=60_000)
    names = [layer.name for layer in viewer.layers]
    assert len(names) == 2, names
    spots = next(layer for layer in viewer.layers if slide.name in layer.name and "image" not in layer.name)
    assert len(spots.data) == load_slide(out).n_spots, names
    image = next(layer for layer in viewer.layers if "hires_image" in layer.name)
    level0 = image.data[0] if image.multiscale else image.data
    assert tuple(level0.shape[:2]) == np.asarray(slide.image_levels[0]).shape[:2]
    keep = slide.expression_rows >= 0
    np.testing.assert_allclose(np.asarray(spots.data)[:, -2:], slide.positions[keep])  # circles at their (y, x)


@spatialdata_extra
@pytest.mark.timeout(120)
def test_zarr_opens_in_napari_through_this_plugin(sd, slide, tmp_path, make_napari_viewer):
    out = export_slide(slide, tmp_path / "slide.zarr")
    viewer = make_napari_viewer()
    image, spots = viewer.open(str(out), plugin="napari-stimage")
    assert spots.name == f"{slide.name} spots" and len(spots.data) == int((slide.expression_rows >= 0).sum())
