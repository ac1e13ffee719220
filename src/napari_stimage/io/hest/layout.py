"""Where a HEST-1k sample's files live: `{root}/st/{id}.h5ad`, `wsis/{id}.tif`, `metadata/{id}.json`,
optional `tissue_seg/{id}_contours.geojson` and `cellvit_seg/{id}_cellvit_seg.geojson`.

A sample needs its `st/` h5ad; everything else may be missing (users often download `st/` only).
An `.h5ad` is claimed only inside a HEST tree (a sibling `metadata/{id}.json` or `wsis/{id}.tif`),
so generic AnnData files are left to other readers. Never unpickles anything (`.pkl` is ignored).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ...core.errors import SlideError


@dataclass(frozen=True)
class HestSample:
    root: Path  # the folder holding st/, wsis/, metadata/, ...
    id: str

    @property
    def name(self) -> str:
        return self.id

    @property
    def st(self) -> Path:
        return self.root / "st" / f"{self.id}.h5ad"

    def _existing(self, path: Path) -> Path | None:
        return path if path.is_file() else None

    @property
    def wsi(self) -> Path | None:
        return self._existing(self.root / "wsis" / f"{self.id}.tif")

    @property
    def metadata(self) -> Path | None:
        return self._existing(self.root / "metadata" / f"{self.id}.json")

    @property
    def contours(self) -> Path | None:
        return self._existing(self.root / "tissue_seg" / f"{self.id}_contours.geojson")

    @property
    def cells(self) -> Path | None:
        """CellViT's GeoJSON, else its parquet."""
        folder = self.root / "cellvit_seg"
        return self._existing(folder / f"{self.id}_cellvit_seg.geojson") or self._existing(
            folder / f"{self.id}_cellvit_seg.parquet")

    @property
    def annotation(self) -> Path:
        """Where curated labels are saved (STimage-1K4M `_anno.csv` format); may not exist yet."""
        return self.root / "annotation" / f"{self.id}_anno.csv"

    # `napari-stimage convert` asks a handle that is not an STimage `SlidePaths` these two
    def is_converted(self) -> bool:
        from ..cache import is_cache_valid

        return is_cache_valid(self.st)

    def convert(self, progress=None, cancel=None) -> tuple[str, str]:
        """Cache the counts; returns the (expression, image) states (the WSI is read lazily as is)."""
        from .counts import cache_counts

        return cache_counts(self.st, progress, cancel), "lazy" if self.wsi is not None else "none"


_MEMBER_FOLDERS = {"st": ".h5ad", "wsis": ".tif", "metadata": ".json"}


def _is_sample(root: Path, sample_id: str) -> bool:
    return (root / "st" / f"{sample_id}.h5ad").is_file() and (
        (root / "metadata" / f"{sample_id}.json").is_file() or (root / "wsis" / f"{sample_id}.tif").is_file()
    )


def resolve_sample(path) -> HestSample | None:
    """The sample `path` (its h5ad, WSI or metadata JSON) belongs to, or None. Never raises."""
    try:
        path = Path(path)
        folder, suffix = path.parent.name, path.suffix.lower()
        if _MEMBER_FOLDERS.get(folder) != suffix:
            return None
        root, sample_id = path.parent.parent, path.stem
        return HestSample(root, sample_id) if _is_sample(root, sample_id) else None
    except (TypeError, ValueError, OSError):
        return None


def find_samples(root: Path) -> list[HestSample]:
    """Every sample of a HEST tree at `root` (a folder holding `st/` plus `metadata/` or `wsis/`)."""
    st = Path(root) / "st"
    if not st.is_dir():
        return []
    return [HestSample(Path(root), p.stem) for p in sorted(st.glob("*.h5ad")) if _is_sample(Path(root), p.stem)]


def _finite(value):
    """HEST writes its JSON with `json.dump`, so missing numbers are bare `NaN`: None instead."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def read_metadata(path: Path | None) -> dict:
    """The sample's metadata JSON as a dict (NaN -> None); {} when there is none."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))  # Python's json reads bare NaN
    except (OSError, ValueError) as exc:
        raise SlideError(path, f"the metadata is not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise SlideError(path, "the metadata is not a JSON object")
    return {k: _finite(v) for k, v in data.items()}
