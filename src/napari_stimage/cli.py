"""Command line: `napari-stimage demo | open PATH | render PATH --out FILE.png | make-sample DIR | convert ROOT |
predictions PATH PRED.h5ad --out results.json | slides ROOT`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_demo(args) -> int:
    from ._sample_data import sample_slide_paths

    return _open_in_napari(sample_slide_paths().coord)


def _cmd_open(args) -> int:
    from .layout import resolve_slide

    if not Path(args.path).is_file():
        print(f"napari-stimage: {args.path}: no such file", file=sys.stderr)
        return 2
    if resolve_slide(args.path) is None:
        print(
            f"napari-stimage: {args.path}: not a file of an STimage-1K4M slide "
            "(expected {slide}_coord.csv, _count.csv, _anno.csv or {slide}.png in the dataset layout)",
            file=sys.stderr,
        )
        return 2
    return _open_in_napari(args.path)


def _open_in_napari(path) -> int:
    import napari

    from ._loading import open_slide_in_viewer

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
    from .catalogue import format_table, load_catalogue

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

    from . import render

    render.add_parser(sub)
    from . import convert

    convert.add_parser(sub)
    from . import predictions

    predictions.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as exc:
        from .errors import SlideError

        if isinstance(exc, SlideError):
            print(f"napari-stimage: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    raise SystemExit(main())
