"""The "Compare predictions" widget, the compare view and dropping a prediction file, driven as a user does."""

import anndata as ad
import numpy as np
import pytest
from qtpy.QtCore import Qt

from conftest import ABSENT, GOOD, RANDOM  # the genes of write_stpath_outputs
from napari_stimage import SlideError, add_predictions
from napari_stimage import coloring as col
from napari_stimage._qt import predictions_widget as pw
from napari_stimage.io.predictions import compare, load_predictions
from napari_stimage.viewer.canvas import camera
from napari_stimage.viewer.layers import add_slide_to_viewer
from napari_stimage.viewer.predictions import ROLES, compare_role, models_of

pytestmark = pytest.mark.timeout(120)


def _dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget("napari-stimage", "Compare predictions")
    assert isinstance(widget, pw.PredictionsWidget)
    return widget


def _load_with_button(qtbot, widget, monkeypatch, path):
    monkeypatch.setattr(pw.QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), "AnnData (*.h5ad)"))
    qtbot.mouseClick(widget.load_button, Qt.MouseButton.LeftButton)
    assert widget.worker is not None  # read off the GUI thread
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30000)


def _compare_points(viewer):
    return {compare_role(layer): layer for layer in viewer.layers if compare_role(layer)}


def _click_row_of(qtbot, widget, gene):
    table = widget.table
    for row in range(widget.sorted_model.rowCount()):
        index = widget.sorted_model.index(row, 0)
        if index.data() == gene:
            table.scrollTo(index)
            qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=table.visualRect(index).center())
            return
    raise AssertionError(f"{gene} is not in the table")


def _column(widget, title):
    model = widget.sorted_model
    titles = [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]
    return titles.index(title)


def _numbers(widget, title):
    """{gene: the number behind the cell} for a column, in the table's row order."""
    model, c = widget.sorted_model, _column(widget, title)
    return {model.index(r, 0).data(): model.index(r, c).data(Qt.ItemDataRole.UserRole) for r in range(model.rowCount())}


def test_docked_widget_loads_with_the_button_lists_genes_and_clicking_a_row_shows_it(
        make_napari_viewer, qtbot, slide, tmp_path, monkeypatch, stpath_outputs):
    viewer = make_napari_viewer()
    image, spots = add_slide_to_viewer(viewer, slide)
    color = viewer.window.add_plugin_dock_widget("napari-stimage", "Color spots")[1]
    widget = _dock(viewer)
    prediction, _ = stpath_outputs(slide, tmp_path)
    _load_with_button(qtbot, widget, monkeypatch, prediction)

    expected = compare(slide, load_predictions(slide, prediction))
    r = _numbers(widget, "Pearson r")
    assert sorted(r) == [GOOD, RANDOM]  # every shared gene, ABSENT only counted
    for gene in (GOOD, RANDOM):
        assert r[gene] == expected.table.loc[gene, "pearson_r"]
        assert _numbers(widget, "R²")[gene] == expected.table.loc[gene, "r2"]
        assert _numbers(widget, "L2 error")[gene] == expected.table.loc[gene, "l2_error"]
        assert _numbers(widget, "mean measured")[gene] == expected.table.loc[gene, "mean_measured"]
    rs = expected.table["pearson_r"].to_numpy()
    assert f"mean r {rs.mean():.3f} ± {rs.std():.3f} over 2 genes compared" in widget.summary_label.text()
    assert "1 genes only predicted" in widget.one_side_label.text()
    assert ABSENT in widget.one_side_label.toolTip()

    # the compare view opens on the best gene: three tiles side by side in napari's grid, the slide hidden
    tiles = _compare_points(viewer)
    assert set(tiles) == set(ROLES) and widget.view.gene == GOOD
    assert viewer.canvas.grid.enabled and tuple(viewer.canvas.grid.shape) == (1, 3)
    assert not image.visible and not spots.visible
    assert [viewer.canvas.grid.position(viewer.layers.index(tiles[role]), viewer.layers) for role in ROLES] == \
        [(0, 0), (0, 1), (0, 2)]
    assert all(tiles[role].face_colorbar.visible for role in ROLES)
    # the tiles are not slide layers: the colour widget keeps colouring the slide's spots
    assert color.layer is spots

    # best r first; a click on the header sorts the other way; a click on a row shows that gene
    assert list(_numbers(widget, "Pearson r")) == [GOOD, RANDOM]
    qtbot.mouseClick(widget.table.horizontalHeader().viewport(), Qt.MouseButton.LeftButton,
                     pos=_header_centre(widget, "Pearson r"))
    assert list(_numbers(widget, "Pearson r")) == [RANDOM, GOOD]
    _click_row_of(qtbot, widget, RANDOM)
    assert widget.view.gene == RANDOM and tiles["measured"].name.startswith(RANDOM)
    shown = col.ComparisonColors.of(RANDOM, np.log1p(slide.gene_values(RANDOM)),
                                    load_predictions(slide, prediction).gene_values(RANDOM))
    for role, rgba in zip(ROLES, shown.colors(), strict=True):
        np.testing.assert_allclose(tiles[role].face_color, rgba, atol=1e-6)
    assert tiles["predicted"].face_contrast_limits == tiles["measured"].face_contrast_limits  # one range
    lo, hi = tiles["residual"].face_contrast_limits
    assert lo == -hi and tiles["residual"].face_colormap.name == col.RESIDUAL_COLORMAP

    # closing the view gives the slide back as it was
    qtbot.mouseClick(widget.close_button, Qt.MouseButton.LeftButton)
    assert not _compare_points(viewer) and len(viewer.layers) == 2
    assert image.visible and spots.visible and not viewer.canvas.grid.enabled


def _header_centre(widget, title):
    from qtpy.QtCore import QPoint

    header = widget.table.horizontalHeader()
    c = _column(widget, title)
    return QPoint(header.sectionViewportPosition(c) + header.sectionSize(c) // 2, header.height() // 2)


def _tile_position(viewer, layer, index):
    """Canvas (x, y) of spot `index` of a points layer, through its tile's own transform."""
    visual = viewer.window._qt_viewer.canvas.layer_to_visual[layer]
    y, x = layer.data[index]
    return np.asarray(visual.node.get_transform("visual", "canvas").map([x, y, 0, 1])[:2])


def _tile_pixel(viewer, shot, layer, index):
    """Screenshot pixel under spot `index` of a points layer."""
    x, y = _tile_position(viewer, layer, index) * shot.shape[1] / viewer.window._qt_viewer.canvas._scene_canvas.size[0]
    return shot[int(y), int(x), :3].astype(int)


def test_compare_tiles_show_one_range_and_a_centred_residual_on_screen(
        make_napari_viewer, qtbot, slide, tmp_path, monkeypatch, stpath_outputs):
    measured = np.log1p(slide.gene_values(GOOD))
    hot = int(np.nanargmax(measured))
    zero = int(np.flatnonzero(measured == 0)[0])
    prediction, _ = stpath_outputs(slide, tmp_path)
    adata = ad.read_h5ad(prediction)
    column = adata.X[:, 0].copy()
    column[hot] = measured[hot]  # predicted exactly at both spots: same colour, white residual
    column[zero] = 0.0
    adata.X[:, 0] = column
    adata.write_h5ad(prediction)

    viewer = make_napari_viewer(show=True)
    add_slide_to_viewer(viewer, slide)
    widget = _dock(viewer)
    _load_with_button(qtbot, widget, monkeypatch, prediction)
    assert widget.view.gene == GOOD
    tiles = _compare_points(viewer)
    for layer in tiles.values():
        layer.opacity, layer.border_width = 1.0, 0  # the spot colour alone under the sampled pixel
    colors = dict(zip(ROLES, widget.view.colors.colors(), strict=True))
    white = np.round(np.asarray(col.colormap_ramp(col.RESIDUAL_COLORMAP, 3)[1][:3]) * 255)
    assert white.min() > 230
    seen = {}
    for spot in (hot, zero):
        # one camera for the three tiles: centred on the spot, each tile shows it at its centre
        camera(viewer).center = tuple(slide.positions[spot])
        camera(viewer).zoom = 2.0  # the spot ~44 px across
        shot = viewer.screenshot(canvas_only=True, flash=False)
        m, p, r = seen[spot] = [_tile_pixel(viewer, shot, tiles[role], spot) for role in ROLES]
        assert np.abs(m - p).max() <= 3  # equal values, one range: the same colour
        assert np.abs(m - np.round(colors["measured"][spot, :3] * 255)).max() <= 12
        assert np.abs(r - white).max() <= 12  # residual 0: the diverging map's mid colour
    assert np.abs(seen[hot][0] - seen[zero][0]).max() > 60  # top and bottom of the shared range differ
    # pan and zoom together: one camera change moves the spot by the same amount in every tile
    before = [_tile_position(viewer, tiles[role], zero) for role in ROLES]
    camera(viewer).center = tuple(slide.positions[zero] + 5)
    camera(viewer).zoom = 3.0
    shot = viewer.screenshot(canvas_only=True, flash=False)
    moves = [_tile_position(viewer, tiles[role], zero) - b for role, b in zip(ROLES, before, strict=True)]
    assert np.abs(moves[0]).min() > 10 and np.allclose(moves, moves[0], atol=0.5)
    for role, colour in zip(ROLES, seen[zero], strict=True):
        assert np.abs(_tile_pixel(viewer, shot, tiles[role], zero) - colour).max() <= 12


def test_shuffled_rows_without_barcodes_are_refused_with_a_notification_then_placed_with_them(
        make_napari_viewer, qtbot, slide, tmp_path, monkeypatch, stpath_outputs):
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    _, spots = add_slide_to_viewer(viewer, slide)
    widget = _dock(viewer)
    shuffled, embeddings = stpath_outputs(slide, tmp_path, order=np.random.default_rng(7).permutation(slide.n_spots))
    before = len(notification_manager.records)
    _load_with_button(qtbot, widget, monkeypatch, shuffled)
    messages = [str(r.message) for r in notification_manager.records[before:]]
    assert any(str(shuffled) in m and "do not sit where obsm['coordinates'] says" in m and "embeddings .h5" in m
               for m in messages), messages
    assert not any("Traceback" in m for m in messages)
    assert not _compare_points(viewer) and models_of(spots) == [] and widget.sorted_model.rowCount() == 0
    assert len(viewer.layers) == 2

    qtbot.keyClicks(widget.barcodes_edit, str(embeddings))  # typed, as a user pastes a path
    _load_with_button(qtbot, widget, monkeypatch, shuffled)
    assert [m.predictions.matched_by for m in models_of(spots)] == ["by the embeddings file's barcodes"]
    reference = compare(slide, load_predictions(slide, shuffled, barcodes=embeddings)).table
    assert _numbers(widget, "Pearson r") == reference["pearson_r"].to_dict()


def test_a_second_model_gets_its_own_columns_and_can_be_shown(
        make_napari_viewer, qtbot, slide, tmp_path, monkeypatch, stpath_outputs):
    viewer = make_napari_viewer()
    add_slide_to_viewer(viewer, slide)
    widget = _dock(viewer)
    first, _ = stpath_outputs(slide, tmp_path, seed=1, tag="modelA")
    second, _ = stpath_outputs(slide, tmp_path, seed=2, tag="modelB")
    _load_with_button(qtbot, widget, monkeypatch, first)
    _load_with_button(qtbot, widget, monkeypatch, second)
    for model, path in (("modelA", first), ("modelB", second)):
        expected = compare(slide, load_predictions(slide, path)).table["pearson_r"].to_dict()
        assert _numbers(widget, f"Pearson r [{model}]") == expected
        assert _column(widget, f"R² [{model}]") and _column(widget, f"L2 error [{model}]")
    assert [widget.model_combo.itemText(k) for k in range(widget.model_combo.count())] == ["modelA", "modelB"]
    tiles = _compare_points(viewer)
    assert tiles["predicted"].name.endswith("modelB")  # the one loaded last
    b_colors = tiles["predicted"].face_color.copy()
    widget.model_combo.setCurrentText("modelA")
    assert tiles["predicted"].name.endswith("modelA")
    assert not np.allclose(tiles["predicted"].face_color, b_colors)
    assert "modelA: mean r" in widget.summary_label.text() and "modelB: mean r" in widget.summary_label.text()


def test_dropping_a_prediction_file_on_a_viewer_holding_the_slide_opens_the_compare_view(
        make_napari_viewer, qtbot, slide, tmp_path, stpath_outputs):
    from napari_stimage._reader import get_reader

    prediction, _ = stpath_outputs(slide, tmp_path)
    viewer = make_napari_viewer()
    refuse = get_reader(str(prediction))  # no slide open: a clear refusal, not the AnnData reader's
    with pytest.raises(SlideError, match="open its slide first"):
        refuse(str(prediction))
    _, spots = add_slide_to_viewer(viewer, slide)
    assert viewer.open(str(prediction), plugin="napari-stimage") == []
    widget = _dock(viewer)  # docked by the drop: the same widget comes back
    qtbot.waitUntil(lambda: widget.worker is None and bool(models_of(spots)), timeout=30000)
    assert set(_compare_points(viewer)) == set(ROLES) and widget.view.gene == GOOD
    assert _numbers(widget, "Pearson r") == compare(slide, load_predictions(slide, prediction)).table["pearson_r"].to_dict()


def test_the_reader_leaves_other_h5ad_files_alone(make_napari_viewer, slide, tmp_path, stpath_outputs):
    from napari_stimage._predictions_reader import get_prediction_reader, is_prediction_file

    prediction, embeddings = stpath_outputs(slide, tmp_path)
    slide_like = tmp_path / "slide.h5ad"
    adata = ad.read_h5ad(prediction)
    adata.obsm["spatial"] = adata.obsm["coordinates"]  # an AnnData slide: another reader's
    adata.write_h5ad(slide_like)
    garbage = tmp_path / "garbage.h5ad"
    garbage.write_bytes(b"not hdf5")
    assert is_prediction_file(prediction) and is_prediction_file(str(prediction))
    for other in (slide_like, garbage, embeddings, tmp_path / "missing.h5ad", tmp_path):
        assert not is_prediction_file(other)
    viewer = make_napari_viewer()
    add_slide_to_viewer(viewer, slide)
    assert get_prediction_reader(str(prediction)) is not None
    assert get_prediction_reader([str(prediction), str(prediction)]) is None
    assert get_prediction_reader(str(slide_like)) is None


def test_python_api_attaches_predictions_and_a_docked_widget_shows_them(
        make_napari_viewer, qtbot, slide, tmp_path, stpath_outputs):
    viewer = make_napari_viewer()
    _, spots = add_slide_to_viewer(viewer, slide)
    widget = _dock(viewer)
    prediction, embeddings = stpath_outputs(slide, tmp_path, order=np.arange(slide.n_spots)[::-1])
    with pytest.raises(SlideError, match="--barcodes"):
        add_predictions(viewer.layers[-1], prediction)
    result = add_predictions(viewer.layers[-1], prediction, barcodes=embeddings)
    assert result.table["pearson_r"].to_dict() == compare(
        slide, load_predictions(slide, prediction, barcodes=embeddings)).table["pearson_r"].to_dict()
    assert [m.comparison for m in models_of(spots)] == [result]
    assert _numbers(widget, "Pearson r") == result.table["pearson_r"].to_dict()
    assert widget.view.gene == GOOD


def test_color_spots_compare_button_docks_the_comparison_and_loads_the_chosen_file(
        make_napari_viewer, qtbot, slide_paths, slide, tmp_path, stpath_outputs, monkeypatch):
    from napari_stimage._qt import predictions_widget as pw

    prediction, _ = stpath_outputs(slide, tmp_path)
    viewer = make_napari_viewer()
    viewer.open(str(slide_paths.coord), plugin="napari-stimage")
    spots = viewer.layers[f"{slide.name} spots"]
    _, color = viewer.window.add_plugin_dock_widget("napari-stimage", "Color spots")
    monkeypatch.setattr(pw.QFileDialog, "getOpenFileName", lambda *a, **k: (str(prediction), "AnnData (*.h5ad)"))
    button = next(b for b in color.findChildren(pw.QPushButton) if b.text() == "Compare with predictions…")
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    widget = _dock(viewer)  # the button docked it: the same widget comes back
    qtbot.waitUntil(lambda: widget.worker is None and bool(models_of(spots)), timeout=30000)
    assert set(_compare_points(viewer)) == set(ROLES)
