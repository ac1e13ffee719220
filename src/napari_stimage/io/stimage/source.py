"""The source object of an STimage-1K4M slide: its files (`SlidePaths`) seen through `SlideSource`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...core.progress import CancelCallback, ProgressCallback
from ...core.source import SaveTarget
from .layout import SlidePaths


@dataclass(frozen=True)
class STimageSource:
    paths: SlidePaths

    @property
    def name(self) -> str:
        return self.paths.name

    @property
    def technology(self) -> str | None:
        return self.paths.tech

    @property
    def location(self) -> Path:
        return self.paths.coord

    @property
    def save_target(self) -> SaveTarget:
        """The slide's `_anno.csv`: the dataset's own file, or where a new one belongs."""
        return SaveTarget(self.paths.annotation or self.paths.default_annotation_path)

    def load_image(
        self,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
        notes: list[str] | None = None,
    ) -> list | None:
        if self.paths.image is None:
            return None
        from ..images import read_image

        return read_image(self.paths.image, progress=progress, cancel=cancel, notes=notes)
