"""STimage-1K4M: its dataset layout, count CSV and annotation CSV, and its slide reader (registered)."""

from __future__ import annotations

from ..registry import CachePlan, SlideReader, register
from .layout import SlidePaths, find_slides, resolve_slide
from .reader import read_slide


def _resolve(path) -> SlidePaths | None:
    return path if isinstance(path, SlidePaths) else resolve_slide(path)


def _cache_plan(paths: SlidePaths) -> CachePlan:
    return CachePlan(paths.name, count=paths.count, image=paths.image)


register(
    SlideReader(
        name="stimage",
        kind="an STimage-1K4M slide",
        missing="no matching _coord.csv found",
        expected="expected {slide}_coord.csv, _count.csv, _anno.csv or {slide}.png in the dataset layout",
        resolve=_resolve,
        read=read_slide,
        find=find_slides,
        cache_plan=_cache_plan,
    )
)
