"""The slide browser through the user's path: docked from the Plugins menu, on a generated dataset tree."""

import csv

import numpy as np
import pytest
from PIL import Image
from qtpy.QtCore import Qt

from napari_stimage import coloring as col
from napari_stimage.cli import main as cli_main
from napari_stimage.io.cache import is_cache_valid
from napari_stimage.synthetic import write_synthetic_slide
from napari_stimage.viewer.canvas import camera
from napari_stimage.viewer.editors import editor_for_layer
from napari_stimage.viewer.metadata import slide_of

pytestmark = pytest.mark.timeout(120)
META = "meta_all_gene02122025.csv"
HEADER = ["slide", "species", "tissue", "pmid", "title", "abstract", "keywords", "involve_cancer", "tech",
          "spot_num", "gene_num"]
# name, tech, species, tissue, cancer, annotated, on disk
SLIDES = [
    ("Human_Brain_Study_A1_Visium", "Visium", "human", "brain", "False", True, True),
    ("Human_Brain_Study_A2_Visium", "Visium", "human", "brain", "False", True, True),
    ("Human_LN_Study_B1_Visium", "Visium", "human", "lymphnode", "True", False, True),
    ("Mouse_Kidney_Missing_ST", "ST", "mouse", "brain+kidney", "False", False, False),
]
UNLISTED = "Human_Unlisted_Slide_Visium"


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "STimage-1K4M"
    for k, (name, tech, _, _, _, annotated, on_disk) in enumerate(SLIDES):
        if on_disk:
            write_synthetic_slide(root, name=name, tech=tech, size=600, n_genes=40, seed=k, with_annotation=annotated)
    write_synthetic_slide(root, name=UNLISTED, size=600, n_genes=40, seed=9, with_annotation=False)
    (root / "meta").mkdir()
    with open(root / "meta" / META, "w", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL)
        w.writerow(HEADER)
        for name, tech, species, tissue, cancer, _, _ in SLIDES:
            w.writerow([name, species, tissue, "31234567, 32345678", f"Atlas of {tissue}",
                        "A multi-line\nabstract about tumour cells.", "spatial; atlas", cancer, tech, "300", "40"])
    return root


@pytest.fixture
def browser(make_napari_viewer, qtbot, tree):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-stimage", "Browse slides")
    widget.root_combo.lineEdit().setText(str(tree))
    qtbot.keyClick(widget.root_combo.lineEdit(), Qt.Key.Key_Return)  # the user types the root and presses Enter
    yield viewer, widget
    for thread in list(widget.prefetching.values()):  # never let a prefetch outlive the test's cache folder
        thread.join(timeout=60)


def _wait_open(qtbot, widget, name):
    qtbot.waitUntil(lambda: widget.current_slide == name, timeout=30000)
    qtbot.wait(10)  # the deferred camera restore


def _spots(viewer):
    return next(layer for layer in viewer.layers if layer.name.endswith(" spots"))


def _double_click(qtbot, widget, slide):
    row = widget.model.row_of(slide)
    rect = widget.table.visualRect(widget.model.index(row, 0))
    qtbot.mouseClick(widget.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(widget.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_lists_flags_filters_and_counts(browser, qtbot, tree):
    viewer, widget = browser
    assert widget.count_label.text() == "5 of 5 slides"
    slides = widget.visible_slides()
    assert UNLISTED in slides  # on disk but not in the meta table: still listed
    missing = widget.model.row_of("Mouse_Kidney_Missing_ST")
    index = widget.model.index(missing, 0)
    assert widget.model.data(index, Qt.ItemDataRole.ForegroundRole) is not None  # greyed
    assert "coord, count, image" in widget.model.data(index, Qt.ItemDataRole.ToolTipRole)
    from napari_stimage._qt.browse_widget import TABLE_COLUMNS

    on_disk_col = [header for header, _ in TABLE_COLUMNS].index("on disk")
    assert widget.model.data(widget.model.index(missing, on_disk_col)) == ""

    widget.on_disk_check.click()
    assert widget.count_label.text() == "4 of 5 slides"
    widget.on_disk_check.click()
    widget.tissue_combo.setCurrentText("lymph node")  # the synonym group of 'lymphnode'
    assert widget.visible_slides() == ["Human_LN_Study_B1_Visium"]
    widget.tissue_combo.setCurrentText("kidney")  # 'brain+kidney' matches each part
    assert widget.visible_slides() == ["Mouse_Kidney_Missing_ST"]
    widget.tissue_combo.setCurrentText("any")
    widget.cancer_combo.setCurrentText("yes")
    assert widget.count_label.text() == "1 of 5 slides"
    widget.cancer_combo.setCurrentText("any")
    widget.annotated_check.click()
    assert set(widget.visible_slides()) == {"Human_Brain_Study_A1_Visium", "Human_Brain_Study_A2_Visium"}
    widget.annotated_check.click()
    qtbot.keyClicks(widget.search_edit, "A2")
    assert widget.visible_slides() == ["Human_Brain_Study_A2_Visium"]
    widget.search_edit.clear()
    assert widget.count_label.text() == "5 of 5 slides"

    # the root is remembered for the next browser
    from napari_stimage._qt.browse_widget import BrowseWidget

    again = BrowseWidget(viewer)
    qtbot.addWidget(again)
    assert again.root_combo.itemText(0) == str(tree.resolve())


def test_selected_row_shows_study_links_and_thumbnail(browser, qtbot):
    _, widget = browser
    widget.select("Human_Brain_Study_A1_Visium")
    text = widget.details_label.text()
    assert "Atlas of brain" in text and "spatial; atlas" in text and "tumour cells" in text
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/31234567/"' in text
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/32345678/"' in text
    assert widget.details_label.openExternalLinks()
    qtbot.waitUntil(lambda: widget.thumbnail_label.pixmap() is not None and not widget.thumbnail_label.pixmap().isNull(),
                    timeout=10000)
    widget.select("Mouse_Kidney_Missing_ST")
    assert "missing coord, count, image" in widget.details_label.text()


def test_walk_keeps_gene_labels_camera_and_prefetches(browser, qtbot, tree):
    viewer, widget = browser
    widget.on_disk_check.click()  # the filtered list: A1, A2, B1, unlisted
    a1, a2, b1 = (s[0] for s in SLIDES[:3])
    _double_click(qtbot, widget, a1)
    _wait_open(qtbot, widget, a1)
    _, color = viewer.window.add_plugin_dock_widget("napari-stimage", "Color spots")
    spots = _spots(viewer)
    assert slide_of(spots).name == a1
    # the next slide of the filtered list is loaded in the background: its cache is ready before Next
    a2_count = tree / "Visium" / "gene_exp" / f"{a2}_count.csv"
    qtbot.waitUntil(lambda: a2 in widget.prefetched, timeout=30000)
    assert is_cache_valid(a2_count)

    color.solo_label("invasive cancer")  # label mode, every other label hidden
    hidden = set(color.state().hidden_labels)
    assert "adipose tissue" in hidden
    lo, hi = (np.asarray(e) for e in (spots.extent.world[0][-2:], spots.extent.world[1][-2:]))
    camera(viewer).center = tuple(lo + np.array([0.3, 0.6]) * (hi - lo))
    camera(viewer).zoom = 3.0
    relative_zoom = 3.0 * (hi - lo).max()

    widget.next_button.click()
    _wait_open(qtbot, widget, a2)
    spots = _spots(viewer)
    assert slide_of(spots).name == a2 and len([la for la in viewer.layers if la.name.endswith(" spots")]) == 1
    assert color.layer is not None and slide_of(color.layer).name == a2
    assert color.state().mode == "label" and color.state().hidden_labels == hidden
    labels = spots.features["label"].to_numpy()
    hidden_rows = np.isin(labels, list(hidden - {col.UNLABELLED}))
    assert hidden_rows.any() and np.all(np.asarray(spots.face_color)[hidden_rows, 3] == 0)
    shown_rows = labels == "invasive cancer"
    assert np.all(np.asarray(spots.face_color)[shown_rows, 3] > 0)
    lo, hi = (np.asarray(e) for e in (spots.extent.world[0][-2:], spots.extent.world[1][-2:]))
    center = np.asarray(camera(viewer).center)[-2:]
    assert np.allclose((center - lo) / (hi - lo), [0.3, 0.6], atol=0.02)
    assert camera(viewer).zoom * (hi - lo).max() == pytest.approx(relative_zoom, rel=0.02)

    # gene mode, a colormap and a fixed range go on to the next slide too
    color.apply_genes(["ERBB2"])
    color.colormap_combo.setCurrentText("magma")
    color.transform_combo.setCurrentIndex(list(col.TRANSFORMS).index("raw"))
    color.range_slider.setValue((0.0, 5.0))
    qtbot.keyClick(widget.table, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)  # Alt+Right = Next
    _wait_open(qtbot, widget, b1)
    spots = _spots(viewer)
    state = color.state()
    assert slide_of(color.layer).name == b1
    assert state.mode == "gene" and state.gene.genes == ("ERBB2",)
    assert state.gene.colormap == "magma" and state.gene.transform == "raw"
    assert state.gene.contrast_limits == pytest.approx((0.0, 5.0))
    values = slide_of(spots).gene_values("ERBB2")
    expected = col.gene_colors(values, col.GeneColoring(("ERBB2",), "raw", "magma", (0.0, 5.0)))
    assert np.allclose(spots.face_color, expected, atol=1e-6)

    widget.previous_button.click()
    _wait_open(qtbot, widget, a2)
    assert color.state().gene.colormap == "magma"


def test_unsaved_edits_are_guarded(browser, qtbot, tree, monkeypatch):
    viewer, widget = browser
    widget.on_disk_check.click()
    a1, a2 = SLIDES[0][0], SLIDES[1][0]
    widget.select(a1)
    widget.open_button.click()
    _wait_open(qtbot, widget, a1)
    spots = _spots(viewer)
    editor = editor_for_layer(spots)
    editor.assign([0, 1, 2], "curated here")
    asked = []

    def answer(choice):
        def ask(title, text, choices):
            asked.append((text, choices))
            return choice
        return ask

    monkeypatch.setattr(widget, "ask", answer("Cancel"))
    assert widget.step(1) is None
    assert widget.current_slide == a1 and spots in viewer.layers and editor.dirty
    assert "unsaved label edits" in asked[-1][0] and asked[-1][1] == ("Save", "Don't save", "Cancel")

    monkeypatch.setattr(widget, "ask", answer("Save"))
    widget.next_button.click()
    _wait_open(qtbot, widget, a2)
    saved = (tree / "annotation" / f"{a1}_anno.csv").read_text()
    assert saved.count("curated here") == 3 and not editor.dirty

    editor = editor_for_layer(_spots(viewer))
    editor.assign([0], "kept for later")
    monkeypatch.setattr(widget, "ask", answer("Don't save"))
    widget.previous_button.click()
    _wait_open(qtbot, widget, a1)
    assert editor.recovery_path is not None and editor.recovery_path.exists()  # offered when reopened
    assert "kept for later" not in (tree / "annotation" / f"{a2}_anno.csv").read_text()


def test_side_by_side_shares_one_colour_range(make_napari_viewer, qtbot, tree):
    viewer = make_napari_viewer(show=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-stimage", "Browse slides")
    widget.set_root(tree)
    a1, a2 = SLIDES[0][0], SLIDES[1][0]
    widget.table.selectRow(widget.model.row_of(a1))
    widget.table.selectionModel().select(
        widget.model.index(widget.model.row_of(a2), 0),
        widget.table.selectionModel().SelectionFlag.Select | widget.table.selectionModel().SelectionFlag.Rows)
    assert widget.selected_slides() == [a1, a2]
    qtbot.keyClicks(widget.side_gene_edit, "ERBB2")
    widget.side_button.click()
    qtbot.waitUntil(lambda: viewer.canvas.grid.enabled, timeout=30000)
    assert viewer.canvas.grid.stride == 3  # image, spots, name in each tile
    spots = [layer for layer in viewer.layers if layer.name.endswith(" spots")]
    assert [slide_of(s).name for s in spots] == [a1, a2]
    assert viewer.canvas.grid.position(1, viewer.layers) != viewer.canvas.grid.position(4, viewer.layers)
    limits = [tuple(s.face_contrast_limits) for s in spots]
    assert limits[0] == limits[1]
    values = [np.log1p(slide_of(s).gene_values("ERBB2")) for s in spots]
    assert limits[0] == pytest.approx(col.autoscale_limits(np.concatenate(values)))
    # the same value has the same colour in both tiles
    v = float(np.intersect1d(values[0][values[0] > 0], values[1][values[1] > 0])[0])
    c0 = np.asarray(spots[0].face_color)[np.flatnonzero(values[0] == v)[0]]
    c1 = np.asarray(spots[1].face_color)[np.flatnonzero(values[1] == v)[0]]
    assert np.allclose(c0, c1)
    assert [s.face_colorbar.visible for s in spots] == [False, True]  # one colorbar
    names = [layer for layer in viewer.layers if layer.name.endswith(" name")]
    assert [n.text.values[0] for n in names] == [a1, a2]

    # pixels: a value has one colour in both tiles (spots opaque, so the canvas shows the colour itself)
    for layer in spots:
        layer.opacity = 1.0
    viewer.window.resize(1600, 900)  # the browser's dock leaves the canvas a sliver of the default window
    qtbot.wait(100)
    viewer.reset_view()
    qtbot.wait(200)
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    height, width = shot.shape[:2]
    tiles = shot[height // 4:, : width // 2], shot[height // 4:, width // 2:]  # below the colorbar
    for value in (limits[0][1], v):
        rgb = (col.map_to_colormap(np.array([value]), "viridis", limits[0])[0, :3] * 255).round()
        assert all((np.abs(tile - rgb).max(axis=2) <= 24).sum() >= 4 for tile in tiles), value

    widget.shared_range_check.setChecked(False)
    widget.side_button.click()  # per-slide ranges: each its own limits and colorbar
    qtbot.waitUntil(lambda: viewer.canvas.grid.enabled and len([la for la in viewer.layers if la.name.endswith(" spots")]) == 2
                    and all(tuple(s.face_contrast_limits) == pytest.approx(col.autoscale_limits(np.log1p(slide_of(s).gene_values("ERBB2"))))
                            for s in viewer.layers if s.name.endswith(" spots")), timeout=30000)


def test_render_side_by_side_png(tree, tmp_path):
    a1, a2 = (tree / "Visium" / "coord" / f"{s[0]}_coord.csv" for s in SLIDES[:2])
    out = tmp_path / "grid.png"
    assert cli_main(["render", str(a1), str(a2), "--gene", "ERBB2", "--out", str(out), "--width", "300",
                     "--opacity", "1", "--non-expressing", "colormap"]) == 0
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    from napari_stimage import load_slide
    from napari_stimage.render import PANEL_WIDTH, TITLE_HEIGHT, render_scale

    slides = [load_slide(a1), load_slide(a2)]
    assert image.shape[1] == 2 * 300 + PANEL_WIDTH  # two tiles, one colorbar
    values = [np.log1p(s.gene_values("ERBB2")) for s in slides]
    limits = col.autoscale_limits(np.concatenate(values))
    v = float(np.intersect1d(values[0][values[0] > 0], values[1][values[1] > 0])[-1])
    expected = (col.map_to_colormap(np.array([v]), "viridis", limits)[0, :3] * 255).round()
    for k, (slide, vals) in enumerate(zip(slides, values, strict=True)):
        spot = np.flatnonzero(vals == v)[0]
        y, x = ((slide.positions[spot] + 0.5) * render_scale(slide, 300)).astype(int)
        assert np.abs(image[TITLE_HEIGHT + y, k * 300 + x] - expected).max() <= 3
    assert cli_main(["render", str(a1), str(a2), "--gene", "NOSUCHGENE", "--out", str(out)]) == 2


def test_real_meta_table_in_the_browser(make_napari_viewer, real_data, tmp_path):
    import shutil

    root = tmp_path / "real"
    (root / "meta").mkdir(parents=True)
    shutil.copy(real_data / META, root / "meta" / META)  # a copy in tmp: never written into the repo
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-stimage", "Browse slides")
    assert widget.set_root(root)
    assert widget.model.rowCount() == 1149 and widget.count_label.text() == "1149 of 1149 slides"
    widget.species_combo.setCurrentText("human")
    widget.tissue_combo.setCurrentText("brain")
    assert widget.count_label.text() == "90 of 1149 slides"


def test_quick_thumbnail_from_small_image_or_cached_pyramid_never_a_huge_decode(slide_paths, monkeypatch):
    from napari_stimage.io import images

    thumb = images.quick_thumbnail(slide_paths.image, 128)  # JPEG bytes behind .png, 1000 px
    assert thumb.dtype == np.uint8 and max(thumb.shape[:2]) == 128 and thumb.shape[2] == 3
    monkeypatch.setattr(images, "THUMBNAIL_MAX_SOURCE_PIXELS", 100)  # as if the image were huge
    assert images.quick_thumbnail(slide_paths.image, 128) is None  # not decoded
    images.ensure_pyramid(slide_paths.image)  # once a pyramid is cached, its smallest level serves
    thumb = images.quick_thumbnail(slide_paths.image, 128)
    assert thumb is not None and max(thumb.shape[:2]) <= 128
    # the thumbnail shows the slide: its centre is the tumour region's colour, not the background
    assert np.abs(thumb[thumb.shape[0] // 2, thumb.shape[1] // 2].astype(int) - (150, 60, 140)).max() < 40


def test_browse_command_rejects_a_missing_root(tmp_path, capsys):
    assert cli_main(["browse", str(tmp_path / "nowhere")]) == 1
    assert "no such dataset folder" in capsys.readouterr().err


def test_side_by_side_limits_shared_or_per_slide():
    low, high = np.array([0.0, 1.0, 2.0]), np.array([0.0, 5.0, 9.0])
    shared = col.side_by_side_limits([low, high], shared=True)
    assert shared[0] == shared[1] == col.autoscale_limits(np.concatenate([low, high]))
    assert col.side_by_side_limits([low, high], shared=False) == [col.autoscale_limits(low), col.autoscale_limits(high)]
