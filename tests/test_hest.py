"""HEST-1k samples: generated trees carrying the traps of formats.md section 2 (no download)."""

import json
import pickle

import h5py
import numpy as np
import pytest
import tifffile

from napari_stimage import load_slide
from napari_stimage.io.hest.layout import HestSample
from napari_stimage.io.registry import resolve
from napari_stimage.synthetic_hest import CELL_CLASSES, TISSUE_RGB, write_hest_sample


@pytest.fixture
def visium(tmp_path):
    return write_hest_sample(tmp_path / "hest", "TENX95", technology="Visium", with_contours=True, with_cells=300)


@pytest.fixture
def st_only(tmp_path):
    """A Xenium sample downloaded without wsis/ (and without tissue_seg/), dense X."""
    return write_hest_sample(tmp_path / "hest", "NCBI783", technology="Xenium", with_wsi=False, dense=True,
                             size=(3000, 2000), pixel_size_um=0.25)


def test_every_member_file_and_the_tree_root_open_the_whole_sample(visium):
    opened = [load_slide(p) for p in (visium.st, visium.wsi, visium.metadata, visium.root)]
    for slide in opened:
        assert slide.source.sample == visium
        assert slide.n_spots == opened[0].n_spots > 20
        assert slide.source.location == visium.st
    assert resolve(visium.st)[0].name == "hest"  # claimed before any generic AnnData reader


def test_resolve_claims_only_hest_trees_and_never_raises(tmp_path, visium):
    lone = tmp_path / "elsewhere" / "st"
    lone.mkdir(parents=True)
    (lone / "TENX95.h5ad").write_bytes(visium.st.read_bytes())  # an h5ad without metadata/ or wsis/
    from napari_stimage.io.hest import _resolve

    assert _resolve(lone / "TENX95.h5ad") is None
    assert _resolve(visium.root / "st" / "OTHER.h5ad") is None
    for odd in (None, 3, "", "\0bad", tmp_path / "missing" / "metadata" / "x.json"):
        assert _resolve(odd) is None


def test_metadata_with_bare_nan_and_summary_on_the_source(visium):
    text = visium.metadata.read_text()
    assert "NaN" in text
    with pytest.raises(ValueError):
        json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))  # strict parsers fail
    slide = load_slide(visium.metadata)
    assert slide.source.metadata["pixel_size_um_embedded"] is None
    assert slide.source.summary == "Visium, Breast, Homo sapiens, IDC, 0.5 µm/px"
    assert slide.source.sample_metadata == {"technology": "Visium", "organ": "Breast", "species": "Homo sapiens",
                                            "oncotree": "IDC", "pixel_size_um": 0.5}


def test_pixel_size_comes_from_the_estimate_not_the_wrong_resolution_tag(visium):
    with tifffile.TiffFile(visium.wsi) as tif:
        per_cm = tif.pages[0].tags["XResolution"].value
        tag_um = 1e4 / (per_cm[0] / per_cm[1])
    assert tag_um == pytest.approx(0.05)  # the tag is 10x off
    assert load_slide(visium.st).source.pixel_size_um == 0.5


def test_wsi_pyramid_is_read_page_by_page_lazily_without_series_parsing(visium, monkeypatch):
    def broken(self):
        raise ValueError("incompatible keyframe")

    monkeypatch.setattr(tifffile.TiffFile, "series", property(broken))
    levels = load_slide(visium.st).image_levels
    assert [lvl.shape for lvl in levels] == [(2000, 2400, 3), (1000, 1200, 3), (500, 600, 3), (250, 300, 3)]
    assert not any(isinstance(lvl, np.ndarray) for lvl in levels)  # tiles are read on demand
    assert tuple(levels[0][1000, 1200]) == TISSUE_RGB and tuple(levels[0][5, 5]) == (255, 255, 255)


def test_spots_sit_at_obsm_spatial_sized_by_spot_diameter(visium):
    slide = load_slide(visium.st)
    with h5py.File(visium.st) as f:
        xy = f["obsm"]["spatial"][()]
        diameter = f["uns"]["spatial"]["ST"]["scalefactors"]["spot_diameter_fullres"][()]
    np.testing.assert_allclose(slide.positions, xy[:, ::-1])
    np.testing.assert_allclose(slide.diameters, diameter)
    assert slide.source.spot_symbol == "disc"
    ids = slide.spots["spot_id"]
    assert (ids.str.len() == 18).all() and ids.str.endswith("-1").all()  # 18-character barcodes kept whole


def test_repeated_gene_name_made_unique_and_counts_match_x(visium):
    slide = load_slide(visium.st)
    genes = list(slide.expression.gene_names)
    assert genes.count("MALAT1") == 1 and "MALAT1-1" in genes
    assert list(slide.expression.raw_gene_names).count("MALAT1") == 2
    with h5py.File(visium.st) as f:
        import anndata as ad

        x = ad.io.read_elem(f["X"]).toarray()
    np.testing.assert_array_equal(slide.gene_values("MALAT1-1"), x[:, 4])
    np.testing.assert_array_equal(slide.gene_values("MALAT1"), x[:, 2])


def test_sparse_x_is_never_densified(visium, monkeypatch):
    import scipy.sparse as sp

    def refuse(self, *a, **k):
        raise AssertionError("a sparse X was densified")

    monkeypatch.setattr(sp.csr_matrix, "toarray", refuse)
    monkeypatch.setattr(sp.csc_matrix, "toarray", refuse)
    slide = load_slide(visium.st)
    assert sp.issparse(slide.expression.matrix) and slide.expression.matrix.format == "csc"


def test_st_only_download_shows_the_thumbnail_scaled_under_the_spots(st_only):
    slide = load_slide(st_only.st)
    (thumb,) = slide.image_levels
    assert slide.source.image_scale == pytest.approx(3000 / 1000)
    assert thumb.shape == (1000, 666, 3)
    pixels = np.floor(slide.positions / slide.source.image_scale).astype(int)
    assert all(tuple(thumb[r, c]) == TISSUE_RGB for r, c in pixels)  # every spot on tissue
    assert any("no wsis/NCBI783.tif" in m for m in slide.report.messages())


@pytest.mark.parametrize(("technology", "pitch_um"), [("Xenium", 100.0), ("Visium HD", 16.0)])
def test_pooled_pseudo_spots_are_squares_of_the_lattice_pitch(tmp_path, technology, pitch_um):
    sample = write_hest_sample(tmp_path, "S1", technology=technology, pixel_size_um=0.5)
    slide = load_slide(sample.st)
    assert slide.source.spot_symbol == "square"
    np.testing.assert_allclose(slide.diameters, pitch_um / 0.5)  # not the 55 µm spot_diameter_fullres
    with h5py.File(sample.st) as f:
        assert f["uns"]["spatial"]["ST"]["scalefactors"]["spot_diameter_fullres"][()] == pytest.approx(110)
    ids = slide.spots["spot_id"]
    assert ids.str.fullmatch(r"\d{3}x\d{3}" if technology == "Xenium" else r"\d{4}x\d{4}").all()


def test_no_tissue_seg_means_no_overlays_and_pickles_are_never_loaded(st_only, tmp_path):
    marker = tmp_path / "unpickled"

    class Trap:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (st_only.root / "tissue_seg").mkdir()
    (st_only.root / "tissue_seg" / f"{st_only.id}_mask.pkl").write_bytes(pickle.dumps(Trap()))
    slide = load_slide(st_only.st)
    assert slide.source.load_overlays() == []
    assert not marker.exists()


def test_tissue_contours_keep_their_holes_and_cells_are_centroids_coloured_by_class(visium):
    contours, cells = load_slide(visium.st).source.load_overlays()
    assert contours.kind == "outlines" and len(contours.data) == 2  # exterior ring and one hole
    assert cells.kind == "points" and cells.data.shape == (300, 2)
    assert set(cells.classes) == set(CELL_CLASSES)
    for name, rgb in CELL_CLASSES.items():
        np.testing.assert_allclose(cells.colors[cells.classes == name], np.tile(np.array(rgb) / 255, (100, 1)))
    # every cell inside the tissue disc (centroid of its octagon = its centre)
    cy, cx, radius = 1000, 1200, 700
    assert (np.hypot(cells.data[:, 0] - cy, cells.data[:, 1] - cx) < radius + 1).all()
    assert cells.size == pytest.approx(8.0 / 0.5)


def test_damaged_cell_file_is_a_note_not_a_failure(visium):
    visium.cells.write_text("[{broken")
    slide = load_slide(visium.st)
    overlays = slide.source.load_overlays(notes=slide.report.notes)
    assert [o.name for o in overlays] == ["tissue contours"]
    assert any(visium.cells.name in m for m in slide.report.messages())


def test_ring_centroids_are_area_weighted():
    from napari_stimage.io.hest.overlays import ring_centroids

    # an L shape: area-weighted centroid differs from the vertex mean
    ring = np.array([[0, 0], [4, 0], [4, 1], [1, 1], [1, 4], [0, 4]], float)
    line = np.array([[5, 5], [6, 6], [7, 7]], float)  # zero area: its vertex mean
    out = ring_centroids(np.vstack([ring, line]), np.array([6, 3]))
    np.testing.assert_allclose(out, [[(4 * 2 + 3 * 0.5) / 7] * 2, [6, 6]])


def test_labels_save_beside_the_tree_and_round_trip(visium):
    from napari_stimage.curation.editor import LabelEditor

    slide = load_slide(visium.st)
    assert slide.source.save_target.path == visium.root / "annotation" / "TENX95_anno.csv"
    editor = LabelEditor.from_slide(slide)
    editor.assign([0, 1], "tumour, invasive")
    editor.assign([2], "stroma")
    editor.save()
    text = (visium.root / "annotation" / "TENX95_anno.csv").read_text()
    assert slide.spots["spot_id"][0] in text
    again = load_slide(visium.wsi)
    assert list(again.labels[:3]) == ["tumour, invasive", "tumour, invasive", "stroma"]
    assert all(v != v for v in again.labels[3:])  # NaN: unlabelled


def test_convert_caches_a_hest_tree_and_the_next_open_uses_the_cache(tmp_path):
    from napari_stimage.convert import convert_tree
    from napari_stimage.io.cache import is_cache_valid

    root = tmp_path / "hest"
    a = write_hest_sample(root, "TENX1")
    b = write_hest_sample(root, "NCBI2", technology="Xenium", with_wsi=False, dense=True)
    results = {r.name: r for r in convert_tree(root, show_progress=False)}
    assert {k: (r.expression, r.image, r.error) for k, r in results.items()} == {
        "TENX1": ("built", "lazy", None), "NCBI2": ("built", "none", None)}
    assert is_cache_valid(a.st) and is_cache_valid(b.st)
    assert convert_tree(root, show_progress=False) == []  # all converted: nothing to do
    slide = load_slide(b.st)
    assert isinstance(slide.expression.matrix.data, np.memmap)  # memory-mapped from the cache
    with h5py.File(b.st) as f:
        np.testing.assert_array_equal(slide.gene_values("KRT19"), f["X"][:, 5])


def test_bad_h5ad_names_the_file(tmp_path):
    sample = write_hest_sample(tmp_path, "BAD1", with_wsi=False)
    with h5py.File(sample.st, "a") as f:
        del f["obsm"]["spatial"]
    with pytest.raises(ValueError, match=r"BAD1\.h5ad.*obsm\['spatial'\]"):
        load_slide(sample.st)


def test_hest_sample_handle_is_found_under_the_root(visium):
    from napari_stimage.io.registry import find_slides

    assert HestSample(visium.root, "TENX95") in find_slides(visium.root)


def test_render_of_an_st_only_sample_puts_the_spots_on_the_thumbnail_tissue(st_only):
    from napari_stimage.render import render_scale, render_slide

    slide = load_slide(st_only.st)
    bare = render_slide(slide, width=400, label=False, panel=False, opacity=0.0)
    assert bare.shape[1] == 400 and abs(bare.shape[0] - 600) <= 1  # the thumbnail stands for 2000 x 3000 px
    rows, cols = np.floor(slide.positions * render_scale(slide, 400)).astype(int).T
    np.testing.assert_allclose(bare[rows, cols].astype(float), np.tile(TISSUE_RGB, (len(rows), 1)), atol=10)


def test_visium_hd_bins_raster_is_placed_in_microns_on_its_spots(tmp_path, monkeypatch):
    from napari_stimage.curation import bins
    from napari_stimage.viewer.layers import slide_layer_data

    monkeypatch.setattr(bins, "DENSE_GRID_MIN_SPOTS", 1000)
    sample = write_hest_sample(tmp_path, "HD1", technology="Visium HD", pixel_size_um=0.5)
    slide = load_slide(sample.st)
    layers = {meta["name"]: (data, meta, kind) for data, meta, kind in slide_layer_data(slide)}
    _, meta, kind = layers["HD1 bins"]
    grid = meta["metadata"]["stimage_bin_grid"]
    assert kind == "image" and meta["units"] == ("um", "um")
    # raster pixel of spot k, through the layer's scale and translate, lands on the spot, in µm
    world = np.column_stack([grid.row, grid.col]) * np.array(meta["scale"]) + np.array(meta["translate"])
    np.testing.assert_allclose(world, slide.positions * 0.5, atol=1e-6)
    assert layers["HD1"][1]["scale"] == (0.5, 0.5)


def test_cellvit_parquet_wkb_cells_become_centroids_coloured_by_class(tmp_path):
    pytest.importorskip("pyarrow")
    from napari_stimage.io.hest.overlays import CELLVIT_COLORS, OTHER_CLASS_COLOR
    from napari_stimage.synthetic_hest import write_cellvit_parquet

    sample = write_hest_sample(tmp_path, "PQ1", with_wsi=False)
    (sample.root / "cellvit_seg").mkdir()
    rng = np.random.default_rng(3)
    centres = rng.uniform(500, 1500, (50, 2))
    classes = ["Neoplastic", "Inflammatory", "Unknown kind"] * 16 + ["Dead", "Connective"]
    write_cellvit_parquet(sample.root / "cellvit_seg" / "PQ1_cellvit_seg.parquet", centres, classes)
    (cells,) = load_slide(sample.st).source.load_overlays()
    np.testing.assert_allclose(cells.data, centres[:, ::-1], atol=1e-9)  # (row, col) = (y, x)
    assert list(cells.classes) == classes
    np.testing.assert_allclose(cells.colors[0], np.array(CELLVIT_COLORS["Neoplastic"]) / 255)
    np.testing.assert_allclose(cells.colors[2], np.array(OTHER_CLASS_COLOR) / 255)


def test_wkb_reader_skips_what_it_cannot_read():
    from napari_stimage.io.hest.overlays import wkb_exterior_centroids
    from napari_stimage.synthetic_hest import polygon_wkb

    square = np.array([[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]], float)
    pieces = [polygon_wkb(square), b"", polygon_wkb(square + 10, multi=True), b"\x00" + polygon_wkb(square)[1:],
              polygon_wkb(square)[:20]]  # valid, null, multi, big-endian flag, truncated
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])])
    centroids, read = wkb_exterior_centroids(np.frombuffer(b"".join(pieces), np.uint8), offsets)
    assert list(read) == [True, False, True, False, False]
    np.testing.assert_allclose(centroids, [[1, 1], [11, 11]])


@pytest.mark.parametrize("indent", [None, 2])
def test_fast_cell_reading_matches_plain_json(tmp_path, indent):
    from napari_stimage.io.hest.overlays import _cells_fast, _cells_plain

    features = [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
            [[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]], [[1, 1], [2, 1], [2, 2], [1, 1]]]},  # a hole: ignored
         "properties": {"classification": {"name": "A [odd] name", "color": [1, 2, 3]}}},
        {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [
            [[[10, 10], [12, 10], [12, 12], [10, 12]]], [[[20.5, 20], [22, 20], [22, 22.25], [20.5, 20]]]]},
         "properties": {"classification": {"name": "B", "color": [255, 0, 0]}}},
    ]
    raw = json.dumps(features, indent=indent).encode()
    fast, plain = _cells_fast(raw), _cells_plain(raw)
    np.testing.assert_allclose(fast[0], plain[0])
    np.testing.assert_array_equal(fast[1], [0, 1, 1])
    np.testing.assert_array_equal(fast[1], plain[1])
    np.testing.assert_allclose(fast[0][:2], [[2, 2], [11, 11]])
    three_d = json.dumps([{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[0, 0, 1], [4, 0, 1], [4, 4, 1]]]}}]).encode()
    assert _cells_fast(three_d) is None  # not 2-D: read as plain JSON instead
