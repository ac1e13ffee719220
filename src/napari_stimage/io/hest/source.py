"""The source object of a HEST-1k sample: its files, metadata and image placement (`SlideSource`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...core.progress import CancelCallback, ProgressCallback
from ...core.source import SaveTarget
from .layout import HestSample

# What a user looks for first, in this order (metadata JSON key -> shown as)
SUMMARY_KEYS = (("st_technology", "technology"), ("organ", "organ"), ("species", "species"),
                ("oncotree_code", "oncotree"))


@dataclass(frozen=True)
class HestSource:
    sample: HestSample
    metadata: dict = field(default_factory=dict, compare=False)  # the sample's JSON (NaN -> None)
    # the h5ad's thumbnail and its scale factor (thumbnail px per full-res px), for st/-only downloads
    thumbnail: np.ndarray | None = field(default=None, compare=False, repr=False)
    thumbnail_scalef: float | None = None
    spot_symbol: str = "disc"  # "square" for Xenium / Visium HD pseudo-spots

    @property
    def name(self) -> str:
        return self.sample.id

    @property
    def technology(self) -> str | None:
        return self.metadata.get("st_technology")

    @property
    def location(self) -> Path:
        return self.sample.st

    @property
    def save_target(self) -> SaveTarget:
        return SaveTarget(self.sample.annotation)

    @property
    def pixel_size_um(self) -> float | None:
        """µm per full-resolution pixel: HEST's `pixel_size_um_estimated` (the TIFF's resolution
        tags and `pixel_size_um_embedded` are wrong or blank on many samples)."""
        value = self.metadata.get("pixel_size_um_estimated")
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        return value if np.isfinite(value) and value > 0 else None

    @property
    def image_scale(self) -> float:
        """Full-resolution pixels per image pixel: 1 for the WSI, 1/scalef for the thumbnail."""
        if self.sample.wsi is None and self.thumbnail is not None and self.thumbnail_scalef:
            return 1.0 / self.thumbnail_scalef
        return 1.0

    @property
    def summary(self) -> str:
        """One line for headers: technology, organ, species, oncotree code, pixel size."""
        parts = [f"{self.metadata[key]}" for key, _ in SUMMARY_KEYS if self.metadata.get(key) not in (None, "")]
        if self.pixel_size_um is not None:
            parts.append(f"{self.pixel_size_um:.3g} µm/px")
        return ", ".join(parts)

    @property
    def sample_metadata(self) -> dict:
        """What the layers carry in their metadata (the summary keys and the pixel size)."""
        out = {shown: self.metadata.get(key) for key, shown in SUMMARY_KEYS}
        out["pixel_size_um"] = self.pixel_size_um
        return out

    def load_overlays(self, notes: list[str] | None = None) -> list:
        """Tissue contours and CellViT cells when the tree has them (`core.source.Overlay`)."""
        from .overlays import read_overlays

        return read_overlays(self.sample.contours, self.sample.cells, self.pixel_size_um, notes)

    def load_image(
        self,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
        notes: list[str] | None = None,
    ) -> list | None:
        if self.sample.wsi is not None:
            from ...core.errors import SlideError
            from ..images import check_declared_size, tiff_page_levels

            check_declared_size(self.sample.wsi)
            try:
                levels = tiff_page_levels(self.sample.wsi)
            except Exception as exc:  # tifffile raises many types for damaged files
                raise SlideError(self.sample.wsi, f"cannot read the TIFF pyramid ({exc})") from exc
            if not levels:
                raise SlideError(self.sample.wsi, "the TIFF holds no image")
            return levels
        if self.thumbnail is not None:
            if notes is not None:
                notes.append(f"no wsis/{self.sample.id}.tif: showing the h5ad's thumbnail "
                             f"({self.thumbnail.shape[1]} x {self.thumbnail.shape[0]} px)")
            return [self.thumbnail]
        return None
