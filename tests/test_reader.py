import numpy as np
import pytest

from napari_stimage._reader import get_reader, read_slide
from napari_stimage.viewer.canvas import camera


def _slide_files(paths):
    return [paths.image, paths.coord, paths.count, paths.annotation]


def test_reader_claims_every_slide_file_and_gives_the_same_slide(slide_paths):
    results = []
    for f in _slide_files(slide_paths):
        reader = get_reader(str(f))
        assert callable(reader), f
        results.append(reader(str(f)))
    names = [[meta["name"] for _, meta, _ in layers] for layers in results]
    assert all(n == names[0] for n in names)
    assert names[0] == [slide_paths.name, f"{slide_paths.name} spots"]
    for layers in results[1:]:
        np.testing.assert_array_equal(layers[1][0], results[0][1][0])


def test_reader_returns_none_for_foreign_files(tmp_path):
    (tmp_path / "plain.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "plain.csv").write_text("a,b\n")
    assert get_reader(str(tmp_path / "plain.png")) is None
    assert get_reader(str(tmp_path / "plain.csv")) is None
    assert get_reader([str(tmp_path / "plain.png"), str(tmp_path / "plain.csv")]) is None
    assert get_reader(str(tmp_path / "missing_coord.csv")) is None


def test_layers_returned(slide_paths):
    (image, image_meta, image_kind), (points, meta, kind) = read_slide(str(slide_paths.image))
    assert image_kind == "image" and image_meta["rgb"] and image.shape == (1000, 1000, 3)
    assert kind == "points" and points.shape[1] == 2
    r = float(slide_paths.coord.read_text().splitlines()[1].split(",")[3])
    np.testing.assert_allclose(meta["size"], 2 * r)  # diameter: the disc covers the real spot
    f = meta["features"]
    assert list(f.columns[:4]) == ["spot_id", "label", "total_counts", "n_genes"]
    assert len(f.columns) == 54 and len(f) == len(points)


def test_reader_reports_mismatches_in_one_notification(slide_paths, monkeypatch):
    import napari.utils.notifications as notifications

    shown = []
    monkeypatch.setattr(notifications, "show_warning", shown.append)
    read_slide(str(slide_paths.coord))
    assert len(shown) == 1
    assert "no expression" in shown[0] and "unknown spots" in shown[0]


def test_viewer_open_with_plugin_and_add_gene(make_napari_viewer, slide_paths):
    from napari_stimage import add_gene_features, slide_of

    viewer = make_napari_viewer()
    viewer.open(str(slide_paths.image), plugin="napari-stimage")
    spots = viewer.layers[f"{slide_paths.name} spots"]
    slide = slide_of(spots)
    assert slide is not None and slide.name == slide_paths.name
    gene = next(g for g in slide.expression.gene_names if g not in spots.features.columns)
    assert add_gene_features(spots, gene) == [gene]
    np.testing.assert_array_equal(spots.features[gene].to_numpy(), slide.gene_values(gene))
    with pytest.raises(KeyError, match="NOT_A_GENE"):
        add_gene_features(spots, "NOT_A_GENE")


def test_bad_input_keeps_the_viewer_running(make_napari_viewer, slide_paths):
    from napari_stimage import SlideError

    slide_paths.coord.write_text(",yaxis,xaxis\nA,1,2\n")
    viewer = make_napari_viewer()
    with pytest.raises(SlideError, match=r"_coord\.csv: the coord file lacks column\(s\) r"):
        viewer.open(str(slide_paths.image), plugin="napari-stimage")
    assert len(viewer.layers) == 0
    viewer.add_points([[1, 1]])  # the viewer is still usable
    assert len(viewer.layers) == 1


def _canvas_pixel(viewer, shot, y, x):
    """Screenshot pixel under world point (y, x) in a 2D view."""
    cy, cx = camera(viewer).center[-2:]
    zoom = camera(viewer).zoom
    h, w = shot.shape[:2]
    return shot[int(round((y - cy) * zoom + h / 2)), int(round((x - cx) * zoom + w / 2)), :3].astype(int)


def test_rendered_slide_opens_coloured_by_label_over_the_tissue(make_napari_viewer, slide):
    from napari_stimage import coloring as col
    from napari_stimage.synthetic import REGIONS, region_of
    from napari_stimage.viewer.layers import add_slide_to_viewer

    viewer = make_napari_viewer(show=True)
    spots = add_slide_to_viewer(viewer, slide)[-1]
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    pos = slide.positions
    region = region_of(pos[:, 0], pos[:, 1], 1000, 1000)
    labels = spots.features["label"].to_numpy()
    expected_faces = col.label_colors(labels, col.LabelPalette())
    r = slide.spots["r"].iloc[0]
    for k, (label, (_, tissue_rgb)) in enumerate(REGIONS.items()):
        i = int(np.flatnonzero((region == k) & (labels == label))[0])
        y, x = pos[i]
        face = expected_faces[i, :3] * 255
        blended = spots.opacity * face + (1 - spots.opacity) * np.array(tissue_rgb)
        centre = _canvas_pixel(viewer, shot, y, x)  # the spot, in its label's colour over the H&E
        assert np.abs(centre - blended).max() < 40, (label, centre, blended)
        between = _canvas_pixel(viewer, shot, y, x + 20)  # half a pitch away: no spot, just tissue
        assert np.abs(between - tissue_rgb).max() < 40, (label, between)
        assert 2 * r < 40  # (the spots really leave tissue visible between them)


def test_damaged_image_opens_spots_with_a_warning(slide_paths, monkeypatch):
    import napari.utils.notifications as notifications

    shown = []
    monkeypatch.setattr(notifications, "show_warning", shown.append)
    slide_paths.image.write_bytes(b"\xff\xd8\xff" + b"truncated")
    layers = read_slide(str(slide_paths.count))
    assert [kind for *_, kind in layers] == ["points"]
    assert "image not shown" in shown[0] and f"{slide_paths.image.name}" in shown[0]


def test_slide_without_annotation_opens_coloured_by_its_top_gene(tmp_path):
    from napari_stimage import load_slide
    from napari_stimage.synthetic import write_synthetic_slide

    paths = write_synthetic_slide(tmp_path / "ds", with_annotation=False)
    (_, _, _), (points, meta, _) = read_slide(str(paths.image))
    slide = load_slide(paths.coord)
    values = slide.gene_values(slide.default_genes[0])
    faces = np.asarray(meta["face_color"])
    assert faces.shape == (len(points), 4)
    hot = int(np.nanargmax(values))
    assert faces[hot, 3] == 1.0 and np.all(faces[values == 0, 3] == 0)  # non-expressing: transparent
