"""What the canvas shows is what the legend and colorbar say: in label mode each label's bins and
spots are drawn in its legend colour (at the opacity the user chose, over the H&E), and in gene
mode nothing but the gene tints the bins. Both docks from the Plugins menu, pixels read from
screenshots of the shown viewer, the H&E switched off in the layer list so the background is known."""

import numpy as np
import pytest

from gui_user import User
from napari_stimage import coloring as col
from napari_stimage.viewer.bins import bin_grid_of

pytestmark = pytest.mark.timeout(120)
TOLERANCE = 14  # per channel, 0-255: blending and the software renderer's rounding


def _rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[k:k + 2], 16) for k in (1, 3, 5)])


def _open(make_napari_viewer, qtbot, paths):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    user = User(viewer, qtbot, paths)
    viewer.layers[paths.name].visible = False  # the H&E image off, as a click on its eye does
    return viewer, user


def _background(shot) -> np.ndarray:
    return shot[2, 2, :3].astype(int)  # a corner of the canvas, beside the slide: what is behind every layer


def _expected(color: np.ndarray, opacity: float, background: np.ndarray) -> np.ndarray:
    return opacity * color + (1 - opacity) * background


def _assert_labels_drawn_in_legend_colours(user, layer, centres, labels):
    user.color.tabs.setCurrentIndex(1)
    user.qtbot.wait(50)
    shot = user.screenshot()
    background = _background(shot)
    opacity = float(user.color.display.opacity_slider.value())
    assert opacity == pytest.approx(layer.opacity)
    checked = 0
    for entry in user.color.legend_entries():
        chosen = np.flatnonzero(col.display_labels(labels) == entry.label)
        if not chosen.size:
            continue
        if entry.color == col.NOT_DRAWN:  # unlabelled bins: the canvas behind them
            assert entry.unlabelled and user.pixel(shot, centres[chosen[0]]).tolist() == background.tolist()
            continue
        middle = chosen[np.argmin(np.linalg.norm(centres[chosen] - np.median(centres[chosen], axis=0), axis=1))]
        seen = user.pixel(shot, centres[middle])
        assert np.abs(seen - _expected(_rgb(entry.color), opacity, background)).max() <= TOLERANCE, (entry.label, seen)
        checked += 1
    assert checked >= 3


def test_bins_are_drawn_in_their_legend_colours_and_a_gene_alone(make_napari_viewer, hd_paths, qtbot):
    viewer, user = _open(make_napari_viewer, qtbot, hd_paths)
    layer = viewer.layers[f"{hd_paths.name} bin labels"]
    viewer.layers.selection.active = layer
    grid = bin_grid_of(layer)
    centres = np.array([layer.data_to_world((r, c)) for r, c in zip(grid.row, grid.col, strict=True)])
    assert not viewer.layers[f"{hd_paths.name} bins"].visible  # total counts do not tint the labels
    _assert_labels_drawn_in_legend_colours(user, layer, centres, user.curate.editor.labels)

    # gene mode: a gene most bins do not express; those show the background, never a label colour
    slide = layer.metadata["stimage_slide"]
    sparse = min(slide.expression.gene_names, key=lambda g: int((np.nan_to_num(slide.gene_values(g)) > 0).sum()))
    user.type_gene(sparse)
    gene_layer = viewer.layers[f"{hd_paths.name} gene"]
    assert gene_layer.visible and not layer.visible
    qtbot.wait(50)
    shot = user.screenshot()
    background = _background(shot)
    silent = np.flatnonzero(np.nan_to_num(slide.gene_values(sparse)) == 0)
    assert silent.size > 10
    for k in silent[:: max(1, silent.size // 20)]:
        assert np.abs(user.pixel(shot, centres[k]) - background).max() <= TOLERANCE

    # and back to labels: the gene layer goes, the label colours are the legend's again
    _assert_labels_drawn_in_legend_colours(user, layer, centres, user.curate.editor.labels)
    assert not gene_layer.visible and layer.visible


def test_spots_are_drawn_in_their_legend_colours(make_napari_viewer, slide_paths, qtbot):
    viewer, user = _open(make_napari_viewer, qtbot, slide_paths)
    layer = viewer.layers[f"{slide_paths.name} spots"]
    viewer.layers.selection.active = layer
    _assert_labels_drawn_in_legend_colours(user, layer, np.asarray(layer.data, dtype=float), layer.features["label"].to_numpy())
