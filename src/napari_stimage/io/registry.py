"""The one list of slide readers. `load_slide`, the npe2 reader, `napari-stimage open`, `render`
and `convert` all ask it which reader owns a path, so a new format is one module that registers
itself here (see docs/architecture.md).

A reader module calls `register(SlideReader(...))` when imported; the built-in ones are listed in
`BUILTIN_READERS` and imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import SlideError
from ..core.progress import CancelCallback, ProgressCallback
from ..core.slide import Slide

# Asked in this order: a file two readers could open goes to the first (HEST's `st/{id}.h5ad`
# before the generic AnnData reader).
BUILTIN_READERS = (
    "napari_stimage.io.hest",
    "napari_stimage.io.stimage",
    "napari_stimage.io.anndata",
    "napari_stimage.io.spaceranger",
    "napari_stimage.io.spatialdata",
)


@dataclass(frozen=True)
class CachePlan:
    """What `napari-stimage convert` prepares for one slide before it is first opened: the
    expression cache of a dense count CSV and the pyramid of a large PNG/JPEG image (either may
    be None). A format whose caches are built another way gives `is_converted()` and
    `convert(progress=, cancel=) -> (expression state, image state)` instead. A reader says it
    through its `cache_plan` hook; convert needs nothing else."""

    name: str
    count: Path | None = None
    image: Path | None = None
    is_converted: Callable[[], bool] | None = None
    convert: Callable[..., tuple[str, str]] | None = None


@dataclass(frozen=True)
class SlideReader:
    name: str
    kind: str  # "an STimage-1K4M slide": what the reader opens, for messages
    missing: str  # why a path was not recognised, briefly (for `load_slide`'s error)
    expected: str  # which files it opens (for the command line's error)
    # a path (or this reader's own handle) -> the reader's handle of its slide; None when the
    # path is not this reader's. Never raises: the npe2 reader calls it on any file.
    resolve: Callable[[object], object | None]
    read: Callable[..., Slide]  # read(handle, progress=, decode_image=, cancel=) -> Slide
    find: Callable[[Path], list]  # the handles of every slide under a folder, sorted by name
    # a handle -> what `convert` prepares for its slide; None: the reader's slides need no cache
    cache_plan: Callable[[object], CachePlan] | None = None


_readers: dict[str, SlideReader] = {}


def register(reader: SlideReader) -> None:
    """Add a reader (a reader registered again under its name replaces the earlier one)."""
    _readers[reader.name] = reader


def readers() -> list[SlideReader]:
    for module in BUILTIN_READERS:
        importlib.import_module(module)  # not a static import: reader modules import this one
    return list(_readers.values())


def resolve(path) -> tuple[SlideReader, object] | None:
    """The reader that owns `path` and its handle of the slide, or None. Never raises."""
    for reader in readers():
        handle = reader.resolve(path)
        if handle is not None:
            return reader, handle
    return None


def not_a_slide(detail: str = "missing") -> str:
    """The message for a path no reader owns: "not a file of <kind> (<detail>)" per reader."""
    return " or ".join(f"not a file of {r.kind} ({getattr(r, detail)})" for r in readers())


def load_slide(
    path,
    progress: ProgressCallback | None = None,
    decode_image: bool = False,
    cancel: CancelCallback | None = None,
) -> Slide:
    """Load the slide that `path` (any of its files) belongs to. Raises SlideError on bad input.

    With `decode_image` the image is decoded too (its pyramid built on first use), and
    `progress` covers both steps; an image that cannot be decoded is then reported in
    `slide.report.image_error` and the slide opens without it. Otherwise the image is decoded
    when first asked for (and a bad one raises then). When `cancel()` turns True the long steps
    stop and `core.progress.Cancelled` is raised; nothing half-built is left in the cache.
    """
    found = resolve(path)
    if found is None:
        raise SlideError(path, not_a_slide())
    reader, handle = found
    return reader.read(handle, progress=progress, decode_image=decode_image, cancel=cancel)


def find_slides(root: str | Path) -> list:
    """Every slide under `root`, as its reader's handles, reader by reader."""
    return [handle for reader in readers() for handle in reader.find(Path(root))]


def cache_plans(root: str | Path) -> list[CachePlan]:
    """What `convert` prepares for every slide under `root`, from the readers that build caches."""
    return [reader.cache_plan(handle) for reader in readers() if reader.cache_plan is not None
            for handle in reader.find(Path(root))]
