"""A HEST sample as a user opens it: File > Open through the plugin, in a shown viewer."""

import numpy as np
import pytest
from qtpy.QtWidgets import QLabel

from napari_stimage.synthetic_hest import CELL_CLASSES, TISSUE_RGB, write_hest_sample
from napari_stimage.viewer.canvas import camera


def _centre_pixel(viewer, world_yx, zoom):
    camera(viewer).center = tuple(world_yx)
    camera(viewer).zoom = zoom
    shot = viewer.screenshot(canvas_only=True, flash=False)
    h, w = shot.shape[:2]
    return shot[h // 2 - 2:h // 2 + 3, w // 2 - 2:w // 2 + 3, :3].reshape(-1, 3).mean(axis=0)


@pytest.mark.timeout(120)
def test_st_only_sample_opens_with_spots_on_the_thumbnail_tissue_and_a_micron_scale_bar(make_napari_viewer, tmp_path):
    sample = write_hest_sample(tmp_path / "hest", "NCBI783", technology="Xenium", with_wsi=False, dense=True,
                               size=(3000, 2000), pixel_size_um=0.25)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(sample.st), plugin="napari-stimage")
    image, spots = viewer.layers["NCBI783"], viewer.layers["NCBI783 spots"]
    # data stay in full-res pixels; the layers are placed in µm and the scale bar says µm
    np.testing.assert_allclose(spots.data, spots.metadata["stimage_slide"].positions)
    np.testing.assert_allclose(spots.scale, (0.25, 0.25))
    np.testing.assert_allclose(image.scale, (3.0 * 0.25, 3.0 * 0.25))
    assert [str(u) for u in spots.units] == ["micrometer", "micrometer"]
    assert viewer.canvas.overlays.scale_bar.visible
    assert spots.symbol[0].value == "square"
    np.testing.assert_allclose(spots.size, 100.0 / 0.25)
    assert spots.metadata["sample"]["organ"] == "Breast" and image.metadata["sample"]["pixel_size_um"] == 0.25
    # pixels: with the spots hidden, what lies under a spot on screen is tissue; far off it, background
    spots.visible = False
    spot_world = spots.data_to_world(spots.data[0])
    on_spot = _centre_pixel(viewer, spot_world, zoom=2.0)
    off_tissue = _centre_pixel(viewer, (20.0, 20.0), zoom=2.0)  # 80 px from the corner: background
    np.testing.assert_allclose(on_spot, TISSUE_RGB, atol=12)
    np.testing.assert_allclose(off_tissue, (255, 255, 255), atol=12)
    spots.visible = True
    spots.face_color = "black"
    spots.refresh()
    np.testing.assert_allclose(_centre_pixel(viewer, spot_world, zoom=2.0), (0, 0, 0), atol=40)


@pytest.mark.timeout(120)
def test_wsi_sample_with_overlays_and_the_summary_in_the_colour_widget_header(make_napari_viewer, tmp_path, qtbot):
    sample = write_hest_sample(tmp_path / "hest", "TENX95", with_contours=True, with_cells=300)
    viewer = make_napari_viewer(show=True)
    viewer.open(str(sample.wsi), plugin="napari-stimage")
    names = [layer.name for layer in viewer.layers]
    assert names == ["TENX95", "TENX95 tissue contours", "TENX95 cells", "TENX95 spots"]
    image, contours, cells = viewer.layers["TENX95"], viewer.layers["TENX95 tissue contours"], viewer.layers["TENX95 cells"]
    assert image.multiscale and len(image.data) == 4
    assert contours.nshapes == 2  # the outline and its hole
    assert len(cells.data) == 300 and set(cells.features["class"]) == set(CELL_CLASSES)
    np.testing.assert_allclose(cells.scale, (0.5, 0.5))
    _, widget = viewer.window.add_plugin_dock_widget("napari-stimage", "Color spots")
    viewer.layers.selection.active = viewer.layers["TENX95 spots"]
    header = [label.text() for label in widget.findChildren(QLabel) if label.text().startswith("Slide:")]
    assert header == ["Slide: TENX95 (Visium, Breast, Homo sapiens, IDC, 0.5 µm/px)"]
