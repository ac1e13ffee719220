"""VisiumHD bins without the widgets: gene values on the raster, label colours with hidden labels,
hover text, selection on bin centres, on square and tilted lattices with bins missing from counts."""

import numpy as np
import pytest

from napari_stimage import coloring as col
from napari_stimage.core.selection import SpotIndex, points_in_polygon, points_in_rectangle
from napari_stimage.curation.bins import bin_grid, label_dtype


@pytest.fixture(params=[0.0, 4.0], ids=["square", "tilted-4deg"])
def hd_slide(request, tmp_path, monkeypatch):
    """A VisiumHD-shaped slide, square or tilted by 4 degrees, 6 bins missing from the count file."""
    from napari_stimage import load_slide
    from napari_stimage.curation import bins
    from napari_stimage.synthetic import write_synthetic_slide

    monkeypatch.setattr(bins, "DENSE_GRID_MIN_SPOTS", 1000)
    paths = write_synthetic_slide(tmp_path / "STimage-1K4M", name="Mouse_Brain_Synthetic_VisiumHD", tech="VisiumHD",
                                  pitch=16.0, n_genes=20, layout="square", angle=request.param, missing_counts=6)
    return load_slide(paths.coord), request.param


def test_grid_found_on_square_and_tilted_lattices(hd_slide):
    slide, angle = hd_slide
    grid = bin_grid(slide)
    assert grid is not None
    assert np.rad2deg(grid.angle) == pytest.approx(angle, abs=0.05)
    assert grid.pitch == pytest.approx(16.0, rel=1e-3)
    assert ("affine" in grid.layer_kwargs()) == (angle != 0.0)
    # every bin centre maps back to its own bin; far off the grid there is none
    np.testing.assert_array_equal(grid.spots_at_world(slide.positions), np.arange(slide.n_spots))
    assert grid.spots_at_world([[-500.0, -500.0]]).tolist() == [-1]


def test_gene_on_bins_keeps_missing_and_silent_bins_apart(hd_slide):
    slide, _ = hd_slide
    grid = bin_grid(slide)
    missing = np.flatnonzero(slide.expression_rows < 0)
    assert missing.size == 6
    coloring = col.GeneColoring(("ERBB2",), "log1p", "magma")
    values = col.GeneValues.of(coloring.values(slide))
    silent = np.flatnonzero(values.values == 0)
    expressing = np.flatnonzero(values.expressing)
    assert silent.size and expressing.size
    for mode in col.NON_EXPRESSING_MODES:
        shown = col.image_coloring(values, col.GeneColoring(("ERBB2",), "log1p", "magma", non_expressing=mode))
        raster = grid.raster(shown.values)
        assert raster.dtype == np.float32 and raster.shape == grid.shape
        at = grid.values_at_spots(raster)
        assert np.isnan(at[missing]).all()  # no counts: transparent in every mode
        np.testing.assert_allclose(at[expressing], np.maximum(values.values[expressing], shown.contrast_limits[0]
                                   + (np.ptp(shown.contrast_limits) / 255 if mode == "grey" else 0)), rtol=1e-6)
        assert shown.contrast_limits == values.autoscale
        if mode == "transparent":
            assert np.isnan(at[silent]).all()
        elif mode == "colormap":
            assert (at[silent] == 0).all()
        else:  # grey: below every expressing bin, on the colormap's grey first step
            cmap = shown.colormap
            lo, hi = shown.contrast_limits
            grey = cmap.map(np.array([(at[silent[0]] - lo) / (hi - lo)]))[0]
            np.testing.assert_allclose(grey, col.NON_EXPRESSING_GREY)
            top = cmap.map(np.array([(at[expressing].min() - lo) / (hi - lo)]))[0]
            assert not np.allclose(top, col.NON_EXPRESSING_GREY)


def test_gene_values_cache_is_bounded_by_bytes():
    entry = lambda seed: col.GeneValues.of(np.random.default_rng(seed).random(100_000))  # noqa: E731
    one = entry(0).nbytes
    cache = col.GeneValuesCache(max_bytes=3 * one)
    computed = []
    for k in range(10):
        cache.get(k, lambda k=k: computed.append(k) or entry(k))
    assert len(cache) == 3 and cache.nbytes <= 3 * one
    assert 9 in cache and 6 not in cache
    cache.get(7, lambda: computed.append("again") or entry(7))  # a hit moves 7 to the newest
    cache.get(10, lambda: entry(10))
    assert 7 in cache and 8 not in cache and "again" not in computed
    huge = col.GeneValuesCache(max_bytes=1)
    assert huge.get("a", lambda: entry(1)) is huge.get("a", lambda: entry(2))  # the newest is always kept


def test_label_raster_dtype_is_the_smallest():
    assert label_dtype(5) is np.uint8 and label_dtype(300) is np.uint16 and label_dtype(70_000) is np.uint32


def test_bin_labels_colours_honour_hidden_labels(hd_slide):
    from napari_stimage.curation.editor import LabelEditor
    from napari_stimage.viewer.bins import LabelsLayerSync

    slide, _ = hd_slide
    grid = bin_grid(slide)
    editor = LabelEditor.from_slide(slide)
    sync = LabelsLayerSync(grid, editor, grid.label_raster(slide.labels)[1])
    assert sync.raster.dtype == np.uint8
    shown = sync.color_dict()
    code = sync.categories.index("invasive cancer") + 1
    assert shown[code] == col.LabelPalette().colors(["invasive cancer"])["invasive cancer"]
    editor.set_hidden_labels(["invasive cancer"])
    hidden = sync.color_dict()
    assert hidden[code] == "transparent"
    assert {k: v for k, v in hidden.items() if k != code} == {k: v for k, v in shown.items() if k != code}
    # hidden bins are protected when a selection is assigned, as hidden spots are
    cancer = np.flatnonzero(editor.labels == "invasive cancer")
    other = np.flatnonzero(editor.labels == "connective tissue")
    kept, left_out = editor.split_hidden(np.r_[cancer[:5], other[:5]])
    assert left_out == 5 and kept.tolist() == sorted(other[:5].tolist())


def test_selection_tools_work_on_bin_centres(hd_slide):
    slide, _ = hd_slide
    pos = slide.positions
    grid = bin_grid(slide)
    centre = pos[np.argmin(np.hypot(*(pos - 500).T))]
    # a rectangle of 3 x 3 bins around a centre bin (on the tilted grid, in image axes)
    box = points_in_rectangle(pos, centre - 20, centre + 20)
    assert 5 <= box.size <= 13 and np.abs(pos[box] - centre).max() <= 20
    square = np.array([centre + d for d in ([-40, -40], [-40, 40], [40, 40], [40, -40])])
    lasso = points_in_polygon(pos, square)
    np.testing.assert_array_equal(lasso, np.flatnonzero(np.all(np.abs(pos - centre) < 40, axis=1)))
    brush = SpotIndex(pos).near_path([centre, centre + [0, 64]], radius=8.5)
    assert 4 <= brush.size <= 12
    # the bins selected are the bins drawn: pixels of the raster under them hold their own index
    assert set(grid.spot_index_raster()[grid.row[brush], grid.col[brush]].tolist()) == set(brush.tolist())


@pytest.mark.timeout(90)
def test_gene_layer_on_bins_in_napari_updates_in_place_and_hovers(hd_paths, make_napari_viewer):
    from napari_stimage.viewer.bins import bin_grid_of, show_gene_on_bins, watch_viewer
    from napari_stimage.viewer.metadata import slide_of

    real_viewer = make_napari_viewer()
    real_viewer.open(hd_paths.coord, plugin="napari-stimage")
    # the viewer a docked widget gets: napari's proxy, whose layers and metadata come back wrapped
    _, widget = real_viewer.window.add_plugin_dock_widget("napari-stimage", "Curate labels")
    viewer = widget.viewer
    labels_layer = next(layer for layer in viewer.layers if layer.name.endswith(" bin labels"))
    slide, grid = slide_of(labels_layer), bin_grid_of(labels_layer)
    watch_viewer(viewer)
    first = col.GeneColoring(("ERBB2",))
    layer = show_gene_on_bins(viewer, slide, grid, col.GeneValues.of(first.values(slide)), first)
    n_layers = len(viewer.layers)
    second = col.GeneColoring(("PTPRC",), colormap="magma", non_expressing="colormap")
    values = col.GeneValues.of(second.values(slide))
    again = show_gene_on_bins(viewer, slide, grid, values, second)
    assert again == layer and len(viewer.layers) == n_layers and layer.name == f"{slide.name} gene"
    assert layer.colormap.name == "magma" and tuple(layer.contrast_limits) == pytest.approx(values.autoscale)
    np.testing.assert_allclose(grid.values_at_spots(layer.data), values.values.astype(np.float32))
    spot = int(np.flatnonzero(values.expressing)[0])
    viewer.layers.selection.active = layer
    viewer.cursor.position = tuple(slide.positions[spot])
    label = slide.labels[spot]
    assert viewer.status == (f"{layer.name}: bin {slide.spots['spot_id'].iat[spot]} · "
                             f"{label if isinstance(label, str) else 'unlabelled'} · {second.title}: {values.values[spot]:.4g}")
    missing = int(np.flatnonzero(slide.expression_rows < 0)[0])
    viewer.cursor.position = tuple(slide.positions[missing])
    assert viewer.status.endswith(f"{second.title}: no counts")


def _pixel(image, slide, spot, scale):
    y, x = ((slide.positions[spot] + 0.5) * scale).astype(int)
    return image[y, x]


@pytest.mark.parametrize("mode", ["gene", "label"])
def test_render_draws_bins_as_squares(hd_slide, mode):
    from napari_stimage.render import render_scale, render_slide

    slide, _ = hd_slide
    width = 1000
    scale = render_scale(slide, width)
    if mode == "gene":
        coloring = col.GeneColoring(("ERBB2",), non_expressing="grey")
        values = coloring.values(slide)
        rgba = col.gene_colors(values, coloring.with_limits(values))
        image = render_slide(slide, "ERBB2", non_expressing="grey", opacity=1.0, width=width, panel=False)
        background = None
    else:
        palette = col.LabelPalette(user_colors=False)
        rgba = col.label_colors(slide.labels, palette)
        image = render_slide(slide, label=True, opacity=1.0, width=width, panel=False, palette=palette,
                             hidden_labels=["invasive cancer"])
        everything = [*col.label_categories(col.display_labels(slide.labels))]
        background = render_slide(slide, label=True, opacity=1.0, width=width, panel=False, hidden_labels=everything)
    assert image.shape[:2] == (round(1000 * scale), width)
    opaque = np.flatnonzero(rgba[:, 3] == 1.0)
    rng = np.random.default_rng(0)
    for spot in rng.choice(opaque, 40, replace=False):
        if mode == "label" and (slide.labels[spot] == "invasive cancer" or col.is_unlabelled(slide.labels[spot])):
            continue  # hidden, or unlabelled: not painted (checked below)
        # the whole square bin is its colour: its centre, and near its corner (outside a disc of radius r)
        for offset in ([0, 0], [6.5, -6.5]):
            y, x = ((slide.positions[spot] + offset + 0.5) * scale).astype(int)
            np.testing.assert_allclose(image[y, x], np.round(rgba[spot, :3] * 255), atol=1)
    if mode == "label":
        cancer = np.flatnonzero(slide.labels == "invasive cancer")
        unlabelled = np.flatnonzero([col.is_unlabelled(v) for v in slide.labels])
        assert cancer.size and unlabelled.size
        # hidden, and unlabelled (not painted, as on screen): the image shows through, exactly as with every label hidden
        for spot in [*cancer[:20], *unlabelled[:20]]:
            np.testing.assert_array_equal(_pixel(image, slide, spot, scale), _pixel(background, slide, spot, scale))
        for spot in cancer[:20]:
            assert not np.allclose(_pixel(image, slide, spot, scale), np.round(rgba[spot, :3] * 255), atol=10)


def test_cached_gene_columns_are_read_from_the_file_exactly(hd_paths):
    from napari_stimage.core.expression import _read_run
    from napari_stimage.io.count_csv import read_count_csv
    from napari_stimage.io.stimage.reader import load_expression

    cached = load_expression(hd_paths.count)
    assert isinstance(cached.matrix.data, np.memmap)
    in_memory = read_count_csv(hd_paths.count)
    for gene in ("ERBB2", "GAPDH", "MALAT1-2"):
        np.testing.assert_array_equal(cached.gene_values(gene), in_memory.gene_values(gene))
    data = cached.matrix.data
    np.testing.assert_array_equal(_read_run(data, 10, 50), np.asarray(data)[10:50])
    np.testing.assert_array_equal(_read_run(data[5:], 10, 50), np.asarray(data)[15:55])  # a slice of the map
