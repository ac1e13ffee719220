"""Command line: `napari-stimage demo | open PATH | render PATH --out FILE.png | make-sample DIR | convert ROOT |
predictions PATH PRED.h5ad --out results.json | slides ROOT | browse ROOT | export SLIDE --to OUT.h5ad`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _cmd_demo(args) -> int:
    from ._sample_data import sample_slide_paths

    return _open_in_napari(sample_slide_paths().coord)


def _cmd_open(args) -> int:
    from .io import registry

    if not Path(args.path).exists():  # a file, or a folder (Space Ranger outs/, SpatialData .zarr)
        print(f"napari-stimage: {args.path}: no such file or folder", file=sys.stderr)
        return 2
    if registry.resolve(args.path) is None:
        print(f"napari-stimage: {args.path}: {registry.not_a_slide('expected')}", file=sys.stderr)
        return 2
    return _open_in_napari(args.path)


def _open_in_napari(path) -> int:
    import napari

    from ._qt.loading import open_slide_in_viewer

    viewer = napari.Viewer(title=f"napari-stimage: {path}")
    open_slide_in_viewer(viewer, path)
    napari.run()
    return 0


def _cmd_make_sample(args) -> int:
    from .synthetic import write_synthetic_slide

    paths = write_synthetic_slide(args.out)
    print(f"wrote slide {paths.name}: {paths.image}")
    return 0


def _cmd_slides(args) -> int:
    from .io.catalogue import format_table, load_catalogue

    catalogue = load_catalogue(args.root)
    shown = catalogue.filter(
        tech=args.tech, species=args.species, tissue=args.tissue, cancer=True if args.cancer else None,
        annotated=True if args.annotated else None, on_disk=True if args.on_disk else None, search=args.search,
    )
    if args.format == "csv":
        shown.to_csv(sys.stdout, index=False)
    else:
        print(format_table(shown))
    print(f"{len(shown)} of {len(catalogue)} slides", file=sys.stderr)
    return 0


def _cmd_browse(args) -> int:
    from .io.catalogue import load_catalogue

    load_catalogue(args.root)  # a bad root fails here with a message, before a window opens
    import napari

    viewer = napari.Viewer(title=f"napari-stimage: {args.root}")
    _, browser = viewer.window.add_plugin_dock_widget("napari-stimage", "Browse slides")
    browser.set_root(args.root)
    napari.run()
    return 0


def _add_predictions_parser(sub) -> argparse.ArgumentParser:
    from .io import predictions

    p = sub.add_parser(
        "predictions",
        help="judge predicted expression (e.g. STPath's .h5ad) against a slide's counts",
        description=predictions.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", help="any file of the slide (image, coord, count or annotation)")
    p.add_argument("predictions", nargs="+", help="prediction .h5ad file(s); several give a column set per model")
    p.add_argument("--barcodes", action="append", default=[], metavar="EMB.h5",
                   help="the embeddings .h5 a prediction was made from (its 'barcodes' place the rows); "
                        "once for all prediction files, or once per file in the same order")
    p.add_argument("--out", required=True, help="results.json (HEST's format, one model) or table.csv")
    p.set_defaults(func=_cmd_predictions)
    return p


def _barcodes_per_file(barcodes: Sequence[str], n_files: int) -> list[str | None]:
    """The --barcodes of each prediction file: none, one for all, or one each."""
    if not barcodes:
        return [None] * n_files
    if len(barcodes) == 1:
        return list(barcodes) * n_files
    if len(barcodes) != n_files:
        raise ValueError(f"{len(barcodes)} --barcodes for {n_files} prediction files: give one, or one per file")
    return list(barcodes)


def _cmd_predictions(args) -> int:
    from .io.predictions import compare, load_predictions, write_results
    from .io.registry import load_slide

    out = Path(args.out)
    if out.suffix.lower() not in (".json", ".csv") or (out.suffix.lower() == ".json" and len(args.predictions) > 1):
        print("napari-stimage predictions: --out must be results.json (one prediction file) or a .csv table",
              file=sys.stderr)
        return 2
    try:
        per_file = _barcodes_per_file(args.barcodes, len(args.predictions))
    except ValueError as exc:
        print(f"napari-stimage predictions: {exc}", file=sys.stderr)
        return 2
    slide = load_slide(args.path)
    comparisons = [
        compare(slide, load_predictions(slide, pred, barcodes)) for pred, barcodes in zip(args.predictions, per_file, strict=True)
    ]
    write_results(out, comparisons)
    for c in comparisons:
        print(c.summary())
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-stimage", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="open napari on the bundled synthetic slide").set_defaults(func=_cmd_demo)
    p = sub.add_parser("open", help="open a slide (any of its files) in napari")
    p.add_argument("path")
    p.set_defaults(func=_cmd_open)
    p = sub.add_parser("make-sample", help="write the synthetic sample slide in the dataset layout")
    p.add_argument("out")
    p.set_defaults(func=_cmd_make_sample)
    p = sub.add_parser("slides", help="list a dataset's slides from its meta table and disk, filtered")
    p.add_argument("root", help="dataset root (STimage-1K4M or HEST-1k), or its meta table")
    p.add_argument("--tech")
    p.add_argument("--species", help="matches each part of combined values such as 'human & mouse'")
    p.add_argument("--tissue", help="synonyms grouped (lymphnode = lymph node); 'kidney' matches brain+kidney")
    p.add_argument("--cancer", action="store_true", help="only slides the meta table guesses involve cancer")
    p.add_argument("--annotated", action="store_true", help="only slides with a pathologist annotation file")
    p.add_argument("--on-disk", action="store_true", help="only slides whose files are all present")
    p.add_argument("--search", help="words that must all appear in slide, title, keywords or abstract")
    p.add_argument("--format", choices=("table", "csv"), default="table")
    p.set_defaults(func=_cmd_slides)
    p = sub.add_parser("browse", help="open napari with the slide browser on a dataset root")
    p.add_argument("root", help="dataset root (STimage-1K4M or HEST-1k), or its meta table")
    p.set_defaults(func=_cmd_browse)

    from . import render

    render.add_parser(sub)
    from . import convert

    convert.add_parser(sub)
    from . import export

    export.add_parser(sub)
    _add_predictions_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as exc:
        from .core.errors import SlideError

        if isinstance(exc, SlideError):
            print(f"napari-stimage: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    raise SystemExit(main())
