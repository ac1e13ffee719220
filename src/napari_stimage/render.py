"""Headless rendering of a slide to a PNG: the H&E image, spot discs of their true radius (or, on
a VisiumHD bin grid, square bins) coloured exactly as the colour widget colours them (same
`coloring` functions), and a colorbar or legend.

    napari-stimage render SLIDE_FILE --out figure.png --gene ERBB2 --colormap magma --width 1600
    napari-stimage render SLIDE_FILE --out labels.png --label
    napari-stimage render SLIDE_FILE --out score.png --gene "CD3E,MS4A1" --transform log1p_cp10k

Label colours are the "Color spots" widget's: your label colour overrides (picked there, kept in
label_colors.json in the plugin's config folder) apply, unless --default-colors is given.

No Qt and no screen: numpy + PIL only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import coloring as col
from .curation.bins import bin_grid
from .curation.editor import label_order_of

PANEL_WIDTH = 240  # the colorbar / legend panel right of the slide
BACKGROUND = (255, 255, 255)
TEXT_COLOR = (20, 20, 20)


def _slide_extent(slide) -> tuple[int, int]:
    """(height, width) in full-resolution pixels: the image's, else the spots' bounding box."""
    levels = slide.image_levels
    if levels:
        scale = slide.image_scale
        return int(round(levels[0].shape[0] * scale)), int(round(levels[0].shape[1] * scale))
    far = slide.positions + slide.diameters[:, None]
    return int(np.ceil(far[:, 0].max())) + 1, int(np.ceil(far[:, 1].max())) + 1


def render_scale(slide, width: int) -> float:
    """Output pixels per full-resolution pixel: a point (y, x) lands at pixel (y*s, x*s)."""
    return width / _slide_extent(slide)[1]


def _background(slide, width: int, height: int):
    from PIL import Image

    levels = slide.image_levels
    if not levels:
        return Image.new("RGBA", (width, height), BACKGROUND + (255,))
    # the smallest pyramid level that still has enough pixels, so huge slides are not read whole
    level = next((lv for lv in reversed(levels) if lv.shape[1] >= width), levels[0])
    array = np.asarray(level)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    image = Image.fromarray(np.ascontiguousarray(array[..., :3]).astype(np.uint8), "RGB")
    return image.resize((width, height), Image.Resampling.LANCZOS).convert("RGBA")


def _draw_spots(base, positions: np.ndarray, radii: np.ndarray, rgba: np.ndarray, opacity: float, scale: float):
    """Discs of the true radius; spot alpha x opacity is blended over the image like the canvas does."""
    from PIL import Image, ImageDraw

    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    colors = np.clip(np.round(rgba * 255), 0, 255).astype(np.uint8)
    colors[:, 3] = np.round(colors[:, 3] * opacity).astype(np.uint8)
    # napari puts pixel centres at integer coordinates; PIL pixel k spans [k, k+1)
    centres = (positions + 0.5) * scale
    r = radii * scale
    for (cy, cx), radius, color in zip(centres, r, colors, strict=True):
        if color[3] == 0:
            continue
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=tuple(int(c) for c in color))
    return Image.alpha_composite(base, overlay)


def _draw_bins(base, grid, rgba: np.ndarray, opacity: float, scale: float):
    """A bin slide's colours as its raster: one square per bin, the lattice's pitch, origin and
    tilt (as the napari layer places it), nearest-neighbour so bins keep sharp edges."""
    from PIL import Image

    colors = np.clip(np.round(rgba * 255), 0, 255).astype(np.uint8)
    colors[:, 3] = np.round(colors[:, 3] * opacity).astype(np.uint8)
    raster = np.zeros((*grid.shape, 4), dtype=np.uint8)
    raster.reshape(-1, 4)[grid.flat_index] = colors
    # PIL maps each output pixel centre (X, Y) back to a raster point: output -> full-resolution
    # (row, col) = (Y, X) / scale - 0.5 (napari centres pixels on integers), then the inverse of
    # the grid's affine, then +0.5 (PIL's raster pixel k spans [k, k+1)).
    c, s = np.cos(grid.angle), np.sin(grid.angle)
    to_local = np.array([[c, s], [-s, c]]) / grid.pitch  # R^T / pitch, (row, col) order
    shift = 0.5 - to_local @ (np.asarray(grid.origin) + 0.5)
    coefficients = (
        to_local[1, 1] / scale, to_local[1, 0] / scale, shift[1],
        to_local[0, 1] / scale, to_local[0, 0] / scale, shift[0],
    )
    overlay = Image.fromarray(raster, "RGBA").transform(
        base.size, Image.Transform.AFFINE, coefficients, resample=Image.Resampling.NEAREST, fillcolor=(0, 0, 0, 0)
    )
    return Image.alpha_composite(base, overlay)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _colorbar_panel(height: int, coloring: col.GeneColoring, limits: tuple[float, float], title: str | None = None):
    from PIL import Image, ImageDraw

    panel = Image.new("RGBA", (PANEL_WIDTH, height), BACKGROUND + (255,))
    draw = ImageDraw.Draw(panel)
    title_font, tick_font = _font(14), _font(12)
    draw.text((12, 10), _wrap(title or coloring.title, 28), fill=TEXT_COLOR, font=title_font)
    top, bar_h = 60, max(60, min(height - 90, 360))
    ramp = col.colormap_ramp(coloring.colormap, bar_h)[::-1]  # high values at the top
    bar = np.repeat((ramp[:, None, :3] * 255).astype(np.uint8), 28, axis=1)
    panel.paste(Image.fromarray(bar, "RGB"), (14, top))
    draw.rectangle((14, top, 14 + 27, top + bar_h - 1), outline=TEXT_COLOR)
    lo, hi = limits
    for tick in col.colorbar_ticks(limits):
        frac = (tick - lo) / (hi - lo) if hi > lo else 0.0
        y = top + (bar_h - 1) * (1.0 - frac)
        draw.line((42, y, 48, y), fill=TEXT_COLOR)
        draw.text((52, y - 7), col.format_tick(tick), fill=TEXT_COLOR, font=tick_font)
    if coloring.non_expressing == "grey":
        y = top + bar_h + 12
        draw.rectangle((14, y, 41, y + 14), fill=tuple(int(c * 255) for c in col.NON_EXPRESSING_GREY[:3]))
        draw.text((52, y), "not expressed", fill=TEXT_COLOR, font=tick_font)
    return panel


def _legend_panel(height: int, entries: Sequence[col.LegendEntry], title: str):
    from PIL import Image, ImageDraw

    panel = Image.new("RGBA", (PANEL_WIDTH, height), BACKGROUND + (255,))
    draw = ImageDraw.Draw(panel)
    draw.text((12, 10), title, fill=TEXT_COLOR, font=_font(14))
    font = _font(12)
    row = 22
    for k, entry in enumerate(entries):
        y = 40 + k * row
        if y + row > height:
            draw.text((12, y), f"... {len(entries) - k} more", fill=TEXT_COLOR, font=font)
            break
        draw.rectangle((14, y, 30, y + 16), fill=None if entry.color == col.NOT_DRAWN else entry.color, outline=TEXT_COLOR)
        draw.text((38, y + 1), f"{_clip(entry.label, 24)} ({entry.count})", fill=TEXT_COLOR, font=font)
    return panel


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _wrap(text: str, n: int) -> str:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > n:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "\n".join(lines[:3])


def render_slide(
    slide,
    genes: str | Sequence[str] | None = None,
    *,
    label: bool = False,
    label_column: str = "label",
    colormap: str = "viridis",
    transform: str | None = None,  # None: the colour widget's default for the slide (`coloring.default_transform`)
    contrast_limits: tuple[float, float] | None = None,
    non_expressing: str = "transparent",
    opacity: float = 0.9,
    hidden_labels: Iterable[str] = (),
    palette: col.LabelPalette | None = None,
    width: int = 1200,
    panel: bool = True,
) -> np.ndarray:
    """The slide as an (H, W, 3) uint8 RGB array, `width` pixels wide for the slide itself plus
    a colorbar (gene mode) or legend (label mode) panel on the right when `panel` is true.

    With neither `genes` nor `label`, spots are drawn as plain grey discs.
    """
    from PIL import Image

    if genes is not None and label:
        raise ValueError("colour by genes or by label, not both")
    full_h, full_w = _slide_extent(slide)
    scale = width / full_w
    height = max(1, int(round(full_h * scale)))
    canvas = _background(slide, width, height)

    side = None
    visible = np.ones(slide.n_spots, dtype=bool)
    grid = bin_grid(slide)
    if genes is not None:
        genes = col.parse_gene_list(genes) if isinstance(genes, str) else list(genes)
        transform = col.default_transform(slide) if transform is None else transform
        coloring = col.GeneColoring(tuple(genes), transform, colormap, contrast_limits, non_expressing)
        values = coloring.values(slide)
        coloring = coloring.with_limits(values)
        rgba = col.gene_colors(values, coloring)
        side = _colorbar_panel(height, coloring, coloring.contrast_limits) if panel else None
    elif label:
        values = slide.features([])[label_column].to_numpy() if label_column != "label" else slide.labels
        order = None
        if palette is None:  # the user's colours: the curated labels as the viewer shows them
            palette = col.LabelPalette()
            if label_column == "label":
                path = slide.source.save_target.path
                palette, order = palette.for_annotation(path), label_order_of(path, values)
        rgba = col.label_colors(values, palette, hidden_labels, order)  # hidden spots: alpha 0, as on screen
        visible = col.visible_mask(values, hidden_labels)
        entries = col.legend_entries(values, palette, order)
        if grid is not None:  # unlabelled bins are not painted, as on screen (`BinsColoring.legend_entries`)
            visible &= col.display_labels(values) != col.UNLABELLED
            entries = col.with_unlabelled_not_drawn(entries)
        if panel:
            hidden = set(hidden_labels)
            side = _legend_panel(height, [e for e in entries if e.label not in hidden], label_column)
    else:
        rgba = np.tile(col.NON_EXPRESSING_GREY, (slide.n_spots, 1))

    if grid is not None:  # a VisiumHD bin grid: squares tiling the tissue, as the napari raster shows them
        canvas = _draw_bins(canvas, grid, col.hide_spots(rgba, visible), opacity, scale)
    else:
        canvas = _draw_spots(
            canvas, slide.positions[visible], slide.diameters[visible] / 2, rgba[visible], opacity, scale
        )
    if side is not None:
        out = Image.new("RGBA", (canvas.width + side.width, max(canvas.height, side.height)), BACKGROUND + (255,))
        out.paste(canvas, (0, 0))
        out.paste(side, (canvas.width, 0))
        canvas = out
    return np.asarray(canvas.convert("RGB"))


TITLE_HEIGHT = 40  # the strip above the three panels of a prediction comparison


def render_prediction_comparison(
    slide,
    predictions,
    gene: str,
    *,
    colormap: str = "viridis",
    residual_colormap: str = col.RESIDUAL_COLORMAP,
    contrast_limits: tuple[float, float] | None = None,
    opacity: float = 0.9,
    width: int = 600,
) -> np.ndarray:
    """Measured log1p, predicted, and residual (predicted - measured) of `gene`, side by side as
    (H, W, 3) uint8 RGB: each panel `width` pixels wide with its colorbar, the gene's Pearson r
    (as in `predictions.compare`) in a title strip above.

    Measured and predicted share ONE colour range (`contrast_limits`, else autoscaled over both);
    the residual's range is symmetric around 0 (99th percentile of |residual|). Colours are
    `coloring.ComparisonColors`' (the viewer's compare view shows the same).
    """
    from PIL import Image, ImageDraw

    from .io.predictions import compare

    measured = col.transform_values(slide.gene_values(gene), "log1p")  # KeyError when not measured
    predicted = predictions.gene_values(gene)  # KeyError when not predicted
    result = compare(slide, predictions.subset([gene]))
    name = str(result.table.index[0])
    r = float(result.table["pearson_r"].iloc[0])
    shown = col.ComparisonColors.of(name, measured, predicted, colormap, contrast_limits, residual_colormap)
    panels = zip(
        shown.colors(),
        (shown.measured_coloring, shown.predicted_coloring, shown.residual_coloring),
        (f"{name} measured · log1p", f"{name} predicted · log1p", f"{name} residual: predicted - measured"),
        strict=True,
    )
    full_h, full_w = _slide_extent(slide)
    scale = width / full_w
    height = max(1, round(full_h * scale))
    panel_w = width + PANEL_WIDTH
    out = Image.new("RGBA", (3 * panel_w, TITLE_HEIGHT + height), BACKGROUND + (255,))
    background = _background(slide, width, height)
    for k, (rgba, coloring, title) in enumerate(panels):
        canvas = _draw_spots(background, slide.positions, slide.diameters / 2, rgba, opacity, scale)
        out.paste(canvas, (k * panel_w, TITLE_HEIGHT))
        out.paste(_colorbar_panel(height, coloring, coloring.contrast_limits, title), (k * panel_w + width, TITLE_HEIGHT))
    r_text = f"{r:.3f}" if np.isfinite(r) else "undefined (a side is constant)"
    ImageDraw.Draw(out).text(
        (12, 10), f"{name}: Pearson r = {r_text} over {result.n_spots} spots  ({predictions.name})",
        fill=TEXT_COLOR, font=_font(18),
    )
    return np.asarray(out.convert("RGB"))


def render_side_by_side(
    slides: Sequence,
    genes: str | Sequence[str],
    *,
    shared: bool = True,
    colormap: str = "viridis",
    transform: str | None = None,  # None: the first slide's default (`coloring.default_transform`)
    non_expressing: str = "transparent",
    opacity: float = 0.9,
    width: int = 600,
) -> np.ndarray:
    """Slides in a row, each `width` pixels wide under a strip with its name, coloured by one gene
    (or gene-set score) as (H, W, 3) uint8 RGB. `shared`: one colour range over all slides and one
    colorbar on the right, so one value has one colour in every tile; else each slide its own
    range and colorbar. A slide lacking the gene raises KeyError naming it."""
    from PIL import Image, ImageDraw

    genes = tuple(col.parse_gene_list(genes) if isinstance(genes, str) else genes)
    transform = col.default_transform(slides[0]) if transform is None else transform  # one for every tile
    coloring = col.GeneColoring(genes, transform, colormap, None, non_expressing)
    values = []
    for slide in slides:
        try:
            values.append(coloring.values(slide))
        except KeyError as exc:
            raise KeyError(f"{slide.name}: {exc.args[0] if exc.args else exc}") from exc
    limits = col.side_by_side_limits(values, shared)
    tiles = [
        render_slide(slide, genes, colormap=colormap, transform=transform, contrast_limits=lim,
                     non_expressing=non_expressing, opacity=opacity, width=width, panel=not shared)
        for slide, lim in zip(slides, limits, strict=True)
    ]
    tile_w = max(t.shape[1] for t in tiles)
    height = TITLE_HEIGHT + max(t.shape[0] for t in tiles)
    bar = _colorbar_panel(height - TITLE_HEIGHT, replace(coloring, contrast_limits=limits[0]), limits[0]) if shared else None
    out = Image.new("RGBA", (len(tiles) * tile_w + (bar.width if bar else 0), height), BACKGROUND + (255,))
    draw = ImageDraw.Draw(out)
    for k, (slide, tile) in enumerate(zip(slides, tiles, strict=True)):
        out.paste(Image.fromarray(tile).convert("RGBA"), (k * tile_w, TITLE_HEIGHT))
        draw.text((k * tile_w + 8, 10), _clip(slide.name, max(8, tile_w // 8)), fill=TEXT_COLOR, font=_font(14))
    if bar is not None:
        out.paste(bar, (len(tiles) * tile_w, TITLE_HEIGHT))
    return np.asarray(out.convert("RGB"))


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "render",
        help="render a slide (image + coloured spots + colorbar/legend) to a PNG, no screen needed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", nargs="+",
                   help="any file of the slide (image, coord, count or annotation); several slides with --gene "
                        "are drawn side by side with one shared colour range")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--per-slide-range", action="store_true",
                   help="side by side: each slide its own colour range and colorbar (default: one shared range)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--gene", help="gene name; several (comma separated) colour by their mean (gene-set score)")
    what.add_argument("--label", action="store_true", help="colour by the pathologist label")
    p.add_argument("--label-column", default="label", help="categorical spot feature for --label (default: label)")
    p.add_argument("--hide-label", action="append", default=[], metavar="LABEL",
                   help=f"leave spots with this label out (repeatable; {col.UNLABELLED!r} for unlabelled)")
    p.add_argument("--default-colors", action="store_true",
                   help="use the built-in label colours, ignoring your label colour overrides (picked in the "
                        "Color spots widget, kept in label_colors.json in the config folder), for reproducible "
                        "figures. Without it, your label colour overrides apply")
    p.add_argument("--colormap", default="viridis", help="napari colormap name (default viridis)")
    p.add_argument("--transform", default=None, choices=list(col.TRANSFORMS),
                   help="value transform (default log1p; raw for a slide whose values are already normalised)")
    p.add_argument("--clim", nargs=2, type=float, metavar=("LOW", "HIGH"),
                   help="contrast limits (default: 1st-99th percentile of expressing spots)")
    p.add_argument("--non-expressing", default="transparent", choices=list(col.NON_EXPRESSING_MODES))
    p.add_argument("--opacity", type=float, default=0.9)
    p.add_argument("--width", type=int, default=1200, help="width of the slide in the PNG, pixels")
    p.add_argument("--no-panel", action="store_true", help="leave out the colorbar / legend")
    p.add_argument("--predictions", metavar="PRED.h5ad",
                   help="with --compare and --gene: predicted expression (e.g. STPath's .h5ad) to set beside the counts")
    p.add_argument("--barcodes", metavar="EMB.h5",
                   help="the embeddings .h5 the predictions were made from (its 'barcodes' place the rows)")
    p.add_argument("--compare", action="store_true",
                   help="three panels: measured log1p, predicted (one shared colour range) and residual "
                        "predicted - measured (diverging, centred on 0), each with its colorbar, r in the title; "
                        "--width is per panel")
    p.set_defaults(func=_cmd_render)
    return p


def _check_colormap(name: str) -> str | None:
    """None when napari knows the colormap, else a short message with the closest names."""
    import difflib

    from napari.utils.colormaps import AVAILABLE_COLORMAPS, ensure_colormap

    try:
        ensure_colormap(name)
        return None
    except (KeyError, ValueError, TypeError):
        close = difflib.get_close_matches(name, list(AVAILABLE_COLORMAPS), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; try viridis, magma, inferno, turbo or gray"
        return f"unknown colormap {name!r}{hint}"


def _gene_suggestions(slide, genes_text: str | None) -> str:
    """'; did you mean ...' for the first gene of `genes_text` that the slide lacks."""
    if not genes_text or slide.expression is None:
        return ""
    search = col.GeneSearch.for_slide(slide)
    for gene in (g.strip() for g in genes_text.split(",")):
        if gene and not search.is_gene(gene):
            found = search.suggestions(gene)
            return f"; did you mean {', '.join(found)}?" if found else ""
    return ""


def _cmd_render(args) -> int:
    from .io.registry import load_slide

    problem = _check_colormap(args.colormap)
    if problem is None and args.clim and not args.clim[0] < args.clim[1]:
        problem = f"--clim LOW HIGH needs LOW < HIGH (got {args.clim[0]:g} {args.clim[1]:g})"
    if problem:
        print(f"napari-stimage render: {problem}", file=sys.stderr)
        return 2
    if len(args.path) > 1:
        return _cmd_render_side_by_side(args)
    args.path = args.path[0]
    if args.compare or args.predictions:
        return _cmd_render_comparison(args)
    slide = load_slide(args.path)
    try:
        image = render_slide(
            slide,
            args.gene,
            label=args.label,
            label_column=args.label_column,
            colormap=args.colormap,
            transform=args.transform,
            contrast_limits=tuple(args.clim) if args.clim else None,
            non_expressing=args.non_expressing,
            opacity=args.opacity,
            hidden_labels=args.hide_label,
            palette=col.LabelPalette(user_colors=False) if args.default_colors else None,
            width=args.width,
            panel=not args.no_panel,
        )
    except KeyError as exc:  # unknown gene / column: a message, not a traceback
        message = exc.args[0] if exc.args else str(exc)
        print(f"napari-stimage render: {message}{_gene_suggestions(slide, args.gene)}", file=sys.stderr)
        return 2
    _save_png(image, args.out)
    return 0


def _save_png(image: np.ndarray, out: str, detail: str = "") -> None:
    from PIL import Image

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(out)
    print(f"wrote {out} ({image.shape[1]}x{image.shape[0]}{detail})")


def _cmd_render_side_by_side(args) -> int:
    from .io.registry import load_slide

    if not args.gene or args.label or args.compare or args.predictions:
        print("napari-stimage render: several slides are drawn side by side by one --gene (no --label, --compare)",
              file=sys.stderr)
        return 2
    slides = [load_slide(path) for path in args.path]
    try:
        image = render_side_by_side(
            slides, args.gene, shared=not args.per_slide_range, colormap=args.colormap, transform=args.transform,
            non_expressing=args.non_expressing, opacity=args.opacity, width=args.width,
        )
    except KeyError as exc:
        print(f"napari-stimage render: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    _save_png(image, args.out, f", {len(slides)} slides")
    return 0


def _cmd_render_comparison(args) -> int:
    from .io.predictions import load_predictions
    from .io.registry import load_slide

    if not (args.compare and args.predictions and args.gene) or args.label or "," in args.gene:
        print("napari-stimage render: a comparison needs --compare, --predictions PRED.h5ad and one --gene",
              file=sys.stderr)
        return 2
    slide = load_slide(args.path)
    predictions = load_predictions(slide, args.predictions, args.barcodes)
    try:
        image = render_prediction_comparison(
            slide,
            predictions,
            args.gene.strip(),
            colormap=args.colormap,
            contrast_limits=tuple(args.clim) if args.clim else None,
            opacity=args.opacity,
            width=args.width,
        )
    except KeyError as exc:  # gene on neither or only one side
        message = exc.args[0] if exc.args else str(exc)
        print(f"napari-stimage render: {message}{_gene_suggestions(slide, args.gene)}", file=sys.stderr)
        return 2
    _save_png(image, args.out)
    return 0
