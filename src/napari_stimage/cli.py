"""Command line: `napari-stimage demo | open PATH | render PATH --out FILE.png | make-sample DIR | convert ROOT`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_demo(args) -> int:
    from ._sample_data import sample_slide_paths

    return _open_in_napari(sample_slide_paths().coord)


def _cmd_open(args) -> int:
    from .io import registry

    if not Path(args.path).is_file():
        print(f"napari-stimage: {args.path}: no such file", file=sys.stderr)
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

    from . import render

    render.add_parser(sub)
    from . import convert

    convert.add_parser(sub)
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
