"""What a slide knows about where it came from: a small source object (Qt-free, format-agnostic).

Each reader in `io/` gives the slides it builds a source (`io.stimage.source.STimageSource` for
STimage-1K4M); `Slide` asks it for its name, technology and image, and the label editor asks
it where labels are saved. Nothing in core/ knows a file layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .progress import CancelCallback, ProgressCallback


@dataclass(frozen=True)
class SaveTarget:
    """Where a slide's labels are saved: an annotation CSV (STimage-1K4M's `_anno.csv` format).

    The file may not exist yet; the first save creates it.
    """

    path: Path


@dataclass(frozen=True)
class Overlay:
    """Optional geometry a source shows over its slide (a source's `load_overlays(notes)` returns
    them; the viewer draws outlines as a Shapes layer, points as one Points layer).

    Coordinates are napari (row, col) = (y, x) in full-resolution pixels.
    """

    name: str
    kind: str  # "outlines": `data` is a list of (n, 2) rings | "points": `data` is (n, 2)
    data: object
    colors: np.ndarray | None = None  # "points": (n, 3|4) RGB(A) in 0..1, one per point
    classes: np.ndarray | None = None  # "points": per point its class name (a point feature)
    size: float = 10.0  # "points": diameter in full-resolution pixels
    color: str = "#00e5ff"  # "outlines": edge colour


class LabelTable(Protocol):
    """The labels a source holds, as read (STimage: `io.stimage.annotation.AnnotationTable`)."""

    def first_labels(self) -> dict[str, str]:
        """Spot id -> its label (the first row wins when an id repeats)."""
        ...


class SlideSource(Protocol):
    """Where a slide came from, as far as the rest of the package needs to know."""

    @property
    def name(self) -> str: ...

    @property
    def technology(self) -> str | None:
        """ST, Visium, VisiumHD, ... (None when the source does not say)."""
        ...

    @property
    def location(self) -> Path:
        """The file that identifies the slide (recorded in exports, named in messages)."""
        ...

    @property
    def save_target(self) -> SaveTarget: ...

    # Optional: `image_scale`, full-resolution pixels per pixel of the image `load_image` returns
    # (a source whose image is a downscaled copy, e.g. a Visium hires PNG: 1 / tissue_hires_scalef).
    # `Slide.image_scale` reads it and defaults to 1.

    def load_image(
        self,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
        notes: list[str] | None = None,
    ) -> list | None:
        """The H&E image as pyramid levels (largest first), or None when the slide has none.
        What the user should know but need not stop for (e.g. no cache) is appended to `notes`."""
        ...
