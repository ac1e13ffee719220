"""Dense bin grids: lattice detection, bin <-> pixel mapping, rasters, label painting to bins."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_stimage.curation import bins as grid_model
from napari_stimage.curation.bins import LabelRasterSync, detect_grid
from napari_stimage.viewer import bins
from napari_stimage.viewer.bins import LabelsLayerSync


def lattice(n_rows=40, n_cols=55, pitch=29.3, angle=0.0, origin=(812.5, 433.0), keep=0.9, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    i, j = np.mgrid[0:n_rows, 0:n_cols]
    mask = rng.random(i.shape) < keep
    ij = np.c_[i[mask], j[mask]].astype(float)
    c, s = np.cos(angle), np.sin(angle)
    pos = (pitch * ij) @ np.array([[c, -s], [s, c]]).T + origin + rng.normal(0, noise, ij.shape)
    order = rng.permutation(len(pos))  # spots are in no spatial order in the files
    return pos[order], ij[order].astype(int)


@pytest.mark.parametrize("angle", [0.0, 0.015, -0.03])
def test_detects_square_lattice_and_maps_back(angle):
    pos, ij = lattice(angle=angle)
    grid = detect_grid(pos)
    assert grid is not None
    assert grid.pitch == pytest.approx(29.3, rel=1e-3)
    assert grid.angle == pytest.approx(angle, abs=2e-3)
    # Same lattice up to the offset of the first occupied node.
    np.testing.assert_array_equal(grid.row - grid.row.min(), ij[:, 0] - ij[:, 0].min())
    np.testing.assert_array_equal(grid.col - grid.col.min(), ij[:, 1] - ij[:, 1].min())
    world = (np.c_[grid.row, grid.col, np.ones(len(pos))] @ grid.affine().T)[:, :2]
    assert np.abs(world - pos).max() < 2.0
    kwargs = grid.layer_kwargs()
    if angle == 0.0:
        assert set(kwargs) == {"scale", "translate"}
        np.testing.assert_allclose(np.asarray(kwargs["translate"]) + np.asarray(kwargs["scale"]) * [grid.row[0], grid.col[0]],
                                   pos[0], atol=2.0)
    else:
        assert "affine" in kwargs


def test_hexagonal_and_scattered_layouts_are_not_grids():
    i, j = np.mgrid[0:30, 0:40]
    hexagonal = np.c_[i.ravel() * np.sqrt(3) / 2 * 100, j.ravel() * 100 + (i.ravel() % 2) * 50]
    assert detect_grid(hexagonal) is None
    assert detect_grid(np.random.default_rng(0).random((2000, 2)) * 1000) is None
    pos, _ = lattice()
    assert detect_grid(np.r_[pos, pos[:5]]) is None  # two spots on one node


def test_rasters_and_pixel_to_bin():
    pos, _ = lattice(n_rows=6, n_cols=7, keep=0.8, noise=0)
    grid = detect_grid(pos)
    values = np.arange(len(pos), dtype=float)
    raster = grid.raster(values)
    assert raster.shape == grid.shape
    assert raster[grid.row, grid.col].tolist() == values.tolist()
    assert np.isnan(raster).sum() == grid.shape[0] * grid.shape[1] - len(pos)
    index = grid.spot_index_raster()
    assert index[grid.row[3], grid.col[3]] == 3
    assert grid.spots_at_pixels([grid.row[5], -1], [grid.col[5], 0]).tolist() == [5, -1]
    np.testing.assert_array_equal(grid.values_at_spots(raster), values)
    labels = np.array(["b", None, "a", np.nan] + ["a"] * (len(pos) - 4), dtype=object)
    label_raster, categories = grid.label_raster(labels)
    assert categories == ["a", "b"]
    assert grid.values_at_spots(label_raster)[:4].tolist() == [2, 0, 1, 0]


class FakeEditor:
    """The part of editing.LabelEditor that LabelRasterSync uses."""

    def __init__(self, n):
        self.labels = np.array([None] * n, dtype=object)
        self.views = []

    def add_view(self, view):
        self.views.append(view)

    def labels_at(self, idx):
        return self.labels[idx]

    def assign(self, idx, label, description=None):
        idx = np.asarray(idx)
        self.labels[idx] = label
        for v in self.views:
            v(idx)
        return len(idx)


@pytest.mark.parametrize("use_real_editor", [False, True])
def test_painting_bins_assigns_labels(use_real_editor):
    pos, _ = lattice(n_rows=10, n_cols=12, noise=0)
    grid = detect_grid(pos)
    if use_real_editor:
        from napari_stimage.curation.editor import LabelEditor

        editor = LabelEditor([f"s{i}" for i in range(len(pos))], autosave=False)
    else:
        editor = FakeEditor(len(pos))
    sync = LabelRasterSync(grid, editor, ["tumour"])
    painted = sync.raster.copy()
    painted[grid.row[:4], grid.col[:4]] = 1  # paint 4 bins with "tumour"
    painted[grid.row[4], grid.col[4]] = 3  # a code with no category yet: new label
    painted[0, :] = np.where(grid.spot_index_raster()[0] < 0, 2, painted[0, :])  # empty pixels: ignored
    changed = sync.on_painted(painted)
    assert changed >= 5
    assert list(editor.labels[:4]) == ["tumour"] * 4
    assert editor.labels[4] == sync.categories[2]
    # Editor-side change (e.g. undo, the curation widget) flows back into the raster.
    editor.assign([0], None)
    sync.on_editor_change(np.array([0]))
    assert sync.raster[grid.row[0], grid.col[0]] == 0


def test_dense_slide_gets_raster_layers(tmp_path, monkeypatch):
    from napari_stimage import load_slide
    from napari_stimage.viewer.layers import slide_layer_data
    from napari_stimage.viewer.metadata import SLIDE_KEY

    pos, _ = lattice(n_rows=20, n_cols=25, noise=0, keep=1.0)
    root = tmp_path / "STimage-1K4M" / "VisiumHD"
    for d in ("coord", "gene_exp"):
        (root / d).mkdir(parents=True)
    name = "Mouse_Test_10X_VisiumHD"
    ids = [f"{name}_s_008um_{k:05d}-1" for k in range(len(pos))]
    with open(root / "coord" / f"{name}_coord.csv", "w") as fh:
        fh.write(",yaxis,xaxis,r\n")
        for sid, (y, x) in zip(ids, pos, strict=True):
            fh.write(f"{sid},{y},{x},14.65\n")
    rng = np.random.default_rng(0)
    with open(root / "gene_exp" / f"{name}_count.csv", "w") as fh:
        fh.write(",A,B,C\n")
        for sid in ids:
            fh.write(sid + "," + ",".join(f"{v}.0" for v in rng.integers(0, 3, 3)) + "\n")
    slide = load_slide(root / "coord" / f"{name}_coord.csv")
    assert [kind for *_, kind in slide_layer_data(slide)] == ["points"]  # below the threshold
    monkeypatch.setattr(grid_model, "DENSE_GRID_MIN_SPOTS", 100)
    slide.__dict__.pop("_stimage_bin_grid", None)
    layers = slide_layer_data(slide)
    assert [kind for *_, kind in layers] == ["image", "labels"]
    (counts, meta, _), (labels, lmeta, _) = layers
    assert counts.shape == (20, 25) and meta["metadata"][SLIDE_KEY] is slide
    assert lmeta["metadata"][SLIDE_KEY] is slide and labels.dtype == np.uint8
    grid = meta["metadata"][bins.GRID_KEY]
    np.testing.assert_allclose(grid.values_at_spots(counts), np.log1p(slide.total_counts), rtol=1e-6)


def test_napari_labels_layer_painting_reaches_the_editor(tmp_path, monkeypatch):
    from napari.layers import Labels

    from napari_stimage import load_slide
    from napari_stimage.viewer.bins import bind_bin_labels
    from napari_stimage.viewer.editors import editor_for_layer
    from napari_stimage.viewer.layers import slide_layer_data

    pos, _ = lattice(n_rows=12, n_cols=15, noise=0, keep=1.0)
    root = tmp_path / "STimage-1K4M" / "VisiumHD"
    (root / "coord").mkdir(parents=True)
    name = "Bins_Test_VisiumHD"
    with open(root / "coord" / f"{name}_coord.csv", "w") as fh:
        fh.write(",yaxis,xaxis,r\n")
        for k, (y, x) in enumerate(pos):
            fh.write(f"b{k},{y},{x},14.65\n")
    monkeypatch.setattr(grid_model, "DENSE_GRID_MIN_SPOTS", 100)
    slide = load_slide(root / "coord" / f"{name}_coord.csv")
    data, meta, kind = slide_layer_data(slide)[-1]
    assert kind == "labels"
    layer = Labels(data, **meta)
    sync = bind_bin_labels(layer)
    editor = editor_for_layer(layer)
    assert editor is sync.editor
    grid = meta["metadata"][bins.GRID_KEY]
    layer.paint((grid.row[7], grid.col[7]), 2, refresh=False)  # brush size 10 covers neighbours too
    labelled = np.flatnonzero(np.not_equal(editor.labels, None))
    assert 7 in labelled
    assert set(editor.labels[labelled]) == {sync.categories[1]}
    assert editor.undo()
    assert sync.raster[grid.row[7], grid.col[7]] == 0


# -- bins in a viewer: bound on insertion, painted, undone, saved -----------------------------





def _saved_changes(paths, slide):
    """Spot id -> label for every spot whose saved label differs from the original file's."""
    from napari_stimage.io.stimage.annotation import read_annotation

    before = {s: (None if v is None or (isinstance(v, float) and np.isnan(v)) else v)
              for s, v in zip(slide.spots["spot_id"], slide.labels, strict=True)}
    after = read_annotation(paths.annotation).first_labels()
    return {s: after.get(s) for s in before if after.get(s) != before[s]}


def test_bin_labels_added_to_a_viewer_are_bound_painted_undone_and_saved(make_napari_viewer, hd_paths):
    from napari_stimage import load_slide
    from napari_stimage.viewer.editors import editor_for_layer
    from napari_stimage.viewer.layers import add_slide_to_viewer

    slide = load_slide(hd_paths.coord)
    viewer = make_napari_viewer()
    add_slide_to_viewer(viewer, slide)
    layer = viewer.layers[f"{hd_paths.name} bin labels"]
    sync = bins.bin_labels_sync(layer)
    assert sync is not None and editor_for_layer(layer) is sync.editor  # bound as soon as it was added
    editor, grid = sync.editor, sync.grid
    ids = slide.spots["spot_id"].to_numpy()
    from napari.utils.colormaps import DirectLabelColormap

    assert isinstance(layer.colormap, DirectLabelColormap)  # palette colours from the start, before any edit

    # 1. fancy-index painting (what napari's fill and scripts use) with a brand-new label
    code = sync.code_of('TLS, "new"*')
    first = np.array([0, 10, 20, 30])
    layer.data_setitem((grid.row[first], grid.col[first]), code)
    # 2. a one-bin brush stroke that erases a labelled bin
    labelled = np.flatnonzero(np.not_equal(editor.labels, None))
    erased = int(np.setdiff1d(labelled, first)[5])
    layer.brush_size = 1
    layer.paint((grid.row[erased], grid.col[erased]), 0)
    # 3. a stroke that is undone with Ctrl+Z on the layer (the editor's undo, not napari's)
    undone = 40
    label_before = editor.labels[undone]
    layer.paint((grid.row[undone], grid.col[undone]), code)
    assert editor.labels[undone] == 'TLS, "new"*'
    viewer.layers.selection.active = layer
    handler = viewer.window._qt_viewer.canvas._key_map_handler
    handler.press_key("Control-Z")
    handler.release_key("Control-Z")
    assert editor.labels[undone] == label_before
    assert list(editor.labels[first]) == ['TLS, "new"*'] * 4 and editor.labels[erased] is None
    assert layer.data[grid.row[undone], grid.col[undone]] == sync.code_of(editor.labels[undone])
    assert editor.dirty

    # label colours on the raster are the shared palette's
    from napari.utils.colormaps.standardize_color import transform_color

    from napari_stimage.coloring import LabelPalette
    from napari_stimage.core.labels import label_categories

    palette = LabelPalette().colors(label_categories([*editor.categories(), *sync.categories]))
    for k, label in enumerate(sync.categories, start=1):
        np.testing.assert_allclose(layer.colormap.map(k), transform_color(palette[label])[0], atol=1e-6)
    assert layer.colormap.map(0)[3] == 0  # unlabelled bins are transparent

    editor.save()
    expected = {ids[i]: 'TLS, "new"*' for i in first} | {ids[erased]: None}
    assert _saved_changes(hd_paths, slide) == expected
    assert not editor.dirty


def test_brush_over_empty_pixels_leaves_them_empty():
    from napari.layers import Labels

    from napari_stimage.curation.editor import LabelEditor

    pos, _ = lattice(n_rows=12, n_cols=15, noise=0, keep=0.7, seed=3)
    grid = detect_grid(pos)
    editor = LabelEditor([f"s{i}" for i in range(len(pos))], autosave=False)
    sync = LabelsLayerSync(grid, editor)
    layer = Labels(sync.raster, **grid.layer_kwargs())
    sync.bind(layer)
    layer.brush_size = 7
    with layer.block_history():  # one stroke, as the mouse paints: napari emits `paint` after the pixels
        for j in range(2, 12):
            layer.paint((5, j), 3, refresh=False)
    index = grid.spot_index_raster()
    assert np.all(layer.data[index < 0] == 0)  # no colour where there is no bin
    painted = np.flatnonzero(np.not_equal(editor.labels, None))
    assert painted.size > 10 and set(editor.labels[painted]) == {sync.categories[2]}
    np.testing.assert_array_equal(grid.values_at_spots(layer.data), sync.codes)
    assert editor.undo() and not np.any(layer.data)


def test_a_refused_label_leaves_the_raster_as_the_editor_holds_it():
    from napari.layers import Labels

    from napari_stimage.curation.editor import LabelEditor

    pos, _ = lattice(n_rows=8, n_cols=9, noise=0, keep=1.0)
    grid = detect_grid(pos)
    editor = LabelEditor([f"s{i}" for i in range(len(pos))], autosave=False)
    sync = LabelsLayerSync(grid, editor, ["NA"])  # "NA" would read back as unlabelled: refused
    layer = Labels(sync.raster, **grid.layer_kwargs())
    sync.bind(layer)
    with pytest.raises(ValueError), layer.block_history():  # a stroke: pixels written, then `paint`
        layer.data_setitem((grid.row[:3], grid.col[:3]), 1)
    assert not np.any(layer.data) and not editor.dirty


def test_reader_makes_bins_editable_from_the_first_stroke(make_napari_viewer, hd_paths):
    viewer = make_napari_viewer()
    viewer.open(str(hd_paths.coord), plugin="napari-stimage")  # File > Open: no widget docked
    layer = viewer.layers[f"{hd_paths.name} bin labels"]
    sync = bins.bin_labels_sync(layer)
    assert sync is not None
    grid = layer.metadata[bins.GRID_KEY]
    layer.data_setitem((grid.row[[0, 1]], grid.col[[0, 1]]), 2)
    assert sync.editor.dirty and set(sync.editor.labels[[0, 1]]) == {sync.categories[1]}


def test_bins_painted_before_binding_are_adopted_not_lost(make_napari_viewer, hd_paths):
    from napari_stimage import load_slide
    from napari_stimage.viewer.layers import slide_layer_data

    viewer = make_napari_viewer()
    for data, meta, kind in slide_layer_data(load_slide(hd_paths.coord)):  # added by hand, unwatched
        getattr(viewer, f"add_{kind}")(data, **meta)
    layer = viewer.layers[f"{hd_paths.name} bin labels"]
    assert bins.bin_labels_sync(layer) is None  # nothing watched this viewer yet
    grid = layer.metadata[bins.GRID_KEY]
    slide = layer.metadata["stimage_slide"]
    spots = np.array([3, 4, 5, 100])
    layer.data_setitem((grid.row[spots], grid.col[spots]), 7)  # a code with no label yet
    bins.watch_viewer(viewer)
    sync = bins.bin_labels_sync(layer)
    assert sync is not None and sync.editor.dirty
    assert set(sync.editor.labels[spots]) == {sync.categories[6]}
    np.testing.assert_array_equal(grid.values_at_spots(layer.data), sync.codes)
    ids = slide.spots["spot_id"].to_numpy()
    sync.editor.save()
    assert _saved_changes(hd_paths, slide) == {ids[i]: sync.categories[6] for i in spots}
    # watching again changes nothing; a second slide added later is bound on insertion
    bins.watch_viewer(viewer)
    assert bins.bin_labels_sync(layer) is sync
    viewer.open(str(hd_paths.coord), plugin="napari-stimage")
    assert bins.bin_labels_sync(viewer.layers[-1]) is not None


def test_editor_for_layer_binds_a_bin_labels_layer_on_first_use(hd_paths):
    from napari.layers import Labels

    from napari_stimage import load_slide
    from napari_stimage.viewer.editors import editor_for_layer
    from napari_stimage.viewer.layers import slide_layer_data

    slide = load_slide(hd_paths.coord)
    data, meta, kind = slide_layer_data(slide)[-1]
    layer = Labels(data, **meta)
    editor = editor_for_layer(layer)
    sync = bins.bin_labels_sync(layer)
    assert sync is not None and sync.editor is editor and editor_for_layer(layer) is editor
    editor.assign([5, 6], "scripted")  # an edit from code shows on the raster
    assert set(layer.data[sync.grid.row[[5, 6]], sync.grid.col[[5, 6]]].tolist()) == {sync.code_of("scripted")}


def _centres_inside(poly, shape):
    """Brute force: every pixel centre of the raster tested against the polygon (even-odd)."""
    from skimage.measure import points_in_poly

    rr, cc = np.mgrid[0:shape[0], 0:shape[1]]
    centres = np.column_stack([rr.ravel(), cc.ravel()]).astype(float)
    inside = points_in_poly(centres, poly)
    return set(map(tuple, centres[inside].astype(int).tolist()))


@given(st.integers(0, 2**32 - 1), st.integers(3, 25))
@settings(max_examples=60, deadline=None)
def test_scanline_fill_finds_the_pixel_centres_inside_any_polygon(seed, n_vertices):
    """Self-crossing, partly outside the raster, vertices anywhere (never exactly on a centre row)."""
    from napari_stimage.curation.bins import pixels_in_polygon

    rng = np.random.default_rng(seed)
    shape = (40, 33)
    poly = rng.uniform(-10, 50, size=(n_vertices, 2)) + 1e-7
    rows, cols = pixels_in_polygon(poly, shape)
    assert set(zip(rows.tolist(), cols.tolist(), strict=True)) == _centres_inside(poly, shape)
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == len(rows)  # each pixel once


def test_grid_picks_bins_by_polygon_brush_and_point_on_a_tilted_lattice():
    pos, _ = lattice(n_rows=30, n_cols=40, noise=0, angle=np.deg2rad(7))
    grid = detect_grid(pos)
    assert grid is not None and abs(grid.angle) > 0.05
    square = np.array([[4.5, 5.5], [4.5, 12.5], [9.5, 12.5], [9.5, 5.5]])  # raster (row, col) corners
    picked = grid.spots_in_polygon(square)
    expected = np.flatnonzero((grid.row >= 5) & (grid.row <= 9) & (grid.col >= 6) & (grid.col <= 12))
    assert picked.tolist() == expected.tolist()
    brushed = grid.spots_near_path([[15, 10], [15, 20]], 1.0)
    assert set(brushed.tolist()) == set(np.flatnonzero((abs(grid.row - 15) <= 1) & (grid.col >= 10) & (grid.col <= 20)).tolist()) | set(
        np.flatnonzero((grid.row == 15) & ((grid.col == 9) | (grid.col == 21))).tolist())
    k = 123
    assert grid.spot_at((grid.row[k] + 0.3, grid.col[k] - 0.4)) == k
    assert grid.spot_at((-3, 2)) == -1


def test_selection_replaces_adds_removes_and_tells_its_listeners():
    from napari_stimage.core.selection import Selection

    selection, told = Selection(), []
    selection.connect(lambda: told.append(selection.indices.tolist()))
    selection.set([5, 3, 3, 9])
    selection.set([1], "add")
    selection.set([3, 7], "remove")
    selection.set([1, 5, 9])  # unchanged: nobody is told
    assert told == [[3, 5, 9], [1, 3, 5, 9], [1, 5, 9]]
    with pytest.raises(ValueError, match="unknown selection mode"):
        selection.set([1], "toggle")
