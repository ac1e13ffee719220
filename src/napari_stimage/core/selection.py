"""Which spots a drawn shape selects (Qt-free; positions are napari (row, col) = (y, x)).

All functions return sorted int64 indices into `positions`. They prefilter by bounding box,
so a small shape on a 600k-bin slide only tests the spots near it.
"""

from __future__ import annotations

import numpy as np


def unique_indices(indices) -> np.ndarray:
    """Sorted unique int64 indices. A sort, not `np.unique`: numpy 2's `np.unique` hashes
    integers, about 15 times slower on the 170,000 indices of a lasso over bins."""
    idx = np.sort(np.asarray(indices, dtype=np.int64).ravel())
    if idx.size > 1:
        idx = idx[np.concatenate(([True], idx[1:] != idx[:-1]))]
    return idx


def _as_positions(positions) -> np.ndarray:
    pos = np.asarray(positions, dtype=np.float64)
    return pos[:, -2:]


def points_in_rectangle(positions, corner_a, corner_b) -> np.ndarray:
    pos = _as_positions(positions)
    lo = np.minimum(corner_a[-2:], corner_b[-2:])
    hi = np.maximum(corner_a[-2:], corner_b[-2:])
    inside = np.all((pos >= lo) & (pos <= hi), axis=1)
    return np.flatnonzero(inside)


def points_in_polygon(positions, polygon) -> np.ndarray:
    """Spots whose centre lies inside the (free-hand, possibly self-crossing) polygon (even-odd rule)."""
    from skimage.measure import points_in_poly

    pos = _as_positions(positions)
    poly = np.asarray(polygon, dtype=np.float64)[:, -2:]
    if len(poly) < 3:
        return np.empty(0, dtype=np.int64)
    lo, hi = poly.min(axis=0), poly.max(axis=0)
    candidates = np.flatnonzero(np.all((pos >= lo) & (pos <= hi), axis=1))
    if candidates.size == 0:
        return candidates.astype(np.int64)
    inside = points_in_poly(pos[candidates], poly)
    return candidates[inside].astype(np.int64)


class SpotIndex:
    """A k-d tree over a layer's spot centres, built once, so brush strokes stay fast on 600k bins."""

    def __init__(self, positions):
        from scipy.spatial import cKDTree

        self.positions = _as_positions(positions).copy()
        self.tree = cKDTree(self.positions)

    def near_path(self, path, radius: float) -> np.ndarray:
        path = np.asarray(path, dtype=np.float64).reshape(-1, 2)
        if len(path) == 0:
            return np.empty(0, dtype=np.int64)
        # samples along the path no further apart than `step`: every spot within `radius` of the
        # path is within `radius + step / 2` of a sample; the exact test then runs on few candidates
        step = max(radius, 1e-9)
        dense = [path[:1]]
        for a, b in zip(path[:-1], path[1:], strict=True):
            k = int(np.ceil(np.linalg.norm(b - a) / step))
            if k:
                dense.append(a + (b - a) * (np.arange(1, k + 1)[:, None] / k))
        near = self.tree.query_ball_point(np.concatenate(dense), radius + step / 2)
        candidates = unique_indices(np.concatenate([np.asarray(c, dtype=np.int64) for c in near] + [np.empty(0, np.int64)]))
        if candidates.size == 0:
            return candidates
        hit = points_near_path(self.positions[candidates], path, radius)
        return candidates[hit]


def points_near_path(positions, path, radius: float) -> np.ndarray:
    """Spots whose centre is within `radius` of the brush path (a polyline, or a single point)."""
    pos = _as_positions(positions)
    path = np.asarray(path, dtype=np.float64).reshape(-1, pos.shape[1] if pos.ndim == 2 else 2)[:, -2:]
    if len(path) == 0:
        return np.empty(0, dtype=np.int64)
    lo, hi = path.min(axis=0) - radius, path.max(axis=0) + radius
    candidates = np.flatnonzero(np.all((pos >= lo) & (pos <= hi), axis=1))
    if candidates.size == 0:
        return candidates.astype(np.int64)
    pts = pos[candidates]
    hit = np.zeros(len(pts), dtype=bool)
    r2 = radius * radius
    segments = [(path[0], path[0])] if len(path) == 1 else zip(path[:-1], path[1:], strict=True)
    for a, b in segments:
        ab = b - a
        denom = float(ab @ ab)
        t = np.zeros(len(pts)) if denom == 0 else np.clip(((pts - a) @ ab) / denom, 0.0, 1.0)
        nearest = a + t[:, None] * ab
        hit |= ((pts - nearest) ** 2).sum(axis=1) <= r2
    return candidates[hit].astype(np.int64)


class Selection:
    """The selected elements of a layer that has no selection of its own (a bin raster):
    sorted unique indices, and callbacks told after each change."""

    def __init__(self):
        self.indices = np.empty(0, dtype=np.int64)
        self._listeners: list = []

    def set(self, indices, mode: str = "replace") -> None:
        """Replace the selection, or "add" to it / "remove" from it."""
        indices = unique_indices(indices)
        if mode == "add":
            indices = unique_indices(np.concatenate([self.indices, indices]))
        elif mode == "remove":
            indices = np.setdiff1d(self.indices, indices, assume_unique=True)
        elif mode != "replace":
            raise ValueError(f"unknown selection mode {mode!r}; one of replace, add, remove")
        if np.array_equal(indices, self.indices):
            return
        self.indices = indices
        for listener in list(self._listeners):
            listener()

    def connect(self, listener) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def disconnect(self, listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
