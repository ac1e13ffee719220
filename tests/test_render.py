import numpy as np

from napari_stimage import coloring as col
from napari_stimage.render import PANEL_WIDTH, render_scale, render_slide
from napari_stimage.synthetic import region_of


def _pixel(image, slide, index, width):
    s = render_scale(slide, width)
    y, x = slide.positions[index]
    return image[int((y + 0.5) * s), int((x + 0.5) * s)].astype(int)


def _rgb255(rgba):
    return (np.asarray(rgba)[:3] * 255).round().astype(int)


def test_gene_render_is_bright_in_erbb2_region_and_dark_outside(slide):
    width = 500
    values = np.log1p(slide.gene_values("ERBB2"))
    limits = col.autoscale_limits(values)
    image = render_slide(slide, "ERBB2", colormap="magma", non_expressing="colormap", opacity=1.0, width=width)
    assert image.dtype == np.uint8 and image.shape[1] == width + PANEL_WIDTH

    h, w = slide.image_levels[0].shape[:2]
    region = region_of(slide.positions[:, 0], slide.positions[:, 1], h, w)
    hot = int(np.flatnonzero((region == 0) & (values >= limits[1]))[0])
    cold = int(np.flatnonzero((region == 3) & (values == 0))[0])
    from napari.utils.colormaps import ensure_colormap

    magma = ensure_colormap("magma")
    top, bottom = magma.map(np.array([1.0]))[0], magma.map(np.array([0.0]))[0]
    assert np.abs(_pixel(image, slide, hot, width) - _rgb255(top)).max() <= 2
    assert np.abs(_pixel(image, slide, cold, width) - _rgb255(bottom)).max() <= 2
    assert _pixel(image, slide, hot, width).sum() > 3 * _pixel(image, slide, cold, width).sum()


def test_transparent_non_expressing_spots_show_the_image(slide):
    width = 400
    image = render_slide(slide, "ERBB2", non_expressing="transparent", width=width, panel=False)
    plain = render_slide(slide, "ERBB2", non_expressing="transparent", width=width, panel=False, opacity=0.0)
    values = slide.gene_values("ERBB2")
    cold = int(np.flatnonzero(values == 0)[0])
    hot = int(np.nanargmax(values))
    assert np.array_equal(_pixel(image, slide, cold, width), _pixel(plain, slide, cold, width))
    assert not np.array_equal(_pixel(image, slide, hot, width), _pixel(plain, slide, hot, width))


def test_colorbar_panel_shows_the_colormap(slide):
    width = 400
    image = render_slide(slide, "ERBB2", colormap="viridis", width=width)
    from napari.utils.colormaps import ensure_colormap

    viridis = ensure_colormap("viridis")
    bar_x = width + 14 + 14
    top_px = image[62, bar_x].astype(int)  # high values at the top of the bar
    assert np.abs(top_px - _rgb255(viridis.map(np.array([1.0]))[0])).max() <= 6


def test_label_render_uses_the_legend_colours(slide, tmp_path):
    palette = col.LabelPalette(tmp_path / "p.json")
    width = 500
    image = render_slide(slide, label=True, palette=palette, opacity=1.0, width=width)
    entries = {e.label: e.color for e in col.legend_entries(slide.labels, palette)}
    shown = col.display_labels(slide.labels)
    for label, color in entries.items():
        i = int(np.flatnonzero(shown == label)[0])
        expected = np.array([int(color[k:k + 2], 16) for k in (1, 3, 5)])
        assert np.abs(_pixel(image, slide, i, width) - expected).max() <= 2, label


def test_hidden_labels_are_not_drawn(slide, tmp_path):
    palette = col.LabelPalette(tmp_path / "p.json")
    width = 400
    hidden = "invasive cancer"
    image = render_slide(slide, label=True, palette=palette, opacity=1.0, hidden_labels=[hidden], width=width)
    color = palette.colors([hidden])[hidden]
    i = int(np.flatnonzero(col.display_labels(slide.labels) == hidden)[0])
    expected = np.array([int(color[k:k + 2], 16) for k in (1, 3, 5)])
    assert np.abs(_pixel(image, slide, i, width) - expected).max() > 20


def test_cli_render_writes_png(slide_paths, tmp_path):
    from PIL import Image

    from napari_stimage.cli import main

    out = tmp_path / "out" / "erbb2.png"
    assert main(["render", str(slide_paths.image), "--out", str(out), "--gene", "ERBB2", "--width", "300"]) == 0
    with Image.open(out) as image:
        assert image.size == (300 + PANEL_WIDTH, 300)
    assert main(["render", str(slide_paths.coord), "--out", str(tmp_path / "l.png"), "--label", "--no-panel",
                 "--width", "200"]) == 0
    with Image.open(tmp_path / "l.png") as image:
        assert image.size == (200, 200)
    assert main(["render", str(slide_paths.coord), "--out", str(tmp_path / "x.png"), "--gene", "NOSUCHGENE"]) == 2


def test_cli_default_colors_ignores_the_users_label_colours(slide_paths, slide, tmp_path, capsys):
    from PIL import Image

    from napari_stimage.cli import main

    col.LabelPalette().set_color("invasive cancer", "#000000")  # picked in the widget
    args = ["render", str(slide_paths.coord), "--label", "--no-panel", "--opacity", "1", "--width", "300"]
    assert main(args + ["--out", str(tmp_path / "user.png")]) == 0
    assert main(args + ["--out", str(tmp_path / "default.png"), "--default-colors"]) == 0
    i = int(np.flatnonzero(col.display_labels(slide.labels) == "invasive cancer")[0])
    user = _pixel(np.asarray(Image.open(tmp_path / "user.png").convert("RGB")), slide, i, 300)
    default = _pixel(np.asarray(Image.open(tmp_path / "default.png").convert("RGB")), slide, i, 300)
    assert np.abs(user - 0).max() <= 2
    expected = col.BUILTIN_LABEL_COLORS["invasive cancer"]
    assert np.abs(default - [int(expected[k:k + 2], 16) for k in (1, 3, 5)]).max() <= 2

    import pytest

    with pytest.raises(SystemExit):
        main(["render", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--default-colors" in help_text and "Without it, your label colour overrides apply" in help_text


def test_cli_suggests_close_gene_names(slide_paths, tmp_path, capsys):
    from napari_stimage.cli import main

    assert main(["render", str(slide_paths.coord), "--out", str(tmp_path / "x.png"), "--gene", "ERBX2"]) == 2
    assert "did you mean ERBB2" in capsys.readouterr().err


def test_cli_refuses_a_contrast_range_that_is_empty_or_reversed(slide_paths, tmp_path, capsys):
    from napari_stimage.cli import main

    for low, high in (("2", "2"), ("3", "1")):
        out = tmp_path / f"clim-{low}-{high}.png"
        assert main(["render", str(slide_paths.coord), "--out", str(out), "--gene", "ERBB2",
                     "--clim", low, high]) == 2
        assert "--clim LOW HIGH needs LOW < HIGH" in capsys.readouterr().err
        assert not out.exists()
    assert main(["render", str(slide_paths.coord), "--out", str(tmp_path / "ok.png"), "--gene", "ERBB2",
                 "--clim", "0", "2", "--width", "200"]) == 0
