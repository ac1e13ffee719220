"""HEST-1k samples (`st/{id}.h5ad`, `wsis/{id}.tif`, `metadata/{id}.json`) and their slide reader
(registered). Any file of a sample opens the whole sample."""

from __future__ import annotations

from pathlib import Path

from ..registry import CachePlan, SlideReader, register
from .layout import HestSample, find_samples, resolve_sample
from .reader import read_sample


def _resolve(path) -> HestSample | None:
    if isinstance(path, HestSample):
        return path
    try:
        folder = Path(path)
        if folder.is_dir():  # the tree's root holding one sample
            samples = find_samples(folder)
            return samples[0] if len(samples) == 1 else None
    except (TypeError, ValueError, OSError):
        return None
    return resolve_sample(path)


register(
    SlideReader(
        name="hest",
        kind="a HEST-1k sample",
        missing="no st/{id}.h5ad with a sibling metadata/{id}.json or wsis/{id}.tif",
        expected="expected st/{id}.h5ad, wsis/{id}.tif or metadata/{id}.json of a HEST-1k tree",
        resolve=_resolve,
        read=read_sample,
        find=find_samples,
        cache_plan=lambda sample: CachePlan(sample.id, is_converted=sample.is_converted, convert=sample.convert),
    )
)
