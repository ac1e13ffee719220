"""Dense bin grids (VisiumHD's 8 µm bins): one raster pixel per bin instead of 600,000 points.

Drawing 600k Points costs seconds per frame; a raster with one pixel per bin, placed on the
H&E with the lattice's pitch (scale), origin (translate) and, if the grid is tilted, rotation
(affine), redraws in milliseconds. This module is Qt-free:

    >>> grid = detect_grid(slide.positions)          # None for hexagonal/sparse layouts
    >>> image = grid.raster(slide.gene_values("MT-CO1"))   # (rows, cols) float32, NaN = no bin
    >>> grid.layer_kwargs()                           # {'scale': ..., 'translate': ...} or affine
    >>> grid.spots_with_value(painted_labels, 3)      # spot indices a Labels layer painted with 3

Label editing on bins: `LabelRasterSync` keeps a raster of label codes and the slide's
`curation.editor.LabelEditor` in step: painted pixels become one `editor.assign` per label, and
the editor's changes (undo, recovery, Loupe import) are written back into the raster. Putting it
on a napari Labels layer (colours, key bindings, `watch_viewer`) is `viewer/bins.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..core.labels import is_unlabelled, unlabelled_mask
from ..core.selection import unique_indices

DENSE_GRID_MIN_SPOTS = 50_000  # below this, Points stay fast enough and keep per-spot hover
_MAX_RESIDUAL = 0.25  # of the pitch: how far a spot may sit from its lattice node
_MIN_ON_LATTICE = 0.98  # share of spots that must sit on the lattice
_SAMPLE = 20_000


@dataclass
class BinGrid:
    """A square lattice: spot k sits at raster pixel (row[k], col[k]).

    World (image pixel) position of raster pixel (i, j): origin + R(angle) @ (pitch * (i, j)),
    in napari's (row, col) order.
    """

    origin: tuple[float, float]
    pitch: float
    angle: float  # radians, rotation of the lattice's row axis from the image's
    shape: tuple[int, int]
    row: np.ndarray
    col: np.ndarray

    @property
    def n_spots(self) -> int:
        return len(self.row)

    @cached_property
    def flat_index(self) -> np.ndarray:
        """Per spot, its index into the raveled raster (computed once: every raster uses it)."""
        index = self.row.astype(np.int64) * self.shape[1] + self.col
        index.flags.writeable = False
        return index

    def raster(self, values: np.ndarray, fill: float = np.nan, dtype=np.float32) -> np.ndarray:
        """A (rows, cols) image holding `values[k]` at spot k's pixel, `fill` where there is no spot."""
        out = np.full(self.shape[0] * self.shape[1], fill, dtype=dtype)
        out[self.flat_index] = values
        return out.reshape(self.shape)

    @cached_property
    def _index_raster(self) -> np.ndarray:
        index = self.raster(np.arange(self.n_spots), fill=-1, dtype=np.int32)
        index.flags.writeable = False
        return index

    def spot_index_raster(self) -> np.ndarray:
        """(rows, cols) int32: the spot at each pixel, -1 where there is none (one read-only
        array per grid: every paint stroke and hover looks pixels up in it)."""
        return self._index_raster

    def label_raster(self, labels) -> tuple[np.ndarray, list]:
        """A Labels-layer image of per-spot labels: 0 = unlabelled, k = categories[k - 1], in the
        smallest unsigned dtype that holds the codes (`label_dtype`)."""
        labels = np.asarray(labels, dtype=object)
        missing = unlabelled_mask(labels)
        categories = sorted({str(v) for v in labels[~missing]})
        code_of = {c: i + 1 for i, c in enumerate(categories)}
        dtype = label_dtype(len(categories))
        codes = np.zeros(self.n_spots, dtype=dtype)
        codes[~missing] = [code_of[str(v)] for v in labels[~missing]]
        return self.raster(codes, fill=0, dtype=dtype), categories

    def spots_at_world(self, positions) -> np.ndarray:
        """Spot index at each (row, col) image-pixel position (-1 off the grid or on an empty node):
        the inverse of the layer placement, for hover and clicks."""
        positions = np.atleast_2d(np.asarray(positions, dtype=np.float64))[:, -2:]
        c, s = np.cos(self.angle), np.sin(self.angle)
        local = (positions - self.origin) @ np.array([[c, -s], [s, c]]) / self.pitch  # R^T (p - origin)
        ij = np.rint(local)
        return self.spots_at_pixels(ij[:, 0], ij[:, 1])

    def values_at_spots(self, raster: np.ndarray) -> np.ndarray:
        """Per spot, the raster's value at its pixel (e.g. what a Labels layer holds there)."""
        return np.asarray(raster).reshape(-1)[self.flat_index]

    def spots_with_value(self, raster: np.ndarray, value) -> np.ndarray:
        """Indices of the spots whose pixel holds `value` (e.g. painted with one label)."""
        return np.flatnonzero(self.values_at_spots(raster) == value)

    def spots_at_pixels(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Spot index under each raster pixel (-1 for empty or outside pixels)."""
        rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
        index = self.spot_index_raster()
        inside = (rows >= 0) & (rows < self.shape[0]) & (cols >= 0) & (cols < self.shape[1])
        out = np.full(rows.shape, -1, dtype=np.int64)
        out[inside] = index[rows[inside], cols[inside]]
        return out

    # -- selecting bins: shapes in raster (row, col) coordinates, where bin k's centre is (row[k], col[k])
    def spots_in_polygon(self, polygon) -> np.ndarray:
        """Sorted indices of the spots whose bin centre lies inside `polygon` (raster coordinates,
        even-odd rule). Fills the polygon's rows on the raster, so the cost follows its area,
        not the 600k bin centres."""
        rows, cols = pixels_in_polygon(polygon, self.shape)
        spots = self.spots_at_pixels(rows, cols)
        return np.sort(spots[spots >= 0])

    def spots_near_path(self, path, radius: float) -> np.ndarray:
        """Sorted indices of the spots whose bin centre is within `radius` (raster pixels) of the
        brush path; the k-d tree over bin centres is built on the first stroke."""
        return self._centre_index.near_path(path, radius)

    @cached_property
    def _centre_index(self):
        from ..core.selection import SpotIndex

        return SpotIndex(np.column_stack([self.row, self.col]))

    def spot_at(self, point) -> int:
        """The spot whose bin holds the raster position `point` (-1 for none)."""
        row, col = np.rint(np.asarray(point, dtype=np.float64)[-2:])
        return int(self.spots_at_pixels(np.array([row]), np.array([col]))[0])

    def affine(self) -> np.ndarray:
        """3x3 napari affine from raster pixel (row, col) to image pixel (row, col)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        m = np.eye(3)
        m[:2, :2] = self.pitch * np.array([[c, -s], [s, c]])
        m[:2, 2] = self.origin
        return m

    def layer_kwargs(self) -> dict:
        """napari layer placement: scale/translate, or an affine when the lattice is tilted."""
        if abs(self.angle) < 1e-4:
            return {"scale": (self.pitch, self.pitch), "translate": tuple(self.origin)}
        return {"affine": self.affine()}


def pixels_in_polygon(polygon, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pixels of a `shape` raster whose centre (integer coordinates) lies
    inside the polygon, by the even-odd rule: a scanline fill, O(vertices x rows + area)."""
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    empty = (np.empty(0, np.int64), np.empty(0, np.int64))
    if len(poly) < 3 or not np.isfinite(poly).all():
        return empty
    y0, x0 = poly[:, 0], poly[:, 1]
    y1, x1 = np.roll(y0, -1), np.roll(x0, -1)
    first = max(int(np.ceil(y0.min())), 0)
    last = min(int(np.floor(y0.max())), shape[0] - 1)
    if last < first:
        return empty
    rows = np.arange(first, last + 1)
    # an edge crosses row r when r is in [low, high): each crossing counted once, vertices included
    low, high = np.minimum(y0, y1), np.maximum(y0, y1)
    row_of, edge = np.nonzero((rows[:, None] >= low) & (rows[:, None] < high))
    y = rows[row_of]
    xs = x0[edge] + (y - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    order = np.lexsort((xs, row_of))
    row_of, xs = row_of[order], xs[order]  # per row an even number of crossings, left to right
    start = np.maximum(np.ceil(xs[0::2]), 0).astype(np.int64)
    stop = np.minimum(np.floor(xs[1::2]), shape[1] - 1).astype(np.int64)
    span_rows = rows[row_of[0::2]]
    length = np.maximum(stop - start + 1, 0)
    total = int(length.sum())
    if total == 0:
        return empty
    offsets = np.arange(total) - np.repeat(np.cumsum(length) - length, length)
    return np.repeat(span_rows, length), np.repeat(start, length) + offsets


def label_dtype(n_categories: int) -> type:
    """The smallest unsigned dtype for label codes 0..n (with room for a few new labels):
    uint8 up to 200 labels, else uint16, else uint32."""
    if n_categories < 200:
        return np.uint8
    return np.uint16 if n_categories < 60_000 else np.uint32


def _pitch_and_angle(positions: np.ndarray) -> tuple[float, float]:
    """Lattice pitch and tilt from the vectors between sampled spots and their 4 neighbours."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(0)
    sample = positions if len(positions) <= _SAMPLE else positions[rng.choice(len(positions), _SAMPLE, replace=False)]
    tree = cKDTree(positions)
    dist, idx = tree.query(sample, k=5)
    rough = float(np.median(dist[:, 1]))
    vec = (positions[idx[:, 1:]] - sample[:, None, :]).reshape(-1, 2)
    d = dist[:, 1:].ravel()
    close = np.abs(d - rough) < 0.2 * rough
    if not close.any():
        return rough, 0.0
    vec, d = vec[close], d[close]
    # The 4 neighbour directions of a square lattice agree modulo 90°: average them on the circle
    # of 4θ (a median of angles folded onto [-45°, 45°) splits when the tilt is near ±45°).
    theta = np.arctan2(vec[:, 1], vec[:, 0])
    angle = float(np.arctan2(np.sin(4 * theta).mean(), np.cos(4 * theta).mean()) / 4)
    return float(np.mean(d)), angle  # the mean of all 4 neighbours is unbiased; the nearest is not


def detect_grid(positions: np.ndarray) -> BinGrid | None:
    """The square lattice the (n, 2) (row, col) positions sit on, or None if they do not.

    Hexagonal Visium spots, scattered points and lattices with repeated nodes give None.
    """
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) < 4 or not np.isfinite(positions).all():
        return None
    pitch, angle = _pitch_and_angle(positions)
    if not pitch > 0:
        return None
    span = float(np.ptp(positions, axis=0).max()) / pitch
    if abs(angle) * span < 0.05:  # tilt moves no bin by 5% of a pitch: keep plain scale/translate
        angle = 0.0
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    local = positions @ rotation  # row-vector form of R^T p: lattice axes
    start = local.min(axis=0)
    nearest = np.rint((local - start) / pitch)
    # Refine: least squares of position against lattice index, one line per axis, shared pitch.
    fits = [np.polyfit(nearest[:, k], local[:, k], 1) for k in range(2)]
    pitch = float(np.mean([f[0] for f in fits]))
    if not pitch > 0:
        return None
    offset = np.array([np.mean(local[:, k] - pitch * nearest[:, k]) for k in range(2)])
    steps = (local - offset) / pitch
    nearest = np.rint(steps)
    residual = np.abs(steps - nearest).max(axis=1)
    if np.mean(residual <= _MAX_RESIDUAL) < _MIN_ON_LATTICE:
        return None
    ij = nearest.astype(np.int64)
    first_node = ij.min(axis=0)
    ij -= first_node
    shape = tuple(int(v) + 1 for v in ij.max(axis=0))
    if shape[0] * shape[1] > 64 * len(positions) or shape[0] * shape[1] > 2**31:
        return None  # too sparse to be a bin grid
    flat = ij[:, 0] * shape[1] + ij[:, 1]
    if len(np.unique(flat)) != len(flat):
        return None  # two spots on one node: not a bin grid
    origin_local = offset + first_node * pitch
    origin = rotation @ origin_local
    return BinGrid(
        origin=(float(origin[0]), float(origin[1])),
        pitch=pitch,
        angle=angle,
        shape=shape,
        row=ij[:, 0].astype(np.int32),
        col=ij[:, 1].astype(np.int32),
    )


def bin_grid(slide, min_spots: int | None = None) -> BinGrid | None:
    """The slide's bin grid when it is a dense lattice of at least `min_spots` spots, else None.

    Computed once per slide and remembered on it.
    """
    min_spots = DENSE_GRID_MIN_SPOTS if min_spots is None else min_spots
    key = ("_stimage_bin_grid", min_spots)
    cached = slide.__dict__.get("_stimage_bin_grid")
    if cached is not None and cached[0] == key:
        return cached[1]
    grid = detect_grid(slide.positions) if slide.n_spots >= min_spots else None
    slide.__dict__["_stimage_bin_grid"] = (key, grid)
    return grid


class LabelRasterSync:
    """Two-way link between a Labels-layer raster of bins and a `editing.LabelEditor`.

    Codes: 0 = unlabelled, k = `categories[k - 1]`. Painting a code that names no category yet
    creates the label `"label k"`. `on_painted(raster)` turns the pixels that changed into
    `editor.assign` calls (one per painted label, so undo works per stroke); the editor's own
    changes (undo, the curation widget) are written back into the raster by `on_editor_change`.
    The editor is the truth: the raster only ever shows what the editor holds.
    """

    def __init__(self, grid: BinGrid, editor, categories: list[str] | None = None):
        self.grid = grid
        self.editor = editor
        self.categories: list[str] = list(categories or [])
        dtype = label_dtype(len(self.categories))
        self.codes = np.zeros(grid.n_spots, dtype=dtype)
        self.raster = np.zeros(grid.shape, dtype=dtype)
        self.on_editor_change(None)

    def _make_room(self) -> None:
        """Widen codes and raster when the categories outgrow their dtype (a new `raster` array:
        a layer showing the old one must be given the new one)."""
        if len(self.categories) > np.iinfo(self.raster.dtype).max:
            dtype = label_dtype(len(self.categories))
            self.codes, self.raster = self.codes.astype(dtype), self.raster.astype(dtype)

    def code_of(self, label) -> int:
        if is_unlabelled(label):
            return 0
        label = str(label)
        if label not in self.categories:
            self.categories.append(label)
            self._make_room()
        return self.categories.index(label) + 1

    def label_of(self, code: int) -> str | None:
        if code <= 0:
            return None
        while len(self.categories) < code:
            self.categories.append(f"label {len(self.categories) + 1}")
        self._make_room()
        return self.categories[code - 1]

    def on_editor_change(self, indices) -> None:
        """Editor view: refresh the raster for the spots whose label changed (None = all)."""
        if indices is None:
            idx = np.arange(self.grid.n_spots)
            values = self.editor.labels.tolist()
        else:  # only the edited spots: an edit of a few bins must not copy all 600k labels
            idx = np.asarray(indices, dtype=np.int64)
            values = self.editor.labels_at(idx).tolist()
        # one code_of call per distinct label, not per spot: 600k bins re-sync in milliseconds
        code_by_label = {value: self.code_of(value) for value in set(values)}
        self.codes[idx] = np.fromiter(map(code_by_label.__getitem__, values), self.codes.dtype, len(values))
        self.raster.reshape(-1)[self.grid.flat_index[idx]] = self.codes[idx]

    def _assign_codes(self, spots: np.ndarray, codes: np.ndarray, description: str | None = None) -> int:
        """One `editor.assign` per distinct code among `spots` (whose new codes are `codes`)."""
        total = 0
        for code in unique_indices(codes).tolist():
            chosen = unique_indices(spots[codes == code])
            chosen = chosen[self.codes[chosen] != code]
            if chosen.size:
                self.codes[chosen] = code
                total += self.editor.assign(chosen, self.label_of(int(code)), description)
        return total

    def on_painted(self, raster: np.ndarray | None = None) -> int:
        """Push painted pixels to the editor; returns how many spots changed."""
        raster = self.raster if raster is None else raster
        now = self.grid.values_at_spots(raster)
        changed = np.flatnonzero(now != self.codes)
        return self._assign_codes(changed, now[changed])

    def adopt_painting(self, painted: np.ndarray, pristine: np.ndarray) -> int:
        """Hand the editor the bins painted before this link existed (`painted` vs `pristine`).

        A layer added without a watcher (e.g. File > Open before the Curate widget was opened)
        may already have been painted; those strokes become one undoable edit per label, so
        binding never throws a curator's work away. Returns how many spots changed.
        """
        now = self.grid.values_at_spots(painted)
        changed = np.flatnonzero(now != self.grid.values_at_spots(pristine))
        total = self._assign_codes(changed, now[changed], f"paint {changed.size} bin(s) before curation")
        if total:
            self.on_editor_change(None)  # not yet a view of the editor: catch up (repeated ids too)
        return total

    def on_paint_atoms(self, atoms) -> int | None:
        """Apply napari's paint history atoms `(indices, old values, new values)`; None if unknown.

        napari emits `paint` before writing the pixels for programmatic `paint()` calls (after,
        for mouse strokes), so the atoms, not the layer data, say what was painted.
        """
        rows, cols, new = [], [], []
        for atom in atoms or ():
            if hasattr(atom, "slice_key") and hasattr(atom, "new_value"):  # napari >= 0.6 masked atom
                box_r, box_c = atom.slice_key[-2], atom.slice_key[-1]
                rr, cc = np.mgrid[box_r, box_c]
                if atom.mask is not None:
                    mask = np.asarray(atom.mask).reshape(rr.shape)
                    rr, cc = rr[mask], cc[mask]
                r, c, values = rr.ravel(), cc.ravel(), atom.new_value
            elif isinstance(atom, tuple) and len(atom) == 3:  # (indices, old values, new values)
                indices, _, values = atom
                r, c = np.asarray(indices[-2]).ravel(), np.asarray(indices[-1]).ravel()
            else:
                return None
            rows.append(r)
            cols.append(c)
            new.append(np.broadcast_to(np.asarray(values), r.shape).ravel())
        if not rows:
            return 0
        spots = self.grid.spots_at_pixels(np.concatenate(rows), np.concatenate(cols))
        codes = np.concatenate(new).astype(np.int64)
        keep = spots >= 0
        return self._assign_codes(spots[keep], codes[keep])
