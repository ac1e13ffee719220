"""`napari-stimage export SLIDE --to OUT.h5ad|OUT.zarr`: any slide a registered reader opens, written in
scanpy/squidpy conventions (`Slide.to_anndata`) as `.h5ad`, or as a SpatialData `.zarr` (extra
`[spatialdata]`). The npe2 writer (File > Save on a spots layer) goes through `export_slide` too.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

FORMATS = {".h5ad": "AnnData (scanpy/squidpy)", ".zarr": "SpatialData (needs napari-stimage[spatialdata])"}


def export_slide(slide, path: str | Path, labels=None) -> Path:
    """Write `slide` (with `labels`, one per spot, e.g. a label editor's current ones) to `path`;
    the suffix picks the format. Atomic: an existing file is replaced only once the new one is complete."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".h5ad":
        from .io.anndata import write_h5ad

        return write_h5ad(slide, path, labels=labels)
    if suffix == ".zarr":
        from .io.spatialdata import write_zarr

        return write_zarr(slide, path, labels=labels)
    raise ValueError(f"{path}: cannot export to {suffix or 'a file without suffix'}; use {' or '.join(FORMATS)}")


def _cmd_export(args) -> int:
    from .io.registry import load_slide

    out = Path(args.to)
    if out.suffix.lower() not in FORMATS:
        print(f"napari-stimage export: --to must end in {' or '.join(FORMATS)}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    slide = load_slide(args.slide)
    written = export_slide(slide, out)
    print(f"wrote {written} ({slide.n_spots} spots, {time.perf_counter() - start:.1f} s)")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write a slide (any readable source, its saved labels) as .h5ad (scanpy/squidpy) or SpatialData .zarr",
        description=__doc__,
    )
    p.add_argument("slide", help="any file of the slide (STimage coord/count/image, .h5ad, Space Ranger outs/, ...)")
    p.add_argument("--to", required=True, metavar="OUT.h5ad|OUT.zarr")
    p.set_defaults(func=_cmd_export)
