"""The bundled sample: a synthetic slide written in the real layout (no download)."""

from __future__ import annotations

from pathlib import Path


def sample_root() -> Path:
    """Folder holding the generated sample dataset (created on first use)."""
    from .io.cache import cache_dir

    return cache_dir() / "sample"


def sample_slide_paths():
    from .io.stimage.layout import resolve_slide
    from .synthetic import SAMPLE_NAME, write_synthetic_slide

    root = sample_root()
    paths = resolve_slide(root / "Visium" / "coord" / f"{SAMPLE_NAME}_coord.csv")
    if paths is None or paths.image is None or paths.count is None:
        paths = write_synthetic_slide(root)
    return paths


def make_sample_slide():
    from .io.registry import load_slide
    from .viewer.layers import slide_layer_data

    return slide_layer_data(load_slide(sample_slide_paths()))
